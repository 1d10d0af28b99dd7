/**
 * Fuzzing the byte-level readers: random inputs and mutations of valid ones (bit flips, truncations, extensions,
 * header field edits, gzip wrapping) must give either a result consistent with the bytes or a DatasetError; never
 * another exception type, never a hang. Seeded, so a failure reproduces.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { DatasetError } from '../engine/data/errors.ts';
import { encodeIdxImages, encodeIdxLabels, parseIdxImages, parseIdxLabels } from '../engine/data/idx.ts';
import { CIFAR10_RECORD_BYTES, loadCifar10, parseCifarBatch } from '../engine/data/cifar10.ts';
import { readTar, type TarEntry } from '../engine/data/tar.ts';
import { Random } from '../engine/random.ts';

const ITERATIONS = 3000;
const FILE = '<fuzz>';

function randomBytes(rng: Random, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.nextUint32() & 255;
  return b;
}

/** One random mutation of `base`; `headerFields` are byte offsets of 32-bit big-endian header fields to edit. */
function mutate(rng: Random, base: Uint8Array, headerFields: number[] = []): Uint8Array {
  const kind = rng.nextInt(8);
  switch (kind) {
    case 0: {
      // bit flips
      const b = base.slice();
      const flips = 1 + rng.nextInt(8);
      for (let i = 0; i < flips && b.length > 0; i++) b[rng.nextInt(b.length)]! ^= 1 << rng.nextInt(8);
      return b;
    }
    case 1: // truncation
      return base.slice(0, rng.nextInt(base.length + 1));
    case 2: {
      // extension with random or zero bytes
      const extra = rng.next() < 0.5 ? randomBytes(rng, 1 + rng.nextInt(600)) : new Uint8Array(1 + rng.nextInt(1100));
      const b = new Uint8Array(base.length + extra.length);
      b.set(base);
      b.set(extra, base.length);
      return b;
    }
    case 3: {
      // header field edit: boundary values or small changes
      if (headerFields.length === 0 || base.length < 4) return mutate(rng, base);
      const b = base.slice();
      const at = headerFields[rng.nextInt(headerFields.length)]!;
      if (at + 4 > b.length) return b;
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const old = dv.getUint32(at);
      const choices = [0, 1, 0xffffffff, 0x7fffffff, old + 1, old - 1, old * 2, rng.nextUint32(), 0x803, 0x801, 0x80d];
      dv.setUint32(at, choices[rng.nextInt(choices.length)]! >>> 0);
      return b;
    }
    case 4: {
      // overwrite a random span with random bytes
      const b = base.slice();
      if (b.length === 0) return b;
      const at = rng.nextInt(b.length);
      b.set(randomBytes(rng, Math.min(1 + rng.nextInt(32), b.length - at)), at);
      return b;
    }
    case 5: // gzip the (possibly mutated) bytes
      return new Uint8Array(zlib.gzipSync(rng.next() < 0.5 ? base : mutate(rng, base, headerFields)));
    case 6: {
      // mutate the gzipped bytes
      const gz = new Uint8Array(zlib.gzipSync(base));
      return mutate(rng, gz);
    }
    default: {
      // random bytes, sometimes behind a gzip magic number
      const b = randomBytes(rng, rng.nextInt(200));
      if (rng.next() < 0.3 && b.length >= 2) b.set([0x1f, 0x8b]);
      return b;
    }
  }
}

