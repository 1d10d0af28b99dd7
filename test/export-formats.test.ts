/**
 * The export formats on a small hand-made graph that takes the code paths the MNIST net does not (strided conv
 * with uneven SAME padding, max-pool padding, batch norm that follows no linear layer, global average pooling, a
 * binary dense layer, per-image standardization), plus the encoders' edge cases. No training: fast.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../engine/tf.ts';
import { initBackend } from '../engine/backends/index.ts';
import { Random } from '../engine/random.ts';
import { fillBatch } from '../engine/data/batch.ts';
import {
  type ExportGraph,
  type GraphOp,
  foldBatchNorm,
  graphLogits,
  samePadding,
  unpack,
  writeC,
  writeOnnx,
  writePacked,
  writeTfjs,
  PackedFormatError,
} from '../engine/export/index.ts';
import {
  packBinary, unpackBinary, packTernary2bit, unpackTernary2bit, packTernaryBase3, unpackTernaryBase3,
} from '../engine/export/packed.ts';
import { encodeVarint } from '../engine/export/protobuf.ts';
import { compareLogits, verifyC, verifyOnnx, verifyPacked, verifyTfjs, FLOAT_TOLERANCE, VERIFIERS, type VerificationSet } from '../app/export/verify.ts';
import { EXPORT_FORMATS } from '../engine/export/registry.ts';
import { exportDiscreteNetwork, ExportError } from '../app/export/index.ts';
import { defineModel } from '../engine/models.ts';
import type { DiscreteNetwork } from '../engine/discrete-net.ts';
import { createServices } from '../app/services.ts';

function randomValues(rng: Random, n: number, values: readonly number[]): Int8Array {
  return Int8Array.from({ length: n }, () => values[rng.nextInt(values.length)]!);
}

function floats(rng: Random, n: number, lo: number, hi: number): Float32Array {
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next());
}

function batchNorm(rng: Random, name: string, c: number) {
  return { name, mean: floats(rng, c, -1, 1), variance: floats(rng, c, 0.5, 4), gamma: floats(rng, c, 0.5, 1.5), beta: floats(rng, c, -0.5, 0.5), epsilon: 1e-3 };
}

/** 7x7x3 -> conv 3x3/2 ternary (+BN) -> relu -> maxpool 3/2 -> BN -> relu -> global pool -> dense binary (+BN) -> relu -> dense float. */
function sampleGraph(): ExportGraph {
  const rng = new Random(7);
  const bn1 = batchNorm(rng, 'bn1', 8);
  const bn2 = batchNorm(rng, 'bn2', 8);
  const bn3 = batchNorm(rng, 'bn3', 40);
  const p = samePadding(7, 3, 2);
  const q = samePadding(p.output, 3, 2);
  const ops: GraphOp[] = [
    {
      op: 'conv', name: 'conv1', kind: 'ternary', kernel: 3, stride: 2, inputShape: [7, 7, 3], outputShape: [p.output, p.output, 8],
      pads: [p.before, p.before, p.after, p.after], shape: [3, 3, 3, 8], weights: randomValues(rng, 3 * 3 * 3 * 8, [-1, 0, 1]),
      ...foldBatchNorm(bn1), batchNorm: bn1,
    },
    { op: 'relu' },
    { op: 'maxpool', size: 3, stride: 2, inputShape: [p.output, p.output, 8], outputShape: [q.output, q.output, 8], pads: [q.before, q.before, q.after, q.after] },
    { op: 'scaleshift', name: 'bn2', ...foldBatchNorm(bn2), batchNorm: bn2 },
    { op: 'relu' },
    { op: 'globalavgpool', inputShape: [q.output, q.output, 8] },
    { op: 'dense', name: 'fc1', kind: 'binary', shape: [8, 40], weights: randomValues(rng, 8 * 40, [-1, 1]), ...foldBatchNorm(bn3), batchNorm: bn3 },
    { op: 'relu' },
    { op: 'dense', name: 'fc2', kind: 'float32', shape: [40, 5], weights: floats(rng, 200, -2, 2), bias: floats(rng, 5, -0.1, 0.1) },
  ];
  return {
    net: { architecture: 'mnist', kind: 'ternary', choice: 'argmax' }, inputShape: [7, 7, 3], numClasses: 5,
    normalization: { kind: 'per-image-standardization' }, ops,
  };
}

