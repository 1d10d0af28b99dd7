/** Conv2DBackpropInput for wasm: a stride-1 Conv2D per output phase (sub-pixel decomposition); see index.ts. */
import { tf } from '../../tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Info, type KernelArgs, type KernelResult, type ConvGradAttrs, type Pad, type Shape4, convGradInfo, view, alloc, free, assertFloat32, copyRun, transpose2D, permuted } from './heap.ts';
import { conv2d } from './originals.ts';

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

export function conv2DBackpropInput(args: KernelArgs): KernelResult {
  const backend = args.backend as BackendWasm;
  const { dy, filter } = args.inputs as { dy: Info; filter: Info };
  const attrs = args.attrs as unknown as ConvGradAttrs & { inputShape: Shape4 };
  assertFloat32('Conv2DBackpropInput', dy, filter);
  const { info, channelsLast } = convGradInfo(attrs, attrs.inputShape, filter.shape as Shape4);
  if (channelsLast) return conv2DBackpropInputNHWC(backend, dy, filter, info);
  const dyN = permuted(backend, dy, [0, 2, 3, 1]);
  let dxN: Info | null = null;
  try {
    dxN = conv2DBackpropInputNHWC(backend, dyN, filter, info);
    return permuted(backend, dxN, [0, 3, 1, 2]);
  } finally {
    free(backend, dxN == null ? [dyN] : [dyN, dxN]);
  }
}
