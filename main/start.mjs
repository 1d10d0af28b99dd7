// `npm start`: the desktop app when Electron can open a window here, otherwise the same app served to a browser
// (`lrnet serve`), saying so and printing the URL. Builds the UI first when its sources changed.
//
// Electron is an optional dependency: its install script downloads a binary, which fails on machines without
// internet access, and then require('electron') throws. A Linux machine without a display cannot show a window
// either. LRNET_HEADLESS=1 asks for the browser version outright. Arguments after `--` go to `lrnet serve`
// (e.g. `npm start -- --port 8421`).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);

// The build-if-stale logic is shared with `lrnet serve` (app/host/ui-build.ts), which is TypeScript.
register();
const { buildIfStale, PRELOAD_TARGET, UI_TARGET } = await import('../app/host/ui-build.ts');
const log = (line) => process.stdout.write(`lrnet: ${line}\n`);

/** Why Electron cannot open a window here, or null when it can. */
function electronUnavailable() {
  if (process.env.LRNET_HEADLESS === '1') return 'LRNET_HEADLESS=1 is set';
  let binary;
  try {
    binary = require('electron');
  } catch (error) {
    return `the Electron binary is not installed (${String(error.message ?? error).split('\n')[0]})`;
  }
  if (typeof binary !== 'string' || !existsSync(binary)) return 'the Electron binary is missing';
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return 'there is no display (DISPLAY and WAYLAND_DISPLAY are unset)';
  return null;
}

if (!(await buildIfStale(UI_TARGET, log))) process.exit(1);

const why = electronUnavailable();
if (why === null) {
  if (!(await buildIfStale(PRELOAD_TARGET, log))) process.exit(1);
  const child = spawn(require('electron'), [path.join(ROOT, 'main', 'entry.mjs'), ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  process.stdout.write(`lrnet: no desktop window: ${why}.\nlrnet: starting the headless host instead; open the URL below in a browser.\n\n`);
  const { serveCommand } = await import('../app/cli/serve.ts');
  process.exitCode = await serveCommand(process.argv.slice(2));
}