describe('export formats on a hand-made graph', () => {
  let graph: ExportGraph;
  let set: VerificationSet;
  let dir: string;

  beforeAll(async () => {
    await initBackend('wasm');
    graph = sampleGraph();
    const count = 64;
    const rng = new Random(3);
    // Each image weights its three channels differently, so the images differ after global pooling.
    const channelScale = floats(rng, count * 3, 0, 1);
    const pixels = Uint8Array.from({ length: count * 147 }, (_, j) => Math.floor(rng.nextInt(256) * channelScale[Math.floor(j / 147) * 3 + (j % 3)]!));
    const images = { count, height: 7, width: 7, channels: 3, pixels, labels: new Uint8Array(count) };
    const inputs = new Float32Array(count * 147);
    fillBatch(images, Int32Array.from({ length: count }, (_, i) => i), graph.normalization, false, rng, inputs);
    const x = tf.tensor4d(inputs, [count, 7, 7, 3]);
    const logits = graphLogits(graph, x);
    const reference = logits.dataSync() as Float32Array;
    tf.dispose([x, logits]);
    set = { count, inputShape: [7, 7, 3], numClasses: 5, inputs, pixels, labels: new Uint8Array(count), reference };
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-export-formats-'));
    return () => fs.rmSync(dir, { recursive: true, force: true });
  });

  function write(format: string, files: readonly { path: string; data: Uint8Array | string }[]): string {
    const target = path.join(dir, format);
    fs.mkdirSync(target, { recursive: true });
    for (const f of files) fs.writeFileSync(path.join(target, f.path), f.data);
    return target;
  }

  it('the reference logits are well scaled and differ between images', () => {
    const first = set.reference.subarray(0, 5);
    let spread = 0;
    for (let i = 0; i < set.reference.length; i++) spread = Math.max(spread, Math.abs(set.reference[i]! - first[i % 5]!));
    expect(spread).toBeGreaterThan(1);
  });

  it('packed round-trips bit for bit and runs the same', async () => {
    for (const ternaryEncoding of ['2bit', 'base3'] as const) {
      const target = write(`packed-${ternaryEncoding}`, writePacked(graph, { ternaryEncoding }).files);
      const result = await verifyPacked(target, graph, set);
      expect(result.passed, result.error).toBe(true);
      expect(result.maxAbsDiff).toBe(0);
    }
  });

  it('c compiles with the strict flags and matches, normalization included', async () => {
    const result = await verifyC(write('c', writeC(graph).files), set);
    expect(result.passed, result.error).toBe(true);
    expect(result.maxAbsDiff).toBeLessThanOrEqual(FLOAT_TOLERANCE);
    expect(result.details?.normalizationMaxAbsDiff).toBeLessThanOrEqual(1e-6);
    const baseline = await verifyC(write('c-float', writeC(graph, { weights: 'float32' }).files), set);
    expect(baseline.passed, baseline.error).toBe(true);
  });

  it('onnx runs in onnxruntime-node and matches', async () => {
    const result = await verifyOnnx(write('onnx', writeOnnx(graph).files), set);
    expect(result.passed, result.error).toBe(true);
    expect(result.maxAbsDiff).toBeLessThanOrEqual(FLOAT_TOLERANCE);
  });

  it('tfjs loads with tf.loadLayersModel and matches', async () => {
    const result = await verifyTfjs(write('tfjs', writeTfjs(graph).files), set);
    expect(result.passed, result.error).toBe(true);
    expect(result.maxAbsDiff).toBeLessThanOrEqual(FLOAT_TOLERANCE);
  });

  it('every registry entry writes the files its layout lists, and its verifier (looked up by name) passes them', async () => {
    for (const format of EXPORT_FORMATS) {
      const written = format.write(graph, { source: { checkpoint: '/runs/x/last.ckpt' }, ternaryEncoding: 'base3' });
      expect(written.files.map((f) => f.path), format.name).toEqual(format.files);
      const result = await VERIFIERS[format.name](write(`registry-${format.name}`, written.files), graph, set);
      expect(result.passed, `${format.name}: ${result.error}`).toBe(true);
      expect(result.consumer, format.name).toBeTruthy();
    }
  });

  it('a format is refused for a net its entry does not take, before anything is written', async () => {
    const resnet: DiscreteNetwork = {
      model: defineModel('resnet18', { inputShape: [8, 8, 3], numClasses: 5 }), kind: 'ternary', choice: 'argmax',
      normalization: graph.normalization, weights: new Map(), batchNorm: new Map(), fullPrecision: new Map(), batchNormEpsilon: 1e-3,
    };
    const outDir = path.join(dir, 'resnet-export');
    const testSet = { count: 1, height: 8, width: 8, channels: 3, pixels: new Uint8Array(192), labels: new Uint8Array(1) };
    const error = await exportDiscreteNetwork(resnet, { formats: ['onnx'], outDir, testSet }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExportError);
    expect(error).toMatchObject({ code: 'unsupported', message: expect.stringMatching(/the onnx format \(version 1\) takes mnist, cifar10-vgg nets, not resnet18/) });
    expect(fs.existsSync(outDir)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.includes('resnet-export'))).toEqual([]);
  });

  it('a consumer that changes a top-1 class or drifts past the tolerance fails', () => {
    const drifted = set.reference.map((v, i) => (i === 3 ? v + 2 * FLOAT_TOLERANCE : v));
    expect(compareLogits(set, drifted, 'test', FLOAT_TOLERANCE, 0)).toMatchObject({ passed: false, top1Disagreements: 0 });
    const flipped = set.reference.map((v, i) => (i < 5 ? (i === 4 ? 100 : -100) : v));
    expect(compareLogits(set, flipped, 'test', 1e9, 0).passed).toBe(set.reference.subarray(0, 5).indexOf(Math.max(...set.reference.subarray(0, 5))) === 4);
    expect(compareLogits(set, new Float32Array(3), 'test', 1, 0)).toMatchObject({ passed: false, error: expect.stringMatching(/returned 3 logits/) });
  });
});