/** The bytes a reader sees after gzip detection, or undefined when they do not inflate. */
function inflated(input: Uint8Array): Uint8Array | undefined {
  if (input.length >= 2 && input[0] === 0x1f && input[1] === 0x8b) {
    try {
      return new Uint8Array(zlib.gunzipSync(input));
    } catch {
      return undefined;
    }
  }
  return input;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;

/** Runs fn; returns its result, or undefined after checking that it threw a DatasetError naming FILE. */
function outcome<T>(fn: () => T, input: Uint8Array, stats: { ok: number; errors: number }): T | undefined {
  try {
    const r = fn();
    stats.ok++;
    return r;
  } catch (err) {
    if (!(err instanceof DatasetError)) {
      throw new Error(`non-DatasetError for input ${Buffer.from(input.subarray(0, 64)).toString('hex')} (${input.length} bytes): ${String(err)}`, { cause: err });
    }
    expect(err.file).toBe(FILE);
    stats.errors++;
    return undefined;
  }
}

describe('fuzzing the IDX readers', () => {
  it('images: every outcome is a consistent result or a DatasetError', () => {
    const rng = new Random(0x1d3);
    const stats = { ok: 0, errors: 0 };
    const t0 = Date.now();
    for (let it = 0; it < ITERATIONS; it++) {
      const count = rng.nextInt(6);
      const height = 1 + rng.nextInt(6);
      const width = 1 + rng.nextInt(6);
      const valid = encodeIdxImages({ count, height, width, pixels: randomBytes(rng, count * height * width) });
      const input = it % 10 === 0 ? valid : mutate(rng, valid, [0, 4, 8, 12]);
      const r = outcome(() => parseIdxImages(input, FILE), input, stats);
      if (r) {
        const raw = inflated(input);
        expect(raw).toBeDefined();
        const dv = new DataView(raw!.buffer, raw!.byteOffset, raw!.byteLength);
        expect(dv.getUint32(0)).toBe(0x803);
        expect([dv.getUint32(4), dv.getUint32(8), dv.getUint32(12)]).toEqual([r.count, r.height, r.width]);
        expect(raw!.length).toBe(16 + r.count * r.height * r.width);
        expect(sameBytes(r.pixels, raw!.subarray(16))).toBe(true);
      }
    }
    expect(stats.ok).toBeGreaterThanOrEqual(ITERATIONS / 10); // the unmutated inputs at least
    expect(stats.errors).toBeGreaterThan(ITERATIONS / 2);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('labels: every outcome is a consistent result or a DatasetError', () => {
    const rng = new Random(0x1d1);
    const stats = { ok: 0, errors: 0 };
    for (let it = 0; it < ITERATIONS; it++) {
      const numClasses = 1 + rng.nextInt(12);
      const labels = Uint8Array.from({ length: rng.nextInt(20) }, () => rng.nextInt(numClasses));
      const valid = encodeIdxLabels(labels);
      const input = it % 10 === 0 ? valid : mutate(rng, valid, [0, 4]);
      const r = outcome(() => parseIdxLabels(input, numClasses, FILE), input, stats);
      if (r) {
        const raw = inflated(input)!;
        const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        expect(dv.getUint32(0)).toBe(0x801);
        expect(dv.getUint32(4)).toBe(r.length);
        expect(raw.length).toBe(8 + r.length);
        expect(sameBytes(r, raw.subarray(8))).toBe(true);
        expect(r.every((l) => l < numClasses)).toBe(true);
      }
    }
    expect(stats.ok).toBeGreaterThanOrEqual(ITERATIONS / 10);
    expect(stats.errors).toBeGreaterThan(ITERATIONS / 2);
  });
});

describe('fuzzing the CIFAR-10 batch reader', () => {
  it('every outcome is a consistent result or a DatasetError', () => {
    const rng = new Random(0xc1f);
    const stats = { ok: 0, errors: 0 };
    for (let it = 0; it < ITERATIONS; it++) {
      const records = rng.nextInt(3);
      const valid = randomBytes(rng, records * CIFAR10_RECORD_BYTES);
      for (let r = 0; r < records; r++) valid[r * CIFAR10_RECORD_BYTES] = rng.nextInt(10);
      // Header edits here target the label bytes.
      let input = it % 10 === 0 ? valid : mutate(rng, valid, [0, CIFAR10_RECORD_BYTES]);
      if (input.length >= 2 && input[0] === 0x1f && input[1] === 0x8b) input = inflated(input) ?? input; // batches are never gzipped
      const r = outcome(() => parseCifarBatch(input, FILE), input, stats);
      if (r) {
        expect(input.length % CIFAR10_RECORD_BYTES).toBe(0);
        expect(r.count).toBe(input.length / CIFAR10_RECORD_BYTES);
        expect(r.count).toBeGreaterThan(0);
        for (let k = 0; k < r.count; k++) {
          expect(r.labels[k]).toBe(input[k * CIFAR10_RECORD_BYTES]);
          expect(r.labels[k]).toBeLessThan(10);
          // Spot-check pixels: (y, x, c) in HWC = plane c at y*32+x.
          for (let s = 0; s < 4; s++) {
            const y = rng.nextInt(32), x = rng.nextInt(32), c = rng.nextInt(3);
            expect(r.pixels[k * 3072 + (y * 32 + x) * 3 + c]).toBe(input[k * CIFAR10_RECORD_BYTES + 1 + c * 1024 + y * 32 + x]);
          }
        }
      }
    }
    expect(stats.ok).toBeGreaterThanOrEqual(ITERATIONS / 20);
  });
});

describe('fuzzing the tar reader and the CIFAR-10 archive loader', () => {
  let tmp: string;
  const archives: { name: string; bytes: Uint8Array; files: Map<string, Uint8Array> }[] = [];

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-fuzz-'));
    // Small archives in the formats GNU tar writes, with short and long (>100 characters) paths.
    const rng = new Random(7);
    const root = path.join(tmp, 'src');
    const long = path.join('x'.repeat(70), 'y'.repeat(50));
    const files = new Map<string, Uint8Array>();
    const add = (rel: string, bytes: Uint8Array) => {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), bytes);
      files.set(rel, bytes);
    };
    add('a.bin', randomBytes(rng, 700));
    add('empty.txt', new Uint8Array(0));
    add(path.join(long, 'b.bin'), randomBytes(rng, 512));
    add(path.join('cifar-10-batches-bin', 'c.bin'), randomBytes(rng, 33));
    for (const format of ['gnu', 'pax', 'ustar', 'v7']) {
      const out = path.join(tmp, `${format}.tar`);
      const names = format === 'v7' ? ['a.bin', 'empty.txt', 'cifar-10-batches-bin'] : ['a.bin', 'empty.txt', 'x'.repeat(70), 'cifar-10-batches-bin'];
      execFileSync('tar', ['-c', '-f', out, `--format=${format}`, '-C', root, ...names]);
      const expected = new Map([...files].filter(([k]) => format !== 'v7' || !k.startsWith('x')));
      archives.push({ name: format, bytes: new Uint8Array(fs.readFileSync(out)), files: expected });
    }
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** Octal value of a header field, or undefined when it is not plain octal. */
  const octal = (b: Uint8Array, at: number, len: number) => {
    const text = Buffer.from(b.subarray(at, at + len)).toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
    return /^[0-7]+$/.test(text) ? parseInt(text, 8) : undefined;
  };

  const checkEntries = (entries: TarEntry[], input: Uint8Array, checkSizes = true) => {
    let end = 0;
    for (const e of entries) {
      if (e.type === 'file') {
        // Data starts on a block boundary after a header, after the previous entry's data, and (unless a pax
        // header may have overridden it) has the length the header's size field announces.
        const at = e.data.byteOffset - input.byteOffset;
        expect(at % 512).toBe(0);
        expect(at).toBeGreaterThanOrEqual(end + 512);
        end = at + e.data.length;
        if (checkSizes) expect(e.data.length).toBe(octal(input, at - 512 + 124, 12));
      }
      expect(typeof e.name).toBe('string');
      expect(['file', 'directory', 'other']).toContain(e.type);
      // Entries are views inside the archive bytes.
      expect(e.data.buffer).toBe(input.buffer);
      expect(e.data.byteOffset).toBeGreaterThanOrEqual(input.byteOffset);
      expect(e.data.byteOffset + e.data.length).toBeLessThanOrEqual(input.byteOffset + input.length);
    }
  };

  it('reads the unmutated archives exactly', () => {
    for (const a of archives) {
      const entries = readTar(a.bytes, FILE);
      checkEntries(entries, a.bytes, a.name !== 'pax');
      const got = new Map(entries.filter((e) => e.type === 'file').map((e) => [e.name, e.data]));
      expect([...got.keys()].sort(), a.name).toEqual([...a.files.keys()].sort());
      for (const [k, v] of a.files) expect(sameBytes(got.get(k)!, v), `${a.name} ${k}`).toBe(true);
    }
  });

  it('mutated archives: a consistent listing or a DatasetError', () => {
    const rng = new Random(0x7a2);
    const stats = { ok: 0, errors: 0 };
    for (let it = 0; it < ITERATIONS; it++) {
      const a = archives[rng.nextInt(archives.length)]!;
      // Header fields worth editing: size (124), checksum (148), typeflag (156); mutate() edits 4-byte spans.
      let input = mutate(rng, a.bytes, [124, 128, 132, 148, 152, 156, 512 + 124, 1024 + 124]);
      if (input.length >= 2 && input[0] === 0x1f && input[1] === 0x8b) input = inflated(input) ?? input;
      const entries = outcome(() => readTar(input, FILE), input, stats);
      if (entries) checkEntries(entries, input, a.name !== 'pax');
    }
    expect(stats.ok).toBeGreaterThan(100);
    expect(stats.errors).toBeGreaterThan(100);
  });

  it('random bytes and zero-padded garbage', () => {
    const rng = new Random(0x7a3);
    const stats = { ok: 0, errors: 0 };
    for (let it = 0; it < ITERATIONS; it++) {
      const input = randomBytes(rng, rng.nextInt(3000));
      if (rng.next() < 0.2) input.fill(0, rng.nextInt(input.length + 1));
      const entries = outcome(() => readTar(input, FILE), input, stats);
      if (entries) checkEntries(entries, input, false);
    }
  });

  it('loadCifar10 on mutated .tar.gz files: a Dataset or a DatasetError', () => {
    // A valid archive of six one-record batches.
    const rng = new Random(0xc1a);
    const dir = path.join(tmp, 'cifar', 'cifar-10-batches-bin');
    fs.mkdirSync(dir, { recursive: true });
    for (const f of ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin', 'test_batch.bin']) {
      const b = randomBytes(rng, CIFAR10_RECORD_BYTES);
      b[0] = rng.nextInt(10);
      fs.writeFileSync(path.join(dir, f), b);
    }
    const tarPath = path.join(tmp, 'small.tar');
    execFileSync('tar', ['-c', '-f', tarPath, '-C', path.join(tmp, 'cifar'), 'cifar-10-batches-bin']);
    const tarBytes = new Uint8Array(fs.readFileSync(tarPath));
    const file = path.join(tmp, 'mutated.tar.gz');
    let ok = 0;
    for (let it = 0; it < 300; it++) {
      const mutated = it === 0 ? tarBytes : mutate(rng, tarBytes, [124, 148, 156, 512 + 124, 1024 + 148]);
      const bytes = rng.next() < 0.5 ? zlib.gzipSync(mutated) : mutate(rng, new Uint8Array(zlib.gzipSync(tarBytes)));
      fs.writeFileSync(file, it === 0 ? zlib.gzipSync(tarBytes) : bytes);
      try {
        const d = loadCifar10(file);
        expect(d.train.count).toBeGreaterThan(0);
        expect(d.train.pixels.length).toBe(d.train.count * 3072);
        expect(d.test.labels.every((l) => l < 10)).toBe(true);
        ok++;
      } catch (err) {
        if (!(err instanceof DatasetError)) throw err;
        expect(err.file.startsWith(file)).toBe(true);
      }
    }
    expect(ok).toBeGreaterThan(0);
  });
});
