/**
 * The training loop: full-precision pretraining, then the LR phase initialized from it (LRNETS.md sections 4-6),
 * with periodic discrete evaluation, checkpoints that resume bit for bit, cancellation between steps and typed
 * progress events.
 *
 * Every random draw is derived from (seed, counters) rather than from a running generator: the epoch's shuffle from
 * (seed, phase, epoch), the LR noise and dropout from the global step, augmentation from (phase, epoch, step).
 * A resumed run therefore replays exactly the draws an uninterrupted run would have made.
 */
import path from 'node:path';
import { tf, type Tensor } from './tf.ts';
import { Random, deriveSeed } from './random.ts';
import type { Dataset, DatasetIdentity } from './data/types.ts';
import { asTrainingData, type TrainingData } from './data/source.ts';
import type { Phase, TrainingConfig, PhaseConfig } from './config.ts';
import {
  type ModelDefinition,
  type ModelSummary,
  type Parameters,
  defineModel,
  describeLayers,
  discreteFromFullPrecision,
  disposeParameters,
  initParameters,
  summarizeModel,
} from './models.ts';
import { Adam, staircaseLearningRate } from './optimizer.ts';
import { lossAndGradients, stepSeeds } from './gradients.ts';

export type { Phase } from './config.ts';
import { saveCheckpoint, loadCheckpoint, toTensor, checkpointFileName, resumeMismatch, type LoadedCheckpoint } from './checkpoint.ts';
import { accuracy, estimateBatchNormStatistics, evaluateDiscrete, evaluationBatchSize, type DiscreteEvaluation, type EvaluationSplit } from './evaluate.ts';
import type { BackendInfo } from './backends/index.ts';
import { createParallelStepper, defaultWorkerCount, type ParallelStepper } from './parallel/index.ts';

const PHASE_ID: Record<Phase, number> = { pretrain: 1, lr: 2 };

/** Accuracy of the full-precision net during pretraining. */
export interface FullPrecisionEvaluation {
  readonly validation: number;
  readonly test: number;
}

/** Progress of a run, as a discriminated union of plain readonly objects (they cross worker boundaries). */
export type TrainingEvent =
  | {
      readonly type: 'start';
      readonly backend: BackendInfo;
      readonly dataset: DatasetIdentity;
      readonly model: ModelSummary;
      readonly totalSteps: number;
      readonly resumedFromStep: number;
      /** Data-parallel worker threads (1: the calling thread). */
      readonly threads: number;
      readonly trainImages: number;
      readonly validationImages: number;
      readonly testImages: number;
    }
  | { readonly type: 'phase'; readonly phase: Phase; readonly epochs: number; readonly stepsPerEpoch: number }
  | {
      readonly type: 'step';
      readonly phase: Phase;
      /** 1-based epoch within the phase. */
      readonly epoch: number;
      /** Global step counted over both phases, 1-based. */
      readonly step: number;
      readonly totalSteps: number;
      readonly loss: number;
      readonly crossEntropy: number;
      readonly batchAccuracy: number;
      readonly learningRate: number;
      readonly imagesPerSecond: number;
      readonly etaSeconds: number;
      readonly elapsedSeconds: number;
    }
  | { readonly type: 'epoch'; readonly phase: Phase; readonly epoch: number; readonly step: number; readonly meanLoss: number; readonly trainAccuracy: number }
  | { readonly type: 'evaluation'; readonly phase: 'pretrain'; readonly epoch: number; readonly step: number; readonly fullPrecision: FullPrecisionEvaluation }
  | { readonly type: 'evaluation'; readonly phase: 'lr'; readonly epoch: number; readonly step: number; readonly discrete: DiscreteEvaluation }
  | { readonly type: 'evaluating'; readonly netsDone: number; readonly netsTotal: number }
  | { readonly type: 'checkpoint'; readonly phase: Phase; readonly epoch: number; readonly step: number; readonly path: string; readonly bytes: number };

