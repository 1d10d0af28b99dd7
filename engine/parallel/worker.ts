/**
 * One data-parallel worker: its own TensorFlow.js on the wasm backend (one thread), a full replica of the
 * parameters as variables, and a share of the all-reduce and of the optimizer update. Started by stepper.ts as a
 * worker thread (engine/typescript-entry.ts); never imported by anything else.
 *
 * A step: forward/backward on the shard -> gradients and batch statistics into this worker's shared slots ->
 * barrier -> reduce this worker's slice of the gradient and apply Adam there (worker 0 also updates the moving
 * statistics) -> barrier -> copy the updated shared parameters into the replica's variables.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { tf, type Tensor } from '../tf.ts';
import { initBackend } from '../backends/index.ts';
import type { Parameters } from '../models.ts';
import type { Phase } from '../config.ts';
import { threadCpuMs } from './cputime.ts';
import { registerWasmWorkerKernels } from '../backends/wasm/index.ts';
import { arriveAndWait, abortStep, StepAbortedError } from './barrier.ts';
import { type ParameterLayout, type SharedViews, ownedRange, SCALAR, viewShared } from './layout.ts';
import type { FromWorker, StepTimings, ToWorker, WorkerInit } from './protocol.ts';
import { shardGradients, shardSeeds, updateMovingStatistics, updateSlice, type UpdateSegment } from './shard.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const { index, workers, model, config, numClasses } = init;

interface Replica {
  readonly phase: Phase;
  readonly layout: ParameterLayout;
  readonly shared: SharedViews;
  readonly params: Parameters;
  /** Entries of the moving statistics by batch-norm layer name. */
  readonly statisticsOf: ReadonlyMap<string, { readonly mean: number; readonly variance: number }>;
}

let replica: Replica | undefined;

await initBackend('wasm');
registerWasmWorkerKernels();
const wasm = tf.getBackend() === 'wasm' ? (tf.backend() as unknown as BackendWasm) : undefined;

/** The tensor's values without a copy where the backend allows (a view on the wasm heap: use before the next op). */
function values(t: Tensor): Float32Array {
  return (wasm ? wasm.typedArrayFromHeap(t) : t.dataSync()) as Float32Array;
}

function post(message: FromWorker): void {
  port.postMessage(message);
}

function load(phase: Phase, layout: ParameterLayout, shared: SharedViews): void {
  if (replica) for (const v of replica.params.values()) v.dispose();
  const params: Parameters = new Map();
  // Variables keep the parameter map's order (the trainable list and the gradient order follow it).
  const entries = [
    ...layout.trainable.map((e) => ({ e, source: shared.params })),
    ...layout.statistics.map((e) => ({ e, source: shared.statistics })),
  ];
  for (const { e, source } of entries) {
    params.set(e.name, tf.tidy(() => tf.variable(tf.tensor(source.slice(e.offset, e.offset + e.size), [...e.shape]), true)));
  }
  // Restore the main thread's order (trainable and statistics interleaved), which the layout does not keep.
  const ordered: Parameters = new Map();
  for (const name of layout.order) ordered.set(name, params.get(name)!);
  const statisticsOf = new Map<string, { mean: number; variance: number }>();
  layout.statistics.forEach((e, i) => {
    const layer = e.name.slice(0, e.name.lastIndexOf('/'));
    const slot = statisticsOf.get(layer) ?? { mean: -1, variance: -1 };
    if (e.name.endsWith('/movingMean')) slot.mean = i;
    else slot.variance = i;
    statisticsOf.set(layer, slot);
  });
  replica = { phase, layout, shared, params: ordered, statisticsOf };
}

