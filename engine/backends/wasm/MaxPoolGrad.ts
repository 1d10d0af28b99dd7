/** MaxPoolGrad for wasm (~20x MaxPool there) as a scatter in JavaScript; see index.ts. */
import { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Info, type KernelArgs, type KernelResult, type Shape4, view, alloc, assertFloat32 } from './heap.ts';
import type { PoolGradAttrs } from './pool-attrs.ts';

/**
 * MaxPoolGrad as a scatter: per output window, the first maximum of x (row-major scan, as the cpu backend does)
 * receives dy. The wasm kernel is ~20x slower than MaxPool.
 */
export function maxPoolGrad(args: KernelArgs): KernelResult {
  const backend = args.backend as BackendWasm;
  const { dy, input } = args.inputs as { dy: Info; input: Info };
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as PoolGradAttrs;
  assertFloat32('MaxPoolGrad', dy, input);
  const info = tf.backend_util.computePool2DInfo(input.shape as Shape4, filterSize, strides, 1, pad, dimRoundingMode);
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { strideHeight: sh, strideWidth: sw, effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const dx = alloc(backend, input.shape);
  const xv = view(backend, input);
  const dyv = view(backend, dy);
  const dxv = view(backend, dx);
  dxv.fill(0);
  const offsets = new Int32Array(fh * fw); // window pixel offsets (row-major scan), rebuilt per window
  for (let b = 0; b < B; b++) {
    for (let oh = 0; oh < OH; oh++) {
      const r0 = oh * sh - info.padInfo.top;
      const rMin = Math.max(0, r0);
      const rMax = Math.min(H, r0 + fh);
      for (let ow = 0; ow < OW; ow++) {
        const q0 = ow * sw - info.padInfo.left;
        const qMin = Math.max(0, q0);
        const qMax = Math.min(W, q0 + fw);
        let n = 0;
        for (let r = rMin; r < rMax; r++) {
          for (let q = qMin; q < qMax; q++) offsets[n++] = ((b * H + r) * W + q) * C;
        }
        if (n === 0) continue;
        const dyBase = ((b * OH + oh) * OW + ow) * C;
        for (let c = 0; c < C; c++) {
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          for (let i = 0; i < n; i++) {
            const v = xv[offsets[i] + c];
            if (v > best) {
              best = v;
              at = offsets[i] + c;
            }
          }
          if (at >= 0) dxv[at] += dyv[dyBase + c];
        }
      }
    }
  }
  return dx;
}
