/**
 * Export benchmark: the C target's speed (images/s on one core) against a float32 C baseline of the same net
 * compiled the same way (same runtime, float weights and multiply-accumulate), and the size of every format for the
 * MNIST net (a tiny trained ternary run, and a binary net derived from it) and the CIFAR-10 VGG net (untrained LR
 * initialization: sizes do not depend on the values). Prints one JSON object.
 *
 *   node bin/run-ts.js bench/export.ts [--checkpoint FILE] [--seconds S] [--skip-cifar]
 *
 * Without --checkpoint a tiny MNIST run is trained first (about 30 s on two cores).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tf } from '../engine/tf.ts';
import { initBackend } from '../engine/backends/index.ts';
import { PRESETS, type TrainingConfig } from '../engine/config.ts';
import { loadDataset } from '../engine/data/index.ts';
import { inMemoryData } from '../engine/data/source.ts';
import type { Dataset } from '../engine/data/types.ts';
import { train, loadTrainedRun } from '../engine/train.ts';
import { defineModel, disposeParameters, initParameters } from '../engine/models.ts';
import { estimateBatchNormStatistics, type DiscreteEvaluation } from '../engine/evaluate.ts';
import { buildDiscreteNetwork, disposeDiscreteNetwork, type DiscreteNetwork } from '../engine/discrete-net.ts';
import {
  buildExportGraph, describeGraph, fileBytes, writeC, writeOnnx, writePacked, writeTfjs, C_FLAGS, type ExportGraph,
} from '../engine/export/index.ts';
import { exportDiscreteNetwork, type ExportReportV1 } from '../app/export/index.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const seconds = Number(arg('--seconds') ?? 3);

const BENCH_C = String.raw`#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "lrnet.h"

/* bench INPUTS.f32 SECONDS: runs lrnet_run over the inputs until SECONDS of CPU time have passed. */
int main(int argc, char **argv) {
  FILE *f;
  long size, n, i, done = 0;
  float *inputs, logits[LRNET_NUM_CLASSES];
  volatile float sink = 0.0f;
  double limit, elapsed;
  clock_t start;
  if (argc != 3 || !(f = fopen(argv[1], "rb"))) return 2;
  fseek(f, 0, SEEK_END);
  size = ftell(f);
  fseek(f, 0, SEEK_SET);
  inputs = (float *)malloc((size_t)size);
  if (!inputs || fread(inputs, 1, (size_t)size, f) != (size_t)size) return 2;
  fclose(f);
  n = size / (long)(sizeof(float) * LRNET_INPUT_SIZE);
  limit = atof(argv[2]);
  start = clock();
  do {
    for (i = 0; i < n; i++) {
      lrnet_run(inputs + i * (long)LRNET_INPUT_SIZE, logits);
      sink += logits[0];
    }
    done += n;
    elapsed = (double)(clock() - start) / CLOCKS_PER_SEC;
  } while (elapsed < limit);
  printf("{\"images\":%ld,\"seconds\":%.3f,\"imagesPerSecond\":%.1f}\n", done, elapsed, (double)done / elapsed);
  free(inputs);
  return 0;
}
`;

/** Compiles the C export of a graph (packed or float32 weights) with the bench harness; returns images/s. */
function cSpeed(graph: ExportGraph, weights: 'packed' | 'float32', inputs: Float32Array, scratch: string) {
  const dir = path.join(scratch, `c-${weights}`);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of writeC(graph, { weights }).files) fs.writeFileSync(path.join(dir, f.path), f.data);
  fs.writeFileSync(path.join(dir, 'bench.c'), BENCH_C);
  fs.writeFileSync(path.join(dir, 'inputs.f32'), new Uint8Array(inputs.buffer, inputs.byteOffset, inputs.byteLength));
  const binary = path.join(dir, 'bench');
  const compile = spawnSync('gcc', [...C_FLAGS, '-o', binary, path.join(dir, 'bench.c'), path.join(dir, 'lrnet.c')], { encoding: 'utf8' });
  if (compile.status !== 0) throw new Error(`bench compile failed: ${compile.stderr}`);
  const size = spawnSync('size', [binary], { encoding: 'utf8' }).stdout.trim().split('\n')[1]?.trim().split(/\s+/).slice(0, 3).map(Number);
  // Best of three runs: the machine is shared.
  let best = { images: 0, seconds: 0, imagesPerSecond: 0 };
  for (let i = 0; i < 3; i++) {
    const run = spawnSync(binary, [path.join(dir, 'inputs.f32'), String(seconds)], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`bench run failed: ${run.stderr}`);
    const r = JSON.parse(run.stdout) as typeof best;
    if (r.imagesPerSecond > best.imagesPerSecond) best = r;
  }
  return { ...best, binaryBytes: size ? { text: size[0], data: size[1], bss: size[2] } : undefined };
}

/** Sizes of every format of a graph (no verification: the export tests do that). */
function formatSizes(graph: ExportGraph) {
  const total = (files: readonly { data: Uint8Array | string }[]) => files.reduce((s, f) => s + fileBytes({ path: '', data: f.data }), 0);
  const { totals, layers } = describeGraph(graph);
  const c = writeC(graph);
  const sizes = {
    float32Bytes: totals.float32Bytes,
    packed2bitBytes: total(writePacked(graph).files),
    packedBase3Bytes: total(writePacked(graph, { ternaryEncoding: 'base3' }).files),
    cFlashBytes: c.budget.flashBytes,
    cRamBytes: c.budget.ramBytes,
    cSourceBytes: total(c.files),
    onnxBytes: total(writeOnnx(graph).files),
    tfjsBytes: total(writeTfjs(graph).files),
  };
  const ratio = (bytes: number) => Math.round((totals.float32Bytes / bytes) * 100) / 100;
  return {
    ...sizes,
    compressionVsFloat32: {
      packed2bit: ratio(sizes.packed2bitBytes), packedBase3: ratio(sizes.packedBase3Bytes), cFlash: ratio(sizes.cFlashBytes),
      onnx: ratio(sizes.onnxBytes), tfjs: ratio(sizes.tfjsBytes),
    },
    bitsPerLayer: Object.fromEntries(layers.map((l) => [l.name, l.bitsPerWeight])),
    macs: { total: totals.macs, additions: totals.additions, subtractions: totals.subtractions, skipped: totals.skipped, multiplications: totals.multiplications },
  };
}

function summarize(report: ExportReportV1) {
  return Object.fromEntries(Object.values(report.formats).map((f) => [f.format, {
    passed: f.verification.passed, top1Agreement: f.verification.top1Agreement, maxAbsDiff: f.verification.maxAbsDiff, bytes: f.totalBytes,
  }]));
}

async function trainTiny(dataset: Dataset, dir: string): Promise<string> {
  const tiny: TrainingConfig = {
    ...PRESETS['mnist-ternary-quick'],
    dataset: { name: 'mnist-sample', trainLimit: 700, testLimit: 300 },
    batchSize: 50, validationSize: 200,
    pretrain: { ...PRESETS['mnist-ternary-quick'].pretrain, epochs: 1 },
    lr: { ...PRESETS['mnist-ternary-quick'].lr, epochs: 2 },
    evaluation: { samples: 2, every: 0, batchNormImages: 200 },
    backend: 'wasm', seed: 5,
  };
  const result = await train(tiny, dataset, await initBackend('wasm'), { checkpointDir: dir });
  return result.checkpoint!;
}

async function main(): Promise<void> {
  const backend = await initBackend('wasm');
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-bench-export-'));
  try {
    const dataset = loadDataset({ name: 'mnist-sample', trainLimit: 700 });
    const checkpoint = arg('--checkpoint') ?? await trainTiny(dataset, path.join(scratch, 'run'));
    const run = loadTrainedRun(checkpoint, dataset);
    const mnist: Record<string, unknown> = {};
    const ternary = await buildDiscreteNetwork(run.config, run.model, run.parameters, dataset, run.evaluation!, 'argmax');
    // Binary variant of the same net (zeros -> +1, batch norm re-estimated): the speed of 1-bit layers.
    const binaryWeights = new Map([...ternary.weights].map(([n, w]) => [n, tf.tidy(() => tf.where(tf.equal(w, 0), tf.onesLike(w), w))]));
    const stats = await estimateBatchNormStatistics(run.model, run.parameters, { source: inMemoryData(dataset).train, indices: Int32Array.from({ length: 200 }, (_, i) => i) },
      { mode: 'discrete', training: false, batchStatistics: true, kind: 'binary', discreteWeights: binaryWeights });
    const binary: DiscreteNetwork = {
      ...ternary, kind: 'binary', weights: binaryWeights,
      batchNorm: new Map([...ternary.batchNorm].map(([n, bn]) => [n, { ...bn, ...stats.get(n)! }])),
    };
    for (const [kind, net] of [['ternary', ternary], ['binary', binary]] as const) {
      const { report } = await exportDiscreteNetwork(net, { formats: 'all', outDir: path.join(scratch, `export-${kind}`), testSet: dataset.test, testLimit: 200 });
      const graph = await buildExportGraph(net);
      const inputs = new Float32Array(fs.readFileSync(path.join(scratch, `export-${kind}`, 'golden', 'inputs.f32')).buffer.slice(0));
      const packed = cSpeed(graph, 'packed', inputs, path.join(scratch, kind));
      const float32 = cSpeed(graph, 'float32', inputs, path.join(scratch, kind));
      mnist[kind] = {
        fractionZero: Object.fromEntries(report.layers.filter((l) => l.kind !== 'float32').map((l) => [l.name, Math.round(l.fractionZero * 1000) / 1000])),
        cImagesPerSecond: { packed: packed.imagesPerSecond, float32: float32.imagesPerSecond, speedup: Math.round((packed.imagesPerSecond / float32.imagesPerSecond) * 100) / 100 },
        cBinaryBytes: { packed: packed.binaryBytes, float32: float32.binaryBytes },
        sizes: formatSizes(graph),
        verification: { images: report.verification.images, referenceAccuracy: report.verification.reference.accuracy, formats: summarize(report) },
      };
    }
    tf.dispose([...binaryWeights.values(), ...[...stats.values()].flatMap((s) => [s.mean, s.variance])]);
    disposeDiscreteNetwork(ternary);
    disposeParameters(run.parameters);

    const cifar: Record<string, unknown> = {};
    if (!process.argv.includes('--skip-cifar')) {
      for (const kind of ['ternary', 'binary'] as const) {
        const model = defineModel('cifar10-vgg', { kind });
        const params = initParameters(model, kind, 1);
        const evaluation = { batchNormImages: 0, selectedSample: 0, sampleSeed: 0 } as unknown as DiscreteEvaluation;
        const config = { ...PRESETS[`cifar10-${kind}`] };
        // Only the normalization is read from the dataset when batch norm is not re-estimated.
        const fakeDataset = { normalization: { kind: 'per-image-standardization' } } as unknown as Dataset;
        const net = await buildDiscreteNetwork(config, model, params, fakeDataset, evaluation, 'argmax');
        cifar[kind] = formatSizes(await buildExportGraph(net));
        disposeDiscreteNetwork(net);
        disposeParameters(params);
      }
    }
    const cpus = os.cpus();
    console.log(JSON.stringify({
      machine: { cpu: cpus[0]?.model?.trim(), cores: cpus.length, compiler: spawnSync('gcc', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0], flags: C_FLAGS.join(' '), tfjsBackend: backend.tfBackend },
      cBench: `best of 3 runs of ${seconds} s CPU time each, one process (one core), 16 golden images in a loop`,
      mnist,
      cifar10: cifar,
    }, null, 1));
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
