/** Matrix products routed to the wasm backend's XNNPACK path (shared by BatchMatMul and _FusedMatMul). */
import { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Info, view, alloc, free, transpose2D } from './heap.ts';

/** [batch, R, C] -> [batch, C, R] */
function transposedLast2(backend: BackendWasm, x: Info, batch: number, R: number, C: number): Info {
  const out = alloc(backend, [batch, C, R]);
  const src = view(backend, x);
  const dst = view(backend, out);
  const n = R * C;
  for (let i = 0; i < batch; i++) transpose2D(src.subarray(i * n, (i + 1) * n), dst.subarray(i * n, (i + 1) * n), R, C);
  return out;
}

/** Contiguous slice [i] of a [batch, R, C] tensor, as a new [1, R, C] tensor. */
function batchEntry(backend: BackendWasm, x: Info, i: number, R: number, C: number): Info {
  const out = alloc(backend, [1, R, C]);
  const n = R * C;
  view(backend, out).set(view(backend, x).subarray(i * n, (i + 1) * n));
  return out;
}

/**
 * a @ b through the wasm backend's XNNPACK path (batch 1, no transposes). `run` calls the original kernel on
 * [1, M, K] x [1, K, N] operands with the given extra inputs/attrs. Returns [batch, M, N] data in a new tensor
 * whose shape the caller sets.
 */
export function matMulViaXnn(
  backend: BackendWasm,
  a: Info,
  b: Info,
  transposeA: boolean,
  transposeB: boolean,
  run: (a3: Info, b3: Info) => Info,
): Info {
  const aBatch = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const bBatch = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const ar = a.shape[a.shape.length - 2];
  const ac = a.shape[a.shape.length - 1];
  const br = b.shape[b.shape.length - 2];
  const bc = b.shape[b.shape.length - 1];
  const M = transposeA ? ac : ar;
  const K = transposeA ? ar : ac;
  const N = transposeB ? br : bc;
  const temps: Info[] = [];
  try {
    // Operands in [batch, M, K] and [batch, K, N] layout.
    let aN: Info = { dataId: a.dataId, shape: [aBatch, ar, ac], dtype: a.dtype };
    let bN: Info = { dataId: b.dataId, shape: [bBatch, br, bc], dtype: b.dtype };
    if (transposeA) temps.push((aN = transposedLast2(backend, aN, aBatch, ar, ac)));
    if (transposeB) temps.push((bN = transposedLast2(backend, bN, bBatch, br, bc)));
    if (bBatch === 1) {
      // One XNNPACK call: the shared right operand is the weights, all rows of a are the batch.
      return run({ dataId: aN.dataId, shape: [1, aBatch * M, K], dtype: 'float32' }, bN);
    }
    const batch = Math.max(aBatch, bBatch);
    const out = alloc(backend, [batch, M, N]);
    for (let i = 0; i < batch; i++) {
      const ai = aBatch === 1 ? aN : batchEntry(backend, aN, i, M, K);
      const bi = batchEntry(backend, bN, i, K, N);
      const yi = run(ai, bi);
      view(backend, out).set(view(backend, yi), i * M * N);
      free(backend, ai === aN ? [bi, yi] : [ai, bi, yi]);
    }
    return out;
  } finally {
    free(backend, temps);
  }
}

/**
 * True where the wasm backend would use its naive loop. `always`: route even tiny products (the naive loop of
 * _FusedMatMul adds the bias wrongly: row i > 0 gets bias[N-1] in every column).
 */
export function needsXnnRoute(a: Info, b: Info, transposeA: boolean, transposeB: boolean, always = false): boolean {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return false;
  const aBatch = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const bBatch = tf.util.sizeFromShape(b.shape.slice(0, -2));
  if (!transposeA && !transposeB && aBatch === 1 && bBatch === 1) return false; // already XNNPACK
  if (aBatch !== bBatch && aBatch !== 1 && bBatch !== 1) return false; // let the original report the error
  if (always) return true;
  // tiny products: the naive loop is as good as the copies (and one XNNPACK call per batch entry is not)
  const m = transposeA ? a.shape[a.shape.length - 1] : a.shape[a.shape.length - 2];
  const k = transposeA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
  const n = transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
  return m * k * n >= 4096;
}
