/**
 * Discrete evaluation (LRNETS.md section 7): the argmax net, N sampled nets selected on a validation split held out
 * from training, the mean-weight ("expected") net, and per-layer statistics of the weight distributions.
 */
import { tf, type Tensor } from './tf.ts';
import { Random, deriveSeed } from './random.ts';
import type { ImageSource } from './data/source.ts';
import {
  type DiscreteKind,
  type DiscreteLogits,
  argmaxWeights,
  sampleWeights,
  weightStatistics,
  type WeightStatistics,
} from './distributions.ts';
import {
  type ModelDefinition,
  type Parameters,
  type ForwardOptions,
  type BatchNormStatistics,
  describeLayers,
  forward,
} from './models.ts';

/** Images of one split, chosen by index from an image source (never augmented). */
export interface EvaluationSplit {
  readonly source: ImageSource;
  readonly indices: Int32Array;
}

/** Accuracies (fractions in [0, 1]) of the nets derived from one LR net, on one split. */
export interface SplitAccuracies {
  readonly argmax: number;
  readonly sampledMean: number;
  readonly sampledMin: number;
  readonly sampledBest: number;
  /** Accuracy of the sample that scored best on the validation split. */
  readonly selected: number;
  /** The mean-weight net (z = conv(x, mu), no noise). */
  readonly expected: number;
  /** Every sample's accuracy, in sample order. */
  readonly samples: readonly number[];
}

export interface LayerWeightStatistics extends WeightStatistics {
  readonly layer: string;
  readonly kind: DiscreteKind;
  readonly weights: number;
}

export interface DiscreteEvaluation {
  readonly test: SplitAccuracies;
  readonly validation: SplitAccuracies;
  /** Index of the sampled net selected on validation. */
  readonly selectedSample: number;
  /** Seed from which sample i was drawn with deriveSeed(sampleSeed, i). */
  readonly sampleSeed: number;
  readonly layers: readonly LayerWeightStatistics[];
  /** Training images used to re-estimate batch-norm statistics of each net (0: moving statistics). */
  readonly batchNormImages: number;
}

export interface EvaluationOptions {
  readonly kind: DiscreteKind;
  readonly samples: number;
  readonly sampleSeed: number;
  /** Training images for batch-norm re-estimation (0 = off). */
  readonly batchNormImages: number;
  readonly calibration: EvaluationSplit;
  readonly batchSize?: number;
  /** Called after each net with (nets done, nets total), for progress bars. */
  readonly onProgress?: (done: number, total: number) => void;
}

const DEFAULT_EVAL_BATCH = 500;

/**
 * Images per evaluation batch for an architecture: 500 for the small MNIST and CIFAR-10 nets; ResNet-18's 224x224
 * activations take about 3 MB per image in its first layers alone, so it evaluates in batches of its training size.
 * Batch-norm re-estimation averages per-batch statistics, so an exporter must use the same size as the evaluation.
 */
export function evaluationBatchSize(architecture: ModelDefinition['architecture'], trainingBatchSize: number): number {
  return architecture === 'resnet18' ? trainingBatchSize : DEFAULT_EVAL_BATCH;
}

/** Runs `fn` on consecutive batches of a split's images; the next batch is read while `fn` runs. */
async function forEachBatch(
  split: EvaluationSplit,
  batchSize: number,
  fn: (x: Tensor, labels: Int32Array) => Promise<void>,
): Promise<void> {
  const { source, indices } = split;
  const [height, width, channels] = source.shape;
  const read = (start: number) => {
    const batchIndices = indices.subarray(start, Math.min(indices.length, start + batchSize));
    const input = new Float32Array(batchIndices.length * height * width * channels);
    const labels = new Int32Array(batchIndices.length);
    const done = source.read(batchIndices, input, labels).then(() => ({ input, labels }));
    done.catch(() => undefined); // awaited below; an abandoned read is not an unhandled rejection
    return done;
  };
  let next = indices.length > 0 ? read(0) : undefined;
  for (let start = 0; next; start += batchSize) {
    const { input, labels } = await next;
    next = start + batchSize < indices.length ? read(start + batchSize) : undefined;
    const x = tf.tensor4d(input, [labels.length, height, width, channels]);
    try {
      await fn(x, labels);
    } finally {
      x.dispose();
    }
  }
}

/** Top-1 accuracy of one network on a split. */
export async function accuracy(
  model: ModelDefinition,
  params: Parameters,
  split: EvaluationSplit,
  options: ForwardOptions,
  batchSize = DEFAULT_EVAL_BATCH,
): Promise<number> {
  let correct = 0;
  await forEachBatch(split, batchSize, async (x, labels) => {
    const predictions = tf.tidy(() => tf.argMax(forward(model, params, x, options), 1));
    const predicted = (await predictions.data()) as Int32Array;
    predictions.dispose();
    for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) correct++;
  });
  return split.indices.length > 0 ? correct / split.indices.length : 0;
}

/**
 * Batch-norm statistics of a net re-estimated on training images: each layer's statistics are averaged over the
 * calibration batches while earlier layers normalize with the batch's own statistics.
 */