export interface TrainingResult {
  readonly status: 'completed' | 'stopped';
  readonly backend: BackendInfo;
  readonly dataset: DatasetIdentity;
  /** The last discrete evaluation (absent when stopped before the LR phase was evaluated). */
  readonly evaluation?: DiscreteEvaluation;
  readonly steps: number;
  /** Data-parallel worker threads the run trained with. */
  readonly threads: number;
  readonly durationSeconds: number;
  /** Mean training throughput of the LR phase (of pretraining if the LR phase did not run). */
  readonly imagesPerSecond: number;
  /** The newest checkpoint, if any was written. */
  readonly checkpoint?: string;
  /** The trained LR parameters, handed over to the caller (dispose with disposeParameters); only when asked for. */
  readonly parameters?: Parameters;
  readonly model: ModelDefinition;
}

export interface TrainingOptions {
  readonly onEvent?: (event: TrainingEvent) => void;
  /** Stops the run between steps; a checkpoint is written first when a checkpoint folder is set. */
  readonly signal?: AbortSignal;
  /** Folder for checkpoints (none are written without it). */
  readonly checkpointDir?: string;
  /**
   * Starts each checkpoint's file name (the run id): runs that share a checkpoint folder then never overwrite, prune
   * or delete each other's files. Without it the files are named `step-N.ckpt`.
   */
  readonly checkpointPrefix?: string;
  /** Continue from this checkpoint file. */
  readonly resumeFrom?: string;
  /** Keep the trained parameters alive and return them (for export or inspection). */
  readonly keepParameters?: boolean;
}

export class TrainingError extends Error {
  override name = 'TrainingError';
}

/** What a checkpoint stores besides tensors. */
export interface CheckpointState {
  readonly config: TrainingConfig;
  readonly datasetChecksum: string;
  readonly phase: Phase;
  /** Completed epochs within the phase. */
  readonly epochIndex: number;
  /** Completed steps within the current epoch. */
  readonly stepInEpoch: number;
  readonly globalStep: number;
  readonly adamStep: number;
  /** Data-parallel threads the run trains with (1: the calling thread). */
  readonly threads?: number;
  readonly lastEvaluation?: DiscreteEvaluation;
}

const BINARY_IMAGENET_LOGIT_CLIP = 4.6;

/** A fixed seed for the validation split, so runs with different seeds are validated on the same images. */
const VALIDATION_SPLIT_SEED = 20180430;

/** Splits the training set into training and validation indices (the validation images never train). */
export function splitValidation(trainCount: number, validationSize: number): { train: Int32Array; validation: Int32Array } {
  if (validationSize >= trainCount) {
    throw new TrainingError(`validation split of ${validationSize} images leaves nothing to train on (${trainCount} training images); lower validationSize`);
  }
  const order = Int32Array.from({ length: trainCount }, (_, i) => i);
  new Random(VALIDATION_SPLIT_SEED).shuffle(order);
  const validation = order.slice(0, validationSize).sort();
  const train = order.slice(validationSize).sort();
  return { train, validation };
}

/**
 * Training images (never validation) in a seeded order: the first N re-estimate batch-norm statistics of discrete
 * nets in evaluations, and the exporter takes the same N to rebuild the very net that was evaluated.
 */
export function calibrationSplit(config: TrainingConfig, data: Dataset | TrainingData): EvaluationSplit {
  const { train } = asTrainingData(data);
  const { train: trainIndices } = splitValidation(train.count, config.validationSize);
  new Random(deriveSeed(config.seed, 31)).shuffle(trainIndices);
  return { source: train, indices: trainIndices };
}

function limitSplit(count: number, limit?: number): Int32Array {
  return Int32Array.from({ length: Math.min(count, limit ?? count) }, (_, i) => i);
}

/**
 * Trains one run. The backend must already be initialized (see engine/backends). The data stays the caller's:
 * close a TrainingData afterwards.
 */
