/**
 * The export's folders on disk, and what lrnet may replace or delete there: only what it wrote itself.
 *
 * An export is written into a hidden staging folder next to its destination (`.NAME.partial-PID-HEX`) and renamed
 * into place at the end; replacing an earlier export moves that one aside first (`.NAME.old-PID-HEX`). An earlier
 * export is recognized by its report.json (format "lrnet-export-report"), and it may be replaced only when the folder
 * holds nothing but what that report lists: the user's own files are never part of an export's replacement. A
 * process killed half-way leaves its staging folder behind; the next export to the same destination removes it
 * (and puts an earlier export back if the kill came between the two renames).
 *
 * No TensorFlow.js here: run deletion (app/runs) uses deleteExportFiles.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { EXPORT_REPORT_FORMAT } from '../../engine/export/report.ts';
import { currentProcess, ownerState, type ProcessIdentity } from '../store/process-identity.ts';
import { ExportError } from './errors.ts';

export const REPORT_FILE = 'report.json';
/** Inside a staging folder: who is writing it (removed before the folder is published). */
const OWNER_FILE = '.lrnet-export-owner.json';
const STAGING_NAME = /^(partial|old)-(\d+)-[0-9a-f]{8}$/;

/** What an existing export folder's report.json says it holds. */
interface ExportFolder {
  /** The checkpoint it was exported from (absolute). */
  readonly checkpoint: string | undefined;
  /** Each format's folder name and its files (relative to the export folder, with forward slashes). */
  readonly formats: ReadonlyMap<string, readonly string[]>;
  /** report.json and the golden vectors. */
  readonly shared: readonly string[];
}

/** A relative path inside the folder: no absolute path, no "..", no backslash (a report is not trusted blindly). */
function safeRelative(p: unknown): p is string {
  return typeof p === 'string' && p !== '' && !p.startsWith('/') && !p.includes('\\') && !p.split('/').some((s) => s === '..' || s === '.' || s === '');
}

/** Reads `dir`/report.json as an export report written by lrnet; undefined when it is none. */
function readExportFolder(dir: string): ExportFolder | undefined {
  let report: unknown;
  try {
    report = JSON.parse(fs.readFileSync(path.join(dir, REPORT_FILE), 'utf8'));
  } catch {
    return undefined;
  }
  const r = report as {
    format?: unknown; formats?: unknown; source?: { checkpoint?: unknown };
    golden?: { dir?: unknown; files?: Record<string, unknown> };
  } | null;
  if (typeof r !== 'object' || r === null || r.format !== EXPORT_REPORT_FORMAT || typeof r.formats !== 'object' || r.formats === null) return undefined;
  const formats = new Map<string, string[]>();
  for (const f of Object.values(r.formats as Record<string, { dir?: unknown; files?: { path?: unknown }[] } | null>)) {
    if (!safeRelative(f?.dir) || f.dir.includes('/') || !Array.isArray(f.files)) continue;
    formats.set(f.dir, f.files.map((file) => file?.path).filter(safeRelative).map((p) => `${f.dir}/${p}`));
  }
  const golden = safeRelative(r.golden?.dir) ? r.golden.dir : 'golden';
  const goldenFiles = ['golden.json', ...Object.values(r.golden?.files ?? {})].filter(safeRelative).map((p) => `${golden}/${p}`);
  const checkpoint = typeof r.source?.checkpoint === 'string' ? r.source.checkpoint : undefined;
  return { checkpoint, formats, shared: [REPORT_FILE, ...goldenFiles] };
}

/** Files under `dir` (relative, forward slashes) that `folder`'s report does not list: not lrnet's. */
function foreignFiles(dir: string, folder: ExportFolder): string[] {
  const own = new Set([...folder.shared, ...[...folder.formats.values()].flat()]);
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .filter((f) => !own.has(f))
    .sort();
}

/**
 * Removes `files` (relative to `root`) and then the folders they were in that are left empty, `root` included.
 * Returns whether `root` is gone.
 */
