// `npm start`: the desktop app when Electron can open a window here, otherwise the same app served to a browser
// (`lrnet serve`), saying so and printing the URL. Builds the UI first when its sources changed.
//
// Electron is an optional dependency: its install script downloads a binary, which fails on machines without
// internet access, and then require('electron') throws. A Linux machine without a display cannot show a window
// either. LRNET_HEADLESS=1 asks for the browser version outright. Arguments after `--` go to `lrnet serve`
// (e.g. `npm start -- --port 8421`).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);

/** Newest modification time under a folder (ms). */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return latest;
}

async function buildIfStale(label, configFile, output, sources) {
  const built = existsSync(output) ? statSync(output).mtimeMs : 0;
  const changed = Math.max(...sources.map((s) => (statSync(s).isDirectory() ? newest(s) : statSync(s).mtimeMs)));
  if (built >= changed) return;
  process.stdout.write(`lrnet: building ${label}...\n`);
  const { build } = await import('vite');
  await build({ configFile, logLevel: 'warn' });
}

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

await buildIfStale('the UI', path.join(ROOT, 'renderer', 'vite.config.js'), path.join(ROOT, 'renderer', 'dist', 'index.html'), [
  path.join(ROOT, 'renderer', 'src'),
  path.join(ROOT, 'renderer', 'index.html'),
  path.join(ROOT, 'app', 'contract.ts'),
]);

const why = electronUnavailable();
if (why === null) {
  await buildIfStale('the preload bridge', path.join(ROOT, 'main', 'vite.config.js'), path.join(ROOT, 'out', 'main', 'preload.cjs'), [
    path.join(ROOT, 'main', 'preload.ts'),
    path.join(ROOT, 'app', 'contract.ts'),
  ]);
  const child = spawn(require('electron'), [path.join(ROOT, 'main', 'entry.mjs'), ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  process.stdout.write(`lrnet: no desktop window: ${why}.\nlrnet: starting the headless host instead; open the URL below in a browser.\n\n`);
  const { register } = await import('tsx/esm/api');
  register();
  const { serveCommand } = await import('../app/cli/serve.ts');
  process.exitCode = await serveCommand(process.argv.slice(2));
}
