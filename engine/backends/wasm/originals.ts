/**
 * The wasm backend's own kernels that the replacements here call (XNNPACK Conv2D and matmul, the original Sum and
 * Mean), captured once before they are replaced.
 */
import type { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { Info, Pad } from './heap.ts';

export interface Originals {
  conv2d: tf.KernelFunc;
  batchMatMul: tf.KernelFunc;
  fusedMatMul: tf.KernelFunc;
  sum: tf.KernelFunc;
  mean: tf.KernelFunc;
}
let originals: Originals | null = null;

/** Keeps the wasm backend's kernels for the replacements to call (once: later calls are ignored). */
export function captureOriginals(capture: () => Originals): Originals {
  originals ??= capture();
  return originals;
}

/** The captured kernels; throws when a replacement runs before registration. */
export function orig(): Originals {
  if (originals == null) throw new Error('registerWasmTrainingKernels() has not run');
  return originals;
}

/** Stride-1 NHWC Conv2D through the wasm backend's own (XNNPACK) kernel. */
export function conv2d(backend: BackendWasm, x: Info, filter: Info, pad: Pad): Info {
  return orig().conv2d({
    inputs: { x, filter },
    backend,
    attrs: { strides: [1, 1], pad, dataFormat: 'NHWC', dilations: [1, 1] },
  }) as Info;
}
