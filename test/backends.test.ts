/**
 * Every backend computes the same LR training step: the loss and the gradients of the MNIST LR-net on wasm and on
 * WebGPU (where an adapter exists; CI installs Mesa's software Vulkan driver so one does) agree with the cpu
 * backend, the reference.
 */
import { describe, it, expect } from 'vitest';
import { tf } from '../engine/tf.ts';
import { initBackend, useFusedKernels, type BackendName } from '../engine/backends/index.ts';
import { defineModel, forward, initParameters, discreteFromFullPrecision, disposeParameters, isTrainable } from '../engine/models.ts';
import { loadBundledMnistSample } from '../engine/data/mnist.ts';
import { fillBatch } from '../engine/data/batch.ts';
import { Random } from '../engine/random.ts';
import { normRelativeError } from './helpers/numeric.ts';

const model = defineModel('mnist');
const batch = 4;

/** The initial LR parameters as plain arrays, made once so every backend starts from the same values. */
function initialValues(): Map<string, { shape: number[]; data: Float32Array }> {
  const full = initParameters(model, 'full', 3);
  const lr = discreteFromFullPrecision(model, full, 'ternary');
  disposeParameters(full);
  const values = new Map([...lr].map(([name, v]) => [name, { shape: v.shape, data: v.dataSync() as Float32Array }]));
  disposeParameters(lr);
  return values;
}

interface StepResult {
  loss: number;
  grads: Map<string, Float32Array>;
}

async function lrStep(backend: BackendName, initial: ReturnType<typeof initialValues>, input: Float32Array, labels: Int32Array): Promise<StepResult> {
  await initBackend(backend);
  // Stock ops on every backend, so the noise is the same ziggurat stream everywhere (the fused WebGPU kernels draw
  // Philox noise on the GPU; test/webgpu*.test.ts checks them against these ops with the same noise).
  useFusedKernels(false);
  const params = new Map([...initial].map(([name, v]) => [name, tf.variable(tf.tensor(v.data, v.shape))]));
  const x = tf.tensor4d(input, [batch, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);
  const trainable = [...params].filter(([name]) => isTrainable(name));
  const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, forward(model, params, x, {
    mode: 'lr', training: true, batchStatistics: true, kind: 'ternary', noiseSeed: 17, dropoutSeed: 23,
  })) as tf.Scalar, trainable.map(([, v]) => v));
  const result: StepResult = { loss: (await value.data())[0]!, grads: new Map() };
  for (const [name, v] of trainable) result.grads.set(name, (await grads[v.name]!.data()) as Float32Array);
  tf.dispose([x, y, value, ...Object.values(grads), ...params.values()]);
  return result;
}

describe('backends agree on an LR training step of the MNIST net', () => {
  const data = loadBundledMnistSample({ trainLimit: batch });
  const input = new Float32Array(batch * 784);
  fillBatch(data.train, [0, 1, 2, 3], data.normalization, false, new Random(0), input);
  const labels = Int32Array.from(data.train.labels.subarray(0, batch));
  let reference: StepResult;
  let initial: ReturnType<typeof initialValues>;

  it('cpu computes the reference step', async () => {
    await initBackend('cpu');
    initial = initialValues();
    reference = await lrStep('cpu', initial, input, labels);
    expect(Number.isFinite(reference.loss)).toBe(true);
    expect(reference.grads.size).toBeGreaterThan(10);
  }, 120_000);

  it.each(['wasm', 'webgpu'] as const)('%s matches cpu', async (backend) => {
    const result = await lrStep(backend, initial, input, labels);
    expect(Math.abs(result.loss - reference.loss) / reference.loss).toBeLessThan(1e-5);
    for (const [name, grad] of reference.grads) {
      expect(normRelativeError(result.grads.get(name)!, grad), name).toBeLessThan(1e-4);
    }
  }, 120_000);
});
