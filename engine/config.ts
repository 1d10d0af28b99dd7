/**
 * Training configurations: the paper's recipes as presets (LRNETS.md sections 4-6), quick variants that finish in
 * minutes on a CPU, and validation that lists every problem at once.
 */
import type { DiscreteKind } from './distributions.ts';
import { REGULARIZATION } from './distributions.ts';
import { ARCHITECTURES, type Architecture } from './models.ts';
import { BACKEND_CHOICES, type BackendChoice } from './backends/index.ts';
import { DATASETS, DATASET_NAMES, type DatasetName } from './data/registry.ts';
import type { DatasetReadOptions, DatasetSpecificOption } from './data/entry.ts';

/**
 * A run's data: a data set of the registry (engine/data/registry.ts) and how to read it. `path` is the folder (MNIST
 * IDX files, CIFAR-10 batches, an image folder with train/<class>/ and val/<class>/) or CIFAR-10 .tar.gz; not used
 * by the bundled sample.
 */
export interface DatasetConfig extends DatasetReadOptions {
  readonly name: DatasetName;
}

/** The two phases of a run, each configured by its own key of TrainingConfig: full-precision pretraining, then the LR phase. */
export type Phase = 'pretrain' | 'lr';

export interface PhaseConfig {
  readonly epochs: number;
  readonly learningRate: number;
  /** Staircase decay: the learning rate is multiplied by `decayFactor` every `decayEvery` epochs (0 = never). */
  readonly decayEvery: number;
  readonly decayFactor: number;
  /** lambda_w: L2 coefficient (0.5 * lambda * ||W||^2) on full-precision kernels. */
  readonly weightDecay: number;
}

export interface LrPhaseConfig extends PhaseConfig {
  /** Ternary "probability decay" lambda_p. */
  readonly probabilityDecay: number;
  /** Binary "beta" penalty lambda_b. */
  readonly betaPenalty: number;
}

export interface EvaluationConfig {
  /** Sampled discrete nets per evaluation (the authors use 7). */
  readonly samples: number;
  /** Evaluate every N epochs of each phase (0 = only at the end). */
  readonly every: number;
  /**
   * Re-estimate batch-norm statistics of each discrete net on this many training images before evaluating it
   * (Peters & Welling 2018); 0 keeps the moving statistics gathered on the stochastic LR pre-activations.
   */
  readonly batchNormImages: number;
}

export interface TrainingConfig {
  readonly preset: string;
  readonly architecture: Architecture;
  readonly kind: DiscreteKind;
  readonly dataset: DatasetConfig;
  readonly seed: number;
  readonly batchSize: number;
  /** Images held out from the training set to select among sampled nets. */
  readonly validationSize: number;
  /** Full-precision pretraining; 0 epochs starts the LR phase from the paper's weak uniform initialization. */
  readonly pretrain: PhaseConfig;
  readonly lr: LrPhaseConfig;
  readonly evaluation: EvaluationConfig;
  /** Momentum of the batch-norm moving statistics. */
  readonly batchNormMomentum: number;
  readonly backend: BackendChoice;
  /** Save a checkpoint every N steps, besides every epoch end and on stop (0 = epoch ends only). */
  readonly checkpointEvery: number;
  /**
   * Data-parallel worker threads for the wasm backend (each a replica on one core; engine/parallel). 'auto' uses
   * every core; 1 trains in the calling thread. Other backends always use 1. A run is reproducible for a given
   * thread count, and a resumed run keeps the count it started with.
   */
  readonly threads?: number | 'auto';
}

export type PresetName =
  | 'mnist-binary' | 'mnist-ternary' | 'cifar10-binary' | 'cifar10-ternary' | 'imagenet-binary' | 'imagenet-ternary'
  | 'mnist-binary-quick' | 'mnist-ternary-quick' | 'cifar10-binary-quick' | 'cifar10-ternary-quick'
  | 'imagenet-binary-quick' | 'imagenet-ternary-quick';

const pretrainPaper: PhaseConfig = { epochs: 100, learningRate: 1e-3, decayEvery: 50, decayFactor: 0.1, weightDecay: 1e-4 };

function paperLr(dataset: 'mnist' | 'cifar10' | 'imagenet', epochs: number, decayEvery: number): LrPhaseConfig {
  const r = REGULARIZATION[dataset];
  return {
    epochs, learningRate: 0.01, decayEvery, decayFactor: 0.1, weightDecay: r.weightDecay,
    probabilityDecay: r.probabilityDecay, betaPenalty: r.betaPenalty,
  };
}

