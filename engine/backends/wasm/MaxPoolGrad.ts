/** MaxPoolGrad for wasm (~20x MaxPool there) as a scatter in JavaScript; see index.ts. */
import { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Info, type KernelArgs, type KernelResult, type Shape4, view, alloc, assertFloat32 } from './heap.ts';
import { forEachPoolWindow, type PoolGradAttrs } from './pool-attrs.ts';

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
  const C = info.inChannels;
  const dx = alloc(backend, input.shape);
  const xv = view(backend, input);
  const dyv = view(backend, dy);
  const dxv = view(backend, dx);
  dxv.fill(0);
  forEachPoolWindow(info, (offsets, count, dyBase) => {
    for (let c = 0; c < C; c++) {
      let best = Number.NEGATIVE_INFINITY;
      let at = -1;
      for (let i = 0; i < count; i++) {
        const v = xv[offsets[i] + c];
        if (v > best) {
          best = v;
          at = offsets[i] + c;
        }
      }
      if (at >= 0) dxv[at] += dyv[dyBase + c];
    }
  });
  return dx;
}
