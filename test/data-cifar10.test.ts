import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { expectDatasetError } from './helpers/dataset-errors.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import {
  CIFAR10_RECORD_BYTES,
  CIFAR10_TEST_FILE,
  CIFAR10_TRAIN_FILES,
  loadCifar10,
  parseCifarBatch,
} from '../engine/data/cifar10.ts';
import { readTar } from '../engine/data/tar.ts';
import { loadDataset } from '../engine/data/index.ts';
import { Random } from '../engine/random.ts';
import type { Dataset } from '../engine/data/types.ts';

const PER_BATCH = 50;
const ALL = [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE];

/** A batch in the official binary format: per record, 1 label byte, then the R, G and B planes (32x32 each). */
function makeBatch(seed: number, records = PER_BATCH): Uint8Array {
  const rng = new Random(seed);
  const b = new Uint8Array(records * CIFAR10_RECORD_BYTES);
  for (let i = 0; i < b.length; i++) b[i] = rng.nextUint32() & 255;
  for (let r = 0; r < records; r++) b[r * CIFAR10_RECORD_BYTES] = rng.nextInt(10);
  return b;
}

/** Value of record r at (y, x, channel c) read straight from the plane layout. */
const planeValue = (batch: Uint8Array, r: number, y: number, x: number, c: number) =>
  batch[r * CIFAR10_RECORD_BYTES + 1 + c * 1024 + y * 32 + x]!;

let tmp: string;
const batches = new Map<string, Uint8Array>();
let folder: string; // <tmp>/cifar-10-batches-bin
const tarArgs = (archive: string, ...extra: string[]) => ['-c', '-z', '-f', archive, ...extra, '-C', tmp, 'cifar-10-batches-bin'];

