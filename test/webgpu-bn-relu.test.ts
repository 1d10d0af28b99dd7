/**
 * Fused batch norm (batch statistics) + ReLU (engine/backends/webgpu/bn-relu.ts) against tf.moments + tf.batchNorm +
 * tf.relu: output, batch statistics and the gradients of x, gamma and beta, on the MNIST batch-norm shapes.
 */
import { describe, it, expect } from 'vitest';
import { tf } from '../engine/tf.ts';
import { batchNormRelu, batchNormReluReference, batchNormReluPool, batchNormReluPoolReference } from '../engine/backends/webgpu/bn-relu.ts';
import { useWebgpu, randomTensor, compare } from './helpers/webgpu.ts';

const TOL = 1e-4;

describe('fused batch norm + ReLU on WebGPU', () => {
  const gpu = useWebgpu();

  for (const shape of [[3, 28, 28, 32], [3, 14, 14, 64], [5, 512], [1, 3, 5, 8]]) it(`shape ${JSON.stringify(shape)}`, async (ctx) => {
    if (!gpu.available) return ctx.skip();
    const channels = shape[shape.length - 1]!;
    // An offset mean, as LR pre-activations have, exercises the shifted sums.
    const h = tf.add(randomTensor(shape, 1, -3, 3), 1.5);
    const gamma = randomTensor([channels], 2, 0.5, 1.5);
    const beta = randomTensor([channels], 3, -0.5, 0.5);
    const dy = randomTensor(shape, 4);
    const got = batchNormRelu(h, gamma, beta, 1e-3);
    const want = batchNormReluReference(h, gamma, beta, 1e-3);
    expect((await compare(got.y, want.y)).max, 'y').toBeLessThan(TOL);
    expect((await compare(got.mean, want.mean)).max, 'mean').toBeLessThan(TOL);
    expect((await compare(got.variance, want.variance)).max, 'variance').toBeLessThan(TOL);
    const loss = (f: typeof batchNormRelu) => (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(x, g, b, 1e-3).y, dy));
    const g1 = tf.grads(loss(batchNormRelu))([h, gamma, beta]);
    const g2 = tf.grads(loss(batchNormReluReference))([h, gamma, beta]);
    for (const [i, name] of ['dx', 'dgamma', 'dbeta'].entries()) {
      const err = await compare(g1[i]!, g2[i]!);
      expect(err.max, name).toBeLessThan(TOL);
    }
    tf.dispose([h, gamma, beta, dy, got.y, got.mean, got.variance, want.y, want.mean, want.variance, ...g1, ...g2]);
  }, 60_000);

  for (const shape of [[3, 28, 28, 32], [2, 14, 14, 64], [2, 6, 4, 8]]) it(`with a 2x2 max pool, shape ${JSON.stringify(shape)}`, async (ctx) => {
    if (!gpu.available) return ctx.skip();
    const channels = shape[shape.length - 1]!;
    const h = tf.add(randomTensor(shape, 11, -3, 3), 0.5);
    const gamma = randomTensor([channels], 12, 0.5, 1.5);
    const beta = randomTensor([channels], 13, -0.5, 0.5);
    const pooled = [shape[0]!, shape[1]! / 2, shape[2]! / 2, channels];
    const dy = randomTensor(pooled, 14);
    const got = batchNormReluPool(h, gamma, beta, 1e-3, 2, 2);
    const want = batchNormReluPoolReference(h, gamma, beta, 1e-3, 2, 2);
    expect(got.y.shape).toEqual(pooled);
    expect((await compare(got.y, want.y)).max, 'y').toBeLessThan(TOL);
    expect((await compare(got.mean, want.mean)).max, 'mean').toBeLessThan(TOL);
    const loss = (f: typeof batchNormReluPool) => (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(x, g, b, 1e-3, 2, 2).y, dy));
    const g1 = tf.grads(loss(batchNormReluPool))([h, gamma, beta]);
    const g2 = tf.grads(loss(batchNormReluPoolReference))([h, gamma, beta]);
    for (const [i, name] of ['dx', 'dgamma', 'dbeta'].entries()) {
      expect((await compare(g1[i]!, g2[i]!)).max, name).toBeLessThan(TOL);
    }
    tf.dispose([h, gamma, beta, dy, got.y, got.mean, got.variance, want.y, want.mean, want.variance, ...g1, ...g2]);
  }, 60_000);
});