export async function estimateBatchNormStatistics(
  model: ModelDefinition,
  params: Parameters,
  split: EvaluationSplit,
  options: ForwardOptions,
  batchSize = DEFAULT_EVAL_BATCH,
): Promise<Map<string, BatchNormStatistics>> {
  const sums = new Map<string, { mean: Tensor; variance: Tensor }>();
  let batches = 0;
  await forEachBatch(split, batchSize, async (x) => {
    tf.tidy(() => {
      forward(model, params, x, {
        ...options, training: false, batchStatistics: true,
        onBatchStatistics: (layer, stats) => {
          const previous = sums.get(layer);
          const next = previous
            ? { mean: tf.add(previous.mean, stats.mean), variance: tf.add(previous.variance, stats.variance) }
            : { mean: stats.mean.clone(), variance: stats.variance.clone() };
          if (previous) tf.dispose([previous.mean, previous.variance]);
          sums.set(layer, { mean: tf.keep(next.mean), variance: tf.keep(next.variance) });
        },
      });
    });
    batches++;
  });
  const result = new Map<string, BatchNormStatistics>();
  for (const [layer, sum] of sums) {
    result.set(layer, { mean: tf.div(sum.mean, batches), variance: tf.div(sum.variance, batches) });
    tf.dispose([sum.mean, sum.variance]);
  }
  return result;
}

function logitsOf(params: Parameters, layer: string): DiscreteLogits {
  const a = params.get(`${layer}/a`);
  if (!a) throw new Error(`layer "${layer}" has no logits: the model is not an LR net`);
  const c = params.get(`${layer}/c`);
  return c ? { a, c } : { a };
}

function summarize(samples: number[], argmax: number, expected: number, selectedIndex: number): SplitAccuracies {
  return {
    argmax,
    expected,
    sampledMean: samples.reduce((s, v) => s + v, 0) / samples.length,
    sampledMin: Math.min(...samples),
    sampledBest: Math.max(...samples),
    selected: samples[selectedIndex]!,
    samples,
  };
}

/** Evaluates the discrete nets of an LR net on validation and test. */
export async function evaluateDiscrete(
  model: ModelDefinition,
  params: Parameters,
  validation: EvaluationSplit,
  test: EvaluationSplit,
  options: EvaluationOptions,
): Promise<DiscreteEvaluation> {
  const discreteLayers = describeLayers(model).filter((l) => l.discrete);
  const totalNets = options.samples + 2;
  let netsDone = 0;
  const calibration: EvaluationSplit = {
    source: options.calibration.source,
    indices: options.calibration.indices.subarray(0, Math.min(options.batchNormImages, options.calibration.indices.length)),
  };

  const evaluateNet = async (base: ForwardOptions): Promise<{ validation: number; test: number }> => {
    let statisticsOverride: Map<string, BatchNormStatistics> | undefined;
    if (calibration.indices.length > 0) {
      statisticsOverride = await estimateBatchNormStatistics(model, params, calibration, base, options.batchSize);
    }
    const netOptions: ForwardOptions = { ...base, ...(statisticsOverride ? { statisticsOverride } : {}) };
    try {
      return {
        validation: await accuracy(model, params, validation, netOptions, options.batchSize),
        test: await accuracy(model, params, test, netOptions, options.batchSize),
      };
    } finally {
      for (const s of statisticsOverride?.values() ?? []) tf.dispose([s.mean, s.variance]);
      options.onProgress?.(++netsDone, totalNets);
    }
  };

  const withWeights = async (makeWeights: (logits: DiscreteLogits) => Tensor) => {
    const discreteWeights = new Map(discreteLayers.map((l) => [l.name, makeWeights(logitsOf(params, l.name))]));
    try {
      return await evaluateNet({ mode: 'discrete', training: false, batchStatistics: false, kind: options.kind, discreteWeights });
    } finally {
      tf.dispose([...discreteWeights.values()]);
    }
  };

  const argmax = await withWeights((logits) => argmaxWeights(options.kind, logits));
  const expected = await evaluateNet({ mode: 'mean', training: false, batchStatistics: false, kind: options.kind });
  const sampled: { validation: number; test: number }[] = [];
  for (let i = 0; i < options.samples; i++) {
    const rng = new Random(deriveSeed(options.sampleSeed, i));
    sampled.push(await withWeights((logits) => sampleWeights(options.kind, logits, rng)));
  }
  // The first sample with the best validation accuracy: ties keep the earlier draw.
  let selectedSample = 0;
  sampled.forEach((s, i) => {
    if (s.validation > sampled[selectedSample]!.validation) selectedSample = i;
  });
  const layers: LayerWeightStatistics[] = [];
  for (const l of discreteLayers) {
    layers.push({
      layer: l.name,
      kind: options.kind,
      weights: l.shape.reduce((a, b) => a * b, 1),
      ...(await weightStatistics(options.kind, logitsOf(params, l.name))),
    });
  }
  return {
    test: summarize(sampled.map((s) => s.test), argmax.test, expected.test, selectedSample),
    validation: summarize(sampled.map((s) => s.validation), argmax.validation, expected.validation, selectedSample),
    selectedSample,
    sampleSeed: options.sampleSeed,
    layers,
    batchNormImages: calibration.indices.length,
  };
}
