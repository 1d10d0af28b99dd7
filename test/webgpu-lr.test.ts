/**
 * The fused LR layer kernels (engine/backends/webgpu) against the stock-op reference with the same noise:
 *     z = conv(x, mean) + sqrt(conv(x^2, variance) + 1e-3) * eps      (dense: matMul)
 * with eps from the CPU Philox reference, and the gradients of sum(z * dy) with respect to x, mean and variance
 * (tf.grads of the reference composition), on the MNIST layer shapes (5x5 1->32 at 28px, 5x5 32->64 at 14px,
 * dense 3136->512) and strided 3x3 convolutions, to 1e-4 relative. Small batches keep lavapipe fast. This file
 * runs the subgroup kernels (what lavapipe gets); webgpu-lr-plain.test.ts the variants without subgroups.
 */
import { describe, it, expect } from 'vitest';
import { tf } from '../engine/tf.ts';
import { lrConv2d, lrReference } from '../engine/backends/webgpu/lr-ops.ts';
import { philoxNormal } from '../engine/backends/webgpu/philox.ts';
import { useWebgpu, randomTensor, compare, checkLrLayerCase, LR_LAYER_CASES } from './helpers/webgpu.ts';

const TOL = 1e-4;

describe('fused LR layers on WebGPU match the stock ops with the same noise', () => {
  const gpu = useWebgpu();
  it('runs the subgroup kernels where the device has subgroups (lavapipe: 8 lanes)', (ctx) => {
    if (!gpu.available) return ctx.skip();
    console.info(`fused kernels: ${gpu.subgroupSize ? `subgroups of ${gpu.subgroupSize}` : 'no subgroups'}`);
    expect(gpu.subgroupSize === undefined || gpu.subgroupSize >= 4).toBe(true);
  });

  for (const c of LR_LAYER_CASES) it(`${c.name}: forward and the gradients of x, mean and variance`, async (ctx) => {
    if (!gpu.available || !gpu.subgroupSize) return ctx.skip();
    const errors = await checkLrLayerCase(c);
    for (const [name, error] of Object.entries(errors)) expect(error, name).toBeLessThan(TOL);
  }, 120_000);

  it('draws different noise for different seeds and the same for the same seed', async (ctx) => {
    if (!gpu.available) return ctx.skip();
    const x = randomTensor([1, 6, 6, 4], 5);
    const m = randomTensor([3, 3, 4, 8], 6);
    const v = randomTensor([3, 3, 4, 8], 7, 0.1, 0.9);
    const a = await lrConv2d(x, m, v, 1).data();
    const b = await lrConv2d(x, m, v, 1).data();
    const c = await lrConv2d(x, m, v, 2).data();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    tf.dispose([x, m, v]);
  }, 60_000);

  it('falls back to the stock ops where the kernels do not apply (output channels not in fours)', async (ctx) => {
    if (!gpu.available) return ctx.skip();
    const x = randomTensor([2, 5, 5, 3], 8);
    const m = randomTensor([3, 3, 3, 6], 9);
    const v = randomTensor([3, 3, 3, 6], 10, 0.1, 0.9);
    const z = lrConv2d(x, m, v, 3);
    const eps = tf.tensor(philoxNormal(z.size, 3), z.shape);
    const ref = lrReference(x, m, v, eps, (i, w) => tf.conv2d(i as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'));
    expect((await compare(z, ref)).max).toBeLessThan(TOL);
    tf.dispose([x, m, v, z, eps, ref]);
  }, 60_000);
});
