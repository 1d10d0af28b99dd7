import { describe, it, expect } from 'vitest';
import { fillBatch, fillLabels, AUGMENT_PAD } from '../engine/data/batch.ts';
import { Random } from '../engine/random.ts';
import type { ImageSet, InputNormalization } from '../engine/data/types.ts';

const UNIT: InputNormalization = { kind: 'unit' };
const STD: InputNormalization = { kind: 'per-image-standardization' };

function makeSet(count: number, h: number, w: number, c: number, seed = 1): ImageSet {
  const rng = new Random(seed);
  const pixels = new Uint8Array(count * h * w * c);
  for (let i = 0; i < pixels.length; i++) pixels[i] = rng.nextUint32() & 255;
  const labels = Uint8Array.from({ length: count }, (_, i) => (i * 3) % 10);
  return { count, height: h, width: w, channels: c, pixels, labels };
}

/** A Random whose draws are scripted: nextInt returns the queued integers, next() the queued floats. */
class ScriptedRandom extends Random {
  constructor(private readonly ints: number[], private readonly floats: number[]) {
    super(0);
  }
  override nextInt(n: number): number {
    const v = this.ints.shift();
    if (v === undefined || v >= n) throw new Error('script exhausted or out of range');
    return v;
  }
  override next(): number {
    const v = this.floats.shift();
    if (v === undefined) throw new Error('script exhausted');
    return v;
  }
}

/** Reference: raw value at output (y, x, c) of image k after pad 4, crop at (dy, dx), optional flip. */
function augmentedRaw(set: ImageSet, k: number, dy: number, dx: number, flip: boolean, y: number, x: number, c: number): number {
  const { height: H, width: W, channels: C } = set;
  const sy = y + dy - AUGMENT_PAD;
  const sx = (flip ? W - 1 - x : x) + dx - AUGMENT_PAD;
  if (sy < 0 || sy >= H || sx < 0 || sx >= W) return 0;
  return set.pixels[((k * H + sy) * W + sx) * C + c]!;
}

/** Reference per-image standardization in float64 (tf.image.per_image_standardization). */
function standardize(values: number[]): number[] {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = Math.max(values.reduce((a, b) => a + b * b, 0) / n - mean * mean, 0);
  const scale = Math.max(Math.sqrt(variance), 1 / Math.sqrt(n));
  return values.map((v) => (v - mean) / scale);
}

