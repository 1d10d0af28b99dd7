/** AvgPoolGrad for wasm (global pooling took ~1 s at [64,32,32,128]) as a scatter in JavaScript; see index.ts. */
import { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Info, type KernelArgs, type KernelResult, type Shape4, view, alloc, assertFloat32 } from './heap.ts';
import { forEachPoolWindow, type PoolGradAttrs } from './pool-attrs.ts';

/** AvgPoolGrad as a scatter of dy / (filter area) over each window (the cpu backend's semantics). */
export function avgPoolGrad(args: KernelArgs): KernelResult {
  const backend = args.backend as BackendWasm;
  const { dy, input } = args.inputs as { dy: Info; input: Info };
  const { filterSize, strides, pad } = args.attrs as unknown as PoolGradAttrs;
  assertFloat32('AvgPoolGrad', dy, input);
  const info = tf.backend_util.computePool2DInfo(input.shape as Shape4, filterSize, strides, 1, pad);
  const C = info.inChannels;
  const mult = 1 / (info.filterHeight * info.filterWidth);
  const dx = alloc(backend, input.shape);
  const dyv = view(backend, dy);
  const dxv = view(backend, dx);
  dxv.fill(0);
  const g = new Float32Array(C);
  forEachPoolWindow(info, (offsets, count, dyBase) => {
    for (let c = 0; c < C; c++) g[c] = dyv[dyBase + c] * mult;
    for (let i = 0; i < count; i++) {
      const base = offsets[i];
      for (let c = 0; c < C; c++) dxv[base + c] += g[c];
    }
  });
  return dx;
}
