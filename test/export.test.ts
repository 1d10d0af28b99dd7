/**
 * Export of a trained run's discrete net, checked by each format's real consumer: the packed files read back by
 * `unpack`, the C sources compiled with gcc's strict flags and run on golden vectors, the ONNX file in
 * onnxruntime-node, the tfjs files through tf.loadLayersModel. One tiny MNIST run is trained for the whole file.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tf } from '../engine/tf.ts';
import { initBackend } from '../engine/backends/index.ts';
import { tinyMnistConfig } from './helpers/tiny-config.ts';
import { loadDataset } from '../engine/data/index.ts';
import { inMemoryData } from '../engine/data/source.ts';
import type { Dataset } from '../engine/data/types.ts';
import { train, loadTrainedRun } from '../engine/train.ts';
import { disposeParameters } from '../engine/models.ts';
import { buildDiscreteNetwork, disposeDiscreteNetwork, type DiscreteNetwork } from '../engine/discrete-net.ts';
import { estimateBatchNormStatistics } from '../engine/evaluate.ts';
import { buildExportGraph, foldBatchNorm, unpack, writePacked, C_FLAGS, type ExportGraph, type LinearOp } from '../engine/export/index.ts';
import { exportRun, exportDiscreteNetwork, ExportError, type ExportReportV1 } from '../app/export/index.ts';
import { runExportCommand } from '../app/cli/export.ts';
import { exportRunWithArtifacts } from '../app/export/store.ts';
import { openStore } from '../app/store/index.ts';
import { FLOAT_TOLERANCE } from '../app/export/verify.ts';

let dataset: Dataset;
let dir: string;
let checkpoint: string;
let pretrainCheckpoint: string;

/** 500 training images, 10 steps per epoch, 1 pretraining + 2 LR epochs, evaluated once at the end. */
const tiny = tinyMnistConfig({
  trainLimit: 700, testLimit: 300, validationSize: 200, batchSize: 50, pretrainEpochs: 1, lrEpochs: 2,
  evaluation: { samples: 2, every: 0, batchNormImages: 200 }, seed: 5,
});

beforeAll(async () => {
  const backend = await initBackend('wasm');
  dataset = loadDataset({ name: 'mnist-sample', trainLimit: 700 });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-export-'));
  const result = await train(tiny, dataset, backend, { checkpointDir: path.join(dir, 'run') });
  checkpoint = result.checkpoint!;
  // A run stopped after its first step: a checkpoint from the pretraining phase.
  const controller = new AbortController();
  const stopped = await train(tiny, dataset, backend, {
    checkpointDir: path.join(dir, 'stopped'), signal: controller.signal, onEvent: (e) => e.type === 'step' && controller.abort(),
  });
  pretrainCheckpoint = stopped.checkpoint!;
}, 240_000);

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

async function withNet<T>(choice: 'argmax' | 'selected', fn: (net: DiscreteNetwork) => Promise<T>): Promise<T> {
  const run = loadTrainedRun(checkpoint, dataset);
  const net = await buildDiscreteNetwork(run.config, run.model, run.parameters, dataset, run.evaluation!, choice);
  try {
    return await fn(net);
  } finally {
    disposeDiscreteNetwork(net);
    disposeParameters(run.parameters);
  }
}

/** Element-wise equality of two numeric arrays (fast on millions of weights, unlike a deep toEqual). */
function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function expectAllAgree(report: ExportReportV1, formats: readonly string[]): void {
  expect(Object.keys(report.formats).sort()).toEqual([...formats].sort());
  for (const f of Object.values(report.formats)) {
    const v = f.verification;
    expect(v.passed, `${f.format}: ${v.error ?? ''}`).toBe(true);
    expect(v.top1Agreement, f.format).toBe(1);
    expect(v.images).toBe(report.verification.images);
    // Float formats meet 1e-4; the C runtime is held to its own bound but lands there too on this net.
    expect(v.maxAbsDiff, f.format).toBeLessThanOrEqual(FLOAT_TOLERANCE);
    expect(v.accuracy, f.format).toBeCloseTo(report.verification.reference.accuracy, 10);
  }
  expect(report.status).toBe('passed');
}