export async function train(
  config: TrainingConfig,
  data: Dataset | TrainingData,
  backend: BackendInfo,
  options: TrainingOptions = {},
): Promise<TrainingResult> {
  const run = await TrainingRun.start(config, asTrainingData(data), backend, options);
  try {
    return await run.runPhases();
  } finally {
    await run.dispose();
  }
}

/** What a run's configuration and data fix before its first step: the splits, the model and the step counts. */
interface RunPlan {
  readonly trainIndices: Int32Array;
  readonly validation: EvaluationSplit;
  readonly test: EvaluationSplit;
  readonly calibration: EvaluationSplit;
  readonly inputShape: readonly [number, number, number];
  readonly model: ModelDefinition;
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  /** Images per forward pass in evaluations. */
  readonly evaluationBatch: number;
}

function planRun(config: TrainingConfig, dataset: TrainingData): RunPlan {
  const { train: trainIndices, validation: validationIndices } = splitValidation(dataset.train.count, config.validationSize);
  const validation: EvaluationSplit = { source: dataset.train, indices: validationIndices };
  const test: EvaluationSplit = { source: dataset.test, indices: limitSplit(dataset.test.count, config.dataset.testLimit) };
  const calibration = calibrationSplit(config, dataset);
  const [height, width, channels] = dataset.inputShape;
  const model = defineModel(config.architecture, { inputShape: [height, width, channels], numClasses: dataset.numClasses, kind: config.kind });
  const stepsPerEpoch = Math.max(1, Math.floor(trainIndices.length / config.batchSize));
  const phaseSteps: Record<Phase, number> = {
    pretrain: config.pretrain.epochs * stepsPerEpoch,
    lr: config.lr.epochs * stepsPerEpoch,
  };
  return {
    trainIndices, validation, test, calibration, inputShape: [height, width, channels], model, stepsPerEpoch,
    totalSteps: phaseSteps.pretrain + phaseSteps.lr, evaluationBatch: evaluationBatchSize(config.architecture, config.batchSize),
  };
}

/** Where a run stands: restored from a checkpoint or fresh. */
interface RunPosition {
  phase: Phase;
  /** Completed epochs within the phase. */
  epochIndex: number;
  /** Completed steps within the current epoch. */
  stepInEpoch: number;
  globalStep: number;
  lastEvaluation: DiscreteEvaluation | undefined;
}

/** One run in progress: train() in named parts (start, phases, epochs, steps, evaluations, checkpoints). */
class TrainingRun {
  private readonly throughput = { images: 0, seconds: 0 };
  private stopped = false;
  private checkpointPath: string | undefined;

  private constructor(
    /** performance.now() when train() was called. */
    private readonly started: number,
    private readonly config: TrainingConfig,
    private readonly dataset: TrainingData,
    private readonly backend: BackendInfo,
    private readonly options: TrainingOptions,
    private readonly plan: RunPlan,
    private readonly position: RunPosition,
    private params: Parameters,
    private readonly adam: Adam,
    /** Data-parallel threads (1: this thread). */
    private readonly threads: number,
    private readonly stepper: ParallelStepper | undefined,
  ) {}

