/**
 * Listing an image folder's splits (file names only; no image is read): classes are the sorted folder names of
 * train/, files are sorted within each class, and a bad layout is a DatasetError saying what to change.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DatasetError } from './errors.ts';
import { fsError } from './io.ts';

/** File extensions read as images (case-insensitive); other files are ignored, as are names starting with '.'. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png'];

function hasImageExtension(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => lower.endsWith(e));
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

async function readDir(dir: string): Promise<fs.Dirent[]> {
  try {
    return await fs.promises.readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw fsError(dir, err);
  }
}

/** Resolves a directory entry to 'dir', 'file' or undefined (following symbolic links). */
async function kindOf(dir: string, e: fs.Dirent): Promise<'dir' | 'file' | undefined> {
  if (e.isDirectory()) return 'dir';
  if (e.isFile()) return 'file';
  if (e.isSymbolicLink()) {
    try {
      const st = await fs.promises.stat(path.join(dir, e.name));
      return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : undefined;
    } catch {
      return undefined; // a dangling link
    }
  }
  return undefined;
}

/** Sub-folders and image files of a folder (hidden entries skipped), each sorted. */
export async function listEntries(dir: string): Promise<{ dirs: string[]; images: string[]; others: number }> {
  const dirs: string[] = [];
  const images: string[] = [];
  let others = 0;
  for (const e of await readDir(dir)) {
    if (e.name.startsWith('.')) continue;
    const kind = await kindOf(dir, e);
    if (kind === 'dir') dirs.push(e.name);
    else if (kind === 'file' && hasImageExtension(e.name)) images.push(e.name);
    else others++;
  }
  dirs.sort(byCodePoint);
  images.sort(byCodePoint);
  return { dirs, images, others };
}

/** Image files under `dir`, recursively, as sorted paths relative to it. */
async function imagesUnder(dir: string, prefix = '', depth = 0): Promise<string[]> {
  if (depth > 32) throw new DatasetError(dir, 'nests folders more than 32 levels deep (a symbolic link loop?)', 'Remove the loop');
  const { dirs, images } = await listEntries(dir);
  const out = images.map((f) => prefix + f);
  for (const d of dirs) out.push(...(await imagesUnder(path.join(dir, d), `${prefix}${d}/`, depth + 1)));
  return out.sort(byCodePoint);
}

export const LAYOUT = 'An image folder holds train/<class>/*.jpg|png (one folder per class) and optionally val/<class>/...';

export interface ScannedSplit {
  readonly dir: string;
  readonly files: string[];
  readonly relative: string[];
  readonly labels: Int32Array;
}

export async function scanSplit(dir: string, split: 'train' | 'val', classes: readonly string[] | undefined): Promise<{ classes: string[]; scanned: ScannedSplit }> {
  const { dirs, images, others } = await listEntries(dir);
  if (dirs.length === 0) {
    if (images.length > 0) {
      const sortVal = split === 'val' ? " (ImageNet's validation images come in one folder: sort them into class folders with its ground-truth labels first)" : '';
      throw new DatasetError(dir, `holds ${images.length} images but no class subfolders${sortVal}`, `Put each class's images in a subfolder named after the class. ${LAYOUT}`);
    }
    throw new DatasetError(dir, others > 0 ? 'holds no class subfolders (and no images)' : 'is an empty folder', LAYOUT);
  }
  const classList = classes ?? dirs;
  const index = new Map(classList.map((c, i) => [c, i]));
  const files: string[] = [];
  const relative: string[] = [];
  const labels: number[] = [];
  for (const c of dirs) {
    const label = index.get(c);
    const classDir = path.join(dir, c);
    if (label === undefined) {
      throw new DatasetError(classDir, `is a class that train/ does not have (${split}/ may only hold classes of train/)`, 'Rename or remove this folder, or add the class to train/');
    }
    const found = await imagesUnder(classDir);
    if (found.length === 0) {
      throw new DatasetError(classDir, `holds no images (${IMAGE_EXTENSIONS.join(', ')})`, 'Add its images or remove the empty class folder');
    }
    for (const f of found) {
      files.push(path.join(classDir, f));
      relative.push(`${c}/${f}`);
      labels.push(label);
    }
  }
  return { classes: [...classList], scanned: { dir, files, relative, labels: Int32Array.from(labels) } };
}