function step(message: Extract<ToWorker, { type: 'step' }>): StepTimings {
  const r = replica;
  if (!r) throw new Error('step before load');
  const { layout, shared } = r;
  const cpu0 = threadCpuMs();
  const t0 = performance.now();
  const seeds = shardSeeds(config.seed, message.globalStep, index);
  const result = shardGradients(model, r.params, config, r.phase, message.input, message.labels, message.shape, numClasses, seeds);
  const t1 = performance.now();
  try {
    const slot = shared.gradientSlots[index]!;
    const flags = shared.gradientFlags[index]!;
    layout.trainable.forEach((e, i) => {
      const g = result.gradients.get(e.name);
      flags[i] = g ? 1 : 0;
      if (g) slot.set(values(g), e.offset);
    });
    const statSlot = shared.statisticSlots[index]!;
    const statFlags = shared.statisticFlags[index]!;
    statFlags.fill(0);
    for (const [layer, stats] of result.batchStatistics) {
      const at = r.statisticsOf.get(layer);
      if (!at || at.mean < 0 || at.variance < 0) throw new Error(`batch statistics for "${layer}", which has no moving statistics`);
      statSlot.set(values(stats.mean), layout.statistics[at.mean]!.offset);
      statSlot.set(values(stats.variance), layout.statistics[at.variance]!.offset);
      statFlags[at.mean] = 1;
      statFlags[at.variance] = 1;
    }
    const row = index * SCALAR.size;
    shared.scalars[row + SCALAR.loss] = result.loss;
    shared.scalars[row + SCALAR.crossEntropy] = result.crossEntropy;
    shared.scalars[row + SCALAR.correct] = result.correct;
    shared.scalars[row + SCALAR.images] = message.shape[0];
  } finally {
    result.dispose();
  }
  const t2 = performance.now();

  arriveAndWait(shared.control, workers);
  const t3 = performance.now();

  const reference = shared.gradientFlags[0]!;
  for (let k = 1; k < workers; k++) {
    const other = shared.gradientFlags[k]!;
    for (let i = 0; i < reference.length; i++) {
      if (other[i] !== reference[i]) throw new Error(`workers 0 and ${k} disagree on which parameters have a gradient (${layout.trainable[i]!.name})`);
    }
  }
  const segments: UpdateSegment[] = layout.trainable.map((e, i) => ({
    offset: e.offset, size: e.size, hasGradient: reference[i] === 1, isLogitA: e.name.endsWith('/a'),
  }));
  const [lo, hi] = ownedRange(layout.trainableSize, workers, index);
  updateSlice(
    {
      params: shared.params, firstMoments: shared.firstMoments, secondMoments: shared.secondMoments,
      gradientSlots: shared.gradientSlots, gradient: shared.gradient, weights: message.weights,
    },
    segments, lo, hi,
    {
      adamStep: message.adamStep, learningRate: message.learningRate,
      clipLogits: r.phase === 'lr' && config.kind === 'binary' && config.architecture === 'resnet18',
    },
  );
  segments.forEach((s, i) => {
    if (s.hasGradient) Atomics.store(shared.momentFlags, i, 1);
  });
  if (index === 0) {
    for (const { mean, variance } of r.statisticsOf.values()) {
      if (shared.statisticFlags[0]![mean] !== 1) continue;
      const me = layout.statistics[mean]!;
      const ve = layout.statistics[variance]!;
      updateMovingStatistics(
        { mean: shared.statistics.subarray(me.offset, me.offset + me.size), variance: shared.statistics.subarray(ve.offset, ve.offset + ve.size) },
        shared.statisticSlots.map((s) => ({ mean: s.subarray(me.offset, me.offset + me.size), variance: s.subarray(ve.offset, ve.offset + ve.size) })),
        message.weights,
        config.batchNormMomentum,
      );
    }
  }
  const t4 = performance.now();

  arriveAndWait(shared.control, workers);
  const t5 = performance.now();

  upload(r);
  const t6 = performance.now();
  const cpu1 = threadCpuMs();
  return {
    compute: t1 - t0, publish: t2 - t1, waitGradients: t3 - t2, update: t4 - t3, waitUpdate: t5 - t4, upload: t6 - t5,
    ...(cpu0 !== undefined && cpu1 !== undefined ? { cpu: cpu1 - cpu0 } : {}),
  };
}

/** Copies the shared parameters and moving statistics into the replica's variables. */
function upload(r: Replica): void {
  const copy = (entries: ParameterLayout['trainable'], source: Float32Array) => {
    for (const e of entries) {
      const v = r.params.get(e.name)!;
      tf.tidy(() => v.assign(tf.tensor(source.subarray(e.offset, e.offset + e.size), v.shape)));
    }
  };
  copy(r.layout.trainable, r.shared.params);
  copy(r.layout.statistics, r.shared.statistics);
}

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'load':
      try {
        load(message.phase, message.layout, viewShared(message.buffers, message.layout, workers));
        post({ type: 'done', seq: message.seq, index });
      } catch (error) {
        post({ type: 'error', seq: message.seq, index, ...describe(error), aborted: false });
      }
      break;
    case 'step':
      try {
        const timings = step(message);
        post({ type: 'done', seq: message.seq, index, timings });
      } catch (error) {
        const aborted = error instanceof StepAbortedError;
        if (!aborted && replica) abortStep(replica.shared.control, index);
        post({ type: 'error', seq: message.seq, index, ...describe(error), aborted });
      }
      break;
    case 'snapshot': {
      const values = replica ? [...replica.params].map(([name, v]) => [name, v.dataSync() as Float32Array] as const) : [];
      post({ type: 'snapshot', seq: message.seq, index, values, numTensors: tf.memory().numTensors });
      break;
    }
    case 'close':
      if (replica) for (const v of replica.params.values()) v.dispose();
      replica = undefined;
      port.close();
      break;
  }
});

function describe(error: unknown): { message: string; stack?: string } {
  return error instanceof Error ? { message: error.message, ...(error.stack ? { stack: error.stack } : {}) } : { message: String(error) };
}

post({ type: 'ready', index });
