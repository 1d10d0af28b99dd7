/**
 * CIFAR-10 in its official binary format (https://www.cs.toronto.edu/~kriz/cifar.html, "CIFAR-10 binary version").
 *
 * data_batch_1.bin .. data_batch_5.bin (training, 10,000 records each) and test_batch.bin (test). Each record is
 * 1 label byte (0..9) then 3,072 pixel bytes: the 1,024 red values of the 32x32 image (row-major), then the green,
 * then the blue. The loader turns them into HWC pixels (r, g, b per pixel). It reads a folder holding the batches,
 * a folder holding `cifar-10-batches-bin/`, or the official `cifar-10-binary.tar.gz` directly (no unpacking).
 */
import fs from 'node:fs';
import path from 'node:path';
import { requiredPath, type DatasetEntry } from './entry.ts';
import { DatasetError } from './errors.ts';
import { fsError, gunzipIfNeeded, listFolder, readFileBytes } from './io.ts';
import { readTar } from './tar.ts';
import { assembleDataset, checkTrainLimit } from './checksum.ts';
import type { Dataset, ImageSet } from './types.ts';

export const CIFAR10_CLASSES = [
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
] as const;
export const CIFAR10_NUM_CLASSES = 10;
export const CIFAR10_SIZE = 32;
export const CIFAR10_PLANE = CIFAR10_SIZE * CIFAR10_SIZE;
/** Bytes per record: 1 label + 3 planes of 32x32. */
export const CIFAR10_RECORD_BYTES = 1 + 3 * CIFAR10_PLANE;
export const CIFAR10_TRAIN_FILES = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'] as const;
export const CIFAR10_TEST_FILE = 'test_batch.bin';
export const CIFAR10_FOLDER = 'cifar-10-batches-bin';
export const CIFAR10_ARCHIVE = 'cifar-10-binary.tar.gz';

const ALL_FILES: readonly string[] = [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE];
const DOWNLOAD = `Download the CIFAR-10 binary version (${CIFAR10_ARCHIVE}) from https://www.cs.toronto.edu/~kriz/cifar.html again`;

/** Checks a batch's size and labels; returns its record count. */
function checkBatch(bytes: Uint8Array, file: string): number {
  if (bytes.length === 0) {
    throw new DatasetError(file, 'is empty (a CIFAR-10 batch holds records of 3,073 bytes)', DOWNLOAD);
  }
  if (bytes.length % CIFAR10_RECORD_BYTES !== 0) {
    throw new DatasetError(
      file,
      `has ${bytes.length} bytes, not a multiple of the 3,073-byte CIFAR-10 record (1 label + 3,072 pixels); it is truncated or not a CIFAR-10 binary batch (the Python and MATLAB versions are not supported)`,
      DOWNLOAD,
    );
  }
  const count = bytes.length / CIFAR10_RECORD_BYTES;
  for (let i = 0; i < count; i++) {
    const label = bytes[i * CIFAR10_RECORD_BYTES]!;
    if (label >= CIFAR10_NUM_CLASSES) {
      throw new DatasetError(
        file,
        `record ${i} (byte ${i * CIFAR10_RECORD_BYTES}) has label ${label}, outside 0..9; this is not a CIFAR-10 batch (CIFAR-100 records have 2 label bytes) or it is damaged`,
        DOWNLOAD,
      );
    }
  }
  return count;
}

/** Decodes the first `count` records of a checked batch into HWC pixels and labels at image index `at`. */
function decodeRecords(bytes: Uint8Array, count: number, pixels: Uint8Array, labels: Uint8Array, at: number): void {
  const P = CIFAR10_PLANE;
  for (let i = 0; i < count; i++) {
    const src = i * CIFAR10_RECORD_BYTES;
    labels[at + i] = bytes[src]!;
    let o = (at + i) * 3 * P;
    const r = src + 1;
    const g = r + P;
    const b = g + P;
    for (let p = 0; p < P; p++, o += 3) {
      pixels[o] = bytes[r + p]!;
      pixels[o + 1] = bytes[g + p]!;
      pixels[o + 2] = bytes[b + p]!;
    }
  }
}

/** Parses one CIFAR-10 binary batch into an ImageSet (32x32x3, HWC). `file` only names the source in errors. */
export function parseCifarBatch(bytes: Uint8Array, file = '<buffer>'): ImageSet {
  const count = checkBatch(bytes, file);
  const pixels = new Uint8Array(count * 3 * CIFAR10_PLANE);
  const labels = new Uint8Array(count);
  decodeRecords(bytes, count, pixels, labels, 0);
  return { count, height: CIFAR10_SIZE, width: CIFAR10_SIZE, channels: 3, pixels, labels };
}

/** Concatenates checked batches (keeping the first `limit` images at most) into one ImageSet. */
function concatBatches(batches: { bytes: Uint8Array; file: string }[], limit: number | undefined): ImageSet {
  const counts = batches.map((b) => checkBatch(b.bytes, b.file)); // validates every batch, even beyond the limit
  const total = counts.reduce((a, b) => a + b, 0);
  const count = limit === undefined ? total : Math.min(limit, total);
  const pixels = new Uint8Array(count * 3 * CIFAR10_PLANE);
  const labels = new Uint8Array(count);
  let at = 0;
  batches.forEach((b, i) => {
    const n = Math.min(counts[i]!, count - at);
    if (n > 0) decodeRecords(b.bytes, n, pixels, labels, at);
    at += n;
  });
  return { count, height: CIFAR10_SIZE, width: CIFAR10_SIZE, channels: 3, pixels, labels };
}

