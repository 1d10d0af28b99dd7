/**
 * The `lrnet` command: dispatches to subcommands and turns expected errors into a message and an exit code
 * (0 done, 1 failed, 2 wrong arguments or an unknown run, 130 stopped by Ctrl-C).
 */
import path from 'node:path';
import { trainCommand, resumeCommand, TRAIN_USAGE, RESUME_USAGE } from './train.ts';
import {
  runsCommand,
  showCommand,
  compareCommand,
  rmCommand,
  tagCommand,
  noteCommand,
  RUNS_USAGE,
  SHOW_USAGE,
  COMPARE_USAGE,
  RM_USAGE,
  TAG_USAGE,
  NOTE_USAGE,
} from './runs.ts';
import { CliError, UsageError, databaseFileOf } from './common.ts';
import { ConfigError } from '../../engine/config.ts';
import { TrainingError } from '../../engine/train.ts';
import { BackendError, keepGpuShaderCachesIn } from '../../engine/backends/index.ts';
import { CheckpointError } from '../../engine/checkpoint.ts';
import { isDatasetError } from '../../engine/data/index.ts';
import { defaultDataFolder, StoreError, sqliteFailure } from '../store/index.ts';
import { RunManagerError } from '../runs/types.ts';
import { TrainingFailedError } from '../runs/thread.ts';
import { serveCommand, SERVE_USAGE } from './serve.ts';
import { dataCommand, DATA_USAGE } from './data.ts';
import { exportCommand, EXPORT_USAGE } from './export.ts';
import { DOWNLOADABLE_DATASETS } from '../data/catalog.ts';
import { EXPORT_FORMATS } from '../../engine/export/registry.ts';

/** Every command: its one-line summary for `lrnet --help`, its own usage text and what runs it. */
const COMMANDS: Record<string, { summary: string; usage: string; run: (args: readonly string[]) => Promise<number> }> = {
  train: { summary: 'train an LR-net and record it as a run (lrnet train --help)', usage: TRAIN_USAGE, run: trainCommand },
  resume: { summary: 'continue a stopped or interrupted run from its last checkpoint', usage: RESUME_USAGE, run: resumeCommand },
  runs: { summary: 'list runs (filter by status, preset, tag; full-text --search; --json)', usage: RUNS_USAGE, run: runsCommand },
  show: { summary: 'everything recorded about one run', usage: SHOW_USAGE, run: showCommand },
  compare: { summary: 'what differs between runs, and their final and best metrics', usage: COMPARE_USAGE, run: compareCommand },
  rm: { summary: 'delete runs and their files', usage: RM_USAGE, run: rmCommand },
  tag: { summary: 'add (or --remove) tags', usage: TAG_USAGE, run: tagCommand },
  note: { summary: 'add a note to a run', usage: NOTE_USAGE, run: noteCommand },
  serve: { summary: "the experiment manager's UI in a browser, on 127.0.0.1 behind a token", usage: SERVE_USAGE, run: serveCommand },
  data: { summary: `download data sets (${DOWNLOADABLE_DATASETS.join(', ')}) and list them`, usage: DATA_USAGE, run: dataCommand },
  export: { summary: `export a run's discrete net (${EXPORT_FORMATS.map((f) => f.title).join(', ')}), verified by each consumer`, usage: EXPORT_USAGE, run: exportCommand },
};

const USAGE = `usage: lrnet COMMAND [options]

commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`).join('\n')}

Runs live in one SQLite database, by default in the per-user data folder (LRNET_HOME overrides it; --db picks
another file). RUN is a run id or any unique prefix of one.
Run "lrnet COMMAND --help" for a command's options.
`;

/** Runs the CLI with the given arguments (without "node lrnet"); returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`lrnet: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(command.usage);
    return 0;
  }
  // Before any training or export thread loads a GPU driver: its shader cache belongs with lrnet's data.
  keepGpuShaderCachesIn(path.join(defaultDataFolder(), 'gpu-cache'));
  try {
    return await command.run(args);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`lrnet ${name}: ${error.problems.length > 1 ? 'invalid options:\n' : ''}${error.problems.map((p) => (error.problems.length > 1 ? `  - ${p}` : p)).join('\n')}\n\nRun "lrnet ${name} --help" for the options.\n`);
      return 2;
    }
    // A SQLite failure after the store opened (a page found damaged by a query, a lock held too long, a file made
    // immutable meanwhile) does not say which file it was about; the arguments do.
    const storeError = error instanceof StoreError ? error : sqliteFailure(error, databaseFileOf(args));
    if (storeError) {
      process.stderr.write(`lrnet ${name}: ${storeError.message}\n`);
      return storeError.code === 'not-found' || storeError.code === 'ambiguous-id' ? 2 : 1;
    }
    if (error instanceof CliError || error instanceof RunManagerError || error instanceof TrainingFailedError || error instanceof ConfigError || error instanceof TrainingError ||
        error instanceof BackendError || error instanceof CheckpointError || isDatasetError(error)) {
      process.stderr.write(`lrnet ${name}: ${(error as Error).message}\n`);
      return 1;
    }
    if (isSystemError(error)) {
      // A file or folder the command could not use (EACCES, ENOTDIR, ENOSPC...): Node's message names the path.
      process.stderr.write(`lrnet ${name}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

/** An error Node raised for a system call (it has an errno code such as EACCES and the call's name). */
function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  const e = error as NodeJS.ErrnoException | null;
  return e instanceof Error && typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code) && typeof e.syscall === 'string';
}
