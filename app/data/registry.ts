/**
 * Which downloadable data sets are in a data folder, and where a run finds one it names only by name.
 *
 * A data set's files live in `<dataFolder>/datasets/<name>/` (see download.ts). Checksums come from the manifest a
 * download leaves there when a file's size and modification time are unchanged since it was verified; anything
 * else (a file copied in by hand, or changed since) is hashed again, so the listing never trusts a stale record.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { DatasetError } from '../../engine/data/errors.ts';
import type { DatasetSpec } from '../../engine/data/index.ts';
import { datasetEntry, isDatasetName } from '../../engine/data/registry.ts';
import {
  DATASET_SOURCES,
  DOWNLOADABLE_DATASETS,
  PART_SUFFIX,
  datasetFolder,
  isDownloadableDataset,
  type DownloadableDataset,
} from './catalog.ts';
import { verifyFile, type VerifiedBy } from './checksums.ts';
import { readManifest } from './manifest.ts';

export interface DatasetFileStatus {
  readonly name: string;
  readonly path: string;
  readonly present: boolean;
  /** Size on disk; null when absent. */
  readonly bytes: number | null;
  /** md5 of the file as stored; null when absent or not hashed (verify: 'none'). */
  readonly md5: string | null;
  readonly publishedMd5: string;
  /** True when the file matches its published checksum. */
  readonly verified: boolean;
  /** How it was verified: 'md5' and/or 'inflated-md5' (see verifyFile); empty when not verified. */
  readonly verifiedBy: readonly VerifiedBy[];
  /** Bytes of an interrupted download of this file (`.part`), if one is waiting to be resumed. */
  readonly partialBytes: number | null;
  /** Why the file is not verified, for display. */
  readonly problem?: string;
}

export interface DatasetStatus {
  readonly name: DownloadableDataset;
  readonly title: string;
  /** `<dataFolder>/datasets/<name>`, whether or not it exists. */
  readonly path: string;
  /** 'missing': none of its files; 'partial': some; 'complete': all, not all verified; 'verified': all verified. */
  readonly status: 'missing' | 'partial' | 'complete' | 'verified';
  readonly complete: boolean;
  readonly verified: boolean;
  /** Total size of the files present. */
  readonly bytes: number;
  readonly files: readonly DatasetFileStatus[];
}

export interface ListOptions {
  /**
   * 'auto' (default): trust the manifest for files unchanged since they were verified, hash the others;
   * 'full': hash every file; 'none': hash nothing (files not in the manifest are reported unverified).
   */
  readonly verify?: 'auto' | 'full' | 'none';
}

async function statFile(file: string): Promise<fs.Stats | undefined> {
  try {
    const st = await fsp.stat(file);
    return st.isFile() ? st : undefined;
  } catch {
    return undefined;
  }
}

