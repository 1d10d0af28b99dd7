/**
 * Verification helpers for the fused kernels (used by test/webgpu-*.test.ts): WebGPU initialization that reports
 * instead of throwing where no adapter exists, deterministic inputs, and error measures read asynchronously.
 */
import { beforeAll } from 'vitest';
import { tf } from '../../engine/tf.ts';
import { initBackend } from '../../engine/backends/index.ts';
import { requestWebgpuSubgroups, subgroupSizeOf } from '../../engine/backends/webgpu/device.ts';
import { lrConv2d, lrDense, lrReference, setWideTileThreshold, WIDE_TILE_MACS } from '../../engine/backends/webgpu/lr-ops.ts';
import { philoxNormal } from '../../engine/backends/webgpu/philox.ts';
import type { FusedProgram, WebGPUBackendInternals } from '../../engine/backends/webgpu/runner.ts';
import { maxRelativeError, normRelativeError, randomTensor } from './numeric.ts';

export { maxRelativeError, normRelativeError, randomArray, randomTensor } from './numeric.ts';

/**
 * True when the webgpu backend is up (Dawn found an adapter, e.g. lavapipe); the tests skip otherwise. The device
 * gets 'subgroups' where the adapter offers it (see device.ts).
 */
export async function webgpuAvailable(): Promise<boolean> {
  try {
    await requestWebgpuSubgroups();
    await initBackend('webgpu');
    return true;
  } catch (error) {
    console.warn(`WebGPU tests skipped: ${(error as Error).message}`);
    return false;
  }
}

/** What a suite's WebGPU start found: read it inside the tests (it is filled in before they run). */
export interface WebgpuSuite {
  readonly available: boolean;
  /** See activeSubgroupSize. */
  readonly subgroupSize: number | undefined;
}

/** Starts the webgpu backend before the suite's tests (see webgpuAvailable); tests skip where it is not available. */
export function useWebgpu(): WebgpuSuite {
  const suite = { available: false, subgroupSize: undefined as number | undefined };
  beforeAll(async () => {
    suite.available = await webgpuAvailable();
    suite.subgroupSize = activeSubgroupSize();
  }, 60_000);
  return suite;
}

/** Both measures of a tensor pair, read asynchronously (WebGPU tensors cannot be read with dataSync in Node). */
export async function compare(actual: tf.Tensor, expected: tf.Tensor): Promise<{ max: number; norm: number }> {
  if (actual.shape.join() !== expected.shape.join()) throw new Error(`shape ${actual.shape} vs ${expected.shape}`);
  const [a, e] = await Promise.all([actual.data(), expected.data()]);
  return { max: maxRelativeError(a as Float32Array, e as Float32Array), norm: normRelativeError(a as Float32Array, e as Float32Array) };
}

/** The subgroup size the fused kernels use on the active backend (undefined: the variants without subgroups). */
export function activeSubgroupSize(): number | undefined {
  return tf.getBackend() === 'webgpu' ? subgroupSizeOf(tf.backend() as unknown as WebGPUBackendInternals) : undefined;
}

/** Tint's error messages for a program's WGSL on the active webgpu device (no pipeline is built). */
export async function shaderErrors(program: FusedProgram): Promise<string[]> {
  const backend = tf.backend() as unknown as WebGPUBackendInternals;
  const module = backend.device.createShaderModule({ code: program.code(), label: program.name }) as {
    getCompilationInfo(): Promise<{ messages: readonly { type: string; message: string; lineNum: number }[] }>;
  };
  const info = await module.getCompilationInfo();
  return info.messages.filter((m) => m.type === 'error').map((m) => `${program.name} line ${m.lineNum}: ${m.message}`);
}

/** One fused-LR-layer check case: x and weight shapes, stride (0: dense), whether to force the widest tiles. */
export interface LrLayerCase {
  readonly name: string;
  readonly x: number[];
  readonly w: number[];
  readonly stride: number;
  readonly wide?: boolean;
}

/** The MNIST layer shapes, strided 3x3 convolutions (odd and even sides) and a small layer on the widest tiles. */
export const LR_LAYER_CASES: readonly LrLayerCase[] = [
  { name: 'MNIST conv1 5x5 1->32 at 28px', x: [2, 28, 28, 1], w: [5, 5, 1, 32], stride: 1 },
  { name: 'MNIST conv2 5x5 32->64 at 14px', x: [2, 14, 14, 32], w: [5, 5, 32, 64], stride: 1 },
  { name: 'MNIST fc1 dense 3136->512', x: [3, 3136], w: [3136, 512], stride: 0 },
  { name: 'strided 3x3 8->12, stride 2, odd size', x: [2, 9, 9, 8], w: [3, 3, 8, 12], stride: 2 },
  { name: 'strided 3x3 6->16, stride 2, even size', x: [2, 8, 10, 6], w: [3, 3, 6, 16], stride: 2 },
  { name: 'widest tiles: 3x3 8->8 at 8px', x: [2, 4, 8, 8], w: [3, 3, 8, 8], stride: 1, wide: true },
];

/**
 * Runs lrConv2d / lrDense against lrReference with the CPU Philox noise: the largest elementwise error of z and
 * of the gradients of sum(z * dy) with respect to x, mean and variance (relative to the reference's largest
 * magnitude), plus the norm-relative errors of the gradients and the weight gradients without the input gradient.
 */
export async function checkLrLayerCase(c: LrLayerCase): Promise<Record<string, number>> {
  setWideTileThreshold(c.wide ? 0 : WIDE_TILE_MACS);
  const errors: Record<string, number> = {};
  try {
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
    errors.z = (await compare(z, reference)).max;

    const dy = randomTensor(z.shape, 4);
    const loss = (f: (a: tf.Tensor, m: tf.Tensor, v: tf.Tensor) => tf.Tensor) =>
      (a: tf.Tensor, m: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(f(a, m, v), dy));
    const got = tf.grads(loss(fused))([x, mean, variance]);
    const want = tf.grads(loss((a, m, v) => lrReference(a, m, v, eps, apply)))([x, mean, variance]);
    for (const [i, name] of ['dx', 'dmean', 'dvariance'].entries()) {
      const err = await compare(got[i]!, want[i]!);
      errors[name] = err.max;
      errors[`${name} (norm)`] = err.norm;
    }

    // Without the input gradient (the first layer), the weight gradients are the same.
    const partial = tf.grads((m: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(dense
      ? lrDense(x, m, v, seed, { inputGradient: false })
      : lrConv2d(x, m, v, seed, { stride: c.stride, inputGradient: false }), dy)))([mean, variance]);
    errors['dmean without dx'] = (await compare(partial[0]!, want[1]!)).max;
    errors['dvariance without dx'] = (await compare(partial[1]!, want[2]!)).max;
    tf.dispose([x, mean, variance, z, eps, reference, dy, ...got, ...want, ...partial]);
  } finally {
    setWideTileThreshold(WIDE_TILE_MACS);
  }
  return errors;
}
