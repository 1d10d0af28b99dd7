// Entry point of a data-parallel worker thread (see stepper.ts). Node worker threads do not inherit the parent's
// tsx loader, so this plain-JavaScript file registers tsx in the thread and then loads the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
