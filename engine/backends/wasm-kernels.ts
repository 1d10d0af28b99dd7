/**
 * Training kernels for the TensorFlow.js wasm backend (tfjs 4.22).
 *
 * As shipped, the wasm backend cannot train a conv net (`Conv2DBackpropFilter` is not registered for 'wasm'), and
 * several other kernels that training runs are 2-40x slower than they need to be. `registerWasmTrainingKernels()`
 * registers, for backendName 'wasm' (all float32, NHWC; NCHW is converted):
 *
 * - Conv2DBackpropFilter (missing): chunked GEMMs on the backend's own XNNPACK matmul path.
 *     dW[(kh,kw,ci), co] = sum_{oh,ow,b} x[b, oh*sh+kh-pt, ow*sw+kw-pl, ci] * dy[b,oh,ow,co]
 *   x is laid out once (JS) as x' [ci, Hp, Wp, B] with the padding built in; for each chunk of output pixels the
 *   transposed im2col rows are runs copied from x' and dy's rows are the GEMM "weights" (~2 MiB, so they stay in
 *   cache); partial results are summed. Tried first and dropped: ONE Conv2D of x' with dy as a dilated "filter"
 *   (1.6-2.9x the forward time: memory-bound, and the backend transposes such a huge filter with a slow generic
 *   loop), and im2col with the im2col chunk as weights (~1.5x).
 * - Conv2DBackpropInput (replaced; was 7-13x the forward Conv2D): wasm Conv2D of dy with the flipped, transposed
 *   filter. Stride s > 1 is split into s*s phases (sub-pixel decomposition): dx rows/cols congruent to r mod s are
 *   a stride-1 convolution of dy with the taps (r+pt) mod s + s*m, so no work is spent on inserted zeros.
 * - BatchMatMul and _FusedMatMul (replaced for transposed or batched operands): the wasm backend sends those to a
 *   naive C++ loop (`slow_batch_matmul`), 12-25x slower than its XNNPACK path, and the dense layers' backward pass
 *   is exactly that (dW = x^T dy, dx = dy W^T). Operands are transposed in JS and sent to the XNNPACK path. (That
 *   naive loop also adds a _FusedMatMul bias wrongly: rows i > 0 get bias[N-1]; the replacement fixes this.)
 * - Tile (the batch-norm gradient tiles a [1,1,1,C] tensor to the activation's shape: ~45 ns/element in wasm),
 *   Sum/Mean over leading axes (batch-norm statistics and bias/scale gradients; the wasm kernels transpose first),
 *   MaxPoolGrad (~20x MaxPool) and AvgPoolGrad (global pooling: ~1 s at [64,32,32,128]): JavaScript on the heap.
 *
 * Left alone after measuring: Conv2D, MaxPool, FusedBatchNorm and the element-wise ops (1-5 ns/element).
 * Not a kernel, so not fixable here: tf.randomNormal runs in JS at ~25 ns/element (210 ms for [64,32,32,128], as
 * much as that layer's conv) and tf.randomUniform (dropout) at ~9 ns/element.
 *
 * Timings, measured 2026-11-26 on the 2-core build machine (AMD EPYC, wasm SIMD, one thread), ms per call. The
 * machine was shared with other jobs (load average 2.8-6.3 on 2 cores), so single numbers vary by +-30%.
 * Conv shapes [B,H,H,ci] -> co, 'same' padding; "before" is the shipped wasm kernel (Conv2DBackpropFilter had
 * none: "not registered"; the cpu backend's takes ~90x a wasm Conv2D).
 *
 * | conv                         |   B | Conv2D | dW new | dx before -> after |
 * |------------------------------|-----|--------|--------|-------------------|
 * | MNIST conv1 28px 1->32 5x5   |  64 |    6.5 |     15 |     19 ->    16 |
 * | MNIST conv2 14px 32->64 5x5  |  64 |     30 |     39 |    271 ->    30 |
 * | VGG 32px 3->128 3x3          |  64 |     33 |     35 |    137 ->    28 |
 * | VGG 32px 128->128            |  64 |    473 |    511 |   4496 ->   444 |
 * | VGG 16px 128->256            |  64 |    222 |    245 |   2107 ->   206 |
 * | VGG 16px 256->256            |  64 |    439 |    482 |   5336 ->   434 |
 * | VGG 8px 256->512             |  64 |    386 |    334 |   2017 ->   309 |
 * | VGG 8px 512->512             |  64 |    422 |    479 |   5084 ->   456 |
 * | ResNet stem 32px 3->64 7x7/2 |  64 |     18 |     12 |     68 ->    25 |
 * | ResNet 16px 64->64 3x3       |  64 |     27 |     34 |    271 ->    28 |
 * | ResNet 16px 64->128 3x3/2    |  64 |     16 |     20 |    137 ->    15 |
 * | ResNet 16px 64->128 1x1/2    |  64 |    1.6 |    7.4 |     29 ->   1.9 |
 * | ResNet 4px 256->512 3x3/2    |  64 |     15 |     20 |    102 ->    26 |
 * | MNIST conv1 28px 1->32 5x5   | 256 |     35 |     82 |    161 ->   132 |
 * | MNIST conv2 14px 32->64 5x5  | 256 |    289 |    308 |      - ->   209 |
 * | VGG 32px 3->128 3x3          | 256 |    243 |    252 |   1055 ->   112 |
 * | VGG 32px 128->128            | 256 |   2548 |   1944 |      - ->  2317 |
 * | VGG 16px 128->256            | 256 |   1813 |   1870 |      - ->  1200 |
 * | VGG 16px 256->256            | 256 |   2468 |   2446 |      - ->  2051 |
 * | VGG 8px 256->512             | 256 |   1017 |    938 |      - ->  1009 |
 * | VGG 8px 512->512             | 256 |   1771 |   2512 |      - ->  1722 |
 * | ResNet stem 32px 3->64 7x7/2 | 256 |     34 |     52 |    272 ->    82 |
 * | ResNet 16px 64->64 3x3       | 256 |    111 |    160 |      - ->   114 |
 * | ResNet 16px 64->128 3x3/2    | 256 |     60 |     79 |    560 ->    78 |
 * | ResNet 16px 64->128 1x1/2    | 256 |     11 |     22 |     82 ->    23 |
 * | ResNet 4px 256->512 3x3/2    | 256 |     61 |     72 |    465 ->    72 |
 * ("-": the old kernel not timed, ~10x the forward time as at B=64. dx of a network's first conv is never needed.)
 *
 * | other kernels (before -> after)                | B=64          | B=256          |
 * |------------------------------------------------|---------------|----------------|
 * | Tile [1,1,1,C] -> [B,28,28,32]                 |    82 -> 2.6  |   476 -> 14    |
 * | Tile [1,1,1,C] -> [B,32,32,128]                |   548 -> 21   |  2206 -> 148   |
 * | Sum  [B,32,32,128] axes 0,1,2                  |    57 -> 20   |   310 -> 79    |
 * | Mean [B,32,32,128] axes 0,1,2                  |    66 -> 32   |   401 -> 109   |
 * | MaxPoolGrad [B,28,28,32] 2x2/2 (MaxPool 1-6)   |    28 -> 12   |   219 -> 92    |
 * | MaxPoolGrad [B,32,32,128] 2x2/2 (MaxPool 7-93) |   148 -> 61   |  1413 -> 870   |
 * | MaxPoolGrad [B,32,32,128] 3x3/2                |   201 -> 99   |  2083 -> 1079  |
 * | AvgPoolGrad [B,32,32,128] global               |   880 -> 38   |  4204 -> 187   |
 * | AvgPoolGrad [B,8,8,512] global                 |    65 -> 15   |   328 -> 57    |
 * | BatchMatMul [B,3136]^T x [B,512] (dense dW)    |   231 -> 8.8  |   635 -> 42    |
 * | BatchMatMul [B,512] x [3136,512]^T (dense dx)  |   118 -> 13   |   375 -> 37    |
 * | (BatchMatMul [B,3136] x [3136,512] forward)    |   4.8         |    21          |
 *
 * A whole training step of an MNIST LR-net-like model (two LR convs with BN/relu/maxpool, dense 3136->512->10,
 * dropout, Adam): 450-740 ms at B=64 and ~2.1 s at B=256 (load-dependent); it could not run before.
 *
 * Call `registerWasmTrainingKernels()` once the wasm backend is loaded (importing '@tensorflow/tfjs-backend-wasm'
 * registers it), before or after `tf.setBackend('wasm')`. It is idempotent.
 */
