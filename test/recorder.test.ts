/**
 * The run recorder stores each event's metrics under the metric catalog's keys, and keeps the newest checkpoints of
 * a run, rows and files, deleting the older ones.
 */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore } from '../app/store/index.ts';
import { RunRecorder, KEEP_CHECKPOINTS } from '../app/runs/recorder.ts';
import { PRESETS } from '../engine/config.ts';
import type { TrainingEvent } from '../engine/train.ts';
import type { SplitAccuracies } from '../engine/evaluate.ts';
import { LAYER_STATISTICS, METRIC_CATALOG, metricInfo, metricsOfEvent } from '../app/contract.ts';

const split = (base: number): SplitAccuracies => ({
  argmax: base, sampledMean: base - 0.02, sampledMin: base - 0.04, sampledBest: base + 0.01, selected: base - 0.01, expected: base + 0.02, samples: [base - 0.04, base + 0.01],
});

/** One of each event that carries metrics, as a short training run emits them. */
const EVENTS: TrainingEvent[] = [
  { type: 'phase', phase: 'pretrain', epochs: 1, stepsPerEpoch: 2 },
  { type: 'step', phase: 'pretrain', epoch: 0, step: 1, totalSteps: 4, loss: 2.5, crossEntropy: 2.25, batchAccuracy: 0.125, learningRate: 0.001, imagesPerSecond: 300, etaSeconds: 3, elapsedSeconds: 1 },
  { type: 'step', phase: 'pretrain', epoch: 0, step: 2, totalSteps: 4, loss: 2, crossEntropy: 1.75, batchAccuracy: 0.25, learningRate: 0.001, imagesPerSecond: 320, etaSeconds: 2, elapsedSeconds: 2 },
  { type: 'epoch', phase: 'pretrain', epoch: 1, step: 2, meanLoss: 2.25, trainAccuracy: 0.1875 },
  { type: 'evaluation', phase: 'pretrain', epoch: 1, step: 2, fullPrecision: { validation: 0.5, test: 0.625 } },
  {
    type: 'evaluation', phase: 'lr', epoch: 1, step: 4,
    discrete: {
      test: split(0.75), validation: split(0.5), selectedSample: 1, sampleSeed: 7, batchNormImages: 0,
      layers: [{ layer: 'conv1', kind: 'ternary', weights: 800, fractionMinus: 0.25, fractionZero: 0.5, fractionPlus: 0.25, meanEntropyBits: Math.log2(3) }],
    },
  },
];

function withStore(name: string, body: (store: ReturnType<typeof openStore>, dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `lrnet-recorder-${name}-`));
  const store = openStore(path.join(dir, 'lrnet.db'));
  try {
    body(store, dir);
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('RunRecorder metrics', () => {
  it('stores every metric an event carries under its catalog key, as metricsOfEvent reads it', () => {
    withStore('metrics', (store) => {
      const config = { ...PRESETS['mnist-ternary-quick'], pretrain: { ...PRESETS['mnist-ternary-quick'].pretrain, epochs: 1 }, lr: { ...PRESETS['mnist-ternary-quick'].lr, epochs: 1 } };
      const run = store.createRun({ name: 'metrics', preset: config.preset, config, seed: config.seed, appVersion: 'test' });
      const recorder = new RunRecorder(store, run.id, config, { onError: (e) => { throw e; } });
      for (const event of EVENTS) recorder.record(event);
      recorder.close();

      const expected = EVENTS.flatMap(metricsOfEvent);
      const stored = store.getRun(run.id).metrics.map((m) => m.key).sort();
      expect(stored).toEqual([...new Set(expected.map((m) => m.key))].sort());
      // Every key is the catalog's, in its one spelling, with the catalog's goal.
      for (const m of store.getRun(run.id).metrics) {
        expect(metricInfo(m.key), m.key).toBeDefined();
        expect(m.key).toMatch(/^(train|epoch|test|validation)\/[a-z][A-Za-z]*$/);
        expect(m.goal).toBe(metricInfo(m.key)!.goal);
      }
      for (const { key, step, value } of expected) expect(store.valueAt(run.id, key, step), `${key} @${step}`).toMatchObject({ step, value });
      expect(store.valueAt(run.id, 'train/batchAccuracy', 2)).toMatchObject({ value: 0.25, epoch: 1, phase: 'pretrain' });
      expect(store.valueAt(run.id, 'test/selected', 4)?.value).toBe(0.74);
    });
  });

  it('stores weight entropy in the unit the catalog names: nats, from the engine\'s bits', () => {
    withStore('entropy', (store) => {
      const config = PRESETS['mnist-ternary-quick'];
      const run = store.createRun({ name: 'entropy', preset: config.preset, config, seed: config.seed, appVersion: 'test' });
      const recorder = new RunRecorder(store, run.id, config, { onError: (e) => { throw e; } });
      recorder.record(EVENTS.at(-1)!);
      recorder.close();
      // A uniform ternary weight: log2(3) = 1.585 bits = ln(3) = 1.099 nats.
      expect(LAYER_STATISTICS.meanEntropy.unit).toBe('nats');
      expect(store.getRun(run.id).evaluations[0]!.layerStats[0]!.meanEntropy).toBeCloseTo(Math.log(3), 12);
    });
  });

  it('lists each metric once, with a label, a unit and a goal', () => {
    const keys = METRIC_CATALOG.map((m) => m.key);
    expect(new Set(keys).size).toBe(keys.length);
    for (const m of METRIC_CATALOG) {
      expect(m.label.length, m.key).toBeGreaterThan(0);
      expect(m.percent, m.key).toBe(m.unit === 'fraction');
    }
    expect(metricInfo('train/loss')).toMatchObject({ goal: 'min', smooth: true, recorded: 'step' });
    expect(metricInfo('test/argmax')).toMatchObject({ goal: 'max', percent: true, recorded: 'evaluation' });
  });
});

describe('RunRecorder checkpoints', () => {
  it(`keeps the newest ${KEEP_CHECKPOINTS} checkpoints and deletes the older rows and files`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-recorder-'));
    const store = openStore(path.join(dir, 'lrnet.db'));
    try {
      const config = PRESETS['mnist-ternary-quick'];
      const run = store.createRun({ name: 'pruning', preset: config.preset, config, seed: config.seed, appVersion: 'test' });
      const recorder = new RunRecorder(store, run.id, config, { onError: (e) => { throw e; } });
      const files: string[] = [];
      for (let epoch = 1; epoch <= 6; epoch++) {
        const file = path.join(dir, `step-${epoch * 10}.ckpt`);
        fs.writeFileSync(file, 'checkpoint');
        files.push(file);
        recorder.record({ type: 'checkpoint', phase: 'lr', epoch, step: epoch * 10, path: file, bytes: 10 });
      }
      recorder.close();
      const kept = store.getRun(run.id).checkpoints;
      expect(kept.map((c) => c.step)).toEqual([40, 50, 60]);
      expect(store.getRun(run.id).lastCheckpointId).toBe(kept.at(-1)!.id);
      expect(files.map((f) => fs.existsSync(f))).toEqual([false, false, false, true, true, true]);
    } finally {
      store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