describe('encodings', () => {
  it('packs binary at 1 bit, ternary at 2 bits or base 3, for every length', () => {
    const rng = new Random(11);
    for (const n of [0, 1, 4, 5, 7, 8, 9, 31, 33, 1000]) {
      const binary = randomValues(rng, n, [-1, 1]);
      const ternary = randomValues(rng, n, [-1, 0, 1]);
      expect(packBinary(binary).byteLength).toBe(Math.ceil(n / 8));
      expect(packTernary2bit(ternary).byteLength).toBe(Math.ceil(n / 4));
      expect(packTernaryBase3(ternary).byteLength).toBe(Math.ceil(n / 5));
      expect(unpackBinary(packBinary(binary), n)).toEqual(binary);
      expect(unpackTernary2bit(packTernary2bit(ternary), n)).toEqual(ternary);
      expect(unpackTernaryBase3(packTernaryBase3(ternary), n)).toEqual(ternary);
    }
    // The documented bit layouts: LSB first; 2-bit codes 00 = 0, 01 = +1, 11 = -1; base 3 digits w + 1.
    expect(Array.from(packBinary(Int8Array.of(1, -1, -1, 1, -1, -1, -1, -1, 1)))).toEqual([0b1001, 1]);
    expect(Array.from(packTernary2bit(Int8Array.of(1, 0, -1, 1)))).toEqual([0b01_11_00_01]);
    expect(Array.from(packTernaryBase3(Int8Array.of(1, 0, -1, 1, -1)))).toEqual([2 + 1 * 3 + 0 * 9 + 2 * 27 + 0 * 81]);
  });

  it('rejects invalid codes and inconsistent manifests', () => {
    expect(() => unpackTernary2bit(Uint8Array.of(0b10), 1)).toThrow(PackedFormatError);
    expect(() => unpackTernaryBase3(Uint8Array.of(243), 5)).toThrow(/above the largest valid 242/);
    const { manifest, files } = writePacked(sampleGraph());
    const bin = files[1]!.data as Uint8Array;
    expect(() => unpack({ ...manifest, version: 2 }, bin)).toThrow(/version 2 is not readable/);
    expect(() => unpack(manifest, bin.subarray(0, bin.byteLength - 4))).toThrow(/holds \d+ bytes, the manifest says/);
    expect(() => unpack({ format: 'something-else' }, bin)).toThrow(/not an lrnet-packed manifest/);
  });

  it('computes TensorFlow SAME padding', () => {
    expect(samePadding(28, 5, 1)).toEqual({ output: 28, before: 2, after: 2 });
    expect(samePadding(28, 2, 2)).toEqual({ output: 14, before: 0, after: 0 });
    expect(samePadding(8, 3, 2)).toEqual({ output: 4, before: 0, after: 1 });
    expect(samePadding(7, 3, 2)).toEqual({ output: 4, before: 1, after: 1 });
  });

  it('writes protobuf varints like protoc', () => {
    expect(Array.from(encodeVarint(1))).toEqual([1]);
    expect(Array.from(encodeVarint(300))).toEqual([0xac, 0x02]);
    expect(Array.from(encodeVarint(-1))).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  });
});

describe('the export formats the app offers', () => {
  it('app.info describes every format of the registry, available as the exporter says; others are answered unavailable', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-export-info-'));
    const services = await createServices({
      shell: 'browser', databasePath: path.join(home, 'lrnet.db'), concurrency: 1,
      exporter: { formats: ['onnx'], exportRun: () => Promise.reject(new Error('not called')) },
    });
    try {
      const info = await services.call('app.info', {});
      expect(info.ok).toBe(true);
      const formats = (info as { value: { exportFormats: unknown } }).value.exportFormats;
      expect(formats).toEqual(EXPORT_FORMATS.map((f) => ({ name: f.name, title: f.title, description: f.description, available: f.name === 'onnx' })));
      expect(formats).toContainEqual(expect.objectContaining({ name: 'c', title: 'C source' }));
      const refused = await services.call('export.run', { runId: 'ab12cd34', format: 'packed' });
      expect(refused).toMatchObject({ ok: false, error: { code: 'unavailable', message: expect.stringMatching(/available: onnx/) } });
    } finally {
      await services.close();
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