function removeFiles(root: string, files: readonly string[]): boolean {
  const folders = new Set<string>();
  for (const file of files) {
    fs.rmSync(path.join(root, file), { force: true });
    for (let d = path.dirname(file); d !== '.'; d = path.dirname(d)) folders.add(d);
  }
  // Deepest first; rmdir fails on a folder that still holds something (files the user added stay, with it).
  for (const d of [...[...folders].sort((a, b) => b.split('/').length - a.split('/').length), '.']) {
    try {
      fs.rmdirSync(path.join(root, d));
    } catch {
      // Not empty, or already gone.
    }
  }
  return !fs.existsSync(root);
}

const listed = (names: readonly string[]) => names.slice(0, 3).join(', ') + (names.length > 3 ? `, and ${names.length - 3} more` : '');

/**
 * Why the export may not write to `outDir` as it is now, or undefined when it may: a missing or empty folder, or
 * with `force` an earlier lrnet export holding nothing else.
 */
function destinationRefusal(outDir: string, force: boolean): string | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(outDir);
  } catch {
    return undefined;
  }
  if (!stat.isDirectory()) return `${outDir} exists and is not a folder; it is not replaced: choose another output folder`;
  if (fs.readdirSync(outDir).length === 0) return undefined;
  const earlier = readExportFolder(outDir);
  if (!earlier) {
    return force
      ? `${outDir} is not an lrnet export (it has no report.json written by lrnet export) and force only replaces an ` +
        'earlier export: choose another output folder; nothing was changed'
      : `${outDir} already exists and is not an lrnet export; choose another output folder`;
  }
  if (!force) return `${outDir} already holds an lrnet export; choose another folder, or pass force (--force) to replace it`;
  const foreign = foreignFiles(outDir, earlier);
  if (foreign.length > 0) {
    return `${outDir} holds files that are not part of its lrnet export (${listed(foreign)}); force replaces only an export's ` +
      'own files: move them out or choose another output folder; nothing was changed';
  }
  return undefined;
}

/**
 * Refuses a destination the export may not write (see destinationRefusal) and one whose parent cannot be written.
 * Stale staging folders of dead exports to the same destination are cleared first.
 */
export function checkDestination(outDir: string, force: boolean): void {
  clearStaleStaging(outDir);
  const refusal = destinationRefusal(outDir, force);
  if (refusal) throw new ExportError('exists', refusal);
  let parent = path.dirname(outDir);
  while (!fs.existsSync(parent)) {
    const up = path.dirname(parent);
    if (up === parent) break;
    parent = up;
  }
  try {
    if (!fs.statSync(parent).isDirectory()) throw new Error('not a folder');
    fs.accessSync(parent, fs.constants.W_OK);
  } catch (error) {
    throw new ExportError('unwritable', `cannot write into ${parent} (${(error as Error).message}); choose another output folder`);
  }
}

function stagingPath(outDir: string, kind: 'partial' | 'old', pid: number, suffix: string): string {
  return path.join(path.dirname(outDir), `.${path.basename(outDir)}.${kind}-${pid}-${suffix}`);
}

/** Creates the staging folder of an export to `outDir`, marked with this process so a dead one's can be told apart. */
export function createStaging(outDir: string): string {
  const parent = path.dirname(outDir);
  const staging = stagingPath(outDir, 'partial', process.pid, randomBytes(4).toString('hex'));
  try {
    fs.mkdirSync(parent, { recursive: true });
    // mkdir (not mkdtemp, which makes the folder private) so the export gets the usual permissions.
    fs.mkdirSync(staging);
    fs.writeFileSync(path.join(staging, OWNER_FILE), `${JSON.stringify(currentProcess())}\n`);
  } catch (error) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw new ExportError('unwritable', `cannot create a folder in ${parent} (${(error as Error).message}); choose another output folder`);
  }
  return staging;
}

export function discardStaging(staging: string): void {
  fs.rmSync(staging, { recursive: true, force: true });
}

const reason = (error: unknown) => (error as NodeJS.ErrnoException).code ?? (error as Error).message;

/**
 * Moves the finished staging folder to `outDir`, replacing an earlier export only once the new one is complete.
 * The destination is checked again (something may have appeared there while the export worked). Failures are
 * ExportErrors; the destination is then as it was.
 */
