/**
 * Shapes and tiling shared by every fused LR kernel (plain/ and subgroup/): the convolution geometry baked into
 * each shader, and how many lanes, pixels and channels one invocation takes.
 */
/** The constant inside the square root of the LR standard deviation (LRNETS.md section 2). */
export const LR_VARIANCE_EPSILON = 1e-3;

/** A SAME-padded convolution, NHWC input [n, h, w, ci], HWIO filter [k, k, ci, co], output [n, oh, ow, co]. */
export interface ConvGeometry {
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly ci: number;
  readonly co: number;
  readonly k: number;
  readonly stride: number;
  readonly oh: number;
  readonly ow: number;
  readonly padTop: number;
  readonly padLeft: number;
}

/** How the forward and input-gradient kernels tile their work; each option defaults to what suits the layer. */
export interface TileOptions {
  /** Pixels per invocation, adjacent along the width (output pixels forward, input pixels for the input gradient). */
  readonly pixels?: number;
  /** vec4s of channels per invocation (output channels forward, input channels for the input gradient). */
  readonly channelVecs?: number;
  /** Invocations per workgroup. */
  readonly lanes?: number;
}

/** Geometry of tf.conv2d(x, filter, stride, 'same'). */
export function sameConvGeometry(input: readonly number[], filter: readonly number[], stride: number): ConvGeometry {
  const [n, h, w, ci] = input as [number, number, number, number];
  const [k, k2, fci, co] = filter as [number, number, number, number];
  if (k !== k2) throw new Error(`fused LR conv: square kernels only, got ${k}x${k2}`);
  if (fci !== ci) throw new Error(`fused LR conv: input has ${ci} channels, filter expects ${fci}`);
  const oh = Math.ceil(h / stride);
  const ow = Math.ceil(w / stride);
  const padH = Math.max(0, (oh - 1) * stride + k - h);
  const padW = Math.max(0, (ow - 1) * stride + k - w);
  return { n, h, w, ci, co, k, stride, oh, ow, padTop: Math.floor(padH / 2), padLeft: Math.floor(padW / 2) };
}

/**
 * Geometry of x @ w for x [n, ci], w [ci, co] as a 1x1 convolution. The memory layout is the same either way;
 * `row` (one image whose width is the batch) lets the forward and input-gradient kernels tile along the batch,
 * `batch` (n images of 1x1) lets the filter-gradient kernel split its sum over the batch.
 */
export function denseGeometry(input: readonly number[], weights: readonly number[], layout: 'row' | 'batch' = 'row'): ConvGeometry {
  const [n, ci] = input as [number, number];
  const [wci, co] = weights as [number, number];
  if (wci !== ci) throw new Error(`fused LR dense: input has ${ci} features, weights expect ${wci}`);
  return layout === 'row'
    ? { n: 1, h: 1, w: n, ci, co, k: 1, stride: 1, oh: 1, ow: n, padTop: 0, padLeft: 0 }
    : { n, h: 1, w: 1, ci, co, k: 1, stride: 1, oh: 1, ow: 1, padTop: 0, padLeft: 0 };
}

/** A pipeline cache key naming every shape baked into a shader. */
export const geometryKey = (g: ConvGeometry) =>
  `${g.n}x${g.h}x${g.w}x${g.ci}_${g.k}s${g.stride}p${g.padTop},${g.padLeft}_${g.co}`;

/**
 * Lanes per workgroup for `count` work items: the largest power of two from `max` down to 8 that wastes at most
 * 1/8 of the invocations on the padding past `count` (llvmpipe runs padding lanes at full cost), else 8.
 */
export function lanesFor(count: number, max = 64): number {
  for (let lanes = max; lanes > 8; lanes /= 2) {
    if (Math.ceil(count / lanes) * lanes - count <= count / 8) return lanes;
  }
  return 8;
}

/** Largest block of `total` channels (a multiple of `unit` dividing `total`) not above `max`. */
export function channelBlock(total: number, max: number, unit: number): number {
  let best = unit;
  for (let b = unit; b <= Math.min(total, max); b += unit) if (total % b === 0) best = b;
  return best;
}

/**
 * Pixels per invocation along a row of `width` (at most `max`): measured on lavapipe, wider tiles spill registers
 * around llvmpipe's per-lane loads and lose what they save in loads. Keeps at least 8 invocations when it can.
 */
export function pixelsPerLane(width: number, rows: number, max = 4): number {
  let p = Math.min(max, width);
  while (p > 1 && rows * Math.ceil(width / p) < 8) p--;
  return p;
}

/**
 * Pixels per invocation for the subgroup kernels: the largest divisor of the width up to `max` that leaves 8
 * invocations. Wider tiles run a little faster on lavapipe (14 pixels: -25%) but the shader then takes 10-30 s to
 * compile, once per layer shape and process.
 */
export function pixelsPerLaneWide(width: number, rows: number, max = 7): number {
  let best = 1;
  for (let d = 1; d <= Math.min(max, width); d++) if (width % d === 0 && rows * (width / d) >= 8) best = d;
  return best;
}

/** 0, 1, ..., n-1: the unrolled loops of the generated WGSL. */
export const range = (n: number) => Array.from({ length: n }, (_, i) => i);
/** A number as a WGSL f32 literal (integers get a `.0`). */
export const f32 = (v: number) => (Number.isInteger(v) ? `${v}.0` : `${v}`);
