/**
 * Images/s of the MNIST LR-net training step (ternary, batch 256, wasm) in one process (trainStep) against the
 * data-parallel stepper (engine/parallel) with 1 and with 2 workers, measured in the same run and interleaved round
 * by round, so that load from other jobs on the machine hits every variant alike. Prints a table on stderr and one
 * JSON document (stdout's last line) with ratios, machine, load and date.
 *
 *   node bin/run-ts.js bench/parallel.ts [--batch 256] [--rounds 4] [--steps 2] [--workers 1,2]
 *
 * Besides the median wall time it reports the best step (the one least disturbed by other jobs), CPU time per step
 * (the busiest thread's), which other jobs on a shared machine disturb far less, and `cpuBoundImagesPerSecond`:
 * the throughput if every thread had a core of its own and the barriers cost nothing.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { initBackend } from '../engine/backends/index.ts';
import { PRESETS } from '../engine/config.ts';
import { loadDataset, fillBatch, fillLabels } from '../engine/data/index.ts';
import { Random } from '../engine/random.ts';
import { Adam } from '../engine/optimizer.ts';
import { defineModel, disposeParameters, initParameters } from '../engine/models.ts';
import { trainStep } from '../engine/train.ts';
import { createParallelStepper, type ParallelStepper } from '../engine/parallel/index.ts';
import { threadCpuMs } from '../engine/parallel/cputime.ts';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '4' },
    steps: { type: 'string', default: '2' },
    workers: { type: 'string', default: '1,2' },
  },
});
const batch = Number(values.batch);
const rounds = Number(values.rounds);
const stepsPerRound = Number(values.steps);
const workerCounts = values.workers.split(',').map(Number);

const backend = await initBackend('wasm');
const config = { ...PRESETS['mnist-ternary'], backend: 'wasm' as const };
const dataset = loadDataset({ name: 'mnist-sample' });
const { height, width, channels } = dataset.train;
const model = defineModel('mnist', { inputShape: [height, width, channels], numClasses: dataset.numClasses, kind: 'ternary' });
const shape: [number, number, number, number] = [batch, height, width, channels];

/** A few real batches, cycled. */
const batches = Array.from({ length: 4 }, (_, b) => {
  const indices = Int32Array.from({ length: batch }, (_, i) => (b * batch + i) % dataset.train.count);
  const input = new Float32Array(batch * height * width * channels);
  fillBatch(dataset.train, indices, dataset.normalization, false, new Random(b), input);
  const labels = new Int32Array(batch);
  fillLabels(dataset.train, indices, labels);
  return { input, labels };
});

interface Sample {
  wallMs: number;
  /** CPU ms of the busiest thread over the step. */
  cpuMs?: number;
}

interface Variant {
  readonly name: string;
  readonly run: (globalStep: number) => Promise<Sample>;
  readonly samples: Sample[];
}

const params = initParameters(model, 'ternary', config.seed);
const adam = new Adam();
const variants: Variant[] = [{
  name: '1 process (trainStep)',
  samples: [],
  run: async (globalStep) => {
    const { input, labels } = batches[globalStep % batches.length]!;
    const cpu0 = threadCpuMs();
    const start = performance.now();
    await trainStep({ model, params, adam, config, phase: 'lr', numClasses: dataset.numClasses, globalStep, learningRate: 0.003 }, { input, labels, shape });
    const wallMs = performance.now() - start;
    const cpu1 = threadCpuMs();
    return { wallMs, ...(cpu0 !== undefined && cpu1 !== undefined ? { cpuMs: cpu1 - cpu0 } : {}) };
  },
}];

