/**
 * How a decoded image becomes network input: the shorter side resized with an antialiased bilinear filter (PIL's),
 * a square crop (random and mirrored for training, central for evaluation), then normalization into float32 NHWC.
 */
import { Random } from '../random.ts';
import type { RgbImage } from './imagefolder-decode.ts';

/** How cropped pixels (0..255) become network inputs. */
export type ImageNormalization =
  /** x / 255. */
  | { readonly kind: 'unit' }
  /** (x - mean) / max(std, 1/sqrt(N)) over the crop's own values, as fillBatch does for CIFAR-10. */
  | { readonly kind: 'per-image-standardization' }
  /** (x / 255 - mean[c]) / std[c] per channel (RGB). */
  | { readonly kind: 'mean-std'; readonly mean: readonly [number, number, number]; readonly std: readonly [number, number, number] };

/** The ImageNet statistics torchvision's pretrained models use. */
export const IMAGENET_NORMALIZATION: ImageNormalization = { kind: 'mean-std', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** Everything that decides how one image becomes network input. Plain data, so it can go to a worker. */
export interface ImageTransform {
  readonly resizeShorter: number;
  readonly cropSize: number;
  readonly normalization: ImageNormalization;
  /** Random crop and flip drawn from `seed` (rng draws: dy, dx, flip), or the centre crop. */
  readonly augment: boolean;
  readonly seed: number;
}

/** Size after resizing the shorter side to `shorter` (the longer side scaled alike and truncated, as torchvision does). */
export function resizedSize(width: number, height: number, shorter: number): { width: number; height: number } {
  if (width <= height) return { width: shorter, height: Math.max(shorter, Math.floor((shorter * height) / width)) };
  return { width: Math.max(shorter, Math.floor((shorter * width) / height)), height: shorter };
}

/**
 * Filter taps of an antialiased bilinear resize from `inSize` to `outSize`, for the output coordinates `positions`
 * only (PIL's precompute_coeffs with its triangle filter: when shrinking, the filter widens by the scale factor).
 */
function bilinearTaps(inSize: number, outSize: number, positions: ArrayLike<number>): { start: Int32Array; count: Int32Array; weights: Float32Array; stride: number } {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // triangle filter support 1, widened
  const stride = Math.ceil(support) * 2 + 1;
  const n = positions.length;
  const start = new Int32Array(n);
  const count = new Int32Array(n);
  const weights = new Float32Array(n * stride);
  const inv = 1 / filterScale;
  for (let k = 0; k < n; k++) {
    const center = (positions[k]! + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    let total = 0;
    const m = Math.min(hi - lo, stride);
    for (let t = 0; t < m; t++) {
      const x = (t + lo - center + 0.5) * inv;
      const w = Math.max(0, 1 - Math.abs(x));
      weights[k * stride + t] = w;
      total += w;
    }
    if (total > 0) for (let t = 0; t < m; t++) weights[k * stride + t]! /= total;
    start[k] = lo;
    count[k] = m;
  }
  return { start, count, weights, stride };
}

/**
 * Writes `image` resized (shorter side to t.resizeShorter), cropped to t.cropSize (random place and flip drawn from
 * t.seed when t.augment, else centred) and normalized into out[offset ...] (cropSize * cropSize * 3 floats, HWC).
 */
export function transformImage(image: RgbImage, t: ImageTransform, out: Float32Array, offset = 0): void {
  const crop = t.cropSize;
  const { width: rw, height: rh } = resizedSize(image.width, image.height, t.resizeShorter);
  let dy: number;
  let dx: number;
  let flip = false;
  if (t.augment) {
    const rng = new Random(t.seed);
    dy = rng.nextInt(rh - crop + 1);
    dx = rng.nextInt(rw - crop + 1);
    flip = rng.next() < 0.5;
  } else {
    dy = Math.round((rh - crop) / 2);
    dx = Math.round((rw - crop) / 2);
  }
  const cols = new Int32Array(crop);
  const rows = new Int32Array(crop);
  for (let j = 0; j < crop; j++) cols[j] = dx + (flip ? crop - 1 - j : j);
  for (let i = 0; i < crop; i++) rows[i] = dy + i;
  const hx = bilinearTaps(image.width, rw, cols);
  const vy = bilinearTaps(image.height, rh, rows);
  // Source rows the vertical taps touch.
  const y0 = vy.start[0]!;
  const y1 = vy.start[crop - 1]! + vy.count[crop - 1]!;
  const W = image.width;
  const src = image.data;
  const rowLen = crop * 3;
  // Horizontal pass over the needed rows only.
  const tmp = new Float32Array((y1 - y0) * rowLen);
  for (let y = y0; y < y1; y++) {
    const srcRow = y * W * 3;
    const tmpRow = (y - y0) * rowLen;
    for (let j = 0; j < crop; j++) {
      const s0 = hx.start[j]!;
      const m = hx.count[j]!;
      const wBase = j * hx.stride;
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = 0; k < m; k++) {
        const w = hx.weights[wBase + k]!;
        const p = srcRow + (s0 + k) * 3;
        r += w * src[p]!;
        g += w * src[p + 1]!;
        b += w * src[p + 2]!;
      }
      const o = tmpRow + j * 3;
      tmp[o] = r;
      tmp[o + 1] = g;
      tmp[o + 2] = b;
    }
  }
  // Vertical pass into the output.
  for (let i = 0; i < crop; i++) {
    const s0 = vy.start[i]! - y0;
    const m = vy.count[i]!;
    const wBase = i * vy.stride;
    const outRow = offset + i * rowLen;
    for (let q = 0; q < rowLen; q++) {
      let v = 0;
      for (let k = 0; k < m; k++) v += vy.weights[wBase + k]! * tmp[(s0 + k) * rowLen + q]!;
      out[outRow + q] = v;
    }
  }
  normalize(out, offset, crop * crop, t.normalization);
}

function normalize(out: Float32Array, offset: number, pixels: number, n: ImageNormalization): void {
  const end = offset + pixels * 3;
  switch (n.kind) {
    case 'unit':
      for (let i = offset; i < end; i++) out[i] = out[i]! / 255;
      return;
    case 'mean-std': {
      const scale = [1 / (255 * n.std[0]), 1 / (255 * n.std[1]), 1 / (255 * n.std[2])];
      const shift = [n.mean[0] / n.std[0], n.mean[1] / n.std[1], n.mean[2] / n.std[2]];
      for (let i = offset; i < end; i += 3) {
        for (let c = 0; c < 3; c++) out[i + c] = out[i + c]! * scale[c]! - shift[c]!;
      }
      return;
    }
    case 'per-image-standardization': {
      let sum = 0;
      let sumSq = 0;
      for (let i = offset; i < end; i++) {
        const v = out[i]!;
        sum += v;
        sumSq += v * v;
      }
      const N = pixels * 3;
      const mean = sum / N;
      const scale = 1 / Math.max(Math.sqrt(Math.max(sumSq / N - mean * mean, 0)), 1 / Math.sqrt(N));
      for (let i = offset; i < end; i++) out[i] = (out[i]! - mean) * scale;
      return;
    }
  }
}
