/** Conv2DBackpropFilter for wasm (missing there): chunked GEMMs on the backend's XNNPACK path; see index.ts. */
import { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Info, type KernelArgs, type KernelResult, type ConvGradAttrs, type Shape4, convGradInfo, view, alloc, free, assertFloat32, copyRun, permuted } from './heap.ts';
import { orig } from './originals.ts';

/**
 * x' [ci, Hp, Wp, B] from x [B, H, W, ci]: x'[c, r, q, b] = x[b, r - pt, q - pl, c] (0 outside x). Every (r, q)
 * pixel is a [B, ci] -> [ci, B] transpose, blocked over b and c.
 */
function packInputForFilterGrad(
  src: Float32Array,
  dst: Float32Array,
  B: number,
  H: number,
  W: number,
  C: number,
  Hp: number,
  Wp: number,
  pt: number,
  pl: number,
): void {
  dst.fill(0);
  const T = 16;
  const inB = H * W * C; // stride of b in src
  const outC = Hp * Wp * B; // stride of c in dst
  const r0 = Math.max(0, pt);
  const r1 = Math.min(Hp, H + pt);
  const q0 = Math.max(0, pl);
  const q1 = Math.min(Wp, W + pl);
  for (let r = r0; r < r1; r++) {
    const h = r - pt;
    for (let q = q0; q < q1; q++) {
      const w = q - pl;
      const inPix = (h * W + w) * C;
      const outPix = (r * Wp + q) * B;
      for (let b0 = 0; b0 < B; b0 += T) {
        const b1 = Math.min(b0 + T, B);
        for (let c = 0; c < C; c++) {
          let o = c * outC + outPix + b0;
          let i = b0 * inB + inPix + c;
          for (let b = b0; b < b1; b++) {
            dst[o++] = src[i];
            i += inB;
          }
        }
      }
    }
  }
}

/**
 * Tuning knobs, exported for tests and benchmarks. filterGradChunkBytes: target size of one chunk's dy operand in
 * the filter gradient (the GEMM "weights", which XNNPACK packs and keeps in cache); 512 KiB-4 MiB measured within
 * noise of each other, 2 MiB best on average.
 */
export const wasmKernelTuning = { filterGradChunkBytes: 2 << 20 };

/**
 * dW [KH, KW, ci, co] for NHWC x and dy, as a sum of XNNPACK GEMMs over chunks of output pixels:
 *   dW[(kh,kw,c), o] = sum_{(oh,ow) in chunk, b} A[(kh,kw,c), (oh,ow,b)] * D[(oh,ow,b), o]
 * with A[(kh,kw,c), (oh,ow,b)] = x[b, oh*sh+kh-pt, ow*sw+kw-pl, c] (im2col, transposed) and D = dy reordered.
 * x is first laid out as x' [ci, Hp, Wp, B] (padding included), so each row of A is a series of contiguous runs of
 * x' (runs of OW*B floats for stride 1). Chunking keeps D in cache while XNNPACK streams A past it; one unchunked
 * GEMM (or one Conv2D with dy as filter) is memory-bound and ~1.6-2.8x slower than the forward conv.
 */
function conv2DBackpropFilterNHWC(backend: BackendWasm, x: Info, dy: Info, info: tf.backend_util.Conv2DInfo): Info {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: ci, outHeight: OH, outWidth: OW } = info;
  const { outChannels: co, filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
  const KK = KH * KW * ci;
  const P = OH * OW;
  if (B === 0 || P === 0 || KK === 0 || co === 0) {
    const z = alloc(backend, [KH, KW, ci, co]);
    view(backend, z).fill(0);
    return z;
  }
  const Hp = KH + sh * (OH - 1);
  const Wp = KW + sw * (OW - 1);
  // output pixels (oh, ow) per chunk; each brings B rows of D
  const n = Math.max(1, Math.min(P, Math.floor(wasmKernelTuning.filterGradChunkBytes / (4 * B * co))));
  const xP = alloc(backend, [ci, Hp, Wp, B]);
  const aC = alloc(backend, [1, KK, n * B]);
  let acc: Info | null = null;
  try {
    packInputForFilterGrad(view(backend, x), view(backend, xP), B, H, W, ci, Hp, Wp, info.padInfo.top, info.padInfo.left);
    for (let p0 = 0; p0 < P; p0 += n) {
      const m = Math.min(n, P - p0);
      const K = m * B;
      const dC = alloc(backend, [1, K, co]); // a new tensor per chunk: XNNPACK caches packed weights by tensor id
      let y: Info | null = null;
      try {
        {
          // D rows in (oh, ow, b) order
          const src = view(backend, dy);
          const dst = view(backend, dC);
          for (let j = 0; j < m; j++) {
            for (let b = 0; b < B; b++) copyRun(src, (b * P + p0 + j) * co, dst, (j * B + b) * co, co);
          }
        }
        {
          const src = view(backend, xP);
          const dst = view(backend, aC);
          let o = 0;
          for (let kh = 0; kh < KH; kh++) {
            for (let kw = 0; kw < KW; kw++) {
              for (let c = 0; c < ci; c++) {
                for (let j = 0; j < m; ) {
                  const p = p0 + j;
                  const oh = Math.floor(p / OW);
                  const ow = p - oh * OW;
                  // with stride 1, consecutive ow of one row are adjacent in x'
                  const run = sw === 1 ? Math.min(m - j, OW - ow) : 1;
                  copyRun(src, ((c * Hp + oh * sh + kh) * Wp + ow * sw + kw) * B, dst, o, run * B);
                  o += run * B;
                  j += run;
                }
              }
            }
          }
        }
        const a: Info = m === n ? aC : { dataId: aC.dataId, shape: [1, KK, K], dtype: 'float32' };
        y = orig().batchMatMul({
          inputs: { a, b: dC },
          backend,
          attrs: { transposeA: false, transposeB: false },
        }) as Info; // [1, KK, co]
        if (acc == null) {
          acc = y;
          y = null;
        } else {
          const yv = view(backend, y);
          const av = view(backend, acc);
          for (let i = 0; i < av.length; i++) av[i] += yv[i];
        }
      } finally {
        free(backend, y == null ? [dC] : [dC, y]);
      }
    }
  } catch (e) {
    if (acc != null) free(backend, [acc]);
    throw e;
  } finally {
    free(backend, [xP, aC]);
  }
  // [KK, co] is [KH, KW, ci, co]
  return { dataId: acc!.dataId, shape: [KH, KW, ci, co], dtype: 'float32' };
}

export function conv2DBackpropFilter(args: KernelArgs): KernelResult {
  const backend = args.backend as BackendWasm;
  const { x, dy } = args.inputs as { x: Info; dy: Info };
  const attrs = args.attrs as unknown as ConvGradAttrs & { filterShape: Shape4 };
  assertFloat32('Conv2DBackpropFilter', x, dy);
  const { info, channelsLast } = convGradInfo(attrs, x.shape as Shape4, attrs.filterShape);
  if (channelsLast) return conv2DBackpropFilterNHWC(backend, x, dy, info);
  const xN = permuted(backend, x, [0, 2, 3, 1]);
  const dyN = permuted(backend, dy, [0, 2, 3, 1]);
  try {
    return conv2DBackpropFilterNHWC(backend, xN, dyN, info);
  } finally {
    free(backend, [xN, dyN]);
  }
}
