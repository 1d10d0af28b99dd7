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

/**
 * Draws one discrete weight tensor, every weight independently from its distribution. The uniform draws come from
 * the seeded generator (one per weight, in the tensor's flat order); the comparison runs as tensor ops, so no
 * backend has to read data back synchronously (WebGPU in Node cannot).
 */
export function sampleWeights(kind: DiscreteKind, logits: DiscreteLogits, rng: Random): Tensor {
  const uniform = new Float32Array(logits.a.size);
  for (let i = 0; i < uniform.length; i++) uniform[i] = rng.next();
  return tf.tidy(() => {
    const p = probabilities(kind, logits);
    const u = tf.tensor(uniform, logits.a.shape);
    const belowMinus = tf.less(u, p.minus);
    const belowZero = tf.less(u, tf.add(p.minus, p.zero));
    const ones = tf.onesLike(u);
    return tf.where(belowMinus, tf.neg(ones), tf.where(belowZero, tf.zerosLike(u), ones));
  });
}

/** The most probable value of every weight: a deterministic discrete network. Ties go to 0, then to +1. */
export function argmaxWeights(kind: DiscreteKind, logits: DiscreteLogits): Tensor {
  return tf.tidy(() => {
    const p = probabilities(kind, logits);
    const ones = tf.onesLike(p.plus);
    const sign = tf.where(tf.greaterEqual(p.plus, p.minus), ones, tf.neg(ones));
    if (kind === 'binary') return sign;
    const zeroWins = tf.logicalAnd(tf.greaterEqual(p.zero, p.minus), tf.greaterEqual(p.zero, p.plus));
    return tf.where(zeroWins, tf.zerosLike(sign), sign);
  });
}

/** log(p / (1 - p)) after clipping p to [1e-4, 0.9999]. */
function logit(p: Tensor): Tensor {
  return tf.tidy(() => {
    const clipped = tf.clipByValue(p, INIT.logitClipLow, INIT.logitClipHigh);
    return tf.log(tf.div(clipped, tf.sub(1, clipped)));
  });
}

/**
 * Logits that reproduce a pretrained full-precision weight tensor in expectation (LRNETS.md section 4):
 * W = clip(W_fp / std(W_fp), -1, 1), then the probabilities are chosen so that E[w] = W where no clip applied.
 */
export function logitsFromFullPrecision(kind: DiscreteKind, weights: Tensor): { a: Tensor; c?: Tensor } {
  return tf.tidy(() => {
    const { pMax, pMin } = INIT;
    const { variance } = tf.moments(weights);
    // A constant layer has std 0: divide by 1 instead, as the JavaScript reference did.
    const std = tf.where(tf.greater(variance, 0), tf.sqrt(variance), tf.onesLike(variance));
    const w = tf.clipByValue(tf.div(weights, std), -1, 1);
    if (kind === 'binary') {
      return { a: logit(tf.clipByValue(tf.mul(0.5, tf.add(1, w)), pMin, pMax)) };
    }
    const p0 = tf.sub(pMax, tf.mul(pMax - pMin, tf.abs(w)));
    const q = tf.clipByValue(tf.mul(0.5, tf.add(1, tf.div(w, tf.sub(1, p0)))), pMin, pMax);
    return { a: logit(q), c: logit(p0) };
  });
}

/** Logits of the weak start without pretraining: ternary p0 = 0.33, q = 0.5; binary p = 0.5. */
export function defaultLogits(kind: DiscreteKind, shape: number[]): { a: Tensor; c?: Tensor } {
  const a = tf.zeros(shape);
  return kind === 'binary' ? { a } : { a, c: tf.fill(shape, Math.log(0.33 / 0.67)) };
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

export async function weightStatistics(kind: DiscreteKind, logits: DiscreteLogits): Promise<WeightStatistics> {
  const p = probabilities(kind, logits);
  const argmax = argmaxWeights(kind, logits);
  const [minus, zero, plus, values] = (await Promise.all([p.minus.data(), p.zero.data(), p.plus.data(), argmax.data()])) as Float32Array[];
  tf.dispose([p.minus, p.zero, p.plus, argmax]);
  let nMinus = 0;
  let nZero = 0;
  let entropy = 0;
  const h = (q: number) => (q > 0 ? -q * Math.log2(q) : 0);
  for (let i = 0; i < values!.length; i++) {
    if (values![i] === -1) nMinus++;
    else if (values![i] === 0) nZero++;
    entropy += h(minus![i]!) + h(zero![i]!) + h(plus![i]!);
  }
  const n = values!.length;
  return { fractionMinus: nMinus / n, fractionZero: nZero / n, fractionPlus: (n - nMinus - nZero) / n, meanEntropyBits: entropy / n };
}
