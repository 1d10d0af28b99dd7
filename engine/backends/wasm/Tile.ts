/** Tile for wasm: each input row written once, then replicated by memmove; see index.ts. */
import { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { Info, KernelArgs, KernelResult } from './heap.ts';

type AnyArray = Float32Array | Int32Array | Uint8Array;

function stridesOf(shape: number[]): number[] {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

/** The block a[start, start+len) repeated so that it occupies `times` consecutive blocks (doubling memmoves). */
function replicate(a: AnyArray, start: number, len: number, times: number): void {
  const total = len * times;
  let filled = len;
  while (filled < total) {
    const n = Math.min(filled, total - filled);
    a.copyWithin(start + filled, start, start + n);
    filled += n;
  }
}

/**
 * Tile (the batch-norm gradient tiles a [1,1,1,C] tensor to the activation's shape): the wasm kernel costs ~45 ns
 * per output element; this one writes each input row once and replicates blocks with memmove.
 */
export function tile(args: KernelArgs): KernelResult {
  const backend = args.backend as BackendWasm;
  const { x } = args.inputs as { x: Info };
  const { reps } = args.attrs as unknown as { reps: number[] };
  const rank = x.shape.length;
  const outShape = x.shape.map((d, i) => d * reps[i]);
  const out = backend.makeOutput(outShape, x.dtype);
  if (tf.util.sizeFromShape(outShape) === 0) return out;
  const src = backend.typedArrayFromHeap(x) as AnyArray;
  const dst = backend.typedArrayFromHeap(out) as AnyArray;
  if (rank === 0) {
    dst[0] = src[0];
    return out;
  }
  const xs = stridesOf(x.shape);
  const os = stridesOf(outShape);
  const fill = (d: number, s: number, o: number): void => {
    if (d === rank - 1) {
      const n = x.shape[d];
      dst.set(src.subarray(s, s + n), o);
      replicate(dst, o, n, reps[d]);
      return;
    }
    for (let i = 0; i < x.shape[d]; i++) fill(d + 1, s + i * xs[d], o + i * os[d]);
    replicate(dst, o, x.shape[d] * os[d], reps[d]);
  };
  fill(0, 0, 0);
  return out;
}
