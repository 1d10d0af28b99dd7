/** AvgPoolGrad for wasm (global pooling took ~1 s at [64,32,32,128]) as a scatter in JavaScript; see index.ts. */
import { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Info, type KernelArgs, type KernelResult, type Shape4, view, alloc, assertFloat32 } from './heap.ts';
import type { PoolGradAttrs } from './pool-attrs.ts';

/** AvgPoolGrad as a scatter of dy / (filter area) over each window (the cpu backend's semantics). */
export function avgPoolGrad(args: KernelArgs): KernelResult {
  const backend = args.backend as BackendWasm;
  const { dy, input } = args.inputs as { dy: Info; input: Info };
  const { filterSize, strides, pad } = args.attrs as unknown as PoolGradAttrs;
  assertFloat32('AvgPoolGrad', dy, input);
  const info = tf.backend_util.computePool2DInfo(input.shape as Shape4, filterSize, strides, 1, pad);
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { strideHeight: sh, strideWidth: sw, effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const mult = 1 / (info.filterHeight * info.filterWidth);
  const dx = alloc(backend, input.shape);
  const dyv = view(backend, dy);
  const dxv = view(backend, dx);
  dxv.fill(0);
  const g = new Float32Array(C);
  for (let b = 0; b < B; b++) {
    for (let oh = 0; oh < OH; oh++) {
      const r0 = oh * sh - info.padInfo.top;
      const rMin = Math.max(0, r0);
      const rMax = Math.min(H, r0 + fh);
      for (let ow = 0; ow < OW; ow++) {
        const q0 = ow * sw - info.padInfo.left;
        const qMin = Math.max(0, q0);
        const qMax = Math.min(W, q0 + fw);
        const dyBase = ((b * OH + oh) * OW + ow) * C;
        for (let c = 0; c < C; c++) g[c] = dyv[dyBase + c] * mult;
        for (let r = rMin; r < rMax; r++) {
          for (let q = qMin; q < qMax; q++) {
            const base = ((b * H + r) * W + q) * C;
            for (let c = 0; c < C; c++) dxv[base + c] += g[c];
          }
        }
      }
    }
  }
  return dx;
}
