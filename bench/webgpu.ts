/**
 * Throughput of one LR training step of the MNIST net (forward, backward, Adam update; ternary weights) on WebGPU:
 * the stock path (engine/models.ts forward: tfjs-webgpu convolutions, ziggurat noise uploaded from JavaScript,
 * stock batch norm) against the fused path (engine/backends/webgpu: fused LR layers with GPU Philox noise, fused batch norm
 * + ReLU), on the same adapter, in the same run, steps interleaved.
 *
 *   node bin/run-ts.js bench/webgpu.ts [--batch 256] [--steps 3]
 *
 * Prints one JSON line: adapter, date, batch, per path the median wall time and CPU time (all threads of this
 * process: on a software adapter such as lavapipe that is where the GPU work runs, and it is less disturbed by
 * other processes than wall time) per step, the forward + backward part alone (until the gradients are read;
 * the Adam update that follows is the trainer's stock code in both paths), images/s, and the fused/stock ratios.
 */
import os from 'node:os';
import { tf } from '../engine/tf.ts';
import { initBackend } from '../engine/backends/index.ts';
import {
  type ForwardOptions,
  type Parameters,
  defineModel,
  discreteFromFullPrecision,
  disposeParameters,
  forward,
  initParameters,
  isTrainable,
} from '../engine/models.ts';
import { Adam } from '../engine/optimizer.ts';
import { loadBundledMnistSample } from '../engine/data/mnist.ts';
import { fillBatch } from '../engine/data/batch.ts';
import { Random } from '../engine/random.ts';
import { enableFusedLrKernels } from '../engine/backends/webgpu/index.ts';
import { requestWebgpuSubgroups, subgroupSizeOf } from '../engine/backends/webgpu/device.ts';
import type { WebGPUBackendInternals } from '../engine/backends/webgpu/runner.ts';

function argument(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const batch = argument('batch', 256);
const steps = argument('steps', 3);
// Before the backend creates its device: the fused kernels use subgroups where the adapter has them.
await requestWebgpuSubgroups();
const info = await initBackend('webgpu');
if (!enableFusedLrKernels()) throw new Error('the fused kernels need the webgpu backend');
const subgroupSize = subgroupSizeOf(tf.backend() as unknown as WebGPUBackendInternals);

const model = defineModel('mnist');
const data = loadBundledMnistSample();
const input = new Float32Array(batch * 784);
const rng = new Random(1);
const indices = Array.from({ length: batch }, (_, i) => i % data.train.count);
fillBatch(data.train, indices, data.normalization, false, rng, input);
const labels = Int32Array.from(indices, (i) => data.train.labels[i]!);

function freshParameters(): Parameters {
  const full = initParameters(model, 'full', 3);
  const params = discreteFromFullPrecision(model, full, 'ternary');
  disposeParameters(full);
  return params;
}

type Forward = (params: Parameters, x: tf.Tensor, options: ForwardOptions) => tf.Tensor;
const paths: Record<'stock' | 'fused', Forward> = {
  stock: (params, x, options) => forward(model, params, x, options),
  fused: (params, x, options) => forward(model, params, x, { ...options, fusedKernels: true }),
};

interface PathState {
  params: Parameters;
  adam: Adam;
  /** Whole step (forward + backward + Adam), ms. */
  wall: number[];
  cpu: number[];
  /** Forward + backward until the gradients are read, ms. */
  gradWall: number[];
  loss: number;
}

async function step(path: keyof typeof paths, state: PathState, index: number): Promise<void> {
  const wall0 = performance.now();
  const cpu0 = process.cpuUsage();
  const trainable = [...state.params].filter(([name]) => isTrainable(name));
  const x = tf.tensor4d(input, [batch, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);
  const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, paths[path](state.params, x, {
    mode: 'lr', training: true, batchStatistics: true, kind: 'ternary', noiseSeed: 100 + index, dropoutSeed: 200 + index,
  })) as tf.Scalar, trainable.map(([, v]) => v));
  state.loss = (await value.data())[0]!;
  await Promise.all(Object.values(grads).map((g) => g.data()));
  state.gradWall.push(performance.now() - wall0);
  const named: Record<string, tf.Tensor> = {};
  for (const [name, v] of trainable) if (grads[v.name]) named[name] = grads[v.name]!;
  state.adam.apply(state.params, named, 0.01);
  // The step is done when the last update has landed.
  await [...state.params.values()].at(-1)!.data();
  tf.dispose([x, y, value, ...Object.values(grads)]);
  const cpu = process.cpuUsage(cpu0);
  state.wall.push(performance.now() - wall0);
  state.cpu.push((cpu.user + cpu.system) / 1000);
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const states = {
  stock: { params: freshParameters(), adam: new Adam(), wall: [], cpu: [], gradWall: [], loss: NaN } as PathState,
  fused: { params: freshParameters(), adam: new Adam(), wall: [], cpu: [], gradWall: [], loss: NaN } as PathState,
};
// One warm-up step each (shader compilation), then interleaved measured steps.
for (const path of ['fused', 'stock'] as const) {
  await step(path, states[path], 0);
  states[path].wall.length = 0;
  states[path].cpu.length = 0;
  states[path].gradWall.length = 0;
}
for (let i = 1; i <= steps; i++) {
  for (const path of ['stock', 'fused'] as const) {
    await step(path, states[path], i);
    const s = states[path];
    console.error(`${path} step ${i}: ${s.wall.at(-1)!.toFixed(0)} ms wall (forward + backward ${s.gradWall.at(-1)!.toFixed(0)}), ${s.cpu.at(-1)!.toFixed(0)} ms CPU, loss ${s.loss.toFixed(4)}`);
  }
}
const summary = (s: PathState) => ({
  wallMsPerStep: Math.round(median(s.wall)),
  forwardBackwardWallMs: Math.round(median(s.gradWall)),
  cpuMsPerStep: Math.round(median(s.cpu)),
  imagesPerSecond: Number((batch / (median(s.wall) / 1000)).toFixed(2)),
  lastLoss: Number(s.loss.toFixed(4)),
});
const stock = summary(states.stock);
const fused = summary(states.fused);
console.log(JSON.stringify({
  bench: 'webgpu-lr-step',
  date: new Date().toISOString(),
  adapter: info.adapter,
  hardwareAccelerated: info.hardwareAccelerated,
  subgroupSize: subgroupSize ?? null,
  cpu: `${os.cpus()[0]?.model?.trim()} x${os.cpus().length}`,
  loadAverage: os.loadavg().map((v) => Number(v.toFixed(2))),
  model: 'mnist', kind: 'ternary', batch, measuredSteps: steps,
  step: 'forward + backward + Adam update',
  stock, fused,
  ratio: {
    wall: Number((stock.wallMsPerStep / fused.wallMsPerStep).toFixed(2)),
    cpu: Number((stock.cpuMsPerStep / fused.cpuMsPerStep).toFixed(2)),
    forwardBackwardWall: Number((stock.forwardBackwardWallMs / fused.forwardBackwardWallMs).toFixed(2)),
  },
}));
