/**
 * Training kernels for the TensorFlow.js wasm backend (tfjs 4.22).
 *
 * As shipped, the wasm backend cannot train a conv net (`Conv2DBackpropFilter` is not registered for 'wasm'), and
 * several kernels that training runs are far slower than they need to be. `registerWasmTrainingKernels()` supplies:
 *
 * - Conv2DBackpropFilter (missing): computed as ONE wasm (XNNPACK) Conv2D over transposed tensors:
 *     dW[kh,kw,ci,co] = sum_{b,oh,ow} x[b, oh*sh+kh-pt, ow*sw+kw-pl, ci] * dy[b,oh,ow,co]
 *   is a stride-1 convolution of x' = x laid out as [ci, Hp, Wp, B] (zero padding built in) with the "filter"
 *   dy' = dy laid out as [OH, OW, B, co], dilated by the forward stride; the result [ci, KH, KW, co] is laid out
 *   back to [KH, KW, ci, co]. The layout changes are done in JavaScript on the wasm heap (the backend's own
 *   Transpose kernel is ~6x slower than a blocked JS loop for these shapes).
 * - Conv2DBackpropInput (replaced, was ~10x slower than the forward Conv2D): computed with wasm Conv2D calls of dy
 *   with the flipped, transposed filter. Stride s > 1 is split into s*s phases (sub-pixel decomposition): output
 *   rows/cols congruent to r mod s are a stride-1 convolution of dy with the taps kh = (r+pt) mod s + s*m, so no
 *   work is wasted on zeros; the phases are interleaved into dx in JS.
 * - BatchMatMul and _FusedMatMul (replaced): the wasm backend sends every call with transposeA/transposeB or with
 *   a batch dimension to a naive C++ loop (`slow_batch_matmul`), 12-25x slower than its XNNPACK path. The dense
 *   layers' backward pass uses exactly those (dW = x^T dy, dx = dy W^T). Operands are transposed explicitly (JS)
 *   and sent to the XNNPACK path; batched products run one XNNPACK call per batch entry (or a single call when
 *   the right operand is shared).
 *
 * Everything else that training uses was measured and left alone (see the table): MaxPool/MaxPoolGrad,
 * FusedBatchNorm and the element-wise ops that the batch-norm gradient is made of, AvgPoolGrad.
 *
 * Timings, measured 2026-11-26 on the 2-core build machine (wasm backend, SIMD on, one thread; the machine was
 * shared with other jobs, so single numbers vary by about +-25%). Milliseconds per call; conv shapes are
 * [B,H,W,ci] -> co, 'same' padding.
 *
 * | shape                                 | B   | Conv2D fwd | BackpropFilter (new) | BackpropInput before -> after |
 * |---------------------------------------|-----|------------|----------------------|-------------------------------|
 * TIMINGS_TABLE
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
}
let originals: Originals | null = null;

function orig(): Originals {
  if (originals == null) throw new Error('registerWasmTrainingKernels() has not run');
  return originals;
}

function conv2d(
  backend: BackendWasm,
  x: Info,
  filter: Info,
  pad: Pad,
  dilations: [number, number] = [1, 1],
): Info {
  return orig().conv2d({
    inputs: { x, filter },
    backend,
    attrs: { strides: [1, 1], pad, dataFormat: 'NHWC', dilations },
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

function conv2DBackpropFilterNHWC(backend: BackendWasm, x: Info, dy: Info, info: tf.backend_util.Conv2DInfo): Info {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: ci, outHeight: OH, outWidth: OW } = info;
  const { outChannels: co, filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const dW = alloc(backend, [KH, KW, ci, co]);
  if (B === 0 || OH === 0 || OW === 0) {
    view(backend, dW).fill(0);
    return dW;
  }
  // Rows of x' needed: the dilated dy "filter" spans sh*(OH-1)+1 rows and slides over KH positions.
  const Hp = KH + sh * (OH - 1);
  const Wp = KW + sw * (OW - 1);
  const xP = alloc(backend, [ci, Hp, Wp, B]);
  const dyP = alloc(backend, [OH, OW, B, co]);
  let out: Info | null = null;
  try {
    packInputForFilterGrad(view(backend, x), view(backend, xP), B, H, W, ci, Hp, Wp, pt, pl);
    {
      // dy [B, OH, OW, co] -> [OH, OW, B, co]: runs of co floats.
      const src = view(backend, dy);
      const dst = view(backend, dyP);
      const P = OH * OW;
      for (let b = 0; b < B; b++) {
        for (let p = 0; p < P; p++) copyRun(src, (b * P + p) * co, dst, (p * B + b) * co, co);
      }
    }
    out = conv2d(backend, xP, dyP, 'valid', [sh, sw]); // [ci, KH, KW, co]
    const src = view(backend, out);
    const dst = view(backend, dW);
    const K = KH * KW;
    for (let c = 0; c < ci; c++) {
      for (let k = 0; k < K; k++) copyRun(src, (c * K + k) * co, dst, (k * ci + c) * co, co);
    }
  } finally {
    free(backend, out == null ? [xP, dyP] : [xP, dyP, out]);
  }
  return dW;
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

/** True where the wasm backend would use its naive loop and the XNNPACK route pays off. */
function needsXnnRoute(a: Info, b: Info, transposeA: boolean, transposeB: boolean): boolean {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return false;
  const aBatch = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const bBatch = tf.util.sizeFromShape(b.shape.slice(0, -2));
  if (!transposeA && !transposeB && aBatch === 1 && bBatch === 1) return false; // already XNNPACK
  if (aBatch !== bBatch && aBatch !== 1 && bBatch !== 1) return false; // let the original report the error
  // tiny products: the naive loop is as good as the copies
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
  if (preluActivationWeights != null || !needsXnnRoute(a, b, transposeA, transposeB)) return orig().fusedMatMul(args);
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
    originals = {
      conv2d: conv.kernelFunc,
      // If another copy of this module registered first, these are its marked functions, which is fine.
      batchMatMul: mm.kernelFunc,
      fusedMatMul: fmm.kernelFunc,
    };
  }
  install(tf.Conv2DBackpropFilter, conv2DBackpropFilter);
  install(tf.Conv2DBackpropInput, conv2DBackpropInput);
  install(tf.BatchMatMul, batchMatMul);
  install(tf._FusedMatMul, fusedMatMul);
}