describe('fillBatch', () => {
  it("'unit' writes x / 255 in NHWC order for the selected images", () => {
    const set = makeSet(5, 4, 3, 2);
    const idx = [3, 0, 3];
    const out = new Float32Array(idx.length * 24);
    fillBatch(set, idx, UNIT, false, new Random(1), out);
    idx.forEach((k, i) => {
      for (let j = 0; j < 24; j++) expect(out[i * 24 + j]).toBe(Math.fround(set.pixels[k * 24 + j]! / 255));
    });
    expect(out[0]).toBeGreaterThanOrEqual(0);
    expect(Math.max(...out)).toBeLessThanOrEqual(1);
  });

  it("'per-image-standardization' gives mean 0 and std 1 per image, matching the reference formula", () => {
    const set = makeSet(8, 32, 32, 3);
    const N = 3072;
    const out = new Float32Array(8 * N);
    fillBatch(set, [0, 1, 2, 3, 4, 5, 6, 7], STD, false, new Random(1), out);
    for (let i = 0; i < 8; i++) {
      const img = Array.from(out.subarray(i * N, (i + 1) * N));
      const mean = img.reduce((a, b) => a + b, 0) / N;
      const std = Math.sqrt(img.reduce((a, b) => a + (b - mean) ** 2, 0) / N);
      expect(Math.abs(mean)).toBeLessThan(1e-5);
      expect(std).toBeCloseTo(1, 5);
      const ref = standardize(Array.from(set.pixels.subarray(i * N, (i + 1) * N)));
      for (let j = 0; j < N; j += 97) expect(img[j]).toBeCloseTo(ref[j]!, 5);
    }
  });

  it('standardization of flat images uses the 1/sqrt(N) floor instead of dividing by ~0', () => {
    const N = 32 * 32 * 3;
    const pixels = new Uint8Array(2 * N).fill(100);
    pixels[N + 5] = 101; // image 1: one pixel differs, std below 1/sqrt(N)
    const set: ImageSet = { count: 2, height: 32, width: 32, channels: 3, pixels, labels: new Uint8Array(2) };
    const out = new Float32Array(2 * N);
    fillBatch(set, [0, 1], STD, false, new Random(1), out);
    expect(out.subarray(0, N).every((v) => v === 0)).toBe(true);
    const ref = standardize(Array.from(pixels.subarray(N)));
    expect(out[N + 5]).toBeCloseTo(ref[5]!, 5);
    expect(out[N]).toBeCloseTo(ref[0]!, 5);
    expect(Math.abs(out[N + 5]! - ref[5]!)).toBeLessThan(1e-5);
    expect(ref[5]! - ref[0]!).toBeCloseTo(Math.sqrt(N), 3); // scale = 1/sqrt(N) exactly
  });

  it('augmentation is seeded: same seed, same batch; different seed, different batch', () => {
    const set = makeSet(64, 32, 32, 3);
    const idx = Array.from({ length: 64 }, (_, i) => i);
    const run = (seed: number) => {
      const out = new Float32Array(64 * 3072);
      fillBatch(set, idx, STD, true, new Random(seed), out);
      return out;
    };
    const a = run(7);
    expect(Buffer.from(run(7).buffer).equals(Buffer.from(a.buffer))).toBe(true);
    expect(Buffer.from(run(8).buffer).equals(Buffer.from(a.buffer))).toBe(false);
    // Without augmentation the generator is not touched.
    const rng = new Random(3);
    const before = rng.getState();
    fillBatch(set, idx, STD, false, rng, new Float32Array(64 * 3072));
    expect(rng.getState()).toEqual(before);
  });

  it('pads with zeros, crops at the drawn offsets and mirrors exactly (scripted draws)', () => {
    const set = makeSet(2, 32, 32, 3, 5);
    const N = 3072;
    const at = (out: Float32Array, y: number, x: number, c: number) => out[(y * 32 + x) * 3 + c]! * 255;
    const src = (y: number, x: number, c: number) => set.pixels[(y * 32 + x) * 3 + c]!;
    const out = new Float32Array(N);
    // Centre crop, no flip: the image itself.
    fillBatch(set, [0], UNIT, true, new ScriptedRandom([4, 4], [0.9]), out);
    for (let j = 0; j < N; j++) expect(Math.round(out[j]! * 255)).toBe(set.pixels[j]);
    // Centre crop, flipped: mirrored rows.
    fillBatch(set, [0], UNIT, true, new ScriptedRandom([4, 4], [0.1]), out);
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) for (let c = 0; c < 3; c++) expect(Math.round(at(out, y, x, c))).toBe(src(y, 31 - x, c));
    // Offsets (0, 0): the image moves down-right by 4, zeros above and left.
    fillBatch(set, [0], UNIT, true, new ScriptedRandom([0, 0], [0.9]), out);
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++)
        for (let c = 0; c < 3; c++) expect(Math.round(at(out, y, x, c))).toBe(y < 4 || x < 4 ? 0 : src(y - 4, x - 4, c));
    // Offsets (8, 2), flipped: up by 4, then the shifted window is mirrored.
    fillBatch(set, [0], UNIT, true, new ScriptedRandom([8, 2], [0.2]), out);
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++)
        for (let c = 0; c < 3; c++) {
          const cx = 31 - x - 2; // cropped column 31-x, source column (31-x) + 2 - 4
          expect(Math.round(at(out, y, x, c))).toBe(y >= 28 || cx < 0 ? 0 : src(y + 4, cx, c));
        }
  });

  it('replaying the documented draw order reproduces every augmented image; offsets cover 0..8 and flips ~half', () => {
    const set = makeSet(40, 32, 32, 3, 9);
    const idx = Array.from({ length: 256 }, (_, i) => (i * 7) % 40);
    const out = new Float32Array(256 * 3072);
    fillBatch(set, idx, STD, true, new Random(123), out);
    const replay = new Random(123);
    const seenDy = new Set<number>();
    const seenDx = new Set<number>();
    let flips = 0;
    idx.forEach((k, i) => {
      const dy = replay.nextInt(9);
      const dx = replay.nextInt(9);
      const flip = replay.next() < 0.5;
      seenDy.add(dy);
      seenDx.add(dx);
      if (flip) flips++;
      const raw: number[] = [];
      for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) for (let c = 0; c < 3; c++) raw.push(augmentedRaw(set, k, dy, dx, flip, y, x, c));
      const ref = standardize(raw); // padding zeros take part in the image statistics
      let maxErr = 0;
      for (let j = 0; j < 3072; j++) maxErr = Math.max(maxErr, Math.abs(out[i * 3072 + j]! - ref[j]!));
      expect(maxErr, `image ${i}`).toBeLessThan(1e-5);
    });
    expect(seenDy.size).toBe(9);
    expect(seenDx.size).toBe(9);
    expect(flips).toBeGreaterThan(100);
    expect(flips).toBeLessThan(156);
  });

  it('works for one-channel images and rejects bad indices or a short output', () => {
    const set = makeSet(3, 28, 28, 1);
    const out = new Float32Array(2 * 784);
    fillBatch(set, Int32Array.from([2, 1]), UNIT, true, new Random(1), out);
    expect(out.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(() => fillBatch(set, [3], UNIT, false, new Random(1), out)).toThrow(RangeError);
    expect(() => fillBatch(set, [-1], UNIT, false, new Random(1), out)).toThrow(RangeError);
    expect(() => fillBatch(set, [0, 1, 2], UNIT, false, new Random(1), out)).toThrow(RangeError);
  });
});

describe('fillLabels', () => {
  it('writes the labels of the selected images', () => {
    const set = makeSet(10, 2, 2, 1);
    const out = new Int32Array(4);
    fillLabels(set, [9, 0, 4, 4], out);
    expect(Array.from(out)).toEqual([set.labels[9], set.labels[0], set.labels[4], set.labels[4]]);
    expect(() => fillLabels(set, [10], out)).toThrow(RangeError);
  });
});
