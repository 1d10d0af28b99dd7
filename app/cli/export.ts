/**
 * `lrnet export RUN|CHECKPOINT --format FORMAT|all --out DIR [--net argmax|selected] [--force]
 * [--test-limit N] [--json] [--db FILE]`: exports a finished run's discrete net and verifies every format with its
 * consumer. A run id (or prefix) resolves to the run's last checkpoint in the store and the export is recorded as
 * the run's artifacts (running while it works, so a killed export is found and cleaned up); a checkpoint file is
 * exported as it is.
 *
 * Argument problems print the usage hint and return 2, export problems (ExportError) and failed verification
 * return 1.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { initBackend, BACKEND_CHOICES, type BackendChoice } from '../../engine/backends/index.ts';
import { isExportFormatName } from '../../engine/export/index.ts';
import { ExportError, exportRun, EXPORT_FORMAT_NAMES, type ExportFormatName, type ExportResult, type ExportRunOptions } from '../export/index.ts';
import { exportRunWithArtifacts } from '../export/store.ts';
import { CliError, openRunStore } from './common.ts';

export const EXPORT_USAGE = `usage: lrnet export RUN|CHECKPOINT --format FORMAT --out DIR [options] [--db FILE]

RUN is a run id (or a unique prefix): its last checkpoint is exported and the export is recorded with the run.

Exports the discrete net of a finished run for target hardware, runs every format with its real consumer on the
test set and compares the logits with the app's own discrete net (top-1 must agree on every image).

  --format FORMAT      ${EXPORT_FORMAT_NAMES.join(', ')} or all; repeat or separate with commas
  --out DIR            destination folder (one sub-folder per format, golden/, report.json)
  --net NET            argmax (default) or selected (the sampled net chosen on validation)
  --force              replace an earlier export at DIR (a folder holding anything else is refused)
  --test-limit N       verify on the first N test images (default: those the run evaluated on)
  --golden N           golden vectors shipped with the export (default 16)
  --ternary-base3      pack ternary weights 5 per byte instead of 4 (packed format)
  --backend NAME       ${BACKEND_CHOICES.join(', ')}: where the reference logits are computed (default auto)
  --json               end the output with the report as one line of JSON
`;

export interface ExportInvocation {
  readonly checkpoint: string;
  readonly formats: readonly ExportFormatName[];
  readonly outDir: string;
  readonly net: 'argmax' | 'selected';
  readonly force: boolean;
  readonly testLimit?: number;
  readonly goldenCount?: number;
  readonly ternaryEncoding: '2bit' | 'base3';
  readonly backend: BackendChoice;
  readonly json: boolean;
}

/** Wrong arguments: every problem at once. */
export class ExportUsageError extends Error {
  override name = 'ExportUsageError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}

/** Parses `lrnet export` arguments of a checkpoint (without the command name and --db). */
export function parseExportArgs(args: readonly string[]): ExportInvocation {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: true,
      options: {
        format: { type: 'string', multiple: true },
        out: { type: 'string' },
        net: { type: 'string' },
        force: { type: 'boolean' },
        'test-limit': { type: 'string' },
        golden: { type: 'string' },
        'ternary-base3': { type: 'boolean' },
        backend: { type: 'string' },
        json: { type: 'boolean' },
      },
    });
  } catch (error) {
    throw new ExportUsageError([(error as Error).message]);
  }
  const v = parsed.values;
  const problems: string[] = [];
  if (parsed.positionals.length !== 1) {
    problems.push(parsed.positionals.length === 0 ? 'missing the checkpoint file to export (lrnet export CHECKPOINT ...)' : `unexpected argument "${parsed.positionals[1]}"`);
  }
  const formats = new Set<ExportFormatName>();
  for (const f of (v.format ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean)) {
    if (f === 'all') EXPORT_FORMAT_NAMES.forEach((x) => formats.add(x));
    else if (isExportFormatName(f)) formats.add(f);
    else problems.push(`--format: unknown format "${f}"; choose from ${EXPORT_FORMAT_NAMES.join(', ')} or all`);
  }
  if (!v.format) problems.push(`--format is required (${EXPORT_FORMAT_NAMES.join(', ')} or all)`);
  if (!v.out) problems.push('--out DIR is required');
  const net = v.net ?? 'argmax';
  if (net !== 'argmax' && net !== 'selected') problems.push(`--net: expected argmax or selected, got "${net}"`);
  const count = (name: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      problems.push(`--${name}: expected an integer >= 1, got "${value}"`);
      return undefined;
    }
    return n;
  };
  const testLimit = count('test-limit', v['test-limit']);
  const goldenCount = count('golden', v.golden);
  const backend = (v.backend ?? 'auto') as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) problems.push(`--backend: expected one of ${BACKEND_CHOICES.join(', ')}, got "${v.backend}"`);
  if (problems.length > 0) throw new ExportUsageError(problems);
  return {
    checkpoint: parsed.positionals[0]!, formats: EXPORT_FORMAT_NAMES.filter((f) => formats.has(f)), outDir: v.out!,
    net: net as 'argmax' | 'selected', force: v.force ?? false,
    ...(testLimit !== undefined ? { testLimit } : {}), ...(goldenCount !== undefined ? { goldenCount } : {}),
    ternaryEncoding: v['ternary-base3'] ? 'base3' : '2bit', backend, json: v.json ?? false,
  };
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** A readable summary of a finished export. */
export function formatExportSummary(result: ExportResult): string {
  const r = result.report;
  const lines = [
    `exported the ${r.net.choice}${r.net.sample ? ` (sample ${r.net.sample.index})` : ''} ${r.net.kind} ${r.net.architecture} net to ${result.outDir}`,
    `verified on ${r.verification.images} test images against discreteLogits (${r.verification.reference.backend}, accuracy ${(r.verification.reference.accuracy * 100).toFixed(2)}%)`,
    '',
  ];
  for (const f of Object.values(r.formats)) {
    const v = f.verification;
    const size = f.details.memory
      ? `flash ${formatBytes(f.details.memory.flashBytes)}, RAM ${formatBytes(f.details.memory.ramBytes)}`
      : formatBytes(f.totalBytes);
    lines.push(`  ${f.format.padEnd(7)} ${v.passed ? 'passed' : 'FAILED'}  ${size} (${f.compressionVsFloat32}x smaller than float32)  ` +
      `top-1 ${(v.top1Agreement * 100).toFixed(2)}%, max |diff| ${v.maxAbsDiff.toExponential(2)} (<= ${v.tolerance})  ${v.consumer}`);
    if (v.error) lines.push(`          ${v.error.split('\n')[0]}`);
  }
  const t = r.totals;
  const discreteMacs = t.additions + t.subtractions + t.skipped;
  lines.push('', `per image: ${t.additions} additions, ${t.subtractions} subtractions, ${t.skipped} skipped (zero weights) of ${discreteMacs} discrete MACs; ${t.multiplications} full-precision MACs`);
  lines.push(`export ${r.status}`);
  return `${lines.join('\n')}\n`;
}