  /** Plans the run, restores it from its checkpoint or initializes it, starts the workers and emits 'start'. */
  static async start(config: TrainingConfig, dataset: TrainingData, backend: BackendInfo, options: TrainingOptions): Promise<TrainingRun> {
    const started = performance.now();
    const plan = planRun(config, dataset);
    const position: RunPosition = { phase: config.pretrain.epochs > 0 ? 'pretrain' : 'lr', epochIndex: 0, stepInEpoch: 0, globalStep: 0, lastEvaluation: undefined };
    let params: Parameters;
    const adam = new Adam();
    let threads = resolveThreads(config, backend);
    if (options.resumeFrom) {
      const loaded = openCheckpoint(options.resumeFrom, dataset);
      const s = loaded.state;
      const mismatch = resumeMismatch(s.config, config);
      if (mismatch) throw new TrainingError(`cannot resume from ${options.resumeFrom}: ${mismatch}`);
      Object.assign(position, { phase: s.phase, epochIndex: s.epochIndex, stepInEpoch: s.stepInEpoch, globalStep: s.globalStep, lastEvaluation: s.lastEvaluation });
      // Continue with the thread count the run started with: the noise streams depend on it.
      threads = backend.name === 'wasm' ? (s.threads ?? 1) : 1;
      params = restoreVariables(loaded, 'param', true);
      adam.state.step = s.adamStep;
      adam.state.firstMoments = restoreVariables(loaded, 'adam.m', false);
      adam.state.secondMoments = restoreVariables(loaded, 'adam.v', false);
    } else {
      params = initParameters(plan.model, position.phase === 'pretrain' ? 'full' : config.kind, config.seed);
    }
    const resumedFromStep = position.globalStep;
    const stepper = threads > 1
      ? await createParallelStepper({ model: plan.model, config, numClasses: dataset.numClasses, workers: threads })
      : undefined;
    await stepper?.load(params, adam, position.phase);
    const run = new TrainingRun(started, config, dataset, backend, options, plan, position, params, adam, threads, stepper);
    run.emit({
      type: 'start', backend, dataset: dataset.identity, model: summarizeModel(plan.model, config.kind), totalSteps: plan.totalSteps,
      resumedFromStep, threads, trainImages: plan.trainIndices.length, validationImages: plan.validation.indices.length,
      testImages: plan.test.indices.length,
    });
    return run;
  }

  private emit(event: TrainingEvent): void {
    this.options.onEvent?.(event);
  }

  /** Brings the workers' parameters and optimizer state into this thread before they are read here. */
  private async syncFromWorkers(): Promise<void> {
    await this.stepper?.read(this.params, this.adam);
  }

  /** Runs what is left of both phases (or up to a stop) and describes the outcome. */
  async runPhases(): Promise<TrainingResult> {
    const { config, position, options } = this;
    for (const currentPhase of ['pretrain', 'lr'] as const) {
      if (currentPhase === 'pretrain' && position.phase === 'lr') continue;
      if (currentPhase === 'lr' && position.phase === 'pretrain') await this.handOverToLr();
      const phaseConfig: PhaseConfig = position.phase === 'pretrain' ? config.pretrain : config.lr;
      this.emit({ type: 'phase', phase: position.phase, epochs: phaseConfig.epochs, stepsPerEpoch: this.plan.stepsPerEpoch });
      for (; position.epochIndex < phaseConfig.epochs; position.epochIndex++) {
        await this.runEpoch(phaseConfig);
        if (this.stopped) break;
      }
      if (this.stopped) break;
    }
    if (options.keepParameters) await this.syncFromWorkers();
    const { throughput, checkpointPath } = this;
    return {
      status: this.stopped ? 'stopped' : 'completed',
      backend: this.backend,
      dataset: this.dataset.identity,
      ...(position.lastEvaluation ? { evaluation: position.lastEvaluation } : {}),
      steps: position.globalStep,
      threads: this.threads,
      durationSeconds: (performance.now() - this.started) / 1000,
      imagesPerSecond: throughput.seconds > 0 ? throughput.images / throughput.seconds : 0,
      ...(checkpointPath ? { checkpoint: checkpointPath } : {}),
      ...(options.keepParameters ? { parameters: this.params } : {}),
      model: this.plan.model,
    };
  }

  /** Hands over from the pretrained full-precision net to the LR phase (LRNETS.md section 4). */
  private async handOverToLr(): Promise<void> {
    await this.syncFromWorkers();
    const lrParams = discreteFromFullPrecision(this.plan.model, this.params, this.config.kind);
    disposeParameters(this.params);
    this.params = lrParams;
    this.adam.dispose();
    this.adam.state.step = 0;
    Object.assign(this.position, { phase: 'lr', epochIndex: 0, stepInEpoch: 0 });
    await this.stepper?.load(this.params, this.adam, 'lr');
  }

