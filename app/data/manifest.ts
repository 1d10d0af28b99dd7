/**
 * The record a completed download leaves in a data set's folder (lrnet-dataset.json): each file's size, time and
 * checksums, so listing data sets need not hash unchanged files again. Only a cache: a missing or unreadable one is
 * ignored.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { MANIFEST_FILE, isDownloadableDataset, type DownloadableDataset } from './catalog.ts';
import type { VerifiedBy } from './checksums.ts';

/** The record a download leaves next to the files; listDatasets uses it to skip re-hashing unchanged files. */
export interface DatasetManifest {
  readonly format: 1;
  readonly name: DownloadableDataset;
  readonly files: readonly ManifestEntry[];
}

export interface ManifestEntry {
  readonly name: string;
  readonly bytes: number;
  readonly mtimeMs: number;
  readonly md5: string;
  readonly inflatedMd5?: string;
  readonly verifiedBy: readonly VerifiedBy[];
  readonly url?: string;
  readonly verifiedAt: string;
}

/** Reads a data set's manifest; undefined when missing or unreadable (it is only a cache of checksums). */
export function readManifest(folder: string): DatasetManifest | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(folder, MANIFEST_FILE), 'utf8')) as Partial<DatasetManifest>;
    if (m.format !== 1 || !Array.isArray(m.files) || !isDownloadableDataset(m.name)) return undefined;
    return m as DatasetManifest;
  } catch {
    return undefined;
  }
}

export async function recordInManifest(folder: string, name: DownloadableDataset, entry: ManifestEntry): Promise<void> {
  const previous = readManifest(folder);
  const files = (previous?.files ?? []).filter((f) => f.name !== entry.name);
  files.push(entry);
  files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const manifest: DatasetManifest = { format: 1, name, files };
  const file = path.join(folder, MANIFEST_FILE);
  await fsp.writeFile(file + '.tmp', JSON.stringify(manifest, null, 2) + '\n');
  await fsp.rename(file + '.tmp', file);
}
