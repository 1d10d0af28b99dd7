/**
 * What the `lrnet` subcommands share: argument errors, opening the store named by --db, and plain-text tables.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { metricInfo } from '../contract.ts';
import { defaultDatabasePath, openStore, sqliteFailure, type Store } from '../store/index.ts';
import { markInterruptedExports } from '../export/interrupted.ts';

/** Wrong command-line arguments; every problem is listed and the command exits with code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}

/** An expected failure with a message a person can act on; the command exits with code 1. */
export class CliError extends Error {
  override name = 'CliError';
}

/** The --db option every store command takes. */
export const DB_OPTION = { db: { type: 'string' } } as const;

export const DB_USAGE = `  --db FILE            the run database (default ${defaultDatabasePath().replace(process.env['HOME'] ?? '\0', '~')}; LRNET_HOME moves it)`;

/**
 * Glues a negative number to the option before it (`--seed -1` becomes `--seed=-1`): parseArgs would otherwise
 * refuse it as a possible option, and the validation would never get to say what is wrong with the value.
 */
export function attachNegativeValues(args: readonly string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    const name = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-(\d|\.\d|Infinity)/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** parseArgs that reports its complaints as a UsageError. */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(args: readonly string[], options: T, positionals: { min: number; max: number; names: string }) {
  let parsed;
  try {
    parsed = parseArgs({ args: attachNegativeValues(args, options), strict: true, allowPositionals: positionals.max > 0, options });
  } catch (error) {
    throw new UsageError([(error as Error).message]);
  }
  const n = parsed.positionals.length;
  if (n < positionals.min) throw new UsageError([`missing ${positionals.names}`]);
  if (n > positionals.max) throw new UsageError([`unexpected argument "${parsed.positionals[positionals.max]}"`]);
  return parsed;
}

/**
 * The database file a command's arguments name (--db FILE or --db=FILE, else the default), for messages about a
 * failure that surfaced without saying which file it was about.
 */
export function databaseFileOf(args: readonly string[]): string {
  let db: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    if (arg === '--db' && args[i + 1] !== undefined) db = args[++i];
    else if (arg.startsWith('--db=')) db = arg.slice('--db='.length);
  }
  return path.resolve(db ?? defaultDatabasePath());
}

/** What a numeric flag accepts. Integers are always within Number.MAX_SAFE_INTEGER: beyond it they are not exact. */
export interface NumberFlagSpec {
  readonly integer: boolean;
  readonly min?: number;
  readonly max?: number;
  /** Why the range is what it is, shown with the complaint (e.g. "seeds are 32-bit"). */
  readonly why?: string;
}

/**
 * Reads the value of a numeric flag. Returns the number, or undefined after adding a problem that names the flag,
 * what it accepts and what it got (so a command can report every wrong flag at once, as a usage error).
 */
export function parseNumberFlag(flag: string, value: string, spec: NumberFlagSpec, problems: string[]): number | undefined {
  const n = Number(value);
  const max = spec.max ?? (spec.integer ? Number.MAX_SAFE_INTEGER : Infinity);
  const min = spec.min ?? (spec.integer ? -Number.MAX_SAFE_INTEGER : -Infinity);
  const isNumber = value.trim() !== '' && Number.isFinite(n) && (!spec.integer || Number.isInteger(n));
  if (isNumber && n >= min && n <= max) return n;
  // The range is named when it is what the value missed, or when the flag has one of its own.
  const bounds = [spec.min !== undefined ? `>= ${spec.min}` : '', Number.isFinite(max) && (spec.max !== undefined || isNumber) ? `<= ${max}` : '']
    .filter(Boolean)
    .join(' and ');
  problems.push(
    `--${flag}: expected ${spec.integer ? 'an integer' : 'a number'}${bounds ? ` ${bounds}` : ''}${spec.why ? ` (${spec.why})` : ''}, got "${value}"`,
  );
  return undefined;
}

/** An open store with the paths around it. */
export interface OpenedStore {
  readonly store: Store;
  readonly file: string;
  /** The folder that holds the database; runs keep their files under `<dataFolder>/runs/<id>/`. */
  readonly dataFolder: string;
}

/**
 * Opens the database named by --db (or the default one) and marks runs and exports whose process died as
 * interrupted, so what the command shows is current. With `mustExist` a missing database is an error rather than a new empty one.
 */
export function openRunStore(db: string | undefined, options: { mustExist: boolean }): OpenedStore {
  const file = path.resolve(db ?? defaultDatabasePath());
  if (options.mustExist && !existsSync(file)) {
    throw new CliError(`there is no lrnet database at ${file}: train a run first${db === undefined ? '' : ', or check --db'}`);
  }
  const store = openStore(file);
  try {
    store.markInterruptedRuns();
    markInterruptedExports(store);
  } catch (error) {
    store.close();
    throw sqliteFailure(error, file) ?? error;
  }
  return { store, file, dataFolder: path.dirname(file) };
}

/** Left-aligned columns separated by two spaces; columns named in `right` are right-aligned. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[], right: readonly number[] = []): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i]!) : i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** "2026-03-04 17:05" in local time, or "-" . */
export function formatTime(ms: number | null): string {
  if (ms === null) return '-';
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** A fraction as "97.52%", or "-" when absent. */
export function percentOrDash(value: number | null | undefined): string {
  return value === null || value === undefined || Number.isNaN(value) ? '-' : `${(value * 100).toFixed(2)}%`;
}

/**
 * A metric value for a table: what the metric catalog marks as a percentage (accuracies) as one, anything else,
 * including a key outside the catalog, with 4 significant digits.
 */
export function formatMetric(key: string, value: number | null | undefined): string {
  if (value === null || value === undefined) return '-';
  if (Number.isNaN(value)) return 'NaN';
  if (metricInfo(key)?.percent && value >= 0 && value <= 1) return percentOrDash(value);
  return Number(value.toPrecision(4)).toString();
}

/** A JSON value in a table cell. */
export function formatValue(value: unknown): string {
  if (value === undefined) return '-';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}
