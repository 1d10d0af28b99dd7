/**
 * The loss of one training step and its gradients, shared by the in-process step (engine/train.ts) and the
 * data-parallel workers (engine/parallel), so both build the same ops in the same order.
 *
 * loss = cross-entropy + lambda_w * 0.5 * ||W||^2 (full-precision kernels: all of them while pretraining, the
 * classifier in the LR phase) + R_prob (the LR phase's probability regularizer), LRNETS.md section 5.
 */
import { tf, type Tensor } from './tf.ts';
import { deriveSeed } from './random.ts';
import type { Phase, TrainingConfig } from './config.ts';
import { probabilityRegularizer, type DiscreteLogits } from './distributions.ts';
import { fusedKernelsActive } from './backends/index.ts';
import { type ModelDefinition, type Parameters, type BatchNormStatistics, describeLayers, forward, isTrainable } from './models.ts';

/** Seeds of a step's LR noise and dropout. */
export interface StepSeeds {
  readonly noise: number;
  readonly dropout: number;
}

/** The noise and dropout seeds of a global step: a pure function of (run seed, step), so resumes replay them. */
export function stepSeeds(seed: number, globalStep: number): StepSeeds {
  return { noise: deriveSeed(seed, 61, globalStep), dropout: deriveSeed(seed, 71, globalStep) };
}

/** What the forward/backward pass produced; every tensor is owned by the caller until dispose(). */
export interface StepGradients {
  readonly loss: Tensor;
  readonly crossEntropy: Tensor;
  /** Correct predictions in the batch, as a float scalar. */
  readonly correct: Tensor;
  /** Gradient by parameter name (trainable parameters that received one). */
  readonly gradients: ReadonlyMap<string, Tensor>;
  /** Batch statistics by batch-norm layer name (for the moving averages). */
  readonly batchStatistics: ReadonlyMap<string, BatchNormStatistics>;
  dispose(): void;
}

/** The forward and backward pass of one (shard of a) batch, without the optimizer update. */
export function lossAndGradients(
  model: ModelDefinition,
  params: Parameters,
  config: TrainingConfig,
  phase: Phase,
  input: Float32Array,
  labels: Int32Array,
  shape: readonly [number, number, number, number],
  numClasses: number,
  seeds: StepSeeds,
): StepGradients {
  const batchStatistics = new Map<string, BatchNormStatistics>();
  const trainable = [...params.entries()].filter(([name]) => isTrainable(name)).map(([, v]) => v);
  const layers = describeLayers(model);
  const phaseConfig = phase === 'pretrain' ? config.pretrain : config.lr;
  let crossEntropy: Tensor | undefined;
  let correct: Tensor | undefined;

  const x = tf.tensor4d(input, [...shape]);
  const y = tf.tensor1d(labels, 'int32');
  const { value, grads } = tf.variableGrads(() => {
    const logits = forward(model, params, x, {
      mode: phase === 'pretrain' ? 'full' : 'lr',
      training: true,
      batchStatistics: true,
      kind: config.kind,
      noiseSeed: seeds.noise,
      dropoutSeed: seeds.dropout,
      fusedKernels: phase === 'lr' && fusedKernelsActive(),
      onBatchStatistics: (layer, stats) => batchStatistics.set(layer, { mean: tf.keep(stats.mean), variance: tf.keep(stats.variance) }),
    });
    const ce = tf.losses.softmaxCrossEntropy(tf.oneHot(y, numClasses), logits);
    crossEntropy = tf.keep(ce.clone());
    correct = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32')));
    let loss = ce as tf.Scalar;
    const decayed = layers.filter((l) => l.op !== 'batchnorm' && (phase === 'pretrain' || !l.discrete));
    if (phaseConfig.weightDecay > 0 && decayed.length > 0) {
      const squares = tf.addN(decayed.map((l) => tf.sum(tf.square(params.get(`${l.name}/kernel`)!))));
      loss = tf.add(loss, tf.mul(0.5 * phaseConfig.weightDecay, squares));
    }
    if (phase === 'lr') {
      const lambda = config.kind === 'ternary' ? config.lr.probabilityDecay : config.lr.betaPenalty;
      if (lambda > 0) {
        for (const l of layers.filter((layer) => layer.discrete)) {
          const c = params.get(`${l.name}/c`);
          const discreteLogits: DiscreteLogits = { a: params.get(`${l.name}/a`)!, ...(c ? { c } : {}) };
          loss = tf.add(loss, probabilityRegularizer(config.kind, discreteLogits, lambda));
        }
      }
    }
    return loss;
  }, trainable);

  const gradients = new Map<string, Tensor>();
  for (const [name, v] of params) if (grads[v.name]) gradients.set(name, grads[v.name]!);
  const owned = [x, y, value, ...Object.values(grads), crossEntropy!, correct!];
  return {
    loss: value,
    crossEntropy: crossEntropy!,
    correct: correct!,
    gradients,
    batchStatistics,
    dispose() {
      tf.dispose(owned);
      for (const s of batchStatistics.values()) tf.dispose([s.mean, s.variance]);
    },
  };
}
