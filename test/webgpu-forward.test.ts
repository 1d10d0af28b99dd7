/**
 * The whole MNIST LR net as the trainer runs it on WebGPU (models.ts forward with `fusedKernels: true`) against the
 * same net on stock ops with the same Philox noise (`fusedKernels: 'reference'`): loss and every parameter gradient
 * of one training step, plus the integration helpers.
 */
import { describe, it, expect } from 'vitest';
import { tf } from '../engine/tf.ts';
import { defineModel, discreteFromFullPrecision, disposeParameters, forward, initParameters, isTrainable, type Parameters } from '../engine/models.ts';
import { enableFusedLrKernels, fusedLrLayer } from '../engine/backends/webgpu/index.ts';
import { useWebgpu, randomTensor, compare } from './helpers/webgpu.ts';

const model = defineModel('mnist');

function lrParameters(): Parameters {
  const full = initParameters(model, 'full', 11);
  const params = discreteFromFullPrecision(model, full, 'ternary');
  disposeParameters(full);
  return params;
}

describe('MNIST LR training step with the fused kernels', () => {
  const gpu = useWebgpu();

  it('enableFusedLrKernels says whether the active backend is webgpu', async (ctx) => {
    if (!gpu.available) return ctx.skip();
    expect(enableFusedLrKernels()).toBe(true);
  });

  it('gives the loss and gradients of the stock ops with the same noise', async (ctx) => {
    if (!gpu.available) return ctx.skip();
    const params = lrParameters();
    const batch = 3;
    const x = randomTensor([batch, 28, 28, 1], 5, 0, 1);
    const y = tf.oneHot(tf.tensor1d([3, 1, 4], 'int32'), 10);
    const trainable = [...params].filter(([name]) => isTrainable(name));
    const stats = new Map<string, tf.Tensor[]>();
    const step = (reference: boolean) => tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, forward(model, params, x, {
      mode: 'lr', training: true, batchStatistics: true, kind: 'ternary', noiseSeed: 42, dropoutSeed: 43,
      fusedKernels: reference ? 'reference' : true,
      onBatchStatistics: (layer, s) => stats.set(`${layer}/${reference}`, [tf.keep(s.mean), tf.keep(s.variance)]),
    })) as tf.Scalar, trainable.map(([, v]) => v));
    const fused = step(false);
    const reference = step(true);
    const [lf, lr] = [(await fused.value.data())[0]!, (await reference.value.data())[0]!];
    expect(Math.abs(lf - lr) / Math.abs(lr)).toBeLessThan(1e-5);
    for (const [name, v] of trainable) {
      const err = await compare(fused.grads[v.name]!, reference.grads[v.name]!);
      expect(err.norm, name).toBeLessThan(1e-4);
    }
    for (const layer of ['bn1', 'bn2', 'bn3']) {
      const [mf, vf] = stats.get(`${layer}/false`)!;
      const [mr, vr] = stats.get(`${layer}/true`)!;
      expect((await compare(mf!, mr!)).max, `${layer} mean`).toBeLessThan(1e-4);
      expect((await compare(vf!, vr!)).max, `${layer} variance`).toBeLessThan(1e-4);
    }
    tf.dispose([x, y, fused.value, reference.value, ...Object.values(fused.grads), ...Object.values(reference.grads), ...[...stats.values()].flat()]);
    disposeParameters(params);
  }, 120_000);

  it('switches kernels with the flag: the fused path is not the stock path, whose noise is the ziggurat', async (ctx) => {
    if (!gpu.available) return ctx.skip();
    const params = lrParameters();
    const x = randomTensor([3, 28, 28, 1], 12, 0, 1);
    const options = { mode: 'lr', training: true, batchStatistics: true, kind: 'ternary', noiseSeed: 42, dropoutSeed: 43 } as const;
    const fused = forward(model, params, x, { ...options, fusedKernels: true });
    expect((await compare(fused, forward(model, params, x, options))).max).toBeGreaterThan(1e-3);
    expect((await compare(fused, forward(model, params, x, { ...options, fusedKernels: 'reference' }))).max).toBeLessThan(1e-4);
    disposeParameters(params);
  }, 120_000);

  it('leaves every other mode alone', async (ctx) => {
    if (!gpu.available) return ctx.skip();
    const params = lrParameters();
    const x = randomTensor([2, 28, 28, 1], 6, 0, 1);
    const options = { mode: 'mean', training: false, batchStatistics: false, kind: 'ternary' } as const;
    const err = await compare(forward(model, params, x, { ...options, fusedKernels: true }), forward(model, params, x, options));
    expect(err.max).toBeLessThan(1e-6);
    disposeParameters(params);
  }, 60_000);

  it('fusedLrLayer has the contract of the LR branch of linear()', async (ctx) => {
    if (!gpu.available) return ctx.skip();
    const x = randomTensor([2, 3136], 7);
    const mean = randomTensor([3136, 512], 8);
    const variance = randomTensor([3136, 512], 9, 0, 1);
    const fused = fusedLrLayer({ op: 'dense' }, x, mean, variance, 5);
    const reference = fusedLrLayer({ op: 'dense' }, x, mean, variance, 5, { reference: true });
    expect((await compare(fused, reference)).max).toBeLessThan(1e-4);
    tf.dispose([x, mean, variance, fused, reference]);
  }, 60_000);
});