  /** The steps left in epoch `position.epochIndex`, then (unless stopped) its summary, evaluation and checkpoint. */
  private async runEpoch(phaseConfig: PhaseConfig): Promise<void> {
    const { config, position, plan } = this;
    const { phase, epochIndex } = position;
    const epochNumber = epochIndex + 1;
    const order = plan.trainIndices.slice();
    new Random(deriveSeed(config.seed, PHASE_ID[phase], epochIndex)).shuffle(order);
    const learningRate = staircaseLearningRate(phaseConfig.learningRate, phaseConfig.decayFactor, phaseConfig.decayEvery, epochIndex);
    const totals = { loss: 0, correct: 0, seen: 0 };
    // Image folders decode in other threads: the next batch is read while this step trains.
    let nextBatch = position.stepInEpoch < plan.stepsPerEpoch ? this.readBatch(order, position.stepInEpoch) : undefined;
    for (; position.stepInEpoch < plan.stepsPerEpoch; position.stepInEpoch++) {
      if (this.options.signal?.aborted) {
        this.stopped = true;
        await this.writeCheckpoint(epochNumber, epochIndex, position.stepInEpoch);
        return;
      }
      const stepStart = performance.now();
      const batch = await nextBatch!;
      nextBatch = position.stepInEpoch + 1 < plan.stepsPerEpoch ? this.readBatch(order, position.stepInEpoch + 1) : undefined;
      await this.step(batch, learningRate, epochNumber, stepStart, totals);
      if (config.checkpointEvery > 0 && position.globalStep % config.checkpointEvery === 0 && position.stepInEpoch + 1 < plan.stepsPerEpoch) {
        await this.writeCheckpoint(epochNumber, epochIndex, position.stepInEpoch + 1);
      }
    }
    position.stepInEpoch = 0;
    if (totals.seen > 0) {
      this.emit({ type: 'epoch', phase, epoch: epochNumber, step: position.globalStep, meanLoss: totals.loss / totals.seen, trainAccuracy: totals.correct / totals.seen });
    }
    const last = epochNumber === phaseConfig.epochs;
    const periodic = config.evaluation.every > 0 && epochNumber % config.evaluation.every === 0;
    if (last || periodic) {
      if (phase === 'pretrain') await this.evaluateFullPrecision(epochNumber);
      else await this.evaluateLr(epochNumber);
    }
    await this.writeCheckpoint(epochNumber, epochIndex + 1, 0);
  }

  /** Starts reading the batch of a step of this epoch (augmented from (seed, phase, epoch, step)). */
  private readBatch(order: Int32Array, step: number): Promise<StepBatch> {
    const { config, position } = this;
    const [height, width, channels] = this.plan.inputShape;
    const indices = order.subarray(step * config.batchSize, (step + 1) * config.batchSize);
    const input = new Float32Array(indices.length * height * width * channels);
    const labels = new Int32Array(indices.length);
    const augmentSeed = deriveSeed(config.seed, 51, PHASE_ID[position.phase], position.epochIndex, step);
    const shape: StepBatch['shape'] = [indices.length, height, width, channels];
    const read = this.dataset.train.read(indices, input, labels, augmentSeed).then((): StepBatch => ({ input, labels, shape }));
    read.catch(() => undefined); // awaited in its step; one left behind by a stop is not an unhandled rejection
    return read;
  }