/** Writes a copy of the generated folder under a new parent, with optional edits, and returns the batches folder. */
function copyFolder(name: string, edit?: (dir: string) => void): string {
  const dir = path.join(tmp, name, 'cifar-10-batches-bin');
  fs.mkdirSync(dir, { recursive: true });
  for (const [f, b] of batches) fs.writeFileSync(path.join(dir, f), b);
  edit?.(dir);
  return dir;
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-cifar-'));
  folder = path.join(tmp, 'cifar-10-batches-bin');
  fs.mkdirSync(folder);
  ALL.forEach((f, i) => {
    const b = makeBatch(100 + i);
    batches.set(f, b);
    fs.writeFileSync(path.join(folder, f), b);
  });
  // Files the official archive also holds, which the loader must ignore.
  fs.writeFileSync(path.join(folder, 'batches.meta.txt'), 'airplane\nautomobile\n');
  fs.writeFileSync(path.join(folder, 'readme.html'), '<html></html>');
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function expectMatchesGenerated(d: Dataset, trainLimit = 5 * PER_BATCH): void {
  expect(d.train.count).toBe(trainLimit);
  expect(d.test.count).toBe(PER_BATCH);
  expect(d.numClasses).toBe(10);
  expect(d.normalization).toEqual({ kind: 'per-image-standardization' });
  expect(d.augmentation).toBe('pad-crop-flip');
  expect(d.identity).toMatchObject({ name: 'cifar10', trainCount: trainLimit, testCount: PER_BATCH });
  const check = (set: Dataset['train'], files: string[]) => {
    expect([set.height, set.width, set.channels]).toEqual([32, 32, 3]);
    expect(set.pixels.length).toBe(set.count * 3072);
    let i = 0;
    for (const f of files) {
      const b = batches.get(f)!;
      for (let r = 0; r < PER_BATCH && i < set.count; r++, i++) {
        expect(set.labels[i]).toBe(b[r * CIFAR10_RECORD_BYTES]);
        let bad = 0;
        for (let y = 0; y < 32; y++)
          for (let x = 0; x < 32; x++)
            for (let c = 0; c < 3; c++) if (set.pixels[i * 3072 + (y * 32 + x) * 3 + c] !== planeValue(b, r, y, x, c)) bad++;
        expect(bad, `image ${i} (${f} record ${r})`).toBe(0);
      }
    }
    expect(i).toBe(set.count);
  };
  check(d.train, [...CIFAR10_TRAIN_FILES]);
  check(d.test, [CIFAR10_TEST_FILE]);
}

describe('CIFAR-10 binary batches', () => {
  it('converts R, G, B planes to HWC pixels', () => {
    const rec = new Uint8Array(CIFAR10_RECORD_BYTES);
    rec[0] = 7;
    // Pixel (y=2, x=5): R=11, G=22, B=33; pixel (31, 31): R=200, G=201, B=202.
    rec[1 + 2 * 32 + 5] = 11;
    rec[1 + 1024 + 2 * 32 + 5] = 22;
    rec[1 + 2048 + 2 * 32 + 5] = 33;
    rec[1 + 1023] = 200;
    rec[1 + 1024 + 1023] = 201;
    rec[1 + 2048 + 1023] = 202;
    const set = parseCifarBatch(rec);
    expect(set.count).toBe(1);
    expect(set.labels).toEqual(Uint8Array.from([7]));
    const at = (y: number, x: number) => Array.from(set.pixels.subarray((y * 32 + x) * 3, (y * 32 + x) * 3 + 3));
    expect(at(2, 5)).toEqual([11, 22, 33]);
    expect(at(31, 31)).toEqual([200, 201, 202]);
    expect(at(5, 2)).toEqual([0, 0, 0]);
    expect(set.pixels.reduce((a, b) => a + b, 0)).toBe(11 + 22 + 33 + 200 + 201 + 202);
  });

  it('loads the folder and its parent (cifar-10-batches-bin/)', () => {
    const a = loadCifar10(folder);
    expectMatchesGenerated(a);
    expect(a.identity.source).toBe(folder);
    const b = loadCifar10(tmp);
    expect(b.identity.checksum).toBe(a.identity.checksum);
    expect(loadDataset({ name: 'cifar10', path: folder }).identity.checksum).toBe(a.identity.checksum);
  });

  it('reads the .tar.gz made by tar czf (and plain, pax, gnu and ustar-prefix tars) without unpacking', () => {
    const ref = loadCifar10(folder).identity.checksum;
    const archive = path.join(tmp, 'cifar-10-binary.tar.gz');
    execFileSync('tar', tarArgs(archive));
    const d = loadCifar10(archive);
    expectMatchesGenerated(d);
    expect(d.identity.checksum).toBe(ref);
    expect(d.identity.source).toBe(archive);
    // A folder holding only the official archive.
    const holder = path.join(tmp, 'holder');
    fs.mkdirSync(holder);
    fs.copyFileSync(archive, path.join(holder, 'cifar-10-binary.tar.gz'));
    expect(loadCifar10(holder).identity.checksum).toBe(ref);
    // Uncompressed tar, and the archive formats GNU tar can write, including long paths.
    const plain = path.join(tmp, 'plain.tar');
    execFileSync('tar', ['-c', '-f', plain, '-C', tmp, 'cifar-10-batches-bin']);
    expect(loadCifar10(plain).identity.checksum).toBe(ref);
    const deep = path.join(tmp, 'd'.repeat(60), 'e'.repeat(60));
    copyFolder(path.join('d'.repeat(60), 'e'.repeat(60)));
    for (const format of ['pax', 'gnu', 'ustar', 'v7']) {
      const out = path.join(tmp, `long-${format}.tgz`);
      const names = format === 'v7' ? ['cifar-10-batches-bin'] : [path.relative(tmp, path.join(deep, 'cifar-10-batches-bin'))];
      execFileSync('tar', ['-c', '-z', '-f', out, `--format=${format}`, '-C', tmp, ...names]);
      expect(loadCifar10(out).identity.checksum, format).toBe(ref);
    }
  });

  it('trainLimit keeps the first N training images across batches', () => {
    const full = loadCifar10(folder);
    const d = loadCifar10(folder, { trainLimit: 120 });
    expectMatchesGenerated(d, 120);
    expect(d.identity.checksum).not.toBe(full.identity.checksum);
    expect(loadCifar10(folder, { trainLimit: 10_000 }).train.count).toBe(250);
  });
});

describe('malformed CIFAR-10 data gives a DatasetError naming the file', () => {
  it('batch size not a multiple of 3,073 bytes', () => {
    const dir = copyFolder('short', (d) => {
      const f = path.join(d, 'data_batch_3.bin');
      fs.writeFileSync(f, batches.get('data_batch_3.bin')!.subarray(0, 3 * CIFAR10_RECORD_BYTES - 1));
    });
    expectDatasetError(() => loadCifar10(dir), path.join(dir, 'data_batch_3.bin'), /9218 bytes, not a multiple of the 3,073-byte/);
    const dir2 = copyFolder('empty-batch', (d) => fs.writeFileSync(path.join(d, 'test_batch.bin'), ''));
    expectDatasetError(() => loadCifar10(dir2), path.join(dir2, 'test_batch.bin'), /empty/);
  });

  it('label above 9', () => {
    const dir = copyFolder('label', (d) => {
      const b = batches.get('data_batch_5.bin')!.slice();
      b[7 * CIFAR10_RECORD_BYTES] = 10;
      fs.writeFileSync(path.join(d, 'data_batch_5.bin'), b);
    });
    expectDatasetError(() => loadCifar10(dir), path.join(dir, 'data_batch_5.bin'), /record 7 .*label 10, outside 0..9/);
    // Checked even beyond trainLimit.
    expectDatasetError(() => loadCifar10(dir, { trainLimit: 10 }), path.join(dir, 'data_batch_5.bin'), /label 10/);
    // Inside an archive, the error names archive and entry.
    const archive = path.join(tmp, 'label.tar.gz');
    execFileSync('tar', ['-c', '-z', '-f', archive, '-C', path.dirname(dir), 'cifar-10-batches-bin']);
    expectDatasetError(() => loadCifar10(archive), `${archive}:cifar-10-batches-bin/data_batch_5.bin`, /label 10/);
  });

  it('missing batch files, an empty folder, a missing path, unrelated files', () => {
    const dir = copyFolder('missing', (d) => {
      fs.rmSync(path.join(d, 'data_batch_4.bin'));
      fs.rmSync(path.join(d, 'test_batch.bin'));
    });
    const err = expectDatasetError(() => loadCifar10(dir), dir, /is missing data_batch_4\.bin, test_batch\.bin/);
    expect(err.message).toContain('data_batch_1.bin, data_batch_2.bin'); // lists what is expected
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    expectDatasetError(() => loadCifar10(empty), empty, /empty folder/);
    const none = path.join(tmp, 'none');
    expectDatasetError(() => loadCifar10(none), none, /does not exist/);
    const other = path.join(tmp, 'other');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'notes.txt'), 'x');
    expectDatasetError(() => loadCifar10(other), other, /holds none of the CIFAR-10 batch files/);
    const archive = path.join(tmp, 'missing.tgz');
    execFileSync('tar', ['-c', '-z', '-f', archive, '-C', path.dirname(dir), 'cifar-10-batches-bin']);
    expectDatasetError(() => loadCifar10(archive), archive, /is missing data_batch_4\.bin, test_batch\.bin/);
  });

  it('corrupt tar and gzip', () => {
    const plain = path.join(tmp, 'c.tar');
    execFileSync('tar', ['-c', '-f', plain, '-C', tmp, 'cifar-10-batches-bin']);
    const tarBytes = new Uint8Array(fs.readFileSync(plain));
    const entries = readTar(tarBytes, plain);
    expect(entries.filter((e) => e.type === 'file').map((e) => e.name).sort()).toEqual(
      [...ALL, 'batches.meta.txt', 'readme.html'].map((f) => `cifar-10-batches-bin/${f}`).sort(),
    );
    // A flipped byte in the second header (name field): checksum mismatch.
    const secondHeader = 512 + Math.ceil(entries[0]!.data.length / 512) * 512;
    const bad = tarBytes.slice();
    bad[secondHeader + 3] = bad[secondHeader + 3]! ^ 0x20;
    let p = path.join(tmp, 'bad-header.tar.gz');
    fs.writeFileSync(p, zlib.gzipSync(bad));
    expectDatasetError(() => loadCifar10(p), p, new RegExp(`corrupt tar header at byte ${secondHeader}`));
    // Cut inside an entry.
    p = path.join(tmp, 'cut.tar');
    fs.writeFileSync(p, tarBytes.subarray(0, 4096 + 100));
    expectDatasetError(() => loadCifar10(p), p, /truncated/);
    // Not a tar at all.
    p = path.join(tmp, 'random.bin');
    fs.writeFileSync(p, makeBatch(5));
    expectDatasetError(() => loadCifar10(p), p, /not a tar archive/);
    // A .tar.gz cut short, or with damaged deflate data.
    const archive = path.join(tmp, 'good.tar.gz');
    execFileSync('tar', tarArgs(archive));
    const gz = new Uint8Array(fs.readFileSync(archive));
    p = path.join(tmp, 'cut.tar.gz');
    fs.writeFileSync(p, gz.subarray(0, gz.length >> 1));
    expectDatasetError(() => loadCifar10(p), p, /does not inflate/);
    const damaged = gz.slice();
    for (let i = 100; i < 140; i++) damaged[i] = damaged[i]! ^ 0x5a;
    p = path.join(tmp, 'damaged.tar.gz');
    fs.writeFileSync(p, damaged);
    expectDatasetError(() => loadCifar10(p), p, /does not inflate/);
  });

  it('an archive with two copies of CIFAR-10 in different folders is ambiguous', () => {
    copyFolder(path.join('twice', 'a'));
    copyFolder(path.join('twice', 'b'));
    const archive = path.join(tmp, 'twice.tgz');
    execFileSync('tar', ['-c', '-z', '-f', archive, '-C', path.join(tmp, 'twice'), 'a', 'b']);
    expectDatasetError(() => loadCifar10(archive), archive, /twice/);
  });
});
