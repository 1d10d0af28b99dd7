/**
 * `lrnet export RUN|CHECKPOINT ...`: a run id (or prefix) resolves to the run's last checkpoint in the store and the
 * export is recorded as the run's artifacts (running while it works, so a killed export is found and cleaned up);
 * a checkpoint file is exported as it is. The export itself, its
 * verification and its printing are app/export/cli.ts.
 */
import { existsSync } from 'node:fs';
import { runExportCommand, EXPORT_USAGE as CHECKPOINT_EXPORT_USAGE } from '../export/cli.ts';
import type { ExportRunOptions } from '../export/index.ts';
import { exportRunWithArtifacts } from '../export/store.ts';
import { CliError, openRunStore } from './common.ts';

export const EXPORT_USAGE = CHECKPOINT_EXPORT_USAGE.replace(
  'usage: lrnet export CHECKPOINT --format FORMAT --out DIR [options]',
  'usage: lrnet export RUN|CHECKPOINT --format FORMAT --out DIR [options] [--db FILE]\n\nRUN is a run id (or a unique prefix): its last checkpoint is exported and the export is recorded with the run.',
);

/** Splits `--db FILE` / `--db=FILE` out of the arguments the exporter parses. */
function takeDbOption(args: readonly string[]): { db?: string; rest: string[] } {
  const rest: string[] = [];
  let db: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--db') db = args[++i];
    else if (arg.startsWith('--db=')) db = arg.slice(5);
    else rest.push(arg);
  }
  return { ...(db !== undefined ? { db } : {}), rest };
}

export async function exportCommand(args: readonly string[]): Promise<number> {
  const { db, rest } = takeDbOption(args);
  const target = rest.find((a) => !a.startsWith('-') && !isOptionValue(rest, a));
  if (target === undefined || existsSync(target)) return (await runExportCommand(rest)).exitCode;

  const { store } = openRunStore(db, { mustExist: true });
  try {
    const run = store.getRun(store.resolveRunId(target));
    const checkpoint = run.checkpoints.find((c) => c.id === run.lastCheckpointId) ?? run.checkpoints[run.checkpoints.length - 1];
    if (!checkpoint) throw new CliError(`run ${run.id} has no checkpoint yet: export it once it has trained`);
    const withArtifacts = async (options: ExportRunOptions) => (await exportRunWithArtifacts(store, run.id, options)).result;
    return (await runExportCommand(rest.map((a) => (a === target ? checkpoint.path : a)), process, withArtifacts)).exitCode;
  } finally {
    store.close();
  }
}

/** Whether `value` is the value of the option before it (e.g. the DIR of `--out DIR`). */
function isOptionValue(args: readonly string[], value: string): boolean {
  const i = args.indexOf(value);
  const previous = i > 0 ? args[i - 1]! : '';
  return previous.startsWith('--') && !previous.includes('=') && !['--force', '--json', '--ternary-base3'].includes(previous);
}