const DATASET_OF: Record<Architecture, DatasetName> = { mnist: 'mnist', 'cifar10-vgg': 'cifar10', resnet18: 'imagefolder' };

function paperPreset(preset: PresetName, architecture: Architecture, kind: DiscreteKind, lr: LrPhaseConfig): TrainingConfig {
  return {
    preset, architecture, kind,
    dataset: { name: DATASET_OF[architecture] },
    seed: 1, batchSize: 256, validationSize: 5000,
    pretrain: pretrainPaper, lr,
    evaluation: { samples: 7, every: 10, batchNormImages: 4096 },
    batchNormMomentum: 0.99, backend: 'auto', checkpointEvery: 0, threads: 'auto',
  };
}

function quick(base: TrainingConfig, preset: PresetName, changes: Partial<TrainingConfig>): TrainingConfig {
  return { ...base, preset, ...changes };
}

const mnistBinary = paperPreset('mnist-binary', 'mnist', 'binary', paperLr('mnist', 190, 100));
const mnistTernary = paperPreset('mnist-ternary', 'mnist', 'ternary', paperLr('mnist', 190, 100));
const cifarBinary = paperPreset('cifar10-binary', 'cifar10-vgg', 'binary', paperLr('cifar10', 450, 200));
const cifarTernary = paperPreset('cifar10-ternary', 'cifar10-vgg', 'ternary', paperLr('cifar10', 290, 170));
// ImageNet: LRNETS.md gives the LR phase (55 epochs, x0.1 every 30) and the regularization, not the full-precision
// pretraining (the authors start from a pretrained ResNet-18): here 60 epochs of the pretraining recipe, x0.1 every
// 20, with ImageNet's weight decay. Validation: 10,000 images held out of train/.
function imagenetPreset(preset: PresetName, kind: DiscreteKind): TrainingConfig {
  const lr = paperLr('imagenet', 55, 30);
  return {
    ...paperPreset(preset, 'resnet18', kind, lr),
    validationSize: 10_000,
    pretrain: { ...pretrainPaper, epochs: 60, decayEvery: 20, weightDecay: lr.weightDecay },
    evaluation: { samples: 7, every: 5, batchNormImages: 4096 },
  };
}
const imagenetBinary = imagenetPreset('imagenet-binary', 'binary');
const imagenetTernary = imagenetPreset('imagenet-ternary', 'ternary');

// Measured here: 1 FP + 1 LR epoch at these rates on 15,000 MNIST digits gives a 97.8% ternary argmax net.
const quickMnist: Partial<TrainingConfig> = {
  dataset: { name: 'mnist-sample' },
  batchSize: 100,
  validationSize: 1000,
  pretrain: { ...pretrainPaper, epochs: 2, learningRate: 3e-3, decayEvery: 0 },
  evaluation: { samples: 3, every: 1, batchNormImages: 1024 },
  batchNormMomentum: 0.9,
};

function quickLr(base: LrPhaseConfig, epochs: number): LrPhaseConfig {
  return { ...base, epochs, decayEvery: 0, learningRate: 0.003 };
}

const quickCifar: Partial<TrainingConfig> = {
  batchSize: 32,
  validationSize: 200,
  pretrain: { ...pretrainPaper, epochs: 1, decayEvery: 0 },
  evaluation: { samples: 2, every: 1, batchNormImages: 256 },
  batchNormMomentum: 0.9,
};

// A smoke run of the ResNet-18 recipe on any image folder: 64x64 crops of 3,000 images, one epoch per phase.
const quickImagenet: Partial<TrainingConfig> = {
  dataset: { name: 'imagefolder', trainLimit: 3000, testLimit: 500, cropSize: 64, resizeShorter: 72 },
  batchSize: 32,
  validationSize: 200,
  pretrain: { ...pretrainPaper, epochs: 1, decayEvery: 0, weightDecay: REGULARIZATION.imagenet.weightDecay },
  evaluation: { samples: 2, every: 1, batchNormImages: 256 },
  batchNormMomentum: 0.9,
};

