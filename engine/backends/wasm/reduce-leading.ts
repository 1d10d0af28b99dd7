/**
 * Sum/Mean over leading axes ([0..k)), e.g. batch-norm statistics and bias gradients over [0,1,2] of NHWC: the wasm
 * kernels first transpose the reduced axes innermost with a slow generic transpose; a column sum is 4-5x faster.
 * Other reductions go to the original kernels.
 */
import { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Info, type KernelArgs, type KernelResult, view, alloc } from './heap.ts';

/** The number k of reduced axes when they are exactly [0..k) of a float32 tensor (not all of them), else null. */
function leadingReduction(x: Info, axis: number | number[]): number | null {
  if (x.dtype !== 'float32' || x.shape.length === 0) return null;
  const axes = tf.util.parseAxisParam(axis, x.shape).slice().sort((a, b) => a - b);
  if (axes.length === 0 || axes.length === x.shape.length) return null; // nothing / everything reduced
  for (let i = 0; i < axes.length; i++) if (axes[i] !== i) return null;
  return axes.length;
}

function reduceLeading(backend: BackendWasm, x: Info, k: number, keepDims: boolean, mean: boolean): Info {
  const outer = tf.util.sizeFromShape(x.shape.slice(0, k));
  const innerShape = x.shape.slice(k);
  const inner = tf.util.sizeFromShape(innerShape);
  const outShape = keepDims ? [...new Array<number>(k).fill(1), ...innerShape] : innerShape;
  const out = alloc(backend, outShape);
  const src = view(backend, x);
  const dst = view(backend, out);
  const acc = new Float64Array(inner);
  for (let r = 0; r < outer; r++) {
    const base = r * inner;
    for (let i = 0; i < inner; i++) acc[i] += src[base + i];
  }
  const scale = mean ? 1 / outer : 1;
  for (let i = 0; i < inner; i++) dst[i] = acc[i] * scale;
  return out;
}

/** A Sum or Mean kernel that reduces leading axes itself and hands every other reduction to `original`. */
export function makeReduction(name: 'sum' | 'mean'): (original: tf.KernelFunc) => tf.KernelFunc {
  return (original) => (args: KernelArgs): KernelResult => {
    const { x } = args.inputs as { x: Info };
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const k = leadingReduction(x, axis);
    if (k == null || tf.util.sizeFromShape(x.shape) === 0) return original(args);
    return reduceLeading(args.backend as BackendWasm, x, k, keepDims, name === 'mean');
  };
}
