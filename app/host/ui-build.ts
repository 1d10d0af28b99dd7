/**
 * Building what the app serves from its sources (the UI in renderer/dist, Electron's preload bridge) when the
 * output is missing or older than them. `npm start` and `lrnet serve` both run it, so a fresh clone opens the UI
 * either way instead of answering "the UI is not built yet".
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** One vite build and what decides whether it is due. */
export interface ViteTarget {
  /** For progress lines, e.g. "the UI". */
  readonly label: string;
  readonly configFile: string;
  /** A file the build writes; its modification time is the build's. */
  readonly output: string;
  /** Files and folders the output is built from. */
  readonly sources: readonly string[];
}

/** The Svelte UI; it imports the API contract, so a changed contract rebuilds it too. */
export const UI_TARGET: ViteTarget = {
  label: 'the UI',
  configFile: path.join(ROOT, 'renderer', 'vite.config.js'),
  output: path.join(ROOT, 'renderer', 'dist', 'index.html'),
  sources: [
    path.join(ROOT, 'renderer', 'src'),
    path.join(ROOT, 'renderer', 'index.html'),
    path.join(ROOT, 'renderer', 'vite.config.js'),
    path.join(ROOT, 'app', 'contract.ts'),
  ],
};

/** Electron's preload bridge (main/preload.ts bundled to out/main/preload.cjs). */
export const PRELOAD_TARGET: ViteTarget = {
  label: 'the preload bridge',
  configFile: path.join(ROOT, 'main', 'vite.config.js'),
  output: path.join(ROOT, 'out', 'main', 'preload.cjs'),
  sources: [path.join(ROOT, 'main', 'preload.ts'), path.join(ROOT, 'app', 'contract.ts')],
};

/** Newest modification time (ms) of a file, or of any file under a folder; 0 for a path that does not exist. */
function newest(source: string): number {
  if (!existsSync(source)) return 0;
  const stat = statSync(source);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = 0;
  for (const entry of readdirSync(source)) latest = Math.max(latest, newest(path.join(source, entry)));
  return latest;
}

/** Whether the target's output is missing or older than one of its sources. */
export function isStale(target: ViteTarget): boolean {
  const built = existsSync(target.output) ? statSync(target.output).mtimeMs : 0;
  return built === 0 || Math.max(...target.sources.map(newest)) > built;
}

/**
 * Builds the target when it is stale, saying so through `log` (one line per call). Returns false when it could
 * not (vite is not installed, or the build failed, which vite has printed), having logged why; true when the output
 * is up to date, or when vite is missing but an older build exists to serve.
 */
export async function buildIfStale(target: ViteTarget, log: (line: string) => void): Promise<boolean> {
  if (!isStale(target)) return true;
  const exists = existsSync(target.output);
  let vite: typeof import('vite');
  try {
    vite = await import('vite');
  } catch {
    // vite is a devDependency: an install with --omit=dev has the sources but cannot build them.
    log(`cannot build ${target.label}: vite is not installed (run npm install)${exists ? '; using the older build' : ''}`);
    return exists;
  }
  log(`building ${target.label} ...`);
  try {
    await vite.build({ configFile: target.configFile, logLevel: 'warn' });
  } catch (error) {
    log(`building ${target.label} failed: ${String((error as Error).message ?? error).split('\n')[0]}`);
    return false;
  }
  return true;
}