/** A file-system failure (Node's errors carry an errno code such as ENOSPC or EACCES, and name the path). */
function isFileSystemError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' && typeof (error as NodeJS.ErrnoException).syscall === 'string';
}

/**
 * Runs `lrnet export` on a checkpoint file and returns its exit code and, when it ran, the result (report
 * included). `exporter` does the export (default exportRun; the run-id form passes one that records the run's
 * artifacts).
 */
export async function runExportCommand(
  args: readonly string[],
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process,
  exporter: (options: ExportRunOptions) => Promise<ExportResult> = exportRun,
): Promise<{ exitCode: number; result?: ExportResult }> {
  let invocation: ExportInvocation;
  try {
    invocation = parseExportArgs(args);
  } catch (error) {
    if (!(error instanceof ExportUsageError)) throw error;
    const many = error.problems.length > 1;
    io.stderr.write(`lrnet export: ${many ? 'invalid options:\n' : ''}${error.problems.map((p) => (many ? `  - ${p}` : p)).join('\n')}\n\nRun "lrnet export --help" for the options.\n`);
    return { exitCode: 2 };
  }
  await initBackend(invocation.backend);
  try {
    const result = await exporter({
      checkpoint: invocation.checkpoint, formats: invocation.formats, outDir: invocation.outDir, net: invocation.net,
      force: invocation.force, ternaryEncoding: invocation.ternaryEncoding,
      ...(invocation.testLimit !== undefined ? { testLimit: invocation.testLimit } : {}),
      ...(invocation.goldenCount !== undefined ? { goldenCount: invocation.goldenCount } : {}),
      onProgress: invocation.json ? undefined : (m) => io.stderr.write(`${m}\n`),
    });
    io.stdout.write(formatExportSummary(result));
    if (invocation.json) io.stdout.write(`${JSON.stringify(result.report)}\n`);
    return { exitCode: result.report.status === 'passed' ? 0 : 1, result };
  } catch (error) {
    if (error instanceof ExportError || isFileSystemError(error)) {
      io.stderr.write(`lrnet export: ${error.message}\n`);
      return { exitCode: 1 };
    }
    throw error;
  }
}

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

/** The command-table entry: `{ usage: EXPORT_USAGE, run: exportCommand }`. */
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
