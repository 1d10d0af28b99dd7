/**
 * `npm run bench`: images/s of one LR training step and of discrete evaluation, per available backend, for the
 * MNIST and CIFAR-10 nets at batch 256. Prints a table and one JSON document (stdout's last line).
 *
 *   node bin/run-ts.js bench/run.ts [--backends wasm,webgpu,cpu] [--models mnist,cifar10-vgg] [--batch 256] [--steps N]
 *
 * `npm run bench` runs this, then bench/parallel.ts (both cores on wasm) and bench/webgpu.ts (fused WebGPU kernels
 * against the stock path), each comparing its variants in the same run.
 *
 * The pure-JavaScript cpu backend is left out unless asked for: one MNIST training step at batch 256 takes it
 * minutes. Inputs are random tensors of the right shape; throughput does not depend on pixel values.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { tf } from '../engine/tf.ts';
import { initBackend, type BackendName } from '../engine/backends/index.ts';
import { PRESETS, type TrainingConfig } from '../engine/config.ts';
import { Adam } from '../engine/optimizer.ts';
import { defineModel, discreteFromFullPrecision, disposeParameters, forward, initParameters, type Architecture } from '../engine/models.ts';
import { argmaxWeights } from '../engine/distributions.ts';
import { trainStep } from '../engine/train.ts';
import { describeLayers } from '../engine/models.ts';

const { values } = parseArgs({
  options: {
    backends: { type: 'string', default: 'tensorflow,webgpu,wasm' },
    models: { type: 'string', default: 'mnist,cifar10-vgg' },
    batch: { type: 'string', default: '256' },
    steps: { type: 'string', default: '3' },
  },
});
const requestedBatch = Number(values.batch);
const steps = Number(values.steps);

interface Measurement {
  backend: string;
  adapter: string;
  model: Architecture;
  kind: 'ternary';
  batch: number;
  trainImagesPerSecond: number;
  evalImagesPerSecond: number;
  trainStepMs: number;
}

async function timeIt(repeats: number, fn: () => Promise<void>): Promise<number> {
  await fn(); // warm-up: shader compilation, kernel selection, memory pools
  const start = performance.now();
  for (let i = 0; i < repeats; i++) await fn();
  return (performance.now() - start) / repeats;
}

/**
 * The wasm backend's heap is 4 GiB: the CIFAR-10 VGG LR step needs about 3.7 GiB at 32 images (BENCHMARKS.md), so
 * it is measured at 32 there instead of aborting the module.
 */
const WASM_VGG_MAX_BATCH = 32;

async function measure(architecture: Architecture, backendName: string, adapter: string): Promise<Measurement> {
  const batch = backendName === 'wasm' && architecture === 'cifar10-vgg' ? Math.min(requestedBatch, WASM_VGG_MAX_BATCH) : requestedBatch;
  const preset: TrainingConfig = architecture === 'mnist' ? PRESETS['mnist-ternary'] : PRESETS['cifar10-ternary'];
  const model = defineModel(architecture);
  const [h, w, c] = model.inputShape;
  const fullPrecision = initParameters(model, 'full', 1);
  const params = discreteFromFullPrecision(model, fullPrecision, 'ternary');
  disposeParameters(fullPrecision);
  const adam = new Adam();
  const input = Float32Array.from({ length: batch * h * w * c }, () => Math.random());
  const labels = Int32Array.from({ length: batch }, (_, i) => i % model.numClasses);
  // Big nets on a single CPU thread get fewer timed repeats so the benchmark stays in minutes.
  const repeats = architecture === 'mnist' ? steps : Math.max(1, Math.ceil(steps / 2));
  let step = 0;
  const trainMs = await timeIt(repeats, async () => {
    await trainStep(
      { model, params, adam, config: preset, phase: 'lr', numClasses: model.numClasses, globalStep: step++, learningRate: 0.01 },
      { input, labels, shape: [batch, h, w, c] },
    );
  });
  const weights = new Map(describeLayers(model).filter((l) => l.discrete).map((l) => [l.name, argmaxWeights('ternary', { a: params.get(`${l.name}/a`)!, c: params.get(`${l.name}/c`)! })]));
  const x = tf.tensor4d(input, [batch, h, w, c]);
  const evalMs = await timeIt(repeats, async () => {
    const logits = tf.tidy(() => forward(model, params, x, { mode: 'discrete', training: false, batchStatistics: false, kind: 'ternary', discreteWeights: weights }));
    await logits.data();
    logits.dispose();
  });
  tf.dispose([x, ...weights.values()]);
  adam.dispose();
  disposeParameters(params);
  return {
    backend: backendName, adapter, model: architecture, kind: 'ternary', batch,
    trainImagesPerSecond: (batch * 1000) / trainMs, evalImagesPerSecond: (batch * 1000) / evalMs, trainStepMs: trainMs,
  };
}

const results: Measurement[] = [];
const skipped: { backend: string; reason: string }[] = [];
for (const backend of values.backends.split(',').map((s) => s.trim()).filter(Boolean) as BackendName[]) {
  let info;
  try {
    info = await initBackend(backend);
  } catch (error) {
    skipped.push({ backend, reason: (error as Error).message });
    continue;
  }
  for (const architecture of values.models.split(',').map((s) => s.trim()) as Architecture[]) {
    if (backend === 'webgpu' && !info.hardwareAccelerated && architecture !== 'mnist' && values.models === 'mnist,cifar10-vgg') {
      skipped.push({ backend, reason: `${architecture} on a software WebGPU adapter takes many minutes per step (ask with --models)` });
      continue;
    }
    process.stderr.write(`measuring ${architecture} on ${backend} (${info.adapter})...\n`);
    results.push(await measure(architecture, backend, info.adapter));
  }
}

const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version };
const rows = results.map((r) =>
  `| ${r.backend} | ${r.adapter} | ${r.model} | ${r.batch} | ${r.trainImagesPerSecond.toFixed(1)} | ${r.evalImagesPerSecond.toFixed(1)} |`);
process.stderr.write(
  ['', '| backend | adapter | model | batch | LR train step images/s | discrete eval images/s |', '|---|---|---|---|---|---|', ...rows,
    ...skipped.map((s) => `skipped ${s.backend}: ${s.reason}`), ''].join('\n'),
);
process.stdout.write(`${JSON.stringify({ date: new Date().toISOString(), machine, results, skipped })}\n`);
