/**
 * The fused LR layer kernels (engine/webgpu) against the stock-op reference with the same noise:
 *     z = conv(x, mean) + sqrt(conv(x^2, variance) + 1e-3) * eps      (dense: matMul)
 * with eps from the CPU Philox reference, and the gradients of sum(z * dy) with respect to x, mean and variance
 * (tf.grads of the reference composition), on the MNIST layer shapes (5x5 1->32 at 28px, 5x5 32->64 at 14px,
 * dense 3136->512) and strided 3x3 convolutions, to 1e-4 relative. Small batches keep lavapipe fast.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { tf } from '../engine/tf.ts';
import { lrConv2d, lrDense, lrReference, setWideTileThreshold, WIDE_TILE_MACS } from '../engine/webgpu/lr-ops.ts';
import { philoxNormal } from '../engine/webgpu/philox.ts';
import { useSubgroups } from '../engine/webgpu/device.ts';
import { webgpuAvailable, randomTensor, compare, activeSubgroupSize } from '../engine/webgpu/verify.ts';

const TOL = 1e-4;

interface Case {
  readonly name: string;
  readonly x: number[];
  readonly w: number[];
  /** 0: dense. */
  readonly stride: number;
  /** Run with the widest tiles (subgroup kernels). */
  readonly wide?: boolean;
}

const CASES: Case[] = [
  { name: 'MNIST conv1 5x5 1->32 at 28px', x: [2, 28, 28, 1], w: [5, 5, 1, 32], stride: 1 },
  { name: 'MNIST conv2 5x5 32->64 at 14px', x: [2, 14, 14, 32], w: [5, 5, 32, 64], stride: 1 },
  { name: 'MNIST fc1 dense 3136->512', x: [3, 3136], w: [3136, 512], stride: 0 },
  { name: 'strided 3x3 8->12, stride 2, odd size', x: [2, 9, 9, 8], w: [3, 3, 8, 12], stride: 2 },
  { name: 'strided 3x3 6->16, stride 2, even size', x: [2, 8, 10, 6], w: [3, 3, 6, 16], stride: 2 },
  // The widest tiles (big layers only, by default): 12 pixels per invocation, 16 output channels.
  { name: 'wide tiles: 3x3 8->16 at 12px', x: [2, 6, 12, 8], w: [3, 3, 8, 16], stride: 1, wide: true },
];

describe('fused LR layers on WebGPU match the stock ops with the same noise', () => {
  let available = false;
  let subgroupSize: number | undefined;
  beforeAll(async () => {
    available = await webgpuAvailable();
    subgroupSize = activeSubgroupSize();
  }, 60_000);
  afterAll(() => {
    useSubgroups(true);
    setWideTileThreshold(WIDE_TILE_MACS);
  });

  it('runs the subgroup kernels where the device has subgroups (lavapipe: 8 lanes)', (ctx) => {
    if (!available) return ctx.skip();
    console.info(`fused kernels: ${subgroupSize ? `subgroups of ${subgroupSize}` : 'no subgroups'}`);
    expect(subgroupSize === undefined || subgroupSize >= 4).toBe(true);
  });

  for (const variant of ['subgroups', 'plain'] as const) for (const c of CASES) it(`${variant}: ${c.name}: forward and the gradients of x, mean and variance`, async (ctx) => {
    if (!available || (variant === 'subgroups' && !subgroupSize) || (c.wide && variant === 'plain')) return ctx.skip();
    useSubgroups(variant === 'subgroups');
    setWideTileThreshold(c.wide ? 0 : WIDE_TILE_MACS);
    const seed = 0x5eed + c.x[0]! * 7 + c.w[c.w.length - 1]!;
    const x = randomTensor(c.x, 1);
    // Ternary-like moments: mean in (-1, 1), variance in (0, 1).
    const mean = randomTensor(c.w, 2, -0.9, 0.9);
    const variance = randomTensor(c.w, 3, 0.01, 0.99);
    const dense = c.stride === 0;
    const apply = (input: tf.Tensor, w: tf.Tensor) => dense
      ? tf.matMul(input as tf.Tensor2D, w as tf.Tensor2D)
      : tf.conv2d(input as tf.Tensor4D, w as tf.Tensor4D, c.stride, 'same');
    const fused = (a: tf.Tensor, m: tf.Tensor, v: tf.Tensor) => dense ? lrDense(a, m, v, seed) : lrConv2d(a, m, v, seed, { stride: c.stride });

    const z = fused(x, mean, variance);
    const eps = tf.tensor(philoxNormal(z.size, seed), z.shape);
    const reference = lrReference(x, mean, variance, eps, apply);
    const forward = await compare(z, reference);
    expect(forward.max, 'z').toBeLessThan(TOL);

    const dy = randomTensor(z.shape, 4);
    const loss = (f: (a: tf.Tensor, m: tf.Tensor, v: tf.Tensor) => tf.Tensor) =>
      (a: tf.Tensor, m: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(f(a, m, v), dy));
    const got = tf.grads(loss(fused))([x, mean, variance]);
    const want = tf.grads(loss((a, m, v) => lrReference(a, m, v, eps, apply)))([x, mean, variance]);
    for (const [i, name] of ['dx', 'dmean', 'dvariance'].entries()) {
      const err = await compare(got[i]!, want[i]!);
      expect(err.max, name).toBeLessThan(TOL);
      expect(err.norm, name).toBeLessThan(TOL);
    }

    // Without the input gradient (the first layer), the weight gradients are the same.
    const partial = tf.grads((m: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(dense
      ? lrDense(x, m, v, seed, { inputGradient: false })
      : lrConv2d(x, m, v, seed, { stride: c.stride, inputGradient: false }), dy)))([mean, variance]);
    expect((await compare(partial[0]!, want[1]!)).max).toBeLessThan(TOL);
    expect((await compare(partial[1]!, want[2]!)).max).toBeLessThan(TOL);
    tf.dispose([x, mean, variance, z, eps, reference, dy, ...got, ...want, ...partial]);
  }, 60_000);

  it('draws different noise for different seeds and the same for the same seed', async (ctx) => {
    if (!available) return ctx.skip();
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
    if (!available) return ctx.skip();
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
