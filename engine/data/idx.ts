/**
 * Reader for the IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/), raw or gzipped.
 *
 * Layout: a 4-byte magic number 0x00 0x00 <dtype> <number of dimensions>, then one big-endian uint32 per dimension,
 * then the data. Images are 0x00000803 (ubyte, 3 dimensions: count, rows, columns), labels 0x00000801 (ubyte,
 * 1 dimension: count). Gzip is recognised by its magic number, not by the file name.
 *
 * Every problem (wrong magic, truncated data, trailing bytes, labels out of range, a gzip that does not inflate) is
 * a DatasetError naming the file.
 */
import { DatasetError } from './errors.ts';
import { gunzipIfNeeded, readFileBytes } from './io.ts';

export interface IdxImages {
  readonly count: number;
  readonly height: number;
  readonly width: number;
  /** count * height * width bytes, row-major, images back to back (a copy, not a view of the input). */
  readonly pixels: Uint8Array;
}

export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;

const DTYPES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'short',
  0x0c: 'int',
  0x0d: 'float',
  0x0e: 'double',
};

const REDOWNLOAD = 'Download the file again from the official source (and keep the gzip or raw file as published)';

function hex32(v: number): string {
  return '0x' + (v >>> 0).toString(16).padStart(8, '0');
}

function readU32BE(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

/** Checks the 4-byte magic number and returns the header length (4 + 4 * dimensions). */
function checkMagic(bytes: Uint8Array, file: string, kind: 'images' | 'labels'): number {
  const expectedDims = kind === 'images' ? 3 : 1;
  const expectedMagic = kind === 'images' ? IDX_IMAGES_MAGIC : IDX_LABELS_MAGIC;
  const headerLen = 4 + 4 * expectedDims;
  if (bytes.length < 4) {
    throw new DatasetError(file, `is truncated: ${bytes.length} bytes, too short for an IDX ${kind} header (${headerLen} bytes)`, REDOWNLOAD);
  }
  const magic = readU32BE(bytes, 0);
  if (magic === expectedMagic) {
    if (bytes.length < headerLen) {
      throw new DatasetError(file, `is truncated: ${bytes.length} bytes, too short for an IDX ${kind} header (${headerLen} bytes)`, REDOWNLOAD);
    }
    return headerLen;
  }
  if (magic === IDX_LABELS_MAGIC && kind === 'images') {
    throw new DatasetError(file, `is an IDX label file (magic ${hex32(magic)}), not an image file (magic ${hex32(expectedMagic)})`, 'Check which file was given for the images: the image files are named *-images-idx3-ubyte');
  }
  if (magic === IDX_IMAGES_MAGIC && kind === 'labels') {
    throw new DatasetError(file, `is an IDX image file (magic ${hex32(magic)}), not a label file (magic ${hex32(expectedMagic)})`, 'Check which file was given for the labels: the label files are named *-labels-idx1-ubyte');
  }
  if (bytes[0] === 0 && bytes[1] === 0 && bytes[2]! in DTYPES) {
    const dtype = DTYPES[bytes[2]!]!;
    const dims = bytes[3]!;
    if (bytes[2] !== 0x08) {
      throw new DatasetError(file, `is an IDX file of ${dtype} values (magic ${hex32(magic)}); only unsigned bytes (magic ${hex32(expectedMagic)}) are supported`, 'Use the official MNIST-format files, whose pixels and labels are unsigned bytes');
    }
    throw new DatasetError(file, `is an IDX file with ${dims} dimensions (magic ${hex32(magic)}); IDX ${kind} have ${expectedDims} (magic ${hex32(expectedMagic)})`, REDOWNLOAD);
  }
  throw new DatasetError(file, `is not an IDX ${kind} file: magic number ${hex32(magic)}, expected ${hex32(expectedMagic)}`, REDOWNLOAD);
}

function checkSize(bytes: Uint8Array, file: string, headerLen: number, dataLen: number, what: string): void {
  const expected = headerLen + dataLen;
  if (bytes.length < expected) {
    throw new DatasetError(file, `is truncated: its header announces ${what} (${expected} bytes in all) but it has ${bytes.length} bytes`, REDOWNLOAD);
  }
  if (bytes.length > expected) {
    throw new DatasetError(file, `has ${bytes.length - expected} unexpected bytes after the data: its header announces ${what} (${expected} bytes in all) but it has ${bytes.length} bytes`, REDOWNLOAD);
  }
}

/** Parses IDX image bytes (raw or gzip). `file` only names the source in errors. */
export function parseIdxImages(input: Uint8Array, file = '<buffer>'): IdxImages {
  const bytes = gunzipIfNeeded(input, file);
  const headerLen = checkMagic(bytes, file, 'images');
  const count = readU32BE(bytes, 4);
  const height = readU32BE(bytes, 8);
  const width = readU32BE(bytes, 12);
  if ((height === 0 || width === 0) && count > 0) {
    throw new DatasetError(file, `declares images of ${height}x${width} pixels`, REDOWNLOAD);
  }
  // Products of three uint32 can exceed 2^53; they are then far larger than any file, which checkSize reports.
  checkSize(bytes, file, headerLen, count * height * width, `${count} images of ${height}x${width} pixels`);
  return { count, height, width, pixels: bytes.slice(headerLen) };
}

/** Parses IDX label bytes (raw or gzip); every label must lie in [0, numClasses). */
export function parseIdxLabels(input: Uint8Array, numClasses: number, file = '<buffer>'): Uint8Array {
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > 256) {
    throw new RangeError(`parseIdxLabels: numClasses must be an integer in [1, 256], got ${numClasses}`);
  }
  const bytes = gunzipIfNeeded(input, file);
  const headerLen = checkMagic(bytes, file, 'labels');
  const count = readU32BE(bytes, 4);
  checkSize(bytes, file, headerLen, count, `${count} labels`);
  const labels = bytes.slice(headerLen);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]! >= numClasses) {
      throw new DatasetError(file, `label ${i} is ${labels[i]}, outside the ${numClasses} classes 0..${numClasses - 1}`, 'Check that this is a label file of the expected data set, or download it again');
    }
  }
  return labels;
}

/** Reads an IDX image file (raw or gzip). */
export function readIdxImages(path: string): IdxImages {
  return parseIdxImages(readFileBytes(path), path);
}

/** Reads an IDX label file (raw or gzip); every label must lie in [0, numClasses). */
export function readIdxLabels(path: string, numClasses: number): Uint8Array {
  return parseIdxLabels(readFileBytes(path), numClasses, path);
}

/** Serializes images back to the raw IDX format (used by tests and tools; inverse of parseIdxImages). */
export function encodeIdxImages(images: { count: number; height: number; width: number; pixels: Uint8Array }): Uint8Array {
  const out = new Uint8Array(16 + images.pixels.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, IDX_IMAGES_MAGIC);
  dv.setUint32(4, images.count);
  dv.setUint32(8, images.height);
  dv.setUint32(12, images.width);
  out.set(images.pixels, 16);
  return out;
}

/** Serializes labels to the raw IDX format (inverse of parseIdxLabels). */
export function encodeIdxLabels(labels: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + labels.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, IDX_LABELS_MAGIC);
  dv.setUint32(4, labels.length);
  out.set(labels, 8);
  return out;
}
