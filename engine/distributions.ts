/**
 * Distributions over discrete weights (LRNETS.md sections 1, 4 and 5).
 *
 * Each discrete weight has its own distribution, parameterized by unconstrained logits of the weight's shape:
 * binary {-1, +1} by `a` with p(+1) = sigmoid(a); ternary {-1, 0, +1} by `c` and `a` with p(0) = sigmoid(c) and
 * q = sigmoid(a) = P(+1 | w != 0). The ternary form is two nested sigmoids, not a softmax.
 */
import { tf, type Tensor } from './tf.ts';
import { Random } from './random.ts';

export type DiscreteKind = 'binary' | 'ternary';

/** The logits of one discrete layer: `c` exists only for ternary weights. */
export interface DiscreteLogits {
  readonly a: Tensor;
  readonly c?: Tensor;
}

/** Probabilities of each value, as tensors of the weight's shape. */
export interface WeightProbabilities {
  readonly minus: Tensor;
  readonly zero: Tensor;
  readonly plus: Tensor;
}

/** The paper's regularization coefficients, per dataset (LRNETS.md section 5). */
export const REGULARIZATION = {
  mnist: { probabilityDecay: 1e-11, betaPenalty: 1e-6, weightDecay: 1e-4 },
  cifar10: { probabilityDecay: 1e-11, betaPenalty: 1e-6, weightDecay: 1e-4 },
  imagenet: { probabilityDecay: 1e-12, betaPenalty: 1e-8, weightDecay: 1e-5 },
} as const;

/** Bounds of the initialization (LRNETS.md section 4). */
export const INIT = { pMax: 0.95, pMin: 0.05, logitClipLow: 1e-4, logitClipHigh: 0.9999 } as const;

function requireC(kind: DiscreteKind, logits: DiscreteLogits): Tensor {
  if (kind === 'ternary' && !logits.c) throw new Error('ternary weights need both logits `c` and `a`');
  return logits.c as Tensor;
}

/** p(-1), p(0), p(+1) from the logits. Differentiable. */
export function probabilities(kind: DiscreteKind, logits: DiscreteLogits): WeightProbabilities {
  return tf.tidy(() => {
    if (kind === 'binary') {
      const plus = tf.sigmoid(logits.a);
      return { minus: tf.sub(1, plus), zero: tf.zerosLike(plus), plus };
    }
    const pZero = tf.sigmoid(requireC(kind, logits));
    const q = tf.sigmoid(logits.a);
    const nonZero = tf.sub(1, pZero);
    return { minus: tf.mul(tf.sub(1, q), nonZero), zero: pZero, plus: tf.mul(q, nonZero) };
  });
}

/**
 * Mean and variance of each weight: mu = p(+1) - p(-1), var = p(+1) + p(-1) - mu^2.
 * Written in the algebraically reduced forms so the gradients stay short:
 * binary mu = 2p - 1, var = 1 - mu^2; ternary mu = (2q - 1)(1 - p0), var = (1 - p0) - mu^2.
 */
export function moments(kind: DiscreteKind, logits: DiscreteLogits): { mean: Tensor; variance: Tensor } {
  return tf.tidy(() => {
    if (kind === 'binary') {
      const mean = tf.sub(tf.mul(2, tf.sigmoid(logits.a)), 1);
      return { mean, variance: tf.sub(1, tf.square(mean)) };
    }
    const nonZero = tf.sigmoid(tf.neg(requireC(kind, logits))); // 1 - sigmoid(c)
    const mean = tf.mul(tf.sub(tf.mul(2, tf.sigmoid(logits.a)), 1), nonZero);
    return { mean, variance: tf.sub(nonZero, tf.square(mean)) };
  });
}

/** Reads the three probabilities into arrays (same flat order as the weight tensor). */
function probabilityArrays(kind: DiscreteKind, logits: DiscreteLogits): [Float32Array, Float32Array, Float32Array] {
  const p = probabilities(kind, logits);
  const out: [Float32Array, Float32Array, Float32Array] = [
    p.minus.dataSync() as Float32Array,
    p.zero.dataSync() as Float32Array,
    p.plus.dataSync() as Float32Array,
  ];
  tf.dispose([p.minus, p.zero, p.plus]);
  return out;
}

/** Draws one discrete weight tensor, every weight independently from its distribution, from a seeded generator. */
export function sampleWeights(kind: DiscreteKind, logits: DiscreteLogits, rng: Random): Tensor {
  const [minus, zero] = probabilityArrays(kind, logits);
  const values = new Float32Array(minus.length);
  for (let i = 0; i < values.length; i++) {
    const u = rng.next();
    values[i] = u < minus[i]! ? -1 : u < minus[i]! + zero[i]! ? 0 : 1;
  }
  return tf.tensor(values, logits.a.shape);
}

