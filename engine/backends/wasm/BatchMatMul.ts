/** BatchMatMul for wasm: transposed or batched operands go to XNNPACK instead of the naive loop; see index.ts. */
import { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { Info, KernelArgs, KernelResult } from './heap.ts';
import { orig } from './originals.ts';
import { matMulViaXnn, needsXnnRoute } from './xnn-matmul.ts';

export function batchMatMul(args: KernelArgs): KernelResult {
  const backend = args.backend as BackendWasm;
  const { a, b } = args.inputs as { a: Info; b: Info };
  const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
  if (!needsXnnRoute(a, b, transposeA, transposeB)) return orig().batchMatMul(args);
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const M = transposeA ? a.shape[a.shape.length - 1] : a.shape[a.shape.length - 2];
  const N = transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
  const out = matMulViaXnn(backend, a, b, transposeA, transposeB, (a3, b3) =>
    orig().batchMatMul({
      inputs: { a: a3, b: b3 },
      backend,
      attrs: { transposeA: false, transposeB: false },
    }) as Info,
  );
  return { dataId: out.dataId, shape: [...outer, M, N], dtype: 'float32' };
}
