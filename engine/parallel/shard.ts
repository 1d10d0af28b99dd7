/**
 * The two halves of trainStep (engine/train.ts) that data-parallel training runs apart: the forward/backward pass
 * of one shard of the batch, and the optimizer update of a slice of the parameters from the all-reduced gradient.
 *
 * `shardGradients` builds exactly the loss trainStep builds (cross-entropy, weight decay, probability
 * regularizer), with the same ops in the same order. `updateSlice` is engine/optimizer.ts's Adam and trainStep's
 * moving-statistics update written out in JavaScript over flat float32 arrays; every operation is rounded to
 * float32 (Math.fround) in the order the TensorFlow.js ops run, which reproduces the wasm backend's results bit
 * for bit (double rounding is innocuous for +, -, *, / and sqrt from double to float). A 1-worker stepper
 * therefore follows trainStep exactly; test/parallel.test.ts checks it.
 */
import { deriveSeed } from '../random.ts';
import { lossAndGradients, stepSeeds, type StepGradients, type StepSeeds } from '../gradients.ts';

/** The logit clip of the binary ImageNet recipe (trainStep's BINARY_IMAGENET_LOGIT_CLIP). */
const BINARY_IMAGENET_LOGIT_CLIP = 4.6;

/** Adam's constants, as engine/optimizer.ts has them. */
export const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 } as const;

/** Seeds of one shard's LR noise and dropout. */
export type ShardSeeds = StepSeeds;

/**
 * Seeds for worker `worker` at a global step. Worker 0 draws exactly what trainStep draws (so one worker
 * reproduces trainStep, and worker 0's shard sees the first rows of trainStep's noise tensor); every other worker
 * gets its own stream derived from the step's seed and its index.
 */
export function shardSeeds(seed: number, globalStep: number, worker: number): ShardSeeds {
  const { noise, dropout } = stepSeeds(seed, globalStep);
  return worker === 0 ? { noise, dropout } : { noise: deriveSeed(noise, worker), dropout: deriveSeed(dropout, worker) };
}

/** What one shard's forward/backward pass produced; tensors are owned by the caller until dispose(). */
export interface ShardResult extends Omit<StepGradients, 'loss' | 'crossEntropy' | 'correct'> {
  readonly loss: number;
  readonly crossEntropy: number;
  readonly correct: number;
}

/** The forward and backward pass of trainStep on one shard (lossAndGradients), read back as numbers; no optimizer step. */
export function shardGradients(...args: Parameters<typeof lossAndGradients>): ShardResult {
  const step = lossAndGradients(...args);
  return {
    loss: step.loss.dataSync()[0]!,
    crossEntropy: step.crossEntropy.dataSync()[0]!,
    correct: step.correct.dataSync()[0]!,
    gradients: step.gradients,
    batchStatistics: step.batchStatistics,
    dispose: () => step.dispose(),
  };
}

/** Hyperparameters of one optimizer update. */
export interface UpdateSettings {
  /** Adam's step count after this update (1 for the first update). */
  readonly adamStep: number;
  readonly learningRate: number;
  /** Clip discrete logits `a` to +-4.6 after the update (binary ResNet-18 in the LR phase). */
  readonly clipLogits: boolean;
}

/** A parameter's range in the trainable vector and whether the update touches it. */
export interface UpdateSegment {
  readonly offset: number;
  readonly size: number;
  /** The parameter received a gradient this step (Adam skips the others, as engine/optimizer.ts does). */
  readonly hasGradient: boolean;
  /** A discrete layer's `a` logits (clipped when UpdateSettings.clipLogits). */
  readonly isLogitA: boolean;
}

/** The flat state one update reads and writes. */
export interface UpdateState {
  readonly params: Float32Array;
  readonly firstMoments: Float32Array;
  readonly secondMoments: Float32Array;
  /** The workers' gradients, each over the whole trainable vector. */
  readonly gradientSlots: readonly Float32Array[];
  /** Receives the reduced gradient. */
  readonly gradient: Float32Array;
  /** Each worker's share of the batch (images / batch size); they sum to 1. */
  readonly weights: readonly number[];
}

const f32 = Math.fround;