  /** One optimizer step (here or on the workers), its checks and its 'step' event. */
  private async step(batch: StepBatch, learningRate: number, epochNumber: number, stepStart: number, totals: { loss: number; correct: number; seen: number }): Promise<void> {
    const { config, position, plan, backend, threads, stepper } = this;
    const { phase } = position;
    const images = batch.shape[0];
    const [loss, crossEntropy, correct] = await (stepper
      ? stepper.step(batch.input, batch.labels, batch.shape, position.globalStep, learningRate)
      : trainStep({ model: plan.model, params: this.params, adam: this.adam, config, phase, numClasses: this.dataset.numClasses, globalStep: position.globalStep, learningRate }, batch)
    ).catch((error: unknown) => {
      throw explainStepFailure(error, backend, config.batchSize, threads);
    });
    // On the cpu and wasm backends every await above resolves at once; yielding to the event loop lets timers,
    // signal handlers and messages (a stop request, a metrics flush) run between steps.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const globalStep = ++position.globalStep;
    if (!Number.isFinite(loss)) {
      throw new TrainingError(
        `the loss became ${loss} at step ${globalStep} (${phase} phase, epoch ${epochNumber}, learning rate ${learningRate}): ` +
        'lower the learning rate or check the input data',
      );
    }
    const seconds = (performance.now() - stepStart) / 1000;
    this.throughput.images += images;
    this.throughput.seconds += seconds;
    totals.loss += loss * images;
    totals.correct += correct;
    totals.seen += images;
    const imagesPerSecond = this.throughput.images / this.throughput.seconds;
    this.emit({
      type: 'step', phase, epoch: epochNumber, step: globalStep, totalSteps: plan.totalSteps, loss, crossEntropy,
      batchAccuracy: correct / images, learningRate, imagesPerSecond,
      etaSeconds: ((plan.totalSteps - globalStep) * config.batchSize) / imagesPerSecond,
      elapsedSeconds: (performance.now() - this.started) / 1000,
    });
  }

  /** Accuracy of the full-precision net on the validation and test splits. */
  private async evaluateFullPrecision(epochNumber: number): Promise<void> {
    const { model, calibration, validation, test, evaluationBatch } = this.plan;
    await this.syncFromWorkers();
    // Batch norm re-estimated as for the discrete nets: early in a run the moving statistics (momentum
    // 0.99 in the paper's recipe) still lag far behind the weights.
    const base = { mode: 'full', training: false, batchStatistics: false } as const;
    const images = calibration.indices.subarray(0, this.config.evaluation.batchNormImages);
    const statisticsOverride = images.length > 0
      ? await estimateBatchNormStatistics(model, this.params, { source: calibration.source, indices: images }, base, evaluationBatch)
      : undefined;
    const fp = { ...base, ...(statisticsOverride ? { statisticsOverride } : {}) };
    const fullPrecision = {
      validation: await accuracy(model, this.params, validation, fp, evaluationBatch),
      test: await accuracy(model, this.params, test, fp, evaluationBatch),
    };
    for (const s of statisticsOverride?.values() ?? []) tf.dispose([s.mean, s.variance]);
    this.emit({ type: 'evaluation', phase: 'pretrain', epoch: epochNumber, step: this.position.globalStep, fullPrecision });
  }

  /** Discrete nets sampled from the LR distributions, evaluated (LRNETS.md section 6). */
  private async evaluateLr(epochNumber: number): Promise<void> {
    const { config, position, plan } = this;
    await this.syncFromWorkers();
    position.lastEvaluation = await evaluateDiscrete(plan.model, this.params, plan.validation, plan.test, {
      kind: config.kind,
      samples: config.evaluation.samples,
      sampleSeed: deriveSeed(config.seed, 41, position.globalStep),
      batchNormImages: config.evaluation.batchNormImages,
      calibration: plan.calibration,
      batchSize: plan.evaluationBatch,
      onProgress: (netsDone, netsTotal) => this.emit({ type: 'evaluating', netsDone, netsTotal }),
    });
    this.emit({ type: 'evaluation', phase: 'lr', epoch: epochNumber, step: position.globalStep, discrete: position.lastEvaluation });
  }

