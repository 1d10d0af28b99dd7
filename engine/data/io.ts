/**
 * File access shared by the dataset readers: every failure becomes a DatasetError naming the file.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { DatasetError } from './errors.ts';

/** Largest inflated size accepted from one gzip file (the official CIFAR-10 tar is 184 MB; MNIST's largest 47 MB). */
export const MAX_INFLATED_BYTES = 1024 * 1024 * 1024;

/** True when the bytes start with the gzip magic number 1f 8b (the file name does not matter). */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Returns the inflated bytes when `bytes` is gzip data (detected by its magic number), otherwise `bytes` itself.
 * A gzip stream that does not inflate (corrupt, truncated, too large) is a DatasetError naming `file`.
 */
export function gunzipIfNeeded(bytes: Uint8Array, file: string, maxBytes: number = MAX_INFLATED_BYTES): Uint8Array {
  if (!isGzip(bytes)) return bytes;
  let out: Buffer;
  try {
    out = zlib.gunzipSync(bytes, { maxOutputLength: maxBytes });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new DatasetError(
      file,
      `starts like a gzip file but does not inflate (${reason})`,
      'The download is probably incomplete or damaged: download the file again (or unpack it with gunzip to see the problem)',
      { cause: err },
    );
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Reads a whole file; a missing, unreadable or non-regular file is a DatasetError naming it. */
export function readFileBytes(file: string): Uint8Array {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw fsError(file, err);
  }
  if (!st.isFile()) {
    throw new DatasetError(file, 'is not a regular file', 'Give the path of the data file itself');
  }
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    throw fsError(file, err);
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Maps a node:fs error to a DatasetError. */
export function fsError(file: string, err: unknown): DatasetError {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new DatasetError(file, 'does not exist', 'Check the path, or download the data set to that place', { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new DatasetError(file, 'cannot be read (permission denied)', 'Make the file readable by this user', { cause: err });
  }
  const reason = err instanceof Error ? err.message : String(err);
  return new DatasetError(file, `cannot be read (${reason})`, 'Check that the path is a readable file', { cause: err });
}

/** Lists a folder; a missing path or a path that is not a folder is a DatasetError. */
export function listFolder(dir: string): string[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    throw fsError(dir, err);
  }
  if (!st.isDirectory()) {
    throw new DatasetError(dir, 'is not a folder', 'Give the folder that holds the data files');
  }
  try {
    return fs.readdirSync(dir);
  } catch (err) {
    throw fsError(dir, err);
  }
}
