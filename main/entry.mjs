// The Electron entry (electron-builder's extraMetadata.main, and what `npm start` launches): register tsx so the
// TypeScript sources run as they are, as bin/lrnet.js does for the CLI, then start the main process.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