export function publish(staging: string, outDir: string, force: boolean): void {
  const refusal = destinationRefusal(outDir, force);
  if (refusal) throw new ExportError('exists', refusal);
  fs.rmSync(path.join(staging, OWNER_FILE), { force: true });
  if (!fs.existsSync(outDir)) {
    try {
      fs.renameSync(staging, outDir);
    } catch (error) {
      throw new ExportError('unwritable', `cannot create ${outDir} (${reason(error)}); choose another output folder`);
    }
    return;
  }
  const old = staging.replace(/\.partial-([^/\\]*)$/, '.old-$1');
  try {
    fs.renameSync(outDir, old);
  } catch (error) {
    throw new ExportError('unwritable', `cannot replace ${outDir}: it cannot be moved (${reason(error)}); it is left as it was: choose another output folder`);
  }
  try {
    fs.renameSync(staging, outDir);
  } catch (error) {
    fs.renameSync(old, outDir);
    throw new ExportError('unwritable', `cannot replace ${outDir} (${reason(error)}); it is left as it was: choose another output folder`);
  }
  fs.rmSync(old, { recursive: true, force: true });
}

/** Who wrote a staging folder: its owner file, or (when that is gone) the pid in its name. */
function stagingOwner(dir: string, pid: number): ProcessIdentity | { host: null; pid: number; token: null } {
  try {
    const owner = JSON.parse(fs.readFileSync(path.join(dir, OWNER_FILE), 'utf8')) as ProcessIdentity;
    if (typeof owner.host === 'string' && Number.isInteger(owner.pid) && typeof owner.token === 'string') return owner;
  } catch {
    // No owner file: it was being published (or had just been created) when its process ended.
  }
  return { host: null, pid, token: null };
}

/**
 * Removes the staging folders that exports to `outDir` left when their process died, and puts back an earlier
 * export that a dead export had moved aside and not replaced. Folders of live exports, and of exports on another
 * host, are left alone. Returns the paths removed or restored.
 */
export function clearStaleStaging(outDir: string): string[] {
  const parent = path.dirname(outDir);
  const prefix = `.${path.basename(outDir)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(parent).filter((n) => n.startsWith(prefix) && STAGING_NAME.test(n.slice(prefix.length)));
  } catch {
    return [];
  }
  const cleared: string[] = [];
  // Staging folders first: an earlier export moved aside is restored only once its replacement is known dead.
  for (const name of names.filter((n) => n.slice(prefix.length).startsWith('partial-'))) {
    const dir = path.join(parent, name);
    const pid = Number(STAGING_NAME.exec(name.slice(prefix.length))![2]);
    if (ownerState(stagingOwner(dir, pid)) !== 'dead') continue;
    discardStaging(dir);
    cleared.push(dir);
  }
  for (const name of names.filter((n) => n.slice(prefix.length).startsWith('old-'))) {
    const dir = path.join(parent, name);
    const pid = Number(STAGING_NAME.exec(name.slice(prefix.length))![2]);
    const replacement = path.join(parent, `${prefix}partial-${name.slice(prefix.length + 'old-'.length)}`);
    if (fs.existsSync(replacement) || ownerState({ host: null, pid, token: null }) !== 'dead') continue;
    if (!readExportFolder(dir)) continue; // not an export after all: not lrnet's to touch
    if (!fs.existsSync(outDir)) fs.renameSync(dir, outDir);
    else discardStaging(dir);
    cleared.push(dir);
  }
  return cleared;
}

/**
 * Deletes the files one format of an export wrote (its folder, when nothing else is in it) if the export was made
 * from a checkpoint that `fromRun` accepts (a deleted run's), and the rest of the export (report.json, golden/, the
 * folder itself when then empty) once no format of it is left. Files the user added stay, and so do a user's file
 * at that path, another run's export and a folder without lrnet's report. Returns the paths removed.
 */
export function deleteExportFiles(formatDir: string, fromRun: (checkpoint: string) => boolean): string[] {
  const target = path.resolve(formatDir);
  const outDir = path.dirname(target);
  const folder = readExportFolder(outDir);
  const files = folder?.formats.get(path.basename(target));
  if (!folder || !files || folder.checkpoint === undefined || !fromRun(folder.checkpoint) || !fs.existsSync(target)) return [];
  removeFiles(outDir, files);
  const formatGone = !fs.existsSync(target);
  const left = [...folder.formats.values()].some((list) => list.some((f) => fs.existsSync(path.join(outDir, f))));
  if (!left && removeFiles(outDir, folder.shared)) return [outDir];
  return formatGone ? [target] : [];
}