/** Every preset by name. The paper's recipes first, then their `-quick` variants. */
export const PRESETS: Readonly<Record<PresetName, TrainingConfig>> = {
  'mnist-binary': mnistBinary,
  'mnist-ternary': mnistTernary,
  'cifar10-binary': cifarBinary,
  'cifar10-ternary': cifarTernary,
  'imagenet-binary': imagenetBinary,
  'imagenet-ternary': imagenetTernary,
  'mnist-binary-quick': quick(mnistBinary, 'mnist-binary-quick', { ...quickMnist, lr: quickLr(mnistBinary.lr, 2) }),
  'mnist-ternary-quick': quick(mnistTernary, 'mnist-ternary-quick', { ...quickMnist, lr: quickLr(mnistTernary.lr, 2) }),
  'cifar10-binary-quick': quick(cifarBinary, 'cifar10-binary-quick', {
    ...quickCifar, dataset: { name: 'cifar10', trainLimit: 2000, testLimit: 1000 }, lr: quickLr(cifarBinary.lr, 1),
  }),
  'cifar10-ternary-quick': quick(cifarTernary, 'cifar10-ternary-quick', {
    ...quickCifar, dataset: { name: 'cifar10', trainLimit: 2000, testLimit: 1000 }, lr: quickLr(cifarTernary.lr, 1),
  }),
  'imagenet-binary-quick': quick(imagenetBinary, 'imagenet-binary-quick', { ...quickImagenet, lr: quickLr(imagenetBinary.lr, 1) }),
  'imagenet-ternary-quick': quick(imagenetTernary, 'imagenet-ternary-quick', { ...quickImagenet, lr: quickLr(imagenetTernary.lr, 1) }),
};

export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}

/** Thrown for an invalid configuration; `problems` lists every field that is wrong and why. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid training configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

type Fields = Record<string, unknown>;

const isObject = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The fields of T as a tree (true for a leaf), so the table below stops compiling when TrainingConfig changes. */
type FieldTree<T> = {
  readonly [K in keyof T]-?: NonNullable<T[K]> extends readonly unknown[] ? true : NonNullable<T[K]> extends object ? FieldTree<NonNullable<T[K]>> : true;
};
type FieldNode = true | { readonly [key: string]: FieldNode };

const PHASE_FIELDS = { epochs: true, learningRate: true, decayEvery: true, decayFactor: true, weightDecay: true } as const;

/** Every field of a configuration: anything else is a typo (that would silently train with the preset's value). */
const CONFIG_FIELDS: FieldTree<TrainingConfig> = {
  preset: true,
  architecture: true,
  kind: true,
  dataset: { name: true, path: true, trainLimit: true, testLimit: true, cropSize: true, resizeShorter: true, decodeWorkers: true },
  seed: true,
  batchSize: true,
  validationSize: true,
  pretrain: PHASE_FIELDS,
  lr: { ...PHASE_FIELDS, probabilityDecay: true, betaPenalty: true },
  evaluation: { samples: true, every: true, batchNormImages: true },
  batchNormMomentum: true,
  backend: true,
  checkpointEvery: true,
  threads: true,
};

/** "lr.momentum: unknown field (expected ...)" for every field of `value` (at any depth) that the tree lacks. */
function unknownFields(value: Fields, fields: Readonly<Record<string, FieldNode>>, at: string, problems: string[]): void {
  for (const [key, child] of Object.entries(value)) {
    const known = Object.hasOwn(fields, key) ? fields[key] : undefined;
    if (known === undefined) problems.push(`${at}${key}: unknown field (expected ${Object.keys(fields).join(', ')})`);
    else if (known !== true && isObject(child)) unknownFields(child, known, `${at}${key}.`, problems);
  }
}

/**
 * Parses a training configuration from any value (an API request, CLI flags, a stored run read back): every field
 * is checked, unknown fields are refused, and a ConfigError lists all problems at once. What it returns is trusted
 * by the engine without further checks.
 */