/** The most probable value of every weight: a deterministic discrete network. Ties go to 0, then to +1. */
export function argmaxWeights(kind: DiscreteKind, logits: DiscreteLogits): Tensor {
  const [minus, zero, plus] = probabilityArrays(kind, logits);
  const values = new Float32Array(minus.length);
  for (let i = 0; i < values.length; i++) values[i] = mostProbableValue(kind, minus[i]!, zero[i]!, plus[i]!);
  return tf.tensor(values, logits.a.shape);
}

function mostProbableValue(kind: DiscreteKind, minus: number, zero: number, plus: number): -1 | 0 | 1 {
  if (kind === 'ternary' && zero >= minus && zero >= plus) return 0;
  return plus >= minus ? 1 : -1;
}

function logit(p: number): number {
  const clipped = Math.min(INIT.logitClipHigh, Math.max(INIT.logitClipLow, p));
  return Math.log(clipped / (1 - clipped));
}

/**
 * Logits that reproduce a pretrained full-precision weight tensor in expectation (LRNETS.md section 4):
 * W = clip(W_fp / std(W_fp), -1, 1), then the probabilities are chosen so that E[w] = W where no clip applied.
 */
export function logitsFromFullPrecision(kind: DiscreteKind, weights: Tensor): { a: Tensor; c?: Tensor } {
  const w = weights.dataSync() as Float32Array;
  let mean = 0;
  for (const v of w) mean += v;
  mean /= w.length;
  let sq = 0;
  for (const v of w) sq += (v - mean) * (v - mean);
  const std = Math.sqrt(sq / w.length) || 1;
  const a = new Float32Array(w.length);
  const c = kind === 'ternary' ? new Float32Array(w.length) : undefined;
  const { pMax, pMin } = INIT;
  for (let i = 0; i < w.length; i++) {
    const x = Math.min(1, Math.max(-1, w[i]! / std));
    if (kind === 'binary') {
      a[i] = logit(Math.min(pMax, Math.max(pMin, 0.5 * (1 + x))));
    } else {
      const p0 = pMax - (pMax - pMin) * Math.abs(x);
      const q = Math.min(pMax, Math.max(pMin, 0.5 * (1 + x / (1 - p0))));
      c![i] = logit(p0);
      a[i] = logit(q);
    }
  }
  return {
    a: tf.tensor(a, weights.shape),
    ...(c ? { c: tf.tensor(c, weights.shape) } : {}),
  };
}

/** Logits of the weak start without pretraining: ternary p0 = 0.33, q = 0.5; binary p = 0.5. */
export function defaultLogits(kind: DiscreteKind, shape: number[]): { a: Tensor; c?: Tensor } {
  const a = tf.zeros(shape);
  return kind === 'binary' ? { a } : { a, c: tf.fill(shape, logit(0.33)) };
}

/**
 * The probability regularizer R_prob (LRNETS.md section 5): ternary "probability decay"
 * lambda * 0.5 * (||c||^2 + ||a||^2); binary "beta" penalty lambda * sum p(+1)(1 - p(+1)).
 */
export function probabilityRegularizer(kind: DiscreteKind, logits: DiscreteLogits, lambda: number): Tensor {
  return tf.tidy(() => {
    if (kind === 'binary') {
      const p = tf.sigmoid(logits.a);
      return tf.mul(lambda, tf.sum(tf.mul(p, tf.sub(1, p))));
    }
    const squares = tf.add(tf.sum(tf.square(requireC(kind, logits))), tf.sum(tf.square(logits.a)));
    return tf.mul(lambda * 0.5, squares);
  });
}

/** Per-layer statistics of a weight distribution: fractions of the argmax values and mean entropy in bits. */
export interface WeightStatistics {
  readonly fractionMinus: number;
  readonly fractionZero: number;
  readonly fractionPlus: number;
  /** Mean over weights of the entropy of each weight's distribution, in bits (binary max 1, ternary max log2 3). */
  readonly meanEntropyBits: number;
}

export function weightStatistics(kind: DiscreteKind, logits: DiscreteLogits): WeightStatistics {
  const [minus, zero, plus] = probabilityArrays(kind, logits);
  let nMinus = 0;
  let nZero = 0;
  let nPlus = 0;
  let entropy = 0;
  const h = (p: number) => (p > 0 ? -p * Math.log2(p) : 0);
  for (let i = 0; i < minus.length; i++) {
    const m = minus[i]!;
    const z = zero[i]!;
    const p = plus[i]!;
    const value = mostProbableValue(kind, m, z, p);
    if (value === 0) nZero++;
    else if (value === 1) nPlus++;
    else nMinus++;
    entropy += h(m) + h(z) + h(p);
  }
  const n = minus.length;
  return { fractionMinus: nMinus / n, fractionZero: nZero / n, fractionPlus: nPlus / n, meanEntropyBits: entropy / n };
}
