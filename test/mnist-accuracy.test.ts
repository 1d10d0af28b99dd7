/**
 * A short real run on real MNIST: 15,000 official training digits, one full-precision epoch and one LR epoch,
 * then the ternary argmax net on the full official test set (10,000 digits) must reach 97%.
 */
import { describe, it, expect } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../engine/backends/index.ts';
import { PRESETS, type TrainingConfig } from '../engine/config.ts';
import { loadDataset } from '../engine/data/index.ts';
import { train } from '../engine/train.ts';

const mnistDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/data/mnist');

describe('a short ternary run on real MNIST', () => {
  it('reaches at least 97% test accuracy with the argmax net', async () => {
    const backend = await initBackend('wasm');
    const base = PRESETS['mnist-ternary-quick'];
    const config: TrainingConfig = {
      ...base,
      dataset: { name: 'mnist', path: mnistDir, trainLimit: 16_000 },
      validationSize: 1000,
      batchSize: 100,
      pretrain: { ...base.pretrain, epochs: 1, learningRate: 3e-3 },
      lr: { ...base.lr, epochs: 1, learningRate: 3e-3 },
      evaluation: { samples: 2, every: 0, batchNormImages: 1024 },
      backend: 'wasm',
    };
    const dataset = loadDataset({ name: 'mnist', dir: mnistDir, trainLimit: 16_000 });
    expect(dataset.test.count).toBe(10_000);
    const result = await train(config, dataset, backend);
    const test = result.evaluation!.test;
    console.log(`MNIST ternary, 1 FP + 1 LR epoch on 15,000 digits: ${JSON.stringify(test)} in ${result.durationSeconds.toFixed(0)} s`);
    expect(test.argmax).toBeGreaterThanOrEqual(0.97);
    // The other discrete nets are sound too, not only the argmax one.
    expect(test.expected).toBeGreaterThan(0.96);
    expect(test.sampledMean).toBeGreaterThan(0.95);
  }, 900_000);
});