interface BatchFiles {
  /** Name -> bytes and the name used in errors. */
  readonly files: Map<string, { bytes: Uint8Array; file: string }>;
  readonly source: string;
}

function missingError(where: string, found: ReadonlySet<string>, what: string): DatasetError {
  const missing = ALL_FILES.filter((f) => !found.has(f));
  const problem =
    missing.length === ALL_FILES.length
      ? `${what} holds none of the CIFAR-10 batch files ${ALL_FILES.join(', ')} (binary version)`
      : `${what} is missing ${missing.join(', ')}; CIFAR-10 needs ${ALL_FILES.join(', ')} (binary version)`;
  return new DatasetError(
    where,
    problem,
    DOWNLOAD + ' and give its .tar.gz, or the folder it unpacks to',
  );
}

function batchesFromArchive(archive: string): BatchFiles {
  const bytes = gunzipIfNeeded(readFileBytes(archive), archive);
  const entries = readTar(bytes, archive);
  const files = new Map<string, { bytes: Uint8Array; file: string }>();
  const pathOf = new Map<string, string>();
  for (const e of entries) {
    if (e.type !== 'file') continue;
    const base = e.name.split('/').pop()!;
    if (!ALL_FILES.includes(base)) continue;
    const previous = pathOf.get(base);
    if (previous !== undefined && previous !== e.name) {
      throw new DatasetError(archive, `holds ${base} twice (${previous} and ${e.name}); it is ambiguous which one to use`, 'Give an archive with a single copy of CIFAR-10, or the unpacked folder');
    }
    pathOf.set(base, e.name); // a later copy of the same path replaces the earlier one, as tar extraction does
    files.set(base, { bytes: e.data, file: `${archive}:${e.name}` });
  }
  if (files.size < ALL_FILES.length) {
    throw missingError(archive, new Set(files.keys()), 'the archive');
  }
  return { files, source: path.resolve(archive) };
}

function batchesFromFolder(dir: string): BatchFiles {
  const entries = new Set(listFolder(dir));
  if (!ALL_FILES.some((f) => entries.has(f))) {
    if (entries.has(CIFAR10_FOLDER)) return batchesFromFolder(path.join(dir, CIFAR10_FOLDER));
    if (entries.has(CIFAR10_ARCHIVE)) return batchesFromArchive(path.join(dir, CIFAR10_ARCHIVE));
    if (entries.size === 0) {
      throw new DatasetError(dir, `is an empty folder; CIFAR-10 needs ${ALL_FILES.join(', ')} (the binary version)`, DOWNLOAD + ' and give its .tar.gz, or the folder it unpacks to');
    }
    throw missingError(dir, entries, `the folder (with no ${CIFAR10_FOLDER} subfolder or ${CIFAR10_ARCHIVE} either)`);
  }
  const missing = ALL_FILES.filter((f) => !entries.has(f));
  if (missing.length > 0) throw missingError(dir, entries, 'the folder');
  const files = new Map<string, { bytes: Uint8Array; file: string }>();
  for (const f of ALL_FILES) {
    const file = path.join(dir, f);
    files.set(f, { bytes: readFileBytes(file), file });
  }
  return { files, source: path.resolve(dir) };
}

export interface Cifar10Options {
  /** Keep only the first N training images (in batch order); the test set is always complete. */
  trainLimit?: number;
}

/**
 * Loads CIFAR-10 from a folder holding the six batch files (or their `cifar-10-batches-bin/` subfolder, or the
 * official archive), or from the official `cifar-10-binary.tar.gz` (or an uncompressed .tar) read in memory.
 * Per-image standardization; pad-crop-flip augmentation.
 */
export function loadCifar10(location: string, options: Cifar10Options = {}): Dataset {
  checkTrainLimit(options.trainLimit);
  let st: fs.Stats;
  try {
    st = fs.statSync(location);
  } catch (err) {
    throw fsError(location, err);
  }
  const { files, source } = st.isDirectory() ? batchesFromFolder(location) : batchesFromArchive(location);
  const train = concatBatches(CIFAR10_TRAIN_FILES.map((f) => files.get(f)!), options.trainLimit);
  const test = concatBatches([files.get(CIFAR10_TEST_FILE)!], undefined);
  return assembleDataset('cifar10', source, train, test, {
    numClasses: CIFAR10_NUM_CLASSES,
    normalization: { kind: 'per-image-standardization' },
    augmentation: 'pad-crop-flip',
  });
}

const CIFAR10_PATH_HINT = `${CIFAR10_ARCHIVE} or the folder of its batch files`;

export const CIFAR10_DATASET = {
  name: 'cifar10',
  title: 'CIFAR-10',
  description: '50,000 training and 10,000 test colour images of 10 classes (Krizhevsky), binary version.',
  architectures: ['cifar10-vgg'],
  location: 'path',
  pathHint: CIFAR10_PATH_HINT,
  load: (options) => loadCifar10(requiredPath(options, 'cifar10', CIFAR10_PATH_HINT), { trainLimit: options.trainLimit }),
  download: {
    title: 'CIFAR-10 (binary version)',
    homepage: 'https://www.cs.toronto.edu/~kriz/cifar.html',
    mirrors: ['https://www.cs.toronto.edu/~kriz/'],
    files: [{ name: CIFAR10_ARCHIVE, md5: 'c32a1d4ab5d03f1284b67883e8d87530', bytes: 170_052_171 }],
  },
} as const satisfies DatasetEntry<'cifar10'>;