const steppers: ParallelStepper[] = [];
for (const workers of workerCounts) {
  const stepper = await createParallelStepper({ model, config, numClasses: dataset.numClasses, workers });
  const own = initParameters(model, 'ternary', config.seed);
  const ownAdam = new Adam();
  await stepper.load(own, ownAdam, 'lr');
  disposeParameters(own);
  steppers.push(stepper);
  variants.push({
    name: `stepper, ${workers} worker${workers > 1 ? 's' : ''}`,
    samples: [],
    run: async (globalStep) => {
      const { input, labels } = batches[globalStep % batches.length]!;
      const start = performance.now();
      await stepper.step(input, labels, shape, globalStep, 0.003);
      const wallMs = performance.now() - start;
      const cpus = stepper.lastTimings.map((t) => t.cpu);
      return { wallMs, ...(cpus.every((c) => c !== undefined) ? { cpuMs: Math.max(...(cpus as number[])) } : {}) };
    },
  });
}

const loadBefore = os.loadavg();
// One warm-up step each (wasm heap growth, JIT), then rounds of interleaved timed steps.
for (const v of variants) await v.run(0);
let globalStep = 1;
for (let r = 0; r < rounds; r++) {
  for (const v of variants) {
    for (let s = 0; s < stepsPerRound; s++) v.samples.push(await v.run(globalStep++));
  }
  process.stderr.write(`round ${r + 1}/${rounds} done\n`);
}
const loadAfter = os.loadavg();

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const results = variants.map((v) => {
  const wall = median(v.samples.map((s) => s.wallMs));
  const best = Math.min(...v.samples.map((s) => s.wallMs));
  const cpus = v.samples.map((s) => s.cpuMs).filter((c): c is number => c !== undefined);
  const cpu = cpus.length === v.samples.length ? cpus.reduce((a, b) => a + b, 0) / cpus.length : undefined;
  return {
    variant: v.name,
    steps: v.samples.length,
    medianStepMs: Math.round(wall),
    imagesPerSecond: Number(((batch * 1000) / wall).toFixed(1)),
    bestStepMs: Math.round(best),
    bestImagesPerSecond: Number(((batch * 1000) / best).toFixed(1)),
    ...(cpu !== undefined ? { busiestThreadCpuMsPerStep: Math.round(cpu), cpuBoundImagesPerSecond: Number(((batch * 1000) / cpu).toFixed(1)) } : {}),
  };
});
const base = results[0]!;
const withRatios = results.map((r) => ({
  ...r,
  ratioToOneProcess: Number((r.imagesPerSecond / base.imagesPerSecond).toFixed(3)),
  ...(r.cpuBoundImagesPerSecond !== undefined && base.cpuBoundImagesPerSecond !== undefined
    ? { cpuBoundRatioToOneProcess: Number((r.cpuBoundImagesPerSecond / base.cpuBoundImagesPerSecond).toFixed(3)) } : {}),
}));
const lastTimings = steppers.map((s) => ({ workers: s.workers, timings: s.lastTimings.map((t) => Object.fromEntries(Object.entries(t).map(([k, x]) => [k, Math.round(x)]))) }));
for (const s of steppers) await s.dispose();
adam.dispose();
disposeParameters(params);

const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version };
process.stderr.write(
  ['', '| variant | median step ms | images/s | ratio | best step ms | best images/s | busiest thread CPU ms/step | CPU-bound images/s | ratio |',
    '|---|---|---|---|---|---|---|---|---|',
    ...withRatios.map((r) => `| ${r.variant} | ${r.medianStepMs} | ${r.imagesPerSecond} | ${r.ratioToOneProcess} | ${r.bestStepMs} | ${r.bestImagesPerSecond} | ${r.busiestThreadCpuMsPerStep ?? '-'} | ${r.cpuBoundImagesPerSecond ?? '-'} | ${r.cpuBoundRatioToOneProcess ?? '-'} |`),
    `load average (1 min) ${loadBefore[0]!.toFixed(2)} before, ${loadAfter[0]!.toFixed(2)} after, on ${machine.cores} cores`, ''].join('\n'),
);
process.stdout.write(`${JSON.stringify({
  date: new Date().toISOString(), machine, backend: backend.adapter, model: 'mnist', kind: 'ternary', batch,
  loadAverage: { before: loadBefore, after: loadAfter }, results: withRatios, lastTimings,
})}\n`);