  /** Saves the state after `completedEpochs` epochs and `completedSteps` steps of the next one. */
  private async writeCheckpoint(epochNumber: number, completedEpochs: number, completedSteps: number): Promise<void> {
    const { options, position, adam } = this;
    if (!options.checkpointDir) return;
    await this.syncFromWorkers();
    const tensors = new Map<string, Tensor>();
    for (const [name, v] of this.params) tensors.set(`param:${name}`, v);
    for (const [name, v] of adam.state.firstMoments) tensors.set(`adam.m:${name}`, v);
    for (const [name, v] of adam.state.secondMoments) tensors.set(`adam.v:${name}`, v);
    const state: CheckpointState = {
      config: this.config, datasetChecksum: this.dataset.identity.checksum, phase: position.phase, epochIndex: completedEpochs,
      stepInEpoch: completedSteps, globalStep: position.globalStep, adamStep: adam.state.step, threads: this.threads,
      ...(position.lastEvaluation ? { lastEvaluation: position.lastEvaluation } : {}),
    };
    const file = path.join(options.checkpointDir, checkpointFileName(position.globalStep, options.checkpointPrefix));
    const bytes = await saveCheckpoint(file, state, tensors);
    this.checkpointPath = file;
    this.emit({ type: 'checkpoint', phase: position.phase, epoch: epochNumber, step: position.globalStep, path: file, bytes });
  }

  /** Ends the workers and frees the tensors (the parameters only when the caller did not ask to keep them). */
  async dispose(): Promise<void> {
    await this.stepper?.dispose();
    this.adam.dispose();
    if (!this.options.keepParameters) disposeParameters(this.params);
  }
}

/**
 * The wasm backend has a 32-bit heap (4 GiB): a batch whose activations do not fit aborts the module with a bare
 * "Aborted()". Say what happened and what to change instead.
 */
