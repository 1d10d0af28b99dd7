/**
 * The discrete network of a trained LR net, exactly as the evaluation scored it: the argmax weights or the
 * validation-selected sample (redrawn from its recorded seed), with the batch-norm statistics that net was
 * evaluated with (re-estimated on the same training images, or the moving statistics).
 *
 * Exporters start from here, so an exported model is the very net whose accuracy the run reports.
 */
import { tf, type Tensor } from './tf.ts';
import { Random, deriveSeed } from './random.ts';
import type { Dataset, InputNormalization } from './data/types.ts';
import type { TrainingConfig } from './config.ts';
import { argmaxWeights, sampleWeights, type DiscreteKind, type DiscreteLogits } from './distributions.ts';
import {
  type ModelDefinition,
  type Parameters,
  type ForwardOptions,
  type BatchNormStatistics,
  BATCH_NORM_EPSILON,
  describeLayers,
  forward,
} from './models.ts';
import { estimateBatchNormStatistics, evaluationBatchSize, type DiscreteEvaluation, type EvaluationSplit } from './evaluate.ts';
import { calibrationSplit } from './train.ts';

export type DiscreteNetChoice = 'argmax' | 'selected';

/** Everything needed to run the discrete net without the LR parameters. Tensors are owned by the caller. */
export interface DiscreteNetwork {
  readonly model: ModelDefinition;
  readonly kind: DiscreteKind;
  readonly choice: DiscreteNetChoice;
  /** For 'selected': which sample and the seed it was drawn from. */
  readonly sample?: { readonly index: number; readonly seed: number };
  readonly normalization: InputNormalization;
  /** Discrete layer name -> weights in {-1, 0, +1} (binary: {-1, +1}), kernel layout [k, k, in, out] or [in, out]. */
  readonly weights: ReadonlyMap<string, Tensor>;
  /** Batch-norm layer name -> the statistics and affine parameters the net normalizes with. */
  readonly batchNorm: ReadonlyMap<string, BatchNormStatistics & { readonly gamma: Tensor; readonly beta: Tensor }>;
  /** Full-precision layers' kernels and biases by parameter name (e.g. "fc2/kernel", "fc2/bias"). */
  readonly fullPrecision: ReadonlyMap<string, Tensor>;
  readonly batchNormEpsilon: number;
}

function logitsOf(params: Parameters, layer: string): DiscreteLogits {
  const a = params.get(`${layer}/a`);
  if (!a) throw new Error(`layer "${layer}" has no logits: the parameters are not those of a finished LR phase`);
  const c = params.get(`${layer}/c`);
  return c ? { a, c } : { a };
}

/**
 * Rebuilds the argmax or the selected sampled net of an evaluation. The dataset must be the run's own (its
 * training images re-estimate batch norm when the evaluation did).
 */
export async function buildDiscreteNetwork(
  config: TrainingConfig,
  model: ModelDefinition,
  params: Parameters,
  dataset: Dataset,
  evaluation: DiscreteEvaluation,
  choice: DiscreteNetChoice,
): Promise<DiscreteNetwork> {
  const discreteLayers = describeLayers(model).filter((l) => l.discrete);
  let weights: Map<string, Tensor>;
  let sample: { index: number; seed: number } | undefined;
  if (choice === 'argmax') {
    weights = new Map(discreteLayers.map((l) => [l.name, argmaxWeights(config.kind, logitsOf(params, l.name))]));
  } else {
    // Same draw order as evaluateDiscrete: one generator per sample, layers in forward order.
    sample = { index: evaluation.selectedSample, seed: deriveSeed(evaluation.sampleSeed, evaluation.selectedSample) };
    const rng = new Random(sample.seed);
    weights = new Map(discreteLayers.map((l) => [l.name, sampleWeights(config.kind, logitsOf(params, l.name), rng)]));
  }
  const base: ForwardOptions = { mode: 'discrete', training: false, batchStatistics: false, kind: config.kind, discreteWeights: weights };
  let statistics: Map<string, BatchNormStatistics> | undefined;
  if (evaluation.batchNormImages > 0) {
    const calibration = calibrationSplit(config, dataset);
    const split: EvaluationSplit = { source: calibration.source, indices: calibration.indices.subarray(0, evaluation.batchNormImages) };
    statistics = await estimateBatchNormStatistics(model, params, split, base, evaluationBatchSize(config.architecture, config.batchSize));
  }
  const batchNorm = new Map<string, BatchNormStatistics & { gamma: Tensor; beta: Tensor }>();
  const fullPrecision = new Map<string, Tensor>();
  for (const layer of describeLayers(model)) {
    if (layer.op === 'batchnorm') {
      const s = statistics?.get(layer.name);
      batchNorm.set(layer.name, {
        mean: s?.mean ?? params.get(`${layer.name}/movingMean`)!.clone(),
        variance: s?.variance ?? params.get(`${layer.name}/movingVariance`)!.clone(),
        gamma: params.get(`${layer.name}/gamma`)!.clone(),
        beta: params.get(`${layer.name}/beta`)!.clone(),
      });
    } else if (!layer.discrete) {
      fullPrecision.set(`${layer.name}/kernel`, params.get(`${layer.name}/kernel`)!.clone());
      const bias = params.get(`${layer.name}/bias`);
      if (bias) fullPrecision.set(`${layer.name}/bias`, bias.clone());
    }
  }
  return {
    model, kind: config.kind, choice, ...(sample ? { sample } : {}), normalization: dataset.normalization,
    weights, batchNorm, fullPrecision, batchNormEpsilon: BATCH_NORM_EPSILON,
  };
}

/** Logits of the discrete net for a batch [n, h, w, c] of normalized inputs: the reference every export matches. */
export function discreteLogits(net: DiscreteNetwork, x: Tensor): Tensor {
  return tf.tidy(() => {
    const params: Parameters = new Map();
    // forward() reads parameters by name; wrap the net's tensors without copying them into new variables.
    const asParam = (t: Tensor) => t as tf.Variable;
    for (const [name, t] of net.fullPrecision) params.set(name, asParam(t));
    for (const [layer, bn] of net.batchNorm) {
      params.set(`${layer}/gamma`, asParam(bn.gamma));
      params.set(`${layer}/beta`, asParam(bn.beta));
      params.set(`${layer}/movingMean`, asParam(bn.mean));
      params.set(`${layer}/movingVariance`, asParam(bn.variance));
    }
    return forward(net.model, params, x, {
      mode: 'discrete', training: false, batchStatistics: false, kind: net.kind, discreteWeights: net.weights,
    });
  });
}

export function disposeDiscreteNetwork(net: DiscreteNetwork): void {
  tf.dispose([...net.weights.values(), ...net.fullPrecision.values()]);
  for (const bn of net.batchNorm.values()) tf.dispose([bn.mean, bn.variance, bn.gamma, bn.beta]);
}
