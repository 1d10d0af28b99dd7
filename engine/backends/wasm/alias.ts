/**
 * Identity and same-dtype Cast without a copy, for the data-parallel workers' wasm backends (and nowhere else:
 * engine/parallel/worker.ts registers them through `registerWasmWorkerKernels`).
 *
 * The wasm backend's Identity and its Cast to the same dtype copy the tensor's data; the gradient tape runs about
 * 45 Identity and 15 such Cast calls per MNIST LR-net training step (gradient accumulation, relu's gradient), 3.2 M
 * values apiece at the largest. These overrides share the input's data instead, as the cpu, webgl and webgpu
 * backends do and as the wasm backend's own Reshape does (every kernel writes only its outputs, so sharing is
 * safe). Values are unchanged, so results stay bit for bit what trainStep computes.
 */
import type { tf } from '../../tf.ts';
import type { KernelArgs } from './heap.ts';

interface RefCounting {
  incRef(dataId: tf.DataId): void;
}

/** The input `x` itself as the output: one more reference to its data, no copy. */
export function aliased(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs['x'] as tf.TensorInfo;
  (args.backend as unknown as RefCounting).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}
