/**
 * Starting one of lrnet's TypeScript files in a child process or a worker thread: the one place that knows how.
 *
 * lrnet runs its sources through tsx. A child process gets tsx's loader with `--import`, named by file URL: a bare
 * 'tsx' would resolve from the working folder, which is not this project's when `npx lrnet` or the app runs from
 * elsewhere. A worker thread starts without its parent's module hooks (and an `--import` in its execArgv is not in
 * place before its entry loads), so it runs a small bootstrap that registers tsx and then imports the entry. An
 * entry that is plain JavaScript (a bundled build) needs neither.
 */
import { fork, type ChildProcess, type ForkOptions } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

const require = createRequire(import.meta.url);

const isTypeScript = (entry: string) => /\.[cm]?ts$/.test(entry);

/** File URL of an ESM entry of the tsx package, read from its exports map ('import' condition). */
function tsxModule(entry: '.' | './esm/api'): string {
  const manifest = require.resolve('tsx/package.json');
  const exported = (require(manifest) as { exports: Record<string, string | { import: string | { default: string } }> }).exports[entry];
  const target = typeof exported === 'string' ? exported : typeof exported?.import === 'string' ? exported.import : exported?.import.default;
  if (target === undefined) throw new Error(`tsx does not export ${entry}`);
  return pathToFileURL(path.join(path.dirname(manifest), target)).href;
}

/** `fork` of a TypeScript (or JavaScript) file, with tsx's loader in front of the options' own execArgv. */
export function forkTypeScript(entry: string | URL, args: readonly string[], options: ForkOptions = {}): ChildProcess {
  const file = entry instanceof URL ? fileURLToPath(entry) : entry;
  const loader = isTypeScript(file) ? ['--import', pathToFileURL(require.resolve('tsx')).href] : [];
  return fork(file, [...args], { ...options, execArgv: [...loader, ...(options.execArgv ?? [])] });
}

/**
 * The parent's Node options minus those that describe how the parent got its script (`-e CODE`, `--input-type`,
 * `-p`): a worker given those fails to start, and the bootstrap is its script.
 */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-e' || a === '--eval' || a === '-p' || a === '--print') {
      i++;
      continue;
    }
    if (a.startsWith('--input-type') || a.startsWith('--eval=') || a.startsWith('--print=')) continue;
    out.push(a);
  }
  return out;
}

/**
 * A worker thread running a TypeScript (or JavaScript) module, given as a file URL or path. It inherits the
 * parent's Node options except those naming the parent's own script (see workerExecArgv).
 */
export function typeScriptWorker(entry: string | URL, options: WorkerOptions = {}): Worker {
  const url = entry instanceof URL ? entry.href : entry.startsWith('file:') ? entry : pathToFileURL(entry).href;
  const self = JSON.stringify(url);
  const code = isTypeScript(fileURLToPath(url))
    ? `import(${JSON.stringify(tsxModule('./esm/api'))}).then((tsx) => { tsx.register(); return import(${self}); })`
    : `import(${self})`;
  return new Worker(code, { execArgv: workerExecArgv(), ...options, eval: true });
}