import { tf } from '../tf.ts';
import '@tensorflow/tfjs-backend-wasm';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

type Info = tf.TensorInfo;
type KernelArgs = Parameters<tf.KernelFunc>[0];
type KernelResult = ReturnType<tf.KernelFunc>;
type Pad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;
type Shape4 = [number, number, number, number];

const BACKEND = 'wasm';
/** Marks the kernel functions defined here, so a second registration (even from another copy of this module) is a no-op. */
const MARK = Symbol.for('lrnet.wasmTrainingKernel');

/* ------------------------------------------------------------------------------------------------------------ */
/* Heap helpers                                                                                                 */
/* ------------------------------------------------------------------------------------------------------------ */

/**
 * Float32 view of a tensor's data on the wasm heap. Views are invalidated when the heap grows, i.e. by any
 * allocation (makeOutput, a kernel call): take them after allocating.
 */
function view(backend: BackendWasm, info: Info): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

function alloc(backend: BackendWasm, shape: number[]): Info {
  return backend.makeOutput(shape, 'float32');
}

function free(backend: BackendWasm, infos: Info[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

function assertFloat32(kernel: string, ...infos: Info[]): void {
  for (const info of infos) {
    if (info.dtype !== 'float32') throw new Error(`${kernel} on wasm supports float32 only, got ${info.dtype}`);
  }
}

/** Copies n floats from src[s..] to dst[d..]; short runs by loop (cheaper than subarray/set for them). */
function copyRun(src: Float32Array, s: number, dst: Float32Array, d: number, n: number): void {
  if (n >= 32) {
    dst.set(src.subarray(s, s + n), d);
  } else {
    for (let i = 0; i < n; i++) dst[d + i] = src[s + i];
  }
}

/** dst[C, R] = src[R, C]^T, blocked. */
function transpose2D(src: Float32Array, dst: Float32Array, R: number, C: number): void {
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

function permuted(backend: BackendWasm, info: Info, perm: Shape4): Info {
  const shape = info.shape as Shape4;
  const out = alloc(backend, perm.map((p) => shape[p]));
  permute4(view(backend, info), shape, perm, view(backend, out));
  return out;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Original wasm kernels                                                                                        */
/* ------------------------------------------------------------------------------------------------------------ */

interface Originals {
  conv2d: tf.KernelFunc;
  batchMatMul: tf.KernelFunc;
  fusedMatMul: tf.KernelFunc;
  sum: tf.KernelFunc;
  mean: tf.KernelFunc;
}
let originals: Originals | null = null;

function orig(): Originals {
  if (originals == null) throw new Error('registerWasmTrainingKernels() has not run');
  return originals;
}

/** Stride-1 NHWC Conv2D through the wasm backend's own (XNNPACK) kernel. */
function conv2d(backend: BackendWasm, x: Info, filter: Info, pad: Pad): Info {
  return orig().conv2d({
    inputs: { x, filter },
    backend,
    attrs: { strides: [1, 1], pad, dataFormat: 'NHWC', dilations: [1, 1] },
  }) as Info;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Conv2DBackpropFilter                                                                                         */
/* ------------------------------------------------------------------------------------------------------------ */

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

function conv2DBackpropFilter(args: KernelArgs): KernelResult {
  const backend = args.backend as BackendWasm;
  const { x, dy } = args.inputs as { x: Info; dy: Info };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs as unknown as {
    strides: number | [number, number];
    pad: Pad;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode: RoundingMode;
    filterShape: Shape4;
  };
  assertFloat32('Conv2DBackpropFilter', x, dy);
  const format = tf.backend_util.convertConv2DDataFormat(dataFormat ?? 'NHWC');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4,
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    format,
  );
  if (format === 'channelsLast') return conv2DBackpropFilterNHWC(backend, x, dy, info);
  const xN = permuted(backend, x, [0, 2, 3, 1]);
  const dyN = permuted(backend, dy, [0, 2, 3, 1]);
  try {
    return conv2DBackpropFilterNHWC(backend, xN, dyN, info);
  } finally {
    free(backend, [xN, dyN]);
  }
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Conv2DBackpropInput                                                                                          */
/* ------------------------------------------------------------------------------------------------------------ */

/** One output phase of a strided transposed convolution along one spatial axis. */
interface Phase {
  /** first output index of the phase (dx index = r + s*u) */
  r: number;
  /** first filter tap of the phase (taps c, c+s, c+2s, ...) */
  c: number;
  /** number of taps */
  m: number;
  /** number of outputs */
  u: number;
  /** dy padding before/after (may be negative: crop) */
  before: number;
  after: number;
}

/**
 * Phases along an axis: in size N (dx), out size O (dy), K taps, stride s, forward padding p. For dx index
 * i = r + s*u: dx[i] = sum_m dy[u + q - m] * w[c + s*m], with c = (r+p) mod s, q = floor((r+p)/s), i.e. a stride-1
 * correlation of dy (padded by m-1-q before) with the reversed taps.
 */
function phases(N: number, O: number, K: number, s: number, p: number): Phase[] {
  const out: Phase[] = [];
  for (let r = 0; r < s; r++) {
    const t = r + p;
    const c = ((t % s) + s) % s;
    const q = (t - c) / s;
    const m = c < K ? Math.ceil((K - c) / s) : 0;
    const u = r < N ? Math.ceil((N - r) / s) : 0;
    const before = m - 1 - q;
    out.push({ r, c, m, u, before, after: u + m - 1 - O - before });
  }
  return out;
}

function conv2DBackpropInputNHWC(backend: BackendWasm, dy: Info, filter: Info, info: tf.backend_util.Conv2DInfo): Info {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: ci, outHeight: OH, outWidth: OW } = info;
  const { outChannels: co, filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
  const rows = phases(H, OH, KH, sh, info.padInfo.top);
  const cols = phases(W, OW, KW, sw, info.padInfo.left);
  const single = sh === 1 && sw === 1;
  const dx: Info | null = single ? null : alloc(backend, [B, H, W, ci]);
  if (dx != null) view(backend, dx).fill(0);
  const temps: Info[] = [];
  try {
    for (const ph of rows) {
      for (const pw of cols) {
        if (ph.u === 0 || pw.u === 0) continue;
        if (ph.m === 0 || pw.m === 0 || B === 0) {
          if (single) {
            const z = alloc(backend, [B, H, W, ci]);
            view(backend, z).fill(0);
            return z;
          }
          continue; // dx already zero there
        }
        // Sub-filter g[m'h, m'w, co, ci] = w[ch + sh*(mh-1-m'h), cw + sw*(mw-1-m'w), ci, co].
        const g = alloc(backend, [ph.m, pw.m, co, ci]);
        temps.push(g);
        {
          const wv = view(backend, filter);
          const gv = view(backend, g);
          for (let a = 0; a < ph.m; a++) {
            const kh = ph.c + sh * (ph.m - 1 - a);
            for (let b = 0; b < pw.m; b++) {
              const kw = pw.c + sw * (pw.m - 1 - b);
              const wBase = (kh * KW + kw) * ci * co;
              const gBase = (a * pw.m + b) * co * ci;
              transpose2D(wv.subarray(wBase, wBase + ci * co), gv.subarray(gBase, gBase + ci * co), ci, co);
            }
          }
        }
        let input = dy;
        let pad: Pad = [
          [0, 0],
          [ph.before, ph.after],
          [pw.before, pw.after],
          [0, 0],
        ];
        if (ph.before < 0 || ph.after < 0 || pw.before < 0 || pw.after < 0) {
          // XNNPACK takes no negative padding: materialise the cropped/padded dy.
          input = padOrCrop(backend, dy, ph.before, ph.after, pw.before, pw.after);
          temps.push(input);
          pad = 'valid';
        }
        const y = conv2d(backend, input, g, pad); // [B, ph.u, pw.u, ci]
        if (single) return y;
        temps.push(y);
        // Interleave: dx[b, ph.r + sh*u, pw.r + sw*v, :] = y[b, u, v, :]
        const yv = view(backend, y);
        const dv = view(backend, dx!);
        for (let b = 0; b < B; b++) {
          for (let u = 0; u < ph.u; u++) {
            const h = ph.r + sh * u;
            for (let v = 0; v < pw.u; v++) {
              const w = pw.r + sw * v;
              copyRun(yv, ((b * ph.u + u) * pw.u + v) * ci, dv, ((b * H + h) * W + w) * ci, ci);
            }
          }
        }
      }
    }
  } catch (e) {
    if (dx != null) free(backend, [dx]);
    throw e;
  } finally {
    free(backend, temps);
  }
  if (dx == null) {
    // stride 1 with an empty phase (empty input): nothing was computed
    const z = alloc(backend, [B, H, W, ci]);
    view(backend, z).fill(0);
    return z;
  }
  return dx;
}

/** dy [B, O1, O2, C] padded with zeros (negative amounts crop) on both spatial axes. */
function padOrCrop(backend: BackendWasm, x: Info, top: number, bottom: number, left: number, right: number): Info {
  const [B, H, W, C] = x.shape as Shape4;
  const Ho = H + top + bottom;
  const Wo = W + left + right;
  const out = alloc(backend, [B, Math.max(Ho, 0), Math.max(Wo, 0), C]);
  const src = view(backend, x);
  const dst = view(backend, out);
  dst.fill(0);
  for (let b = 0; b < B; b++) {
    for (let r = Math.max(0, top); r < Math.min(Ho, H + top); r++) {
      const q0 = Math.max(0, left);
      const q1 = Math.min(Wo, W + left);
      if (q1 <= q0) continue;
      copyRun(src, ((b * H + r - top) * W + q0 - left) * C, dst, ((b * Ho + r) * Wo + q0) * C, (q1 - q0) * C);
    }
  }
  return out;
}

function conv2DBackpropInput(args: KernelArgs): KernelResult {
  const backend = args.backend as BackendWasm;
  const { dy, filter } = args.inputs as { dy: Info; filter: Info };
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = args.attrs as unknown as {
    strides: number | [number, number];
    pad: Pad;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode: RoundingMode;
    inputShape: Shape4;
  };
  assertFloat32('Conv2DBackpropInput', dy, filter);
  const format = tf.backend_util.convertConv2DDataFormat(dataFormat ?? 'NHWC');
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as Shape4,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    format,
  );
  if (format === 'channelsLast') return conv2DBackpropInputNHWC(backend, dy, filter, info);
  const dyN = permuted(backend, dy, [0, 2, 3, 1]);
  let dxN: Info | null = null;
  try {
    dxN = conv2DBackpropInputNHWC(backend, dyN, filter, info);
    return permuted(backend, dxN, [0, 3, 1, 2]);
  } finally {
    free(backend, dxN == null ? [dyN] : [dyN, dxN]);
  }
}

/* ------------------------------------------------------------------------------------------------------------ */
/* BatchMatMul / _FusedMatMul                                                                                   */
/* ------------------------------------------------------------------------------------------------------------ */

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
function matMulViaXnn(
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
function needsXnnRoute(a: Info, b: Info, transposeA: boolean, transposeB: boolean, always = false): boolean {
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

function batchMatMul(args: KernelArgs): KernelResult {
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

function fusedMatMul(args: KernelArgs): KernelResult {
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

/* ------------------------------------------------------------------------------------------------------------ */
/* Tile, Sum/Mean over leading axes, MaxPoolGrad, AvgPoolGrad                                                   */
/* ------------------------------------------------------------------------------------------------------------ */

type AnyArray = Float32Array | Int32Array | Uint8Array;

function stridesOf(shape: number[]): number[] {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

/** The block a[start, start+len) repeated so that it occupies `times` consecutive blocks (doubling memmoves). */
function replicate(a: AnyArray, start: number, len: number, times: number): void {
  const total = len * times;
  let filled = len;
  while (filled < total) {
    const n = Math.min(filled, total - filled);
    a.copyWithin(start + filled, start, start + n);
    filled += n;
  }
}

/**
 * Tile (the batch-norm gradient tiles a [1,1,1,C] tensor to the activation's shape): the wasm kernel costs ~45 ns
 * per output element; this one writes each input row once and replicates blocks with memmove.
 */
function tile(args: KernelArgs): KernelResult {
  const backend = args.backend as BackendWasm;
  const { x } = args.inputs as { x: Info };
  const { reps } = args.attrs as unknown as { reps: number[] };
  const rank = x.shape.length;
  const outShape = x.shape.map((d, i) => d * reps[i]);
  const out = backend.makeOutput(outShape, x.dtype);
  if (tf.util.sizeFromShape(outShape) === 0) return out;
  const src = backend.typedArrayFromHeap(x) as AnyArray;
  const dst = backend.typedArrayFromHeap(out) as AnyArray;
  if (rank === 0) {
    dst[0] = src[0];
    return out;
  }
  const xs = stridesOf(x.shape);
  const os = stridesOf(outShape);
  const fill = (d: number, s: number, o: number): void => {
    if (d === rank - 1) {
      const n = x.shape[d];
      dst.set(src.subarray(s, s + n), o);
      replicate(dst, o, n, reps[d]);
      return;
    }
    for (let i = 0; i < x.shape[d]; i++) fill(d + 1, s + i * xs[d], o + i * os[d]);
    replicate(dst, o, x.shape[d] * os[d], reps[d]);
  };
  fill(0, 0, 0);
  return out;
}

/**
 * Sum/Mean over leading axes ([0..k)), e.g. batch-norm statistics and bias gradients over [0,1,2] of NHWC: the wasm
 * kernels first transpose the reduced axes innermost with a slow generic transpose; a column sum is 4-5x faster.
 * Other reductions go to the original kernels.
 */
function leadingReduction(x: Info, axis: number | number[]): number | null {
  if (x.dtype !== 'float32' || x.shape.length === 0) return null;
  const axes = tf.util.parseAxisParam(axis, x.shape).slice().sort((a, b) => a - b);
  if (axes.length === 0 || axes.length === x.shape.length) return null; // nothing / everything reduced
  for (let i = 0; i < axes.length; i++) if (axes[i] !== i) return null;
  return axes.length;
}

function reduceLeading(backend: BackendWasm, x: Info, k: number, keepDims: boolean, mean: boolean): Info {
  const outer = tf.util.sizeFromShape(x.shape.slice(0, k));
  const innerShape = x.shape.slice(k);
  const inner = tf.util.sizeFromShape(innerShape);
  const outShape = keepDims ? [...new Array<number>(k).fill(1), ...innerShape] : innerShape;
  const out = alloc(backend, outShape);
  const src = view(backend, x);
  const dst = view(backend, out);
  const acc = new Float64Array(inner);
  for (let r = 0; r < outer; r++) {
    const base = r * inner;
    for (let i = 0; i < inner; i++) acc[i] += src[base + i];
  }
  const scale = mean ? 1 / outer : 1;
  for (let i = 0; i < inner; i++) dst[i] = acc[i] * scale;
  return out;
}

function makeReduction(name: 'sum' | 'mean'): (original: tf.KernelFunc) => tf.KernelFunc {
  return (original) => (args: KernelArgs): KernelResult => {
    const { x } = args.inputs as { x: Info };
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const k = leadingReduction(x, axis);
    if (k == null || tf.util.sizeFromShape(x.shape) === 0) return original(args);
    return reduceLeading(args.backend as BackendWasm, x, k, keepDims, name === 'mean');
  };
}

interface PoolGradAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/**
 * MaxPoolGrad as a scatter: per output window, the first maximum of x (row-major scan, as the cpu backend does)
 * receives dy. The wasm kernel is ~20x slower than MaxPool.
 */
function maxPoolGrad(args: KernelArgs): KernelResult {
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

/** AvgPoolGrad as a scatter of dy / (filter area) over each window (the cpu backend's semantics). */
function avgPoolGrad(args: KernelArgs): KernelResult {
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

/* ------------------------------------------------------------------------------------------------------------ */
/* Registration                                                                                                 */
/* ------------------------------------------------------------------------------------------------------------ */

function marked(f: tf.KernelFunc): tf.KernelFunc {
  (f as unknown as Record<symbol, boolean>)[MARK] = true;
  return f;
}

function isMarked(config: tf.KernelConfig | undefined): boolean {
  return config != null && (config.kernelFunc as unknown as Record<symbol, boolean>)[MARK] === true;
}

function required(name: string): tf.KernelConfig {
  const config = tf.getKernel(name, BACKEND);
  if (config == null) {
    throw new Error(`kernel ${name} is not registered for '${BACKEND}': import '@tensorflow/tfjs-backend-wasm' first`);
  }
  return config;
}

/** Registers `kernelFunc` for name on wasm, replacing (but keeping the setup/dispose of) an existing kernel. */
function install(name: string, kernelFunc: tf.KernelFunc): void {
  const existing = tf.getKernel(name, BACKEND);
  if (isMarked(existing)) return;
  if (existing != null) tf.unregisterKernel(name, BACKEND);
  tf.registerKernel({
    kernelName: name,
    backendName: BACKEND,
    kernelFunc: marked(kernelFunc),
    // The original's setup (e.g. binding its wasm function) must still run at setBackend: we call it.
    setupFunc: existing?.setupFunc,
    disposeFunc: existing?.disposeFunc,
  });
}

/**
 * Registers on the 'wasm' backend: Conv2DBackpropFilter (missing there), and faster Conv2DBackpropInput,
 * BatchMatMul and _FusedMatMul. Idempotent; call after '@tensorflow/tfjs-backend-wasm' is imported, before or after
 * `tf.setBackend('wasm')`.
 */
export function registerWasmTrainingKernels(): void {
  if (originals == null) {
    const conv = required(tf.Conv2D);
    const mm = required(tf.BatchMatMul);
    const fmm = required(tf._FusedMatMul);
    // If another copy of this module registered first, these are its marked functions, which is fine.
    originals = {
      conv2d: conv.kernelFunc,
      batchMatMul: mm.kernelFunc,
      fusedMatMul: fmm.kernelFunc,
      sum: required(tf.Sum).kernelFunc,
      mean: required(tf.Mean).kernelFunc,
    };
  }
  const o = originals;
  install(tf.Conv2DBackpropFilter, conv2DBackpropFilter);
  install(tf.Conv2DBackpropInput, conv2DBackpropInput);
  install(tf.BatchMatMul, batchMatMul);
  install(tf._FusedMatMul, fusedMatMul);
  install(tf.Tile, tile);
  install(tf.Sum, makeReduction('sum')(o.sum));
  install(tf.Mean, makeReduction('mean')(o.mean));
  install(tf.MaxPoolGrad, maxPoolGrad);
  install(tf.AvgPoolGrad, avgPoolGrad);
}
