/**
 * The sanity checks of LRNETS.md section 10: closed-form moments against sampled weights, the LR pre-activation
 * against Monte Carlo over sampled weight matrices, gradients against finite differences with the noise held
 * fixed, and the initialization from a full-precision net.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { tf } from '../engine/tf.ts';
import { Random } from '../engine/random.ts';
import {
  moments,
  probabilities,
  sampleWeights,
  argmaxWeights,
  logitsFromFullPrecision,
  probabilityRegularizer,
  weightStatistics,
  type DiscreteKind,
} from '../engine/distributions.ts';
import { defineModel, forward, initParameters, summarizeModel, type Parameters } from '../engine/models.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function randomLogits(kind: DiscreteKind, shape: number[], seed: number) {
  const rng = new Random(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const draw = () => tf.tensor(Float32Array.from({ length: n }, () => rng.nextNormal() * 1.5), shape);
  return kind === 'binary' ? { a: draw() } : { a: draw(), c: draw() };
}

describe.each(['binary', 'ternary'] as const)('%s weight distribution', (kind) => {
  it('has mean and variance equal to the closed forms over the probabilities', () => {
    const logits = randomLogits(kind, [200], 1);
    const p = probabilities(kind, logits);
    const { mean, variance } = moments(kind, logits);
    const [minus, zero, plus, mu, v] = [p.minus, p.zero, p.plus, mean, variance].map((t) => Array.from(t.dataSync()));
    for (let i = 0; i < 200; i++) {
      expect(minus[i]! + zero[i]! + plus[i]!).toBeCloseTo(1, 6);
      expect(mu[i]!).toBeCloseTo(plus[i]! - minus[i]!, 6);
      expect(v[i]!).toBeCloseTo(plus[i]! + minus[i]! - mu[i]! ** 2, 6);
    }
    if (kind === 'binary') expect(zero.every((z) => z === 0)).toBe(true);
  });

  it('matches the empirical mean and variance of many sampled weights', () => {
    // 8 distinct distributions, each repeated 40,000 times, sampled once: per-group statistics estimate the moments.
    const groups = 8;
    const repeats = 40_000;
    const base = randomLogits(kind, [groups], 2);
    const tile = (t: tf.Tensor) => tf.tile(t, [repeats]);
    const logits = kind === 'binary' ? { a: tile(base.a) } : { a: tile(base.a), c: tile(base.c!) };
    const samples = sampleWeights(kind, logits, new Random(3)).dataSync();
    const { mean, variance } = moments(kind, base);
    const mu = mean.dataSync();
    const v = variance.dataSync();
    for (let g = 0; g < groups; g++) {
      let sum = 0;
      let sq = 0;
      for (let r = 0; r < repeats; r++) {
        const w = samples[r * groups + g]!;
        expect([-1, 0, 1]).toContain(w);
        if (kind === 'binary') expect(w).not.toBe(0);
        sum += w;
        sq += w * w;
      }
      const empiricalMean = sum / repeats;
      const empiricalVar = sq / repeats - empiricalMean ** 2;
      const standardError = Math.sqrt(v[g]! / repeats);
      expect(Math.abs(empiricalMean - mu[g]!)).toBeLessThan(5 * standardError + 1e-6);
      expect(Math.abs(empiricalVar - v[g]!)).toBeLessThan(0.02);
    }
  });

  it('draws the same weights from the same seed and different ones from another', () => {
    const logits = randomLogits(kind, [1000], 4);
    const a = sampleWeights(kind, logits, new Random(9)).dataSync();
    const b = sampleWeights(kind, logits, new Random(9)).dataSync();
    const c = sampleWeights(kind, logits, new Random(10)).dataSync();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  it('takes the most probable value as the argmax weight and counts it in the statistics', async () => {
    const logits = randomLogits(kind, [500], 5);
    const w = argmaxWeights(kind, logits).dataSync();
    const p = probabilities(kind, logits);
    const [minus, zero, plus] = [p.minus, p.zero, p.plus].map((t) => t.dataSync());
    let counts = { '-1': 0, '0': 0, '1': 0 } as Record<string, number>;
    for (let i = 0; i < 500; i++) {
      const best = Math.max(minus[i]!, zero[i]!, plus[i]!);
      const chosen = w[i] === -1 ? minus[i]! : w[i] === 0 ? zero[i]! : plus[i]!;
      expect(chosen).toBe(best);
      counts = { ...counts, [String(w[i])]: counts[String(w[i])]! + 1 };
    }
    const stats = await weightStatistics(kind, logits);
    expect(stats.fractionMinus).toBeCloseTo(counts['-1']! / 500, 10);
    expect(stats.fractionZero).toBeCloseTo(counts['0']! / 500, 10);
    expect(stats.fractionPlus).toBeCloseTo(counts['1']! / 500, 10);
    expect(stats.meanEntropyBits).toBeGreaterThan(0);
    expect(stats.meanEntropyBits).toBeLessThanOrEqual(kind === 'binary' ? 1 : Math.log2(3));
  });

  it('initializes from full-precision weights with E[w] = W/std wherever no clipping applied', () => {
    const rng = new Random(6);
    const raw = Float32Array.from({ length: 4000 }, () => rng.nextNormal() * 0.3 + 0.01);
    const { a, c } = logitsFromFullPrecision(kind, tf.tensor(raw));
    const mu = moments(kind, c ? { a, c } : { a }).mean.dataSync();
    const meanRaw = raw.reduce((s, v) => s + v, 0) / raw.length;
    const std = Math.sqrt(raw.reduce((s, v) => s + (v - meanRaw) ** 2, 0) / raw.length);
    let unclipped = 0;
    for (let i = 0; i < raw.length; i++) {
      const w = raw[i]! / std;
      // No clipping: |W| < 1 and the probability that sets the sign stays inside [0.05, 0.95].
      const p0 = 0.95 - 0.9 * Math.abs(w);
      const signProbability = kind === 'binary' ? 0.5 * (1 + w) : 0.5 * (1 + w / (1 - p0));
      if (Math.abs(w) < 1 && signProbability > 0.05 && signProbability < 0.95) {
        unclipped++;
        expect(mu[i]!).toBeCloseTo(w, 4);
      } else {
        expect(Math.abs(mu[i]!)).toBeLessThanOrEqual(Math.min(1, Math.abs(w)) + 1e-4);
      }
    }
    expect(unclipped).toBeGreaterThan(500);
  });
});

describe('probability regularizers (LRNETS.md section 5)', () => {
  it('ternary probability decay is lambda * 0.5 * (||c||^2 + ||a||^2)', () => {
    const a = tf.tensor([1, -2, 0.5]);
    const c = tf.tensor([0.3, 0, -1]);
    const value = probabilityRegularizer('ternary', { a, c }, 1e-11).dataSync()[0]!;
    const expected = 1e-11 * 0.5 * (1 + 4 + 0.25 + 0.09 + 0 + 1);
    expect(Math.abs(value - expected) / expected).toBeLessThan(1e-6);
  });
  it('binary beta penalty is lambda * sum p(1 - p)', () => {
    const a = tf.tensor([0, 2, -1]);
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    const expected = 1e-6 * [0, 2, -1].reduce((s, x) => s + sig(x) * (1 - sig(x)), 0);
    expect(probabilityRegularizer('binary', { a }, 1e-6).dataSync()[0]!).toBeCloseTo(expected, 12);
  });
});

/** A one-layer LR net: dense discrete layer (no batch norm) so the pre-activation is the output. */
function lrDenseNet(kind: DiscreteKind, inputs: number, units: number, seed: number): { params: Parameters; x: tf.Tensor } {
  const logits = randomLogits(kind, [inputs, units], seed);
  const params: Parameters = new Map([['fc/a', tf.variable(logits.a)]]);
  if (logits.c) params.set('fc/c', tf.variable(logits.c));
  const rng = new Random(seed + 1);
  const x = tf.tensor(Float32Array.from({ length: 2 * inputs }, () => rng.next() * 2 - 0.5), [2, inputs]);
  return { params, x };
}