function explainStepFailure(error: unknown, backend: BackendInfo, batchSize: number, threads: number): unknown {
  const message = error instanceof Error ? error.message : String(error);
  if (backend.name === 'wasm' && /Aborted\(|out of memory|Cannot enlarge memory/i.test(message)) {
    return new TrainingError(
      `the wasm backend ran out of memory at batch size ${batchSize}${threads > 1 ? ` (${Math.ceil(batchSize / threads)} images per thread)` : ''}: ` +
      'its heap is limited to 4 GiB per thread; lower the batch size (--batch) or use more threads',
    );
  }
  return error;
}

/** Worker threads a run trains with: only the wasm backend runs data-parallel (one replica per core). */
function resolveThreads(config: TrainingConfig, backend: BackendInfo): number {
  if (backend.name !== 'wasm') return 1;
  const threads = config.threads ?? 1;
  return threads === 'auto' ? defaultWorkerCount() : threads;
}

/**
 * One optimizer step. Returns [total loss, cross-entropy, correct predictions in the batch].
 * Batch-norm moving statistics are updated from the batch statistics seen in the forward pass.
 */
/** The examples of one training step. */
export interface StepBatch {
  readonly input: Float32Array;
  readonly labels: Int32Array;
  /** [images, height, width, channels] */
  readonly shape: [number, number, number, number];
}

/** What a training step works on besides its batch: the net and its optimizer, and where in the run the step is. */
export interface StepContext {
  readonly model: ModelDefinition;
  readonly params: Parameters;
  readonly adam: Adam;
  readonly config: TrainingConfig;
  readonly phase: Phase;
  readonly numClasses: number;
  /** The run's global step (0-based): it seeds the step's noise and dropout. */
  readonly globalStep: number;
  readonly learningRate: number;
}

export async function trainStep(context: StepContext, batch: StepBatch): Promise<[number, number, number]> {
  const { model, params, adam, config, phase, numClasses, globalStep, learningRate } = context;
  const { input, labels, shape } = batch;
  const layers = describeLayers(model);
  const step = lossAndGradients(model, params, config, phase, input, labels, shape, numClasses, stepSeeds(config.seed, globalStep));
  try {
    adam.apply(params, Object.fromEntries(step.gradients), learningRate);
    if (phase === 'lr' && config.kind === 'binary' && config.architecture === 'resnet18') {
      // The authors' binary ImageNet recipe keeps the logits in [-4.6, 4.6] (p(+1) within about [0.01, 0.99]).
      for (const l of layers.filter((layer) => layer.discrete)) {
        const a = params.get(`${l.name}/a`)!;
        tf.tidy(() => a.assign(tf.clipByValue(a, -BINARY_IMAGENET_LOGIT_CLIP, BINARY_IMAGENET_LOGIT_CLIP)));
      }
    }
    const momentum = config.batchNormMomentum;
    tf.tidy(() => {
      for (const [layer, stats] of step.batchStatistics) {
        const mean = params.get(`${layer}/movingMean`)!;
        const variance = params.get(`${layer}/movingVariance`)!;
        mean.assign(tf.add(tf.mul(momentum, mean), tf.mul(1 - momentum, stats.mean)));
        variance.assign(tf.add(tf.mul(momentum, variance), tf.mul(1 - momentum, stats.variance)));
      }
    });
    const [lossValue, ceValue, correctValue] = await Promise.all([step.loss.data(), step.crossEntropy.data(), step.correct.data()]);
    return [lossValue[0]!, ceValue[0]!, correctValue[0]!];
  } finally {
    step.dispose();
  }
}

/** A run's state read back from one of its checkpoints. */
export interface TrainedRun {
  readonly config: TrainingConfig;
  readonly model: ModelDefinition;
  readonly phase: Phase;
  readonly globalStep: number;
  /** Whether the LR phase ran to its last epoch. */
  readonly lrFinished: boolean;
  readonly evaluation?: DiscreteEvaluation;
  /** Owned by the caller (disposeParameters). */
  readonly parameters: Parameters;
}

/** Loads a checkpoint's parameters and state; the dataset gives the input shape and must be the run's own. */
export function loadTrainedRun(file: string, data: Dataset | TrainingData): TrainedRun {
  const dataset = asTrainingData(data);
  const loaded = openCheckpoint(file, dataset);
  const s = loaded.state;
  const model = defineModel(s.config.architecture, {
    inputShape: dataset.inputShape, numClasses: dataset.numClasses, kind: s.config.kind,
  });
  const parameters = restoreVariables(loaded, 'param', true);
  return {
    config: s.config, model, phase: s.phase, globalStep: s.globalStep,
    lrFinished: s.phase === 'lr' && s.epochIndex >= s.config.lr.epochs,
    ...(s.lastEvaluation ? { evaluation: s.lastEvaluation } : {}),
    parameters,
  };
}

/** Reads a checkpoint and checks it belongs to this dataset. */
function openCheckpoint(file: string, dataset: TrainingData): LoadedCheckpoint<CheckpointState> {
  const loaded = loadCheckpoint<CheckpointState>(file);
  const checksum = loaded.state.datasetChecksum;
  if (checksum !== dataset.identity.checksum) {
    throw new TrainingError(`checkpoint ${file} was written for other data (dataset checksum ${checksum.slice(0, 12)}, now ${dataset.identity.checksum.slice(0, 12)})`);
  }
  return loaded;
}

/** Variables from the checkpoint tensors stored as "<group>:<name>", keyed by name. */
function restoreVariables(loaded: LoadedCheckpoint<CheckpointState>, group: string, trainable: boolean): Map<string, tf.Variable> {
  const prefix = `${group}:`;
  const variables = new Map<string, tf.Variable>();
  tf.tidy(() => {
    for (const [name, value] of loaded.values) {
      if (name.startsWith(prefix)) variables.set(name.slice(prefix.length), tf.variable(toTensor(value), trainable));
    }
  });
  return variables;
}
