/** Tensor data on the wasm heap, as the JavaScript kernels here read and write it (float32, NHWC). */
import { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export type Info = tf.TensorInfo;
export type KernelArgs = Parameters<tf.KernelFunc>[0];
export type KernelResult = ReturnType<tf.KernelFunc>;
export type Pad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
export type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;
export type Shape4 = [number, number, number, number];

/**
 * Float32 view of a tensor's data on the wasm heap. Views are invalidated when the heap grows, i.e. by any
 * allocation (makeOutput, a kernel call): take them after allocating.
 */
export function view(backend: BackendWasm, info: Info): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

export function alloc(backend: BackendWasm, shape: number[]): Info {
  return backend.makeOutput(shape, 'float32');
}

export function free(backend: BackendWasm, infos: Info[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

export function assertFloat32(kernel: string, ...infos: Info[]): void {
  for (const info of infos) {
    if (info.dtype !== 'float32') throw new Error(`${kernel} on wasm supports float32 only, got ${info.dtype}`);
  }
}

/** Copies n floats from src[s..] to dst[d..]; short runs by loop (cheaper than subarray/set for them). */
export function copyRun(src: Float32Array, s: number, dst: Float32Array, d: number, n: number): void {
  if (n >= 32) {
    dst.set(src.subarray(s, s + n), d);
  } else {
    for (let i = 0; i < n; i++) dst[d + i] = src[s + i];
  }
}

/** dst[C, R] = src[R, C]^T, blocked. */
export function transpose2D(src: Float32Array, dst: Float32Array, R: number, C: number): void {
  const T = 32;
  for (let r0 = 0; r0 < R; r0 += T) {
    const r1 = Math.min(r0 + T, R);
    for (let c0 = 0; c0 < C; c0 += T) {
      const c1 = Math.min(c0 + T, C);
      for (let c = c0; c < c1; c++) {
        let o = c * R + r0;
        let i = r0 * C + c;
        for (let r = r0; r < r1; r++) {
          dst[o++] = src[i];
          i += C;
        }
      }
    }
  }
}

/** Generic permutation of a rank-4 array (used for NCHW <-> NHWC only, which no net here uses). */
function permute4(src: Float32Array, shape: Shape4, perm: Shape4, dst: Float32Array): void {
  const st = [shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1];
  const os = perm.map((p) => shape[p]);
  const is = perm.map((p) => st[p]);
  let o = 0;
  for (let a = 0; a < os[0]; a++) {
    for (let b = 0; b < os[1]; b++) {
      for (let c = 0; c < os[2]; c++) {
        let i = a * is[0] + b * is[1] + c * is[2];
        for (let d = 0; d < os[3]; d++) {
          dst[o++] = src[i];
          i += is[3];
        }
      }
    }
  }
}

export function permuted(backend: BackendWasm, info: Info, perm: Shape4): Info {
  const shape = info.shape as Shape4;
  const out = alloc(backend, perm.map((p) => shape[p]));
  permute4(view(backend, info), shape, perm, view(backend, out));
  return out;
}

/** The attributes of both convolution gradients (Conv2DBackpropInput, Conv2DBackpropFilter) but the shape of what they compute. */
export interface ConvGradAttrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode: RoundingMode;
}

/** The geometry of the convolution a gradient belongs to, and whether its tensors are NHWC (else NCHW). */
export function convGradInfo(attrs: ConvGradAttrs, inputShape: Shape4, filterShape: Shape4): { info: tf.backend_util.Conv2DInfo; channelsLast: boolean } {
  const format = tf.backend_util.convertConv2DDataFormat(attrs.dataFormat ?? 'NHWC');
  const info = tf.backend_util.computeConv2DInfo(inputShape, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, format);
  return { info, channelsLast: format === 'channelsLast' };
}
