/**
 * Turns stored images (bytes, HWC) into network inputs (float32, NHWC), one batch at a time.
 *
 * Augmentation 'pad-crop-flip' (the CIFAR-10 recipe of the LR-nets authors, as in TensorFlow's
 * resize_image_with_crop_or_pad + random_crop + random_flip_left_right + per_image_standardization): the raw uint8
 * image is zero-padded by 4 pixels on each side, a window of the original size is cropped at offsets (dy, dx)
 * drawn uniformly from 0..8, the window is mirrored left-right with probability 0.5, and only then is the result
 * normalized. The padding is therefore raw value 0 (black) and takes part in the image's mean and deviation, as in
 * the authors' code; with 'unit' normalization it becomes 0.
 *
 * Random draws per image, in order: dy = rng.nextInt(9), dx = rng.nextInt(9), flip = rng.next() < 0.5; none when
 * augment is false. The functions allocate nothing.
 */
import type { ImageSet, InputNormalization } from './types.ts';
import type { Random } from '../random.ts';

/** Zero padding on each side for 'pad-crop-flip'. */
export const AUGMENT_PAD = 4;

function checkArgs(set: ImageSet, indices: ArrayLike<number>, outLength: number, perImage: number, what: string): void {
  const n = indices.length;
  if (outLength < n * perImage) {
    throw new RangeError(`${what}: output holds ${outLength} values, ${n} images need ${n * perImage}`);
  }
  for (let i = 0; i < n; i++) {
    const k = indices[i]!;
    if (!Number.isInteger(k) || k < 0 || k >= set.count) {
      throw new RangeError(`${what}: index ${i} is ${k}, outside the ${set.count} images`);
    }
  }
}

/**
 * Writes the images `indices` of `set` as float32 NHWC into the first indices.length * h * w * c values of `out`,
 * normalized ('unit': x / 255; 'per-image-standardization': (x - mean) / max(std, 1 / sqrt(h * w * c)) over each
 * image's own values) and, when `augment` is true, padded, cropped and flipped at random first (see the module
 * comment; rng is used only then).
 */
export function fillBatch(
  set: ImageSet,
  indices: ArrayLike<number>,
  normalization: InputNormalization,
  augment: boolean,
  rng: Random,
  out: Float32Array,
): void {
  const { height: H, width: W, channels: C, pixels } = set;
  const N = H * W * C;
  checkArgs(set, indices, out.length, N, 'fillBatch');
  const standardize = normalization.kind === 'per-image-standardization';
  const minStd = 1 / Math.sqrt(N);
  const rowLen = W * C;
  for (let i = 0; i < indices.length; i++) {
    const src = indices[i]! * N;
    const dst = i * N;
    // Integer sums of raw values: exact in float64 for any realistic image.
    let sum = 0;
    let sumSq = 0;
    if (!augment) {
      for (let j = 0; j < N; j++) {
        const v = pixels[src + j]!;
        out[dst + j] = v;
        sum += v;
        sumSq += v * v;
      }
    } else {
      const oy = rng.nextInt(2 * AUGMENT_PAD + 1) - AUGMENT_PAD; // source row of output row 0
      const ox = rng.nextInt(2 * AUGMENT_PAD + 1) - AUGMENT_PAD; // source column of cropped column 0
      const flip = rng.next() < 0.5;
      for (let y = 0; y < H; y++) {
        const sy = y + oy;
        const rowOut = dst + y * rowLen;
        if (sy < 0 || sy >= H) {
          out.fill(0, rowOut, rowOut + rowLen);
          continue;
        }
        const rowIn = src + sy * rowLen;
        for (let x = 0; x < W; x++) {
          // Output column x shows cropped column (flip ? W-1-x : x), i.e. source column that + ox.
          const sx = (flip ? W - 1 - x : x) + ox;
          const o = rowOut + x * C;
          if (sx < 0 || sx >= W) {
            for (let c = 0; c < C; c++) out[o + c] = 0;
          } else {
            const s = rowIn + sx * C;
            for (let c = 0; c < C; c++) {
              const v = pixels[s + c]!;
              out[o + c] = v;
              sum += v;
              sumSq += v * v;
            }
          }
        }
      }
    }
    if (standardize) {
      const mean = sum / N;
      const variance = Math.max(sumSq / N - mean * mean, 0);
      const scale = 1 / Math.max(Math.sqrt(variance), minStd);
      for (let j = dst; j < dst + N; j++) out[j] = (out[j]! - mean) * scale;
    } else {
      for (let j = dst; j < dst + N; j++) out[j] = out[j]! / 255;
    }
  }
}

/** Writes the labels of the images `indices` into the first indices.length values of `out`. */
export function fillLabels(set: ImageSet, indices: ArrayLike<number>, out: Int32Array): void {
  checkArgs(set, indices, out.length, 1, 'fillLabels');
  const labels = set.labels;
  for (let i = 0; i < indices.length; i++) out[i] = labels[indices[i]!]!;
}