export function parseConfig(value: unknown): TrainingConfig {
  if (!isObject(value)) throw new ConfigError(['the configuration must be an object']);
  const problems: string[] = [];
  const num = (path: string, v: unknown, check: (n: number) => boolean, expected: string) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) {
      problems.push(`${path}: expected ${expected}, got ${JSON.stringify(v)}`);
    }
  };
  const int = (path: string, v: unknown, min: number) =>
    num(path, v, (n) => Number.isInteger(n) && n >= min && n <= Number.MAX_SAFE_INTEGER, `an integer >= ${min}`);
  const positive = (path: string, v: unknown) => num(path, v, (n) => n > 0, 'a number > 0');
  const nonNegative = (path: string, v: unknown) => num(path, v, (n) => n >= 0, 'a number >= 0');

  const config = value;
  unknownFields(config, CONFIG_FIELDS, '', problems);
  if (typeof config.preset !== 'string') problems.push('preset: expected a string');
  if (!ARCHITECTURES.includes(config.architecture as Architecture)) {
    problems.push(`architecture: expected one of ${ARCHITECTURES.join(', ')}, got ${JSON.stringify(config.architecture)}`);
  }
  if (config.kind !== 'binary' && config.kind !== 'ternary') {
    problems.push(`kind: expected "binary" or "ternary", got ${JSON.stringify(config.kind)}`);
  }
  if (!isObject(config.dataset)) {
    problems.push('dataset: expected an object with a name');
  } else {
    const d = config.dataset;
    const entry = DATASETS.find((e) => e.name === d.name);
    if (!entry) {
      problems.push(`dataset.name: expected one of ${DATASET_NAMES.join(', ')}, got ${JSON.stringify(d.name)}`);
    } else {
      if (entry.location === 'path' && (typeof d.path !== 'string' || d.path.length === 0)) {
        problems.push(`dataset.path: the ${entry.name} dataset needs a folder (--data DIR): ${entry.pathHint}`);
      }
      const own: readonly DatasetSpecificOption[] = 'options' in entry ? entry.options : [];
      const others = (['cropSize', 'resizeShorter', 'decodeWorkers'] as const).filter((k) => d[k] !== undefined && !own.includes(k));
      if (others.length > 0) {
        problems.push(`dataset.${others[0]}: only image folders (dataset imagefolder) are cropped and decoded; remove it for ${entry.name}`);
      }
    }
    if (d.path !== undefined && typeof d.path !== 'string') problems.push(`dataset.path: expected a string, got ${JSON.stringify(d.path)}`);
    if (d.trainLimit !== undefined) int('dataset.trainLimit', d.trainLimit, 1);
    if (d.testLimit !== undefined) int('dataset.testLimit', d.testLimit, 1);
    if (d.cropSize !== undefined) int('dataset.cropSize', d.cropSize, 8);
    if (d.resizeShorter !== undefined) int('dataset.resizeShorter', d.resizeShorter, typeof d.cropSize === 'number' ? d.cropSize : 224);
    if (d.decodeWorkers !== undefined) int('dataset.decodeWorkers', d.decodeWorkers, 0);
  }
  // The random generators take 32 bits of the seed: a larger one would silently repeat a smaller one's run.
  num('seed', config.seed, (n) => Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff, 'an integer from 0 to 4294967295');
  int('batchSize', config.batchSize, 1);
  int('validationSize', config.validationSize, 1);
  for (const phase of ['pretrain', 'lr'] as const) {
    const p = config[phase];
    if (!isObject(p)) {
      problems.push(`${phase}: expected an object`);
      continue;
    }
    int(`${phase}.epochs`, p.epochs, phase === 'lr' ? 1 : 0);
    positive(`${phase}.learningRate`, p.learningRate);
    int(`${phase}.decayEvery`, p.decayEvery, 0);
    num(`${phase}.decayFactor`, p.decayFactor, (n) => n > 0 && n <= 1, 'a number in (0, 1]');
    nonNegative(`${phase}.weightDecay`, p.weightDecay);
    if (phase === 'lr') {
      nonNegative('lr.probabilityDecay', p.probabilityDecay);
      nonNegative('lr.betaPenalty', p.betaPenalty);
    }
  }
  if (!isObject(config.evaluation)) {
    problems.push('evaluation: expected an object');
  } else {
    int('evaluation.samples', config.evaluation.samples, 1);
    int('evaluation.every', config.evaluation.every, 0);
    int('evaluation.batchNormImages', config.evaluation.batchNormImages, 0);
  }
  num('batchNormMomentum', config.batchNormMomentum, (n) => n >= 0 && n < 1, 'a number in [0, 1)');
  if (!BACKEND_CHOICES.includes(config.backend as BackendChoice)) {
    problems.push(`backend: expected one of ${BACKEND_CHOICES.join(', ')}, got ${JSON.stringify(config.backend)}`);
  }
  int('checkpointEvery', config.checkpointEvery, 0);
  if (config.threads !== undefined && config.threads !== 'auto') int('threads', config.threads, 1);
  if (problems.length > 0) throw new ConfigError(problems);
  // Every field was checked above: the value is a TrainingConfig.
  return config as unknown as TrainingConfig;
}
