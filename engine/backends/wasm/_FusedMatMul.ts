/** _FusedMatMul for wasm: as BatchMatMul, and the bias added right (the naive loop gets it wrong); see index.ts. */
import { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { Info, KernelArgs, KernelResult } from './heap.ts';
import { orig } from './originals.ts';
import { matMulViaXnn, needsXnnRoute } from './xnn-matmul.ts';

export function fusedMatMul(args: KernelArgs): KernelResult {
  const backend = args.backend as BackendWasm;
  const { a, b, bias, preluActivationWeights } = args.inputs as {
    a: Info;
    b: Info;
    bias?: Info;
    preluActivationWeights?: Info;
  };
  const attrs = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
  const { transposeA, transposeB } = attrs;
  // PReLU weights are applied element-wise per output; a per-entry split would need them split too.
  if (preluActivationWeights != null || !needsXnnRoute(a, b, transposeA, transposeB, bias != null)) {
    return orig().fusedMatMul(args);
  }
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const M = transposeA ? a.shape[a.shape.length - 1] : a.shape[a.shape.length - 2];
  const N = transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
  const out = matMulViaXnn(backend, a, b, transposeA, transposeB, (a3, b3) => {
    const inputs: Record<string, Info> = { a: a3, b: b3 };
    if (bias != null) inputs.bias = bias;
    return orig().fusedMatMul({
      inputs,
      backend,
      attrs: { ...args.attrs, transposeA: false, transposeB: false },
    }) as Info;
  });
  // _FusedMatMul's output keeps a's rank-3 form [batch, M, N].
  return { dataId: out.dataId, shape: [...outer, M, N], dtype: 'float32' };
}