describe('export', () => {
  let report: ExportReportV1;
  let outDir: string;

  beforeAll(async () => {
    outDir = path.join(dir, 'exports', 'argmax');
    ({ report } = await exportRun({ checkpoint, dataset, formats: 'all', outDir, testLimit: 200 }));
  }, 240_000);

  it('writes every format, verified by its consumer with 100% top-1 agreement and |logit diff| <= 1e-4', () => {
    expectAllAgree(report, ['packed', 'c', 'onnx', 'tfjs']);
    expect(report.verification.images).toBe(200);
    expect(report.net).toMatchObject({ architecture: 'mnist', kind: 'ternary', choice: 'argmax' });
    // The report on disk is the one returned, and nothing is left over from staging.
    expect(JSON.parse(fs.readFileSync(path.join(outDir, 'report.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(report)));
    expect(fs.readdirSync(path.dirname(outDir))).toEqual(['argmax']);
    for (const f of Object.values(report.formats)) {
      for (const file of f.files) expect(fs.statSync(path.join(outDir, f.dir, file.path)).size).toBe(file.bytes);
    }
  });

  it('reports sizes, bits per layer and the additions/subtractions/skipped split', () => {
    expect(report.layers.map((l) => [l.name, l.kind, l.bitsPerWeight])).toEqual([
      ['conv1', 'ternary', 2], ['conv2', 'ternary', 2], ['fc1', 'ternary', 2], ['fc2', 'float32', 32],
    ]);
    for (const l of report.layers) {
      if (l.kind === 'float32') expect(l.multiplications).toBe(l.macs);
      else expect(l.additions + l.subtractions + l.skipped).toBe(l.macs);
    }
    const t = report.totals;
    expect(t.macs).toBe(28 * 28 * 25 * 32 + 14 * 14 * 25 * 32 * 64 + 3136 * 512 + 5120);
    expect(t.skipped).toBeGreaterThan(0);
    // Ternary packs 16x tighter than float32; batch norm and the float classifier keep the ratio a bit lower.
    const packed = report.formats.packed!;
    expect(packed.compressionVsFloat32).toBeGreaterThan(12);
    expect(packed.compressionVsFloat32).toBeLessThan(16);
    const memory = report.formats.c!.details.memory!;
    expect(memory.flashBytes).toBeGreaterThan(memory.flash.weights);
    expect(memory.ram).toEqual({ bufferA: 28 * 28 * 32 * 4, bufferB: 14 * 14 * 32 * 4, patch: 25 * 32 * 4, wordTotals: 4 });
    expect(report.golden.count).toBe(16);
    expect(fs.statSync(path.join(outDir, 'golden', 'inputs.f32')).size).toBe(16 * 784 * 4);
    expect(fs.statSync(path.join(outDir, 'golden', 'logits.f32')).size).toBe(16 * 10 * 4);
  });

  it('packed: unpack of the written files equals the net\'s discrete weights and folded batch norm', async () => {
    const manifest: unknown = JSON.parse(fs.readFileSync(path.join(outDir, 'packed', 'model.json'), 'utf8'));
    const read = unpack(manifest, new Uint8Array(fs.readFileSync(path.join(outDir, 'packed', 'model.bin'))));
    await withNet('argmax', async (net) => {
      const linear = read.ops.filter((o): o is LinearOp => o.op === 'conv' || o.op === 'dense');
      expect(linear.map((o) => o.name)).toEqual(['conv1', 'conv2', 'fc1', 'fc2']);
      for (const op of linear) {
        if (op.kind === 'float32') {
          expect(sameValues(op.weights, net.fullPrecision.get(`${op.name}/kernel`)!.dataSync())).toBe(true);
          expect(sameValues(op.bias!, net.fullPrecision.get(`${op.name}/bias`)!.dataSync())).toBe(true);
          continue;
        }
        const weights = net.weights.get(op.name)!;
        expect(op.shape).toEqual(weights.shape);
        expect(sameValues(op.weights, weights.dataSync()), op.name).toBe(true);
      }
      const bn = net.batchNorm.get('bn3')!;
      const folded = foldBatchNorm({
        name: 'bn3', mean: bn.mean.dataSync() as Float32Array, variance: bn.variance.dataSync() as Float32Array,
        gamma: bn.gamma.dataSync() as Float32Array, beta: bn.beta.dataSync() as Float32Array, epsilon: net.batchNormEpsilon,
      });
      expect(Array.from(linear[2]!.scale!)).toEqual(Array.from(folded.scale));
      expect(Array.from(linear[2]!.shift!)).toEqual(Array.from(folded.shift));

      // Base-3 packing (5 ternary weights per byte) reads back the same and is smaller.
      const graph: ExportGraph = await buildExportGraph(net);
      const base3 = writePacked(graph, { ternaryEncoding: 'base3' });
      const bin = base3.files.find((f) => f.path === 'model.bin')!.data as Uint8Array;
      const again = unpack(JSON.parse(base3.files[0]!.data as string), bin);
      expect(again.ops.map((o) => o.op)).toEqual(graph.ops.map((o) => o.op));
      graph.ops.forEach((o, i) => {
        if ('weights' in o) expect(sameValues(o.weights, (again.ops[i] as LinearOp).weights)).toBe(true);
      });
      expect(bin.byteLength).toBeLessThan(fs.statSync(path.join(outDir, 'packed', 'model.bin')).size);
    });
  });

  it('c: the exported folder builds with the strict flags and its golden-vector check passes', () => {
    expect(report.formats.c!.verification.consumer).toContain(C_FLAGS.join(' '));
    const c = path.join(outDir, 'c');
    const binary = path.join(dir, 'lrnet_main');
    const compile = spawnSync('gcc', [...C_FLAGS, '-o', binary, path.join(c, 'main.c'), path.join(c, 'lrnet.c')], { encoding: 'utf8' });
    expect(compile.stderr).toBe('');
    expect(compile.status).toBe(0);
    const golden = path.join(outDir, 'golden');
    const run = spawnSync(binary, ['inputs.f32', 'logits.f32', 'pixels.u8'].map((f) => path.join(golden, f)), { encoding: 'utf8' });
    expect(run.status).toBe(0);
    const result = JSON.parse(run.stdout) as { images: number; top1Agree: number; maxAbsDiff: number; normalizationMaxAbsDiff: number };
    expect(result).toMatchObject({ images: 16, top1Agree: 16, normalizationMaxAbsDiff: 0 });
    expect(result.maxAbsDiff).toBeLessThanOrEqual(FLOAT_TOLERANCE);
    // Discrete layers use no multiplication by a weight: the runtime has no weight-multiply path for masks.
    const header = fs.readFileSync(path.join(c, 'lrnet_model.h'), 'utf8');
    expect(header).toContain('#define LRNET_NET_CHOICE "argmax"');
    expect(header).toMatch(/#define LRNET_FLASH_BYTES \d+u/);
  });

  it('exports the validation-selected sample and records which one', async () => {
    const { report: selected } = await exportRun({ checkpoint, dataset, formats: ['onnx', 'tfjs'], outDir: path.join(dir, 'exports-selected'), net: 'selected', testLimit: 100 });
    expectAllAgree(selected, ['onnx', 'tfjs']);
    const run = loadTrainedRun(checkpoint, dataset);
    disposeParameters(run.parameters);
    expect(selected.net.choice).toBe('selected');
    expect(selected.net.sample?.index).toBe(run.evaluation!.selectedSample);
    expect(selected.net.evaluatedTestAccuracy).toBe(run.evaluation!.test.selected);
    const onnx = fs.readFileSync(path.join(dir, 'exports-selected', 'onnx', 'model.onnx'));
    expect(onnx.includes(Buffer.from(`"choice":"selected","sample":{"index":${run.evaluation!.selectedSample}`))).toBe(true);
    const tfjsModel = JSON.parse(fs.readFileSync(path.join(dir, 'exports-selected', 'tfjs', 'model.json'), 'utf8')) as { userDefinedMetadata: { lrnet: { net: unknown } } };
    expect(tfjsModel.userDefinedMetadata.lrnet.net).toEqual(selected.net.sample ? { architecture: 'mnist', kind: 'ternary', choice: 'selected', sample: selected.net.sample } : {});
  });

  it('exports a binary net (1 bit per weight) with every consumer agreeing', async () => {
    const run = loadTrainedRun(checkpoint, dataset);
    const ternary = await buildDiscreteNetwork(run.config, run.model, run.parameters, dataset, run.evaluation!, 'argmax');
    // A binary net from the trained one (zeros become +1), with batch norm re-estimated for it as evaluations do.
    // Its accuracy is poor (it was never trained as binary), but its logits are well scaled, which is what the
    // comparison of the binary code paths needs.
    const weights = new Map([...ternary.weights].map(([name, w]) => [name, tf.tidy(() => tf.where(tf.equal(w, 0), tf.onesLike(w), w))]));
    const split = { source: inMemoryData(dataset).train, indices: Int32Array.from({ length: 200 }, (_, i) => i) };
    const stats = await estimateBatchNormStatistics(run.model, run.parameters, split, {
      mode: 'discrete', training: false, batchStatistics: true, kind: 'binary', discreteWeights: weights,
    });
    const batchNorm = new Map([...ternary.batchNorm].map(([name, bn]) => [name, { ...bn, ...stats.get(name)! }]));
    const net: DiscreteNetwork = { ...ternary, kind: 'binary', weights, batchNorm };
    try {
      const { report: binary } = await exportDiscreteNetwork(net, { formats: 'all', outDir: path.join(dir, 'exports-binary'), testSet: dataset.test, testLimit: 100 });
      expectAllAgree(binary, ['packed', 'c', 'onnx', 'tfjs']);
      expect(binary.layers.filter((l) => l.kind === 'binary').map((l) => l.bitsPerWeight)).toEqual([1, 1, 1]);
      expect(binary.totals.skipped).toBe(0);
    } finally {
      tf.dispose([...weights.values(), ...[...stats.values()].flatMap((s) => [s.mean, s.variance])]);
      disposeDiscreteNetwork(ternary);
      disposeParameters(run.parameters);
    }
  });
});

describe('export artifacts in the store', () => {
  it('records one artifact per format, done with its report; a refused export records none', async () => {
    const store = openStore(path.join(dir, 'store', 'lrnet.db'));
    try {
      const run = store.createRun({ config: tiny, seed: tiny.seed, appVersion: 'test' });
      const { artifacts } = await exportRunWithArtifacts(store, run.id, { checkpoint, dataset, formats: ['packed', 'onnx'], outDir: path.join(dir, 'stored'), testLimit: 20 });
      expect(artifacts.map((a) => [a.kind, a.status])).toEqual([['export-packed', 'done'], ['export-onnx', 'done']]);
      expect((artifacts[1]!.report as { format: { verification: { passed: boolean } } }).format.verification.passed).toBe(true);
      await expect(exportRunWithArtifacts(store, run.id, { checkpoint: pretrainCheckpoint, dataset, formats: ['c'], outDir: path.join(dir, 'stored-2') })).rejects.toThrow(ExportError);
      // Nothing was written for it, so there is nothing to record (or for deleting the run to delete).
      expect(store.getRun(run.id).artifacts.map((a) => [a.kind, a.status])).toEqual([['export-packed', 'done'], ['export-onnx', 'done']]);
    } finally {
      store.close();
    }
  });
});

describe('export errors write nothing', () => {
  it('refuses a run whose LR phase did not finish', async () => {
    const outDir = path.join(dir, 'errors', 'unfinished');
    const error = await exportRun({ checkpoint: pretrainCheckpoint, dataset, formats: 'all', outDir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExportError);
    expect((error as ExportError).code).toBe('not-finished');
    expect((error as Error).message).toMatch(/pretraining.*LR phase finished/);
    expect(fs.existsSync(path.join(dir, 'errors'))).toBe(false);
  });

  it('refuses an existing folder without force; force replaces an earlier export, never a folder of other files', async () => {
    const outDir = path.join(dir, 'errors', 'existing');
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'keep.txt'), 'mine');
    for (const force of [false, true]) {
      const error = await exportRun({ checkpoint, dataset, formats: ['packed'], outDir, force }).catch((e: unknown) => e);
      expect((error as ExportError).code).toBe('exists');
      expect((error as Error).message).toMatch(force ? /is not an lrnet export/ : /already exists and is not an lrnet export/);
    }
    expect(fs.readdirSync(outDir)).toEqual(['keep.txt']);
    fs.rmSync(path.join(outDir, 'keep.txt'));
    // An empty folder is used as it is; an earlier export is replaced with force.
    const { report: first } = await exportRun({ checkpoint, dataset, formats: ['packed'], outDir, testLimit: 20 });
    const { report: forced } = await exportRun({ checkpoint, dataset, formats: ['packed'], outDir, force: true, testLimit: 20 });
    expect(forced.status).toBe('passed');
    expect(forced.createdAt >= first.createdAt).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(outDir, 'report.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(forced)));
    expect(fs.readdirSync(outDir).sort()).toEqual(['golden', 'packed', 'report.json']);
    expect(fs.readdirSync(path.dirname(outDir))).toEqual(['existing']);
  });

  it('refuses an unwritable destination', async () => {
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, '');
    const error = await exportRun({ checkpoint, dataset, formats: ['packed'], outDir: path.join(file, 'out') }).catch((e: unknown) => e);
    expect((error as ExportError).code).toBe('unwritable');
    expect(fs.readFileSync(file, 'utf8')).toBe('');
  });

  it('the CLI reports usage problems with exit code 2, export problems with 1, a verified export with 0', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) } } as unknown as Parameters<typeof runExportCommand>[1];
    expect((await runExportCommand(['--format', 'zip'], io)).exitCode).toBe(2);
    expect(err.join('')).toMatch(/missing the checkpoint[\s\S]*unknown format "zip"[\s\S]*--out DIR is required/);
    const outDir = path.join(dir, 'errors', 'cli');
    const failed = await runExportCommand([pretrainCheckpoint, '--format', 'all', '--out', outDir, '--backend', 'wasm'], io);
    expect(failed.exitCode).toBe(1);
    expect(err.join('')).toContain('LR phase finished');
    expect(fs.existsSync(outDir)).toBe(false);

    const ok = await runExportCommand([checkpoint, '--format', 'packed,onnx', '--out', outDir, '--test-limit', '20', '--net', 'selected', '--backend', 'wasm', '--json'], io);
    expect(ok.exitCode).toBe(0);
    const printed = JSON.parse(out.join('').trim().split('\n').pop()!) as ExportReportV1;
    expect(printed).toMatchObject({ status: 'passed', net: { choice: 'selected' }, verification: { images: 20 } });
    expect(Object.keys(printed.formats)).toEqual(['packed', 'onnx']);
    expect(out.join('')).toMatch(/packed\s+passed/);
  });
});
