/**
 * Kernel overrides the data-parallel workers register on their own wasm backend (and nowhere else).
 *
 * The wasm backend's Identity and its Cast to the same dtype copy the tensor's data; the gradient tape runs about
 * 45 Identity and 15 such Cast calls per MNIST LR-net training step (gradient accumulation, relu's gradient), 3.2 M
 * values apiece at the largest. These overrides share the input's data instead, as the cpu, webgl and webgpu
 * backends do and as the wasm backend's own Reshape does (every kernel writes only its outputs, so sharing is
 * safe). Values are unchanged, so results stay bit for bit what trainStep computes.
 */
import { tf } from '../tf.ts';

const BACKEND = 'wasm';
const MARK = Symbol.for('lrnet.parallelWorkerKernel');

type KernelArgs = Parameters<tf.KernelFunc>[0];
interface RefCounting {
  incRef(dataId: tf.DataId): void;
}

function aliased(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs['x'] as tf.TensorInfo;
  (args.backend as unknown as RefCounting).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function override(name: string, make: (original: tf.KernelFunc) => tf.KernelFunc): void {
  const existing = tf.getKernel(name, BACKEND);
  if (!existing) throw new Error(`kernel ${name} is not registered for ${BACKEND}`);
  if ((existing.kernelFunc as unknown as Record<symbol, boolean>)[MARK]) return;
  const kernelFunc = make(existing.kernelFunc);
  (kernelFunc as unknown as Record<symbol, boolean>)[MARK] = true;
  tf.unregisterKernel(name, BACKEND);
  tf.registerKernel({ ...existing, kernelFunc });
}

/** Registers the overrides on the wasm backend (idempotent). Call after the backend is loaded. */
export function registerWorkerKernels(): void {
  override('Identity', (original) => (args) => {
    const x = args.inputs['x'] as tf.TensorInfo;
    return x.dtype === 'string' ? original(args) : aliased(args);
  });
  override('Cast', (original) => (args) => {
    const x = args.inputs['x'] as tf.TensorInfo;
    return x.dtype !== 'string' && x.dtype === (args.attrs as { dtype?: string }).dtype ? aliased(args) : original(args);
  });
}