const denseOnly = {
  architecture: 'mnist',
  inputShape: [1, 1, 40],
  numClasses: 3,
  nodes: [{ op: 'flatten' }, { op: 'dense', name: 'fc', units: 3, discrete: true }],
} as const;

describe.each(['binary', 'ternary'] as const)('%s LR pre-activation', (kind) => {
  it('has the mean and variance of Monte Carlo over sampled weight matrices', () => {
    const { params, x } = lrDenseNet(kind, 40, 3, 11);
    const logits = { a: params.get('fc/a')!, ...(params.has('fc/c') ? { c: params.get('fc/c')! } : {}) };
    const { mean, variance } = moments(kind, logits);
    const m = tf.matMul(x, mean).dataSync();
    const v = tf.add(tf.matMul(tf.square(x), variance), 1e-3).dataSync();
    const draws = 20_000;
    const rng = new Random(12);
    const sum = new Float64Array(6);
    const sq = new Float64Array(6);
    for (let d = 0; d < draws; d++) {
      const w = sampleWeights(kind, logits, rng);
      const z = tf.matMul(x, w).dataSync();
      w.dispose();
      for (let i = 0; i < 6; i++) {
        sum[i]! += z[i]!;
        sq[i]! += z[i]! ** 2;
      }
    }
    for (let i = 0; i < 6; i++) {
      const empiricalMean = sum[i]! / draws;
      const empiricalVar = sq[i]! / draws - empiricalMean ** 2;
      expect(Math.abs(empiricalMean - m[i]!)).toBeLessThan(5 * Math.sqrt(v[i]! / draws));
      // The LR variance adds 1e-3 inside the sqrt; the sampled net has none.
      expect(empiricalVar + 1e-3).toBeGreaterThan(v[i]! * 0.93);
      expect(empiricalVar + 1e-3).toBeLessThan(v[i]! * 1.07);
    }
  });

  it('matches its own distribution when the forward pass draws the noise (z = m + s * eps)', () => {
    const { params, x } = lrDenseNet(kind, 40, 3, 13);
    const logits = { a: params.get('fc/a')!, ...(params.has('fc/c') ? { c: params.get('fc/c')! } : {}) };
    const { mean, variance } = moments(kind, logits);
    const m = tf.matMul(x, mean).dataSync();
    const s = tf.sqrt(tf.add(tf.matMul(tf.square(x), variance), 1e-3)).dataSync();
    const eps: number[] = [];
    for (let seed = 0; seed < 400; seed++) {
      const z = forward(denseOnly as never, params, tf.reshape(x, [2, 1, 1, 40]), { mode: 'lr', training: true, batchStatistics: false, kind, noiseSeed: seed }).dataSync();
      for (let i = 0; i < 6; i++) eps.push((z[i]! - m[i]!) / s[i]!);
    }
    const meanEps = eps.reduce((a, b) => a + b, 0) / eps.length;
    const varEps = eps.reduce((a, b) => a + (b - meanEps) ** 2, 0) / eps.length;
    expect(Math.abs(meanEps)).toBeLessThan(0.1);
    expect(varEps).toBeGreaterThan(0.85);
    expect(varEps).toBeLessThan(1.15);
    // Fresh noise per output element: the six elements of one draw are not all equal.
    expect(new Set(eps.slice(0, 6).map((e) => e.toFixed(6))).size).toBe(6);
  });

  it('has gradients w.r.t. the logits that match finite differences with the noise held fixed', () => {
    const { params, x } = lrDenseNet(kind, 40, 3, 17);
    const x4 = tf.reshape(x, [2, 1, 1, 40]);
    const labels = tf.oneHot(tf.tensor1d([0, 2], 'int32'), 3);
    const loss = () => tf.losses.softmaxCrossEntropy(labels, forward(denseOnly as never, params, x4, {
      mode: 'lr', training: true, batchStatistics: false, kind, noiseSeed: 99,
    })) as tf.Scalar;
    const names = kind === 'binary' ? ['fc/a'] : ['fc/a', 'fc/c'];
    const { grads } = tf.variableGrads(loss, names.map((n) => params.get(n)!));
    for (const name of names) {
      const variable = params.get(name)!;
      const analytic = grads[variable.name]!.dataSync();
      const values = variable.dataSync().slice();
      for (const index of [0, 7, 31, 64, 100, 119]) {
        const h = 1e-2;
        const at = (delta: number) => {
          const changed = values.slice();
          changed[index]! += delta;
          variable.assign(tf.tensor(changed, variable.shape));
          return loss().dataSync()[0]!;
        };
        const numeric = (at(h) - at(-h)) / (2 * h);
        variable.assign(tf.tensor(values, variable.shape));
        expect(Math.abs(numeric - analytic[index]!)).toBeLessThan(2e-3 + 0.03 * Math.abs(analytic[index]!));
      }
    }
  });
});

