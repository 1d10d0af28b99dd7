/**
 * Verification helpers for the fused kernels (used by test/webgpu-*.test.ts): WebGPU initialization that reports
 * instead of throwing where no adapter exists, deterministic inputs, and error measures read asynchronously.
 */
import { tf } from '../tf.ts';
import { initBackend } from '../backends/index.ts';
import { requestWebgpuSubgroups, subgroupSizeOf } from './device.ts';
import type { WebGPUBackendInternals } from './runner.ts';

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

/** mulberry32 in [lo, hi): the same inputs on every run. */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (((t ^ (t >>> 14)) >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}

export function randomTensor(shape: number[], seed: number, lo = -1, hi = 1): tf.Tensor {
  return tf.tensor(randomArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape);
}

/** Largest elementwise difference relative to the reference's largest magnitude. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / Math.max(scale, 1e-30);
}

/** ||a - b|| / ||b||. */
export function normRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    diff += (actual[i]! - expected[i]!) ** 2;
    norm += expected[i]! ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30);
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