/**
 * All-reduces the gradient over [lo, hi) (the weighted sum of the workers' slots, in worker order, in double
 * precision, rounded once to float32) and applies one Adam update there. Elements of parameters without a gradient
 * are left alone; moments start at zero where the parameter has none yet (the caller zeroes them).
 */
export function updateSlice(state: UpdateState, segments: readonly UpdateSegment[], lo: number, hi: number, settings: UpdateSettings): void {
  const { params: p, firstMoments: m, secondMoments: v, gradientSlots: slots, gradient: g, weights } = state;
  const t = settings.adamStep;
  const b1 = f32(ADAM.beta1);
  const c1 = f32(1 - ADAM.beta1);
  const b2 = f32(ADAM.beta2);
  const c2 = f32(1 - ADAM.beta2);
  const eps = f32(ADAM.epsilon);
  // Bias corrections folded into the step size, computed in double as Adam.apply does, then a float32 scalar.
  const stepSize = f32((settings.learningRate * Math.sqrt(1 - ADAM.beta2 ** t)) / (1 - ADAM.beta1 ** t));
  const clip = f32(BINARY_IMAGENET_LOGIT_CLIP);
  for (const segment of segments) {
    const start = Math.max(lo, segment.offset);
    const end = Math.min(hi, segment.offset + segment.size);
    if (start >= end) continue;
    if (!segment.hasGradient) {
      g.fill(0, start, end);
      continue;
    }
    reduceInto(slots, weights, g, start, end);
    for (let i = start; i < end; i++) {
      const gi = g[i]!;
      const mi = f32(f32(b1 * m[i]!) + f32(c1 * gi));
      const vi = f32(f32(b2 * v[i]!) + f32(c2 * f32(gi * gi)));
      m[i] = mi;
      v[i] = vi;
      p[i] = f32(p[i]! - f32(f32(stepSize * mi) / f32(f32(Math.sqrt(vi)) + eps)));
    }
    if (settings.clipLogits && segment.isLogitA) {
      for (let i = start; i < end; i++) p[i] = Math.min(Math.max(p[i]!, -clip), clip);
    }
  }
}

/** out[i] = sum_k weights[k] * slots[k][i] over [start, end), summed in worker order in double, rounded once. */
function reduceInto(slots: readonly Float32Array[], weights: readonly number[], out: Float32Array, start: number, end: number): void {
  if (slots.length === 1 && weights[0] === 1) {
    out.set(slots[0]!.subarray(start, end), start);
    return;
  }
  if (slots.length === 2) {
    const [s0, s1] = slots as [Float32Array, Float32Array];
    const [w0, w1] = weights as [number, number];
    for (let i = start; i < end; i++) out[i] = w0 * s0[i]! + w1 * s1[i]!;
    return;
  }
  for (let i = start; i < end; i++) {
    let sum = 0;
    for (let k = 0; k < slots.length; k++) sum += weights[k]! * slots[k]![i]!;
    out[i] = sum;
  }
}

/**
 * Updates the moving statistics of one batch-norm layer from the workers' batch statistics. The whole batch's mean
 * and (biased) variance are recovered exactly from equal or unequal shards: mean = sum_k w_k mean_k and
 * variance = sum_k w_k (var_k + (mean_k - mean)^2); with one worker they are that worker's own statistics.
 */
export function updateMovingStatistics(
  moving: { readonly mean: Float32Array; readonly variance: Float32Array },
  shards: readonly { readonly mean: Float32Array; readonly variance: Float32Array }[],
  weights: readonly number[],
  momentum: number,
): void {
  const keep = f32(momentum);
  const take = f32(1 - momentum);
  const channels = moving.mean.length;
  for (let c = 0; c < channels; c++) {
    let mean = 0;
    for (let k = 0; k < shards.length; k++) mean += weights[k]! * shards[k]!.mean[c]!;
    let variance = 0;
    for (let k = 0; k < shards.length; k++) {
      const d = shards[k]!.mean[c]! - mean;
      variance += weights[k]! * (shards[k]!.variance[c]! + d * d);
    }
    moving.mean[c] = f32(f32(keep * moving.mean[c]!) + f32(take * f32(mean)));
    moving.variance[c] = f32(f32(keep * moving.variance[c]!) + f32(take * f32(variance)));
  }
}