describe('models', () => {
  it('summarizes the MNIST net by precision: 1-bit/2-bit discrete layers and 32-bit classifier and batch norm', () => {
    const model = defineModel('mnist');
    const ternary = summarizeModel(model, 'ternary');
    const discreteWeights = 5 * 5 * 1 * 32 + 5 * 5 * 32 * 64 + 3136 * 512;
    expect(ternary.parametersByBits['2']).toBe(discreteWeights);
    expect(ternary.parametersByBits['32']).toBe(512 * 10 + 10 + 4 * (32 + 64 + 512));
    expect(summarizeModel(model, 'binary').parametersByBits['1']).toBe(discreteWeights);
    expect(ternary.totalMacs).toBe(28 * 28 * 25 * 32 + 14 * 14 * 25 * 32 * 64 + 3136 * 512 + 512 * 10);
    expect(summarizeModel(model, 'full').totalBytes).toBeGreaterThan(ternary.totalBytes * 10);
  });

  it('runs the CIFAR-10 VGG net and ResNet-18 forward in every mode', () => {
    for (const [architecture, inputShape] of [['cifar10-vgg', [32, 32, 3]], ['resnet18', [32, 32, 3]]] as const) {
      for (const precision of ['full', 'binary', 'ternary'] as const) {
        const model = defineModel(architecture, { inputShape, numClasses: 10, kind: precision });
        const params = initParameters(model, precision, 1);
        const x = tf.randomUniform([2, ...inputShape]);
        const mode = precision === 'full' ? 'full' : 'lr';
        const logits = forward(model, params, x, { mode, training: true, batchStatistics: true, kind: precision === 'full' ? 'ternary' : precision, noiseSeed: 1 });
        expect(logits.shape).toEqual([2, 10]);
        expect(Array.from(logits.dataSync()).every(Number.isFinite)).toBe(true);
      }
    }
    const resnet = summarizeModel(defineModel('resnet18', { kind: 'binary' }), 'binary');
    // Binary ResNet-18 keeps conv1 in full precision; every other conv (shortcuts included) is 1-bit.
    expect(resnet.layers.find((l) => l.name === 'conv1')!.bits).toBe(32);
    expect(resnet.layers.find((l) => l.name === 'stage2.block1.shortcut')!.bits).toBe(1);
    expect(resnet.totalMacs).toBeGreaterThan(1.7e9);
  }, 60_000);
});