/** The status of one downloadable data set in `dataFolder`. */
export async function datasetStatus(name: DownloadableDataset, dataFolder: string, options: ListOptions = {}): Promise<DatasetStatus> {
  const mode = options.verify ?? 'auto';
  const source = DATASET_SOURCES[name];
  const folder = datasetFolder(dataFolder, name);
  const manifest = readManifest(folder);
  const files: DatasetFileStatus[] = [];
  for (const spec of source.files) {
    const file = path.join(folder, spec.name);
    const st = await statFile(file);
    const part = await statFile(file + PART_SUFFIX);
    const partialBytes = part ? part.size : null;
    const base = { name: spec.name, path: file, publishedMd5: spec.md5, partialBytes };
    if (!st) {
      files.push({ ...base, present: false, bytes: null, md5: null, verified: false, verifiedBy: [], problem: partialBytes !== null ? 'download interrupted' : 'not downloaded' });
      continue;
    }
    const cached = manifest?.files.find((f) => f.name === spec.name && f.bytes === st.size && f.mtimeMs === st.mtimeMs && f.verifiedBy.length > 0);
    if (cached && mode !== 'full') {
      files.push({ ...base, present: true, bytes: st.size, md5: cached.md5, verified: true, verifiedBy: cached.verifiedBy });
      continue;
    }
    if (mode === 'none') {
      files.push({ ...base, present: true, bytes: st.size, md5: null, verified: false, verifiedBy: [], problem: 'not verified since it changed or was copied in' });
      continue;
    }
    let check;
    try {
      check = await verifyFile(file, spec);
    } catch (err) {
      files.push({ ...base, present: true, bytes: st.size, md5: null, verified: false, verifiedBy: [], problem: `cannot be read (${(err as Error).message})` });
      continue;
    }
    files.push(
      check.ok
        ? { ...base, present: true, bytes: st.size, md5: check.file.md5, verified: true, verifiedBy: check.file.verifiedBy }
        : { ...base, present: true, bytes: st.size, md5: check.md5, verified: false, verifiedBy: [], problem: `checksum mismatch: ${check.problem}` },
    );
  }
  const present = files.filter((f) => f.present).length;
  const anyPartial = files.some((f) => f.partialBytes !== null);
  const complete = present === files.length;
  const verified = complete && files.every((f) => f.verified);
  return {
    name,
    title: source.title,
    path: folder,
    status: verified ? 'verified' : complete ? 'complete' : present > 0 || anyPartial ? 'partial' : 'missing',
    complete,
    verified,
    bytes: files.reduce((sum, f) => sum + (f.bytes ?? 0), 0),
    files,
  };
}

/** Every downloadable data set and its state in `dataFolder` (missing ones included, so a UI can offer them). */
export async function listDatasets(dataFolder: string, options: ListOptions = {}): Promise<DatasetStatus[]> {
  const out: DatasetStatus[] = [];
  for (const name of DOWNLOADABLE_DATASETS) out.push(await datasetStatus(name, dataFolder, options));
  return out;
}

/**
 * The folder a run uses for a data set named only by name: `<dataFolder>/datasets/<name>`, which loadDataset reads
 * as is (MNIST-format folders take the .gz files; CIFAR-10 finds cifar-10-binary.tar.gz in it). Throws a
 * DatasetError naming the missing files and the command that downloads them. Checks presence only (no hashing):
 * the readers reject damaged files, and `lrnet data list` reports checksums.
 */
export function resolveDatasetPath(name: string, dataFolder: string): string {
  if (!isDownloadableDataset(name)) {
    throw new TypeError(
      isDatasetName(name) && datasetEntry(name).location === 'bundled'
        ? `the bundled ${name} needs no folder`
        : `unknown data set ${JSON.stringify(name)}; data sets found by name: ${DOWNLOADABLE_DATASETS.join(', ')}`,
    );
  }
  const folder = datasetFolder(dataFolder, name);
  const missing = DATASET_SOURCES[name].files.filter((f) => {
    try {
      return !fs.statSync(path.join(folder, f.name)).isFile();
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    const partial = missing.some((f) => fs.existsSync(path.join(folder, f.name + PART_SUFFIX)));
    throw new DatasetError(
      folder,
      missing.length === DATASET_SOURCES[name].files.length && !partial
        ? `holds no downloaded ${DATASET_SOURCES[name].title}`
        : `is missing ${missing.map((f) => f.name).join(', ')}${partial ? ' (a download was interrupted)' : ''}`,
      `Run "lrnet data download ${name}"${partial ? ' to resume it' : ''}, or give the folder of the files with --data`,
    );
  }
  return folder;
}

/**
 * The loadDataset spec for a data set named by name, its files resolved in `dataFolder`; 'mnist-sample' needs no
 * files. This is how a run config that names only a data set becomes something the engine loads.
 */
export function datasetSpecByName(name: string, dataFolder: string, options: { trainLimit?: number } = {}): DatasetSpec {
  const limit = options.trainLimit !== undefined ? { trainLimit: options.trainLimit } : {};
  if (isDatasetName(name) && datasetEntry(name).location === 'bundled') return { name, ...limit };
  return { name: name as DatasetSpec['name'], path: resolveDatasetPath(name, dataFolder), ...limit };
}
