/** What MaxPoolGrad and AvgPoolGrad share: their attributes and the walk over the pooling windows. */
import { tf } from '../../tf.ts';

export interface PoolGradAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/**
 * Calls `visit` for each pooling window that covers at least one input pixel, with the NHWC offsets of its pixels
 * in row-major order (`offsets[0..count)`, reused between calls) and the offset of the window's dy values.
 */
export function forEachPoolWindow(info: tf.backend_util.Conv2DInfo, visit: (offsets: Int32Array, count: number, dyBase: number) => void): void {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { strideHeight: sh, strideWidth: sw, effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const offsets = new Int32Array(fh * fw);
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
        if (n > 0) visit(offsets, n, ((b * OH + oh) * OW + ow) * C);
      }
    }
  }
}
