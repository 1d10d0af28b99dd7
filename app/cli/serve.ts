/**
 * `lrnet serve`: the app without a window. Opens the store, starts the run manager and serves the UI on
 * 127.0.0.1, printing the URL with its token; Ctrl-C stops the runs (each resumable) and closes the store.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServices, type AppServices } from '../services.ts';
import { startHost, type Host } from '../host/server.ts';
import { buildIfStale, UI_TARGET } from '../host/ui-build.ts';

export const SERVE_USAGE = `usage: lrnet serve [options]

Serves the experiment manager's UI on http://127.0.0.1 (only this machine can connect), protected by a random
token in the printed URL.

options:
  --port N          port to listen on (default: a free one)
  --db FILE         the run database (default: $LRNET_HOME/lrnet.db or the platform's data folder)
  --data DIR        checkpoints and exports (default: the database's folder)
  --concurrency N   runs training at once (default: half the cores)
  --help            this text
`;

/** The built UI: renderer/dist next to this project's sources. */
export const RENDERER_DIST = fileURLToPath(new URL('../../renderer/dist', import.meta.url));

/** Raised for wrong command-line options; the CLI prints `problems` and the usage. */
export class ServeUsageError extends Error {
  override name = 'UsageError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
  }
}

export interface ServeOptions {
  readonly port?: number;
  readonly db?: string;
  readonly data?: string;
  readonly concurrency?: number;
}

/** Parses `serve`'s options; throws ServeUsageError listing every problem. */
export function parseServeArgs(args: readonly string[]): ServeOptions {
  const problems: string[] = [];
  const options: { port?: number; db?: string; data?: string; concurrency?: number } = {};
  const integer = (flag: string, value: string | undefined, min: number, max: number): number | undefined => {
    const n = Number(value);
    if (value === undefined || !Number.isInteger(n) || n < min || n > max) {
      problems.push(`${flag}: expected an integer from ${min} to ${max}, got ${value === undefined ? 'nothing' : JSON.stringify(value)}`);
      return undefined;
    }
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? args[++i];
    switch (flag) {
      case '--port': {
        const port = integer('--port', value(), 0, 65535);
        if (port !== undefined) options.port = port;
        break;
      }
      case '--concurrency': {
        const n = integer('--concurrency', value(), 1, 64);
        if (n !== undefined) options.concurrency = n;
        break;
      }
      case '--db':
      case '--data': {
        const v = value();
        if (!v) problems.push(`${flag}: expected a path`);
        else options[flag === '--db' ? 'db' : 'data'] = path.resolve(v);
        break;
      }
      default:
        problems.push(`unknown option ${JSON.stringify(arg)}`);
    }
  }
  if (problems.length > 0) throw new ServeUsageError(problems);
  return options;
}

/** Starts services and host together; the caller closes both (host first). */
export async function serve(options: ServeOptions & { rendererDir?: string; shell?: 'browser' }): Promise<{ services: AppServices; host: Host; close(): Promise<void> }> {
  const services = await createServices({
    shell: 'browser',
    ...(options.db ? { databasePath: options.db } : {}),
    ...(options.data ? { dataFolder: options.data } : {}),
    ...(options.concurrency ? { concurrency: options.concurrency } : {}),
  });
  let host: Host;
  try {
    host = await startHost({ services, rendererDir: options.rendererDir ?? RENDERER_DIST, ...(options.port !== undefined ? { port: options.port } : {}) });
  } catch (error) {
    await services.close();
    throw error;
  }
  return {
    services,
    host,
    async close() {
      await host.close();
      await services.close();
    },
  };
}

/** One line for a port the host cannot listen on, or undefined for any other error. */
function listenProblem(error: unknown, port: number | undefined): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE') return `port ${port} on 127.0.0.1 is already in use: pick another with --port N, or --port 0 for a free one`;
  if (code === 'EACCES') return `no permission to listen on port ${port}: pick a port above 1023 with --port N, or --port 0 for a free one`;
  return undefined;
}

/** `lrnet serve`: runs until SIGINT/SIGTERM; returns the exit code (2 for wrong options, printed like the CLI's). */
export async function serveCommand(args: readonly string[]): Promise<number> {
  let options: ServeOptions;
  try {
    options = parseServeArgs(args);
  } catch (error) {
    if (!(error instanceof ServeUsageError)) throw error;
    const many = error.problems.length > 1;
    process.stderr.write(`lrnet serve: ${many ? 'invalid options:\n' : ''}${error.problems.map((p) => (many ? `  - ${p}` : p)).join('\n')}\n\nRun "lrnet serve --help" for the options.\n`);
    return 2;
  }
  let app: Awaited<ReturnType<typeof serve>>;
  try {
    app = await serve(options);
  } catch (error) {
    const why = listenProblem(error, options.port);
    if (!why) throw error;
    process.stderr.write(`lrnet serve: ${why}\n`);
    return 1;
  }
  // After the port is ours (a port in use is said at once, not after a build), before the URL is shown.
  if (!(await buildIfStale(UI_TARGET, (line) => process.stderr.write(`lrnet serve: ${line}\n`)))) {
    await app.close();
    return 1;
  }
  process.stdout.write(
    `lrnet serve: the experiment manager is at\n\n    ${app.host.url}\n\n` +
      `database ${app.services.info.databasePath}, ${app.services.info.concurrency} run${app.services.info.concurrency === 1 ? '' : 's'} at a time. Press Ctrl-C to stop (running runs are checkpointed and can be resumed).\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.stdout.write('lrnet serve: stopping runs and closing the store...\n');
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await app.close();
  return 0;
}
