/**
 * The training loop on real MNIST digits (the bundled sample) and the wasm backend: reproducibility, checkpoint
 * and resume, cancellation, and the clear stop on a non-finite loss.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../engine/tf.ts';
import { initBackend, type BackendInfo } from '../engine/backends/index.ts';
import { type TrainingConfig, ConfigError, parseConfig } from '../engine/config.ts';
import { tinyMnistConfig } from './helpers/tiny-config.ts';
import { loadDataset } from '../engine/data/index.ts';
import type { Dataset } from '../engine/data/types.ts';
import { train, TrainingError, type TrainingEvent, type TrainingResult } from '../engine/train.ts';
import { disposeParameters } from '../engine/models.ts';

let backend: BackendInfo;
let dataset: Dataset;

beforeAll(async () => {
  backend = await initBackend('wasm');
  dataset = loadDataset({ name: 'mnist-sample', trainLimit: 700 });
});

/** A run small enough for a test: 500 training images, 10 steps per epoch, 1 pretraining + 2 LR epochs. */
const tiny = tinyMnistConfig({
  trainLimit: 700, testLimit: 300, validationSize: 200, batchSize: 50, pretrainEpochs: 1, lrEpochs: 2,
  evaluation: { samples: 2, every: 1, batchNormImages: 200 }, seed: 5,
});

/** Values of every parameter, by name, so two runs can be compared exactly. */
async function snapshot(result: TrainingResult): Promise<Map<string, Float32Array>> {
  const values = new Map<string, Float32Array>();
  for (const [name, v] of result.parameters!) values.set(name, (await v.data()) as Float32Array);
  disposeParameters(result.parameters!);
  return values;
}

function expectSameParameters(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [name, values] of a) {
    expect(Buffer.from(b.get(name)!.buffer).equals(Buffer.from(values.buffer)), `parameter ${name}`).toBe(true);
  }
}

describe('training', () => {
  it('reproduces a run exactly from the same seed, and differs with another seed', async () => {
    const events: TrainingEvent[] = [];
    const first = await train(tiny, dataset, backend, { keepParameters: true, onEvent: (e) => events.push(e) });
    const second = await train(tiny, dataset, backend, { keepParameters: true });
    const other = await train({ ...tiny, seed: 6 }, dataset, backend, { keepParameters: true });
    expect(first.status).toBe('completed');
    expect(first.steps).toBe(30);
    expect(second.evaluation).toEqual(first.evaluation);
    const [a, b, c] = [await snapshot(first), await snapshot(second), await snapshot(other)];
    expectSameParameters(a, b);
    expect(Buffer.from(c.get('fc1/a')!.buffer).equals(Buffer.from(a.get('fc1/a')!.buffer))).toBe(false);

    // The event stream: start, two phases, 30 steps with decreasing ETA, one evaluation per epoch.
    expect(events[0]!.type).toBe('start');
    const steps = events.filter((e) => e.type === 'step');
    expect(steps.map((s) => s.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(steps.every((s) => Number.isFinite(s.loss) && s.imagesPerSecond > 0 && s.learningRate > 0)).toBe(true);
    expect(steps[0]!.phase).toBe('pretrain');
    expect(steps[29]!.phase).toBe('lr');
    expect(steps[29]!.etaSeconds).toBe(0);
    const evaluations = events.filter((e) => e.type === 'evaluation');
    expect(evaluations.map((e) => e.phase)).toEqual(['pretrain', 'lr', 'lr']);
    const last = first.evaluation!;
    for (const split of [last.test, last.validation]) {
      for (const value of [split.argmax, split.sampledMean, split.sampledMin, split.sampledBest, split.selected, split.expected]) {
        expect(value).toBeGreaterThanOrEqual(0);
        expect(value).toBeLessThanOrEqual(1);
      }
      expect(split.sampledMin).toBeLessThanOrEqual(split.sampledMean);
      expect(split.sampledMean).toBeLessThanOrEqual(split.sampledBest);
      expect(split.samples).toHaveLength(2);
    }
    // Selection happens on validation: the selected sample is the best validation sample.
    expect(last.validation.selected).toBe(last.validation.sampledBest);
    expect(last.test.selected).toBe(last.test.samples[last.selectedSample]);
    expect(last.layers.map((l) => l.layer)).toEqual(['conv1', 'conv2', 'fc1']);
    for (const l of last.layers) expect(l.fractionMinus + l.fractionZero + l.fractionPlus).toBeCloseTo(1, 10);
    // Well above chance (10%) after 30 small steps.
    expect(last.test.expected).toBeGreaterThan(0.5);
  }, 240_000);

  it('resumes from a checkpoint with results identical to an uninterrupted run', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-resume-'));
    try {
      const config = { ...tiny, checkpointEvery: 3 };
      const whole = await train(config, dataset, backend, { keepParameters: true, checkpointDir: path.join(dir, 'whole') });

      // Stop in the middle of pretraining, resume (crossing into the LR phase), stop mid-LR, resume to the end.
      let resumeFrom: string | undefined;
      let result: TrainingResult | undefined;
      for (const stopAt of [4, 17, Infinity]) {
        const controller = new AbortController();
        result = await train(config, dataset, backend, {
          keepParameters: stopAt === Infinity,
          checkpointDir: path.join(dir, 'parts'),
          signal: controller.signal,
          ...(resumeFrom ? { resumeFrom } : {}),
          onEvent: (e) => {
            if (e.type === 'step' && e.step === stopAt) controller.abort();
          },
        });
        if (stopAt !== Infinity) {
          expect(result.status).toBe('stopped');
          expect(result.steps).toBe(stopAt);
          resumeFrom = result.checkpoint;
          expect(resumeFrom).toMatch(new RegExp(`step-0*${stopAt}\\.ckpt$`));
        }
      }
      expect(result!.status).toBe('completed');
      expect(result!.evaluation).toEqual(whole.evaluation);
      expectSameParameters(await snapshot(whole), await snapshot(result!));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);

  it('refuses to resume a checkpoint on other data', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-ckpt-'));
    try {
      const controller = new AbortController();
      const stopped = await train(tiny, dataset, backend, {
        checkpointDir: dir, signal: controller.signal, onEvent: (e) => e.type === 'step' && controller.abort(),
      });
      const otherData = loadDataset({ name: 'mnist-sample', trainLimit: 650 });
      await expect(train(tiny, otherData, backend, { resumeFrom: stopped.checkpoint! })).rejects.toThrow(/written for other data/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('stops with a clear error when the loss stops being finite', async () => {
    // One thread: the in-process step (the other tests here train data-parallel on every core).
    const exploding = { ...tiny, threads: 1, pretrain: { ...tiny.pretrain, learningRate: 1e30 } };
    const error = await train(exploding, dataset, backend).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainingError);
    expect((error as Error).message).toMatch(/loss became (NaN|Infinity|-Infinity) at step \d+ \(pretrain phase, epoch 1, learning rate 1e\+30\): lower the learning rate/);
    // Nothing leaked: the failed run disposed its parameters and optimizer state.
    expect(tf.memory().numTensors).toBeLessThan(50);
  }, 60_000);

  it('rejects an invalid configuration listing every problem', () => {
    const bad = { ...tiny, batchSize: 0, seed: -1, lr: { ...tiny.lr, learningRate: -1 }, dataset: { name: 'mnist' } } as unknown as TrainingConfig;
    const error = (() => {
      try {
        parseConfig(bad);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const field of ['batchSize', 'seed', 'lr.learningRate', 'dataset.path']) expect(problems).toContain(field);
  });
});
