/**
 * The API contract between the UI and the app: one map from method name to request schema and response type, plus
 * the live event type. The Electron preload bridge, the Electron main handlers, the headless host (HTTP +
 * WebSocket) and the renderer client are all typed from it.
 *
 * This file is self-contained on purpose (no imports): the renderer type-checks it under DOM-only settings, and the
 * Node side proves with type assertions (app/services.ts) that the store's and the engine's types fit these wire
 * types, so a renamed field breaks the build instead of the UI. Requests are validated on the Node side with the
 * schemas below before any handler runs; expected errors come back as values (`{ ok: false, error }`).
 */

// ---------------------------------------------------------------------------------------------------------------
// Metric catalog: every metric lrnet records, spelled once
// ---------------------------------------------------------------------------------------------------------------
// A new metric from an event field is three lines here: its key in METRIC_KEYS (or a ScoreField), its
// METRIC_CATALOG entry, and where eventValues finds it in a training event. The recorder, the store, the live and
// compare pages, the runs table and the CLI read it from these; renaming a stored key needs a migration
// (app/store/schema.ts).

/**
 * Keys of the metrics recorded from training events, by what they measure. Every key reads "<stream>/<name>" with
 * a camelCase name (the event field it comes from): stream "train" is written at every optimizer step, "epoch" at
 * each epoch's last step, "test" and "validation" at each evaluation (see scoreKey).
 */
export const METRIC_KEYS = {
  /** Total loss: cross-entropy plus the regularizers. */
  loss: 'train/loss',
  crossEntropy: 'train/crossEntropy',
  /** Accuracy of the stochastic net on its training batch, in [0, 1]. */
  batchAccuracy: 'train/batchAccuracy',
  learningRate: 'train/learningRate',
  imagesPerSecond: 'train/imagesPerSecond',
  /** Mean loss and training accuracy over the epoch. */
  epochLoss: 'epoch/loss',
  epochAccuracy: 'epoch/trainAccuracy',
} as const;

/** The data split an evaluation score was measured on. */
export type ScoreSplit = 'test' | 'validation';
/**
 * An evaluation score: one of the discrete nets of LRNETS.md section 7 (EvaluationScores), or the full-precision
 * net evaluated while pretraining.
 */
export type ScoreField = keyof EvaluationScores | 'fullPrecision';
/** The discrete nets' scores in the order tables list them. */
export const DISCRETE_SCORE_FIELDS = ['argmax', 'sampledMean', 'sampledMin', 'sampledBest', 'selected', 'expected'] as const satisfies readonly (keyof EvaluationScores)[];

export type MetricKey = (typeof METRIC_KEYS)[keyof typeof METRIC_KEYS] | `${ScoreSplit}/${ScoreField}`;

/** The key under which a score of an evaluation is recorded, e.g. "test/argmax". */
export function scoreKey<S extends ScoreSplit, F extends ScoreField>(split: S, field: F): `${S}/${F}` {
  return `${split}/${field}`;
}

/**
 * The metric the runs table and `lrnet runs` rank by: test accuracy of the sampled net selected on validation. It
 * is this project's counterpart of the accuracy the paper reports for the discrete net (the authors' code keeps
 * the best of several sampled nets, chosen on the test set; LRNETS.md section 7 chooses on validation instead).
 */
export const HEADLINE_METRIC = scoreKey('test', 'selected');

/** How one metric is stored and read. */
export interface MetricInfo {
  readonly key: MetricKey;
  /** For a chart title or a legend. */
  readonly label: string;
  /** For a narrow table column. */
  readonly shortLabel: string;
  /** Unit of the stored value: "fraction" (in [0, 1]), "nats", "images/s", or "" for a plain number. */
  readonly unit: string;
  /**
   * Whether its best value is its largest ('max') or smallest ('min'). Values that are not scores (the learning
   * rate) say 'max', as for every metric outside the catalog.
   */
  readonly goal: 'max' | 'min';
  /** Shown as a percentage (the stored value is a fraction). */
  readonly percent: boolean;
  /** When it is recorded: at every optimizer step, at each epoch's end, or at each evaluation. */
  readonly recorded: 'step' | 'epoch' | 'evaluation';
  /** Noisy (one value per step of a random batch): charts smooth its curve by default. */
  readonly smooth: boolean;
}

const SCORE_NETS: Readonly<Record<ScoreField, readonly [label: string, shortLabel: string]>> = {
  argmax: ['argmax net', 'Argmax'],
  sampledMean: ['sampled nets (mean)', 'Sampled mean'],
  sampledMin: ['worst sampled net', 'Worst sampled'],
  sampledBest: ['best sampled net', 'Best sampled'],
  selected: ['validation-selected net', 'Selected'],
  expected: ['expected-weight net', 'Expected'],
  fullPrecision: ['full precision (pretraining)', 'Full precision'],
};

const scoreInfo = (split: ScoreSplit, field: ScoreField): MetricInfo => ({
  key: scoreKey(split, field),
  label: `${split === 'test' ? 'Test' : 'Validation'} accuracy, ${SCORE_NETS[field][0]}`,
  shortLabel: SCORE_NETS[field][1],
  unit: 'fraction',
  goal: 'max',
  percent: true,
  recorded: 'evaluation',
  smooth: false,
});

/** Every score an evaluation records, per split. */
const SCORE_FIELDS: readonly ScoreField[] = [...DISCRETE_SCORE_FIELDS, 'fullPrecision'];

/** Every metric lrnet records: the training curves, then the scores on test, then on validation. */
export const METRIC_CATALOG: readonly MetricInfo[] = [
  { key: METRIC_KEYS.loss, label: 'Training loss', shortLabel: 'Loss', unit: '', goal: 'min', percent: false, recorded: 'step', smooth: true },
  { key: METRIC_KEYS.batchAccuracy, label: 'Batch accuracy (stochastic net)', shortLabel: 'Batch acc', unit: 'fraction', goal: 'max', percent: true, recorded: 'step', smooth: true },
  { key: METRIC_KEYS.crossEntropy, label: 'Training cross-entropy', shortLabel: 'Cross-entropy', unit: 'nats', goal: 'min', percent: false, recorded: 'step', smooth: true },
  { key: METRIC_KEYS.learningRate, label: 'Learning rate', shortLabel: 'LR', unit: '', goal: 'max', percent: false, recorded: 'step', smooth: false },
  { key: METRIC_KEYS.imagesPerSecond, label: 'Throughput (images/s)', shortLabel: 'Images/s', unit: 'images/s', goal: 'max', percent: false, recorded: 'step', smooth: true },
  { key: METRIC_KEYS.epochLoss, label: 'Epoch mean loss', shortLabel: 'Epoch loss', unit: '', goal: 'min', percent: false, recorded: 'epoch', smooth: false },
  { key: METRIC_KEYS.epochAccuracy, label: 'Epoch training accuracy (stochastic net)', shortLabel: 'Epoch acc', unit: 'fraction', goal: 'max', percent: true, recorded: 'epoch', smooth: false },
  ...SCORE_FIELDS.map((field) => scoreInfo('test', field)),
  ...SCORE_FIELDS.map((field) => scoreInfo('validation', field)),
];

const CATALOG_BY_KEY: ReadonlyMap<string, MetricInfo> = new Map(METRIC_CATALOG.map((m) => [m.key, m]));

/** The catalog entry of a key, or undefined for a metric lrnet does not record (another tool's, or a typo). */
export function metricInfo(key: string): MetricInfo | undefined {
  return CATALOG_BY_KEY.get(key);
}

/**
 * Whether bigger is better for a metric: the catalog's goal, and 'max' for a key outside the catalog (ranked like
 * an accuracy; a query can pass its own goal).
 */
export function metricGoal(key: string): 'max' | 'min' {
  return metricInfo(key)?.goal ?? 'max';
}

/**
 * Per-layer weight statistics of a discrete evaluation (LayerStats), as people read them. The engine reports the
 * entropy in bits (meanEntropyBits); the recorder stores it in nats, the unit named here.
 */
export const LAYER_STATISTICS = {
  fracZero: { label: 'Fraction of zero weights', unit: 'fraction' },
  meanEntropy: { label: 'Mean weight entropy', unit: 'nats' },
} as const;

/** One metric value that a training event carries. */
export interface EventMetric {
  readonly key: MetricKey;
  readonly step: number;
  readonly value: number;
}

function eventValues(event: TrainingEvent): readonly (readonly [MetricKey, number | null])[] {
  switch (event.type) {
    case 'step':
      return [
        [METRIC_KEYS.loss, event.loss],
        [METRIC_KEYS.crossEntropy, event.crossEntropy],
        [METRIC_KEYS.batchAccuracy, event.batchAccuracy],
        [METRIC_KEYS.learningRate, event.learningRate],
        [METRIC_KEYS.imagesPerSecond, event.imagesPerSecond],
      ];
    case 'epoch':
      return [
        [METRIC_KEYS.epochLoss, event.meanLoss],
        [METRIC_KEYS.epochAccuracy, event.trainAccuracy],
      ];
    case 'evaluation':
      if (event.phase === 'pretrain') {
        return [
          [scoreKey('test', 'fullPrecision'), event.fullPrecision.test],
          [scoreKey('validation', 'fullPrecision'), event.fullPrecision.validation],
        ];
      }
      return (['test', 'validation'] as const).flatMap((split) => DISCRETE_SCORE_FIELDS.map((field) => [scoreKey(split, field), event.discrete[split][field]] as const));
    default:
      return [];
  }
}

/**
 * The metric values a training event carries, under their catalog keys: what the recorder stores and what the
 * live page adds to its curves, so both read an event the same way. Scores the event leaves null are left out; a
 * NaN loss stays NaN (the store keeps it as a gap).
 */
export function metricsOfEvent(event: TrainingEvent): EventMetric[] {
  const step = 'step' in event ? event.step : 0;
  return eventValues(event).flatMap(([key, value]) => (value === null ? [] : [{ key, step, value }]));
}

// ---------------------------------------------------------------------------------------------------------------
// Results and errors
// ---------------------------------------------------------------------------------------------------------------

/**
 * Why a request failed, for a person: `message` says what to do instead. `problems` lists every wrong field of an
 * invalid request or configuration.
 */
export interface ApiError {
  readonly code: ApiErrorCode;
  readonly message: string;
  readonly problems?: readonly string[];
}

export type ApiErrorCode =
  /** The request's payload does not match the method's schema. */
  | 'invalid-request'
  /** A training configuration failed validation (see problems). */
  | 'invalid-config'
  | 'unknown-method'
  | 'not-found'
  | 'ambiguous-id'
  /** The request conflicts with the run's state (e.g. resuming a completed run). */
  | 'conflict'
  /**
   * The run is held by a process on another host that cannot be checked from here; once the user confirms that it
   * is gone, runs.resume with `steal` (or runs.delete with `force`) takes it over.
   */
  | 'claimed'
  /** The feature is not available here (a native dialog in the browser, exports before they are installed). */
  | 'unavailable'
  | 'export-failed'
  | 'closed'
  /** An unexpected failure; it was logged where the app runs. */
  | 'internal';

export type ApiResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ApiError };

// ---------------------------------------------------------------------------------------------------------------
// Schemas: a small validator whose types are inferred, so the request types below have one source
// ---------------------------------------------------------------------------------------------------------------

/** A runtime check of an unknown value that also carries the static type it proves. */
export interface Schema<T> {
  /** Pushes one message per problem, prefixed with the field's path; the value is valid when none were pushed. */
  check(value: unknown, path: string, problems: string[]): void;
  readonly optional: boolean;
  /** Phantom field for type inference; never set. */
  readonly _type?: T;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type Shape = Record<string, Schema<unknown>>;
type RequiredKeys<S extends Shape> = { [K in keyof S]: S[K]['optional'] extends true ? never : K }[keyof S];
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K]['optional'] extends true ? K : never }[keyof S];
type ObjectOf<S extends Shape> = Simplify<
  { readonly [K in RequiredKeys<S>]: Infer<S[K]> } & { readonly [K in OptionalKeys<S>]?: Infer<S[K]> }
>;

const describe = (value: unknown): string => {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeof value === 'object' ? 'an object' : typeof value;
};
const at = (path: string) => (path ? `${path}: ` : '');

/** POSIX (/home/x), Windows drive (C:\\x, C:/x) or UNC (\\\\server\\share) paths; the contract has no node:path. */
export function isAbsolutePath(value: string): boolean {
  return value.startsWith('/') || /^[A-Za-z]:[\\/]/.test(value) || value.startsWith('\\\\');
}

function schema<T>(check: Schema<T>['check']): Schema<T> {
  return { check, optional: false };
}

/** Schema builders. */
export const s = {
  string(options: { min?: number; max?: number; pattern?: RegExp; what?: string } = {}): Schema<string> {
    const min = options.min ?? 0;
    const max = options.max ?? 10_000;
    return schema((v, path, problems) => {
      if (typeof v !== 'string') problems.push(`${at(path)}expected a string, got ${describe(v)}`);
      else if (v.length < min) problems.push(`${at(path)}expected ${min === 1 ? 'a non-empty string' : `at least ${min} characters`}`);
      else if (v.length > max) problems.push(`${at(path)}expected at most ${max} characters, got ${v.length}`);
      else if (options.pattern && !options.pattern.test(v)) problems.push(`${at(path)}expected ${options.what ?? `a string matching ${options.pattern}`}, got ${describe(v)}`);
    });
  },
  /** Integers are also kept within +-2^53 (above it they are not exact, and SQLite refuses them as LIMIT/OFFSET). */
  number(options: { min?: number; max?: number; integer?: boolean } = {}): Schema<number> {
    const { integer = false } = options;
    const min = options.min ?? (integer ? -Number.MAX_SAFE_INTEGER : -Infinity);
    const max = options.max ?? (integer ? Number.MAX_SAFE_INTEGER : Infinity);
    const expected = `${integer ? 'an integer' : 'a number'}${Number.isFinite(min) ? ` >= ${min}` : ''}${Number.isFinite(max) ? `${Number.isFinite(min) ? ' and' : ''} <= ${max}` : ''}`;
    return schema((v, path, problems) => {
      if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
        problems.push(`${at(path)}expected ${expected}, got ${describe(v)}`);
      }
    });
  },
  /**
   * An absolute file or folder path. A relative one would be resolved against the working folder of the process
   * serving the API, which means nothing to its client.
   */
  absolutePath(options: { max?: number } = {}): Schema<string> {
    const text = s.string({ min: 1, max: options.max ?? 4096 });
    return schema((v, path, problems) => {
      const before = problems.length;
      text.check(v, path, problems);
      if (problems.length === before && !isAbsolutePath(v as string)) {
        problems.push(`${at(path)}expected an absolute path (relative paths would be resolved against the server's working folder), got ${describe(v)}`);
      }
    });
  },
  boolean(): Schema<boolean> {
    return schema((v, path, problems) => {
      if (typeof v !== 'boolean') problems.push(`${at(path)}expected true or false, got ${describe(v)}`);
    });
  },
  oneOf<const T extends readonly (string | number | boolean | null)[]>(values: T): Schema<T[number]> {
    return schema((v, path, problems) => {
      if (!values.includes(v as T[number])) problems.push(`${at(path)}expected one of ${values.map((x) => JSON.stringify(x)).join(', ')}, got ${describe(v)}`);
    });
  },
  array<T>(item: Schema<T>, options: { min?: number; max?: number } = {}): Schema<readonly T[]> {
    const { min = 0, max = 10_000 } = options;
    return schema((v, path, problems) => {
      if (!Array.isArray(v)) return void problems.push(`${at(path)}expected an array, got ${describe(v)}`);
      if (v.length < min) return void problems.push(`${at(path)}expected at least ${min} item${min === 1 ? '' : 's'}, got ${v.length}`);
      if (v.length > max) return void problems.push(`${at(path)}expected at most ${max} items, got ${v.length}`);
      for (let i = 0; i < v.length && problems.length < 50; i++) item.check(v[i], `${path}[${i}]`, problems);
    });
  },
  /** An object with exactly these fields (unknown fields are refused, so a typo is reported rather than ignored). */
  object<S extends Shape>(shape: S): Schema<ObjectOf<S>> {
    return schema((v, path, problems) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return void problems.push(`${at(path)}expected an object, got ${describe(v)}`);
      const record = v as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        if (!Object.hasOwn(shape, key)) problems.push(`${at(path)}unknown field "${key}"${Object.keys(shape).length ? ` (expected ${Object.keys(shape).join(', ')})` : ''}`);
      }
      for (const [key, field] of Object.entries(shape)) {
        const child = path ? `${path}.${key}` : key;
        if (record[key] === undefined) {
          if (!field.optional) problems.push(`${child}: required`);
        } else {
          field.check(record[key], child, problems);
        }
      }
    });
  },
  /**
   * Any plain JSON object up to a nesting depth and size; its fields are checked by the handler (a training
   * configuration is checked field by field by the engine's validateConfig).
   */
  json(options: { maxDepth?: number; maxKeys?: number } = {}): Schema<Record<string, unknown>> {
    const { maxDepth = 8, maxKeys = 500 } = options;
    return schema((v, path, problems) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return void problems.push(`${at(path)}expected an object, got ${describe(v)}`);
      let keys = 0;
      const walk = (x: unknown, depth: number): boolean => {
        if (typeof x !== 'object' || x === null) return true;
        if (depth > maxDepth) return false;
        const values = Array.isArray(x) ? x : Object.values(x);
        keys += values.length;
        return keys <= maxKeys && values.every((y) => walk(y, depth + 1));
      };
      if (!walk(v, 1)) problems.push(`${at(path)}expected an object nested at most ${maxDepth} deep with at most ${maxKeys} values`);
    });
  },
  optional<T>(inner: Schema<T>): Schema<T> & { readonly optional: true } {
    return { check: inner.check, optional: true };
  },
};

/** Checks `value` against `schema`; the problems name each wrong field. */
export function validate<T>(schemaOf: Schema<T>, value: unknown): { ok: true; value: T } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  schemaOf.check(value, '', problems);
  return problems.length === 0 ? { ok: true, value: value as T } : { ok: false, problems };
}

// ---------------------------------------------------------------------------------------------------------------
// Wire types: what crosses the boundary (plain JSON; NaN becomes null)
// ---------------------------------------------------------------------------------------------------------------

export type RunStatus = 'queued' | 'running' | 'completed' | 'failed' | 'stopped' | 'interrupted';
export const RUN_STATUSES = ['queued', 'running', 'completed', 'failed', 'stopped', 'interrupted'] as const;
/** Statuses from which a run can be resumed. */
export const RESUMABLE_STATUSES: readonly RunStatus[] = ['stopped', 'failed', 'interrupted'];

export type Architecture = 'mnist' | 'cifar10-vgg' | 'resnet18';
export type DiscreteKind = 'binary' | 'ternary';
export type BackendChoice = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export type DatasetName = 'mnist-sample' | 'mnist' | 'fashion-mnist' | 'cifar10' | 'imagefolder';

/** A data set of the engine's registry as the New-run form offers it. */
export interface DatasetInfo {
  readonly name: DatasetName;
  readonly title: string;
  readonly description: string;
  /** 'bundled': needs no folder; 'path': the run names its folder. */
  readonly location: 'bundled' | 'path';
  /** What the folder must hold. */
  readonly pathHint?: string;
  readonly architectures: readonly Architecture[];
}

export interface PhaseConfig {
  readonly epochs: number;
  readonly learningRate: number;
  readonly decayEvery: number;
  readonly decayFactor: number;
  readonly weightDecay: number;
}

/** The engine's TrainingConfig (engine/config.ts); app/services.ts asserts the two stay identical. */
export interface TrainingConfig {
  readonly preset: string;
  readonly architecture: Architecture;
  readonly kind: DiscreteKind;
  readonly dataset: {
    readonly name: DatasetName;
    readonly path?: string;
    readonly trainLimit?: number;
    readonly testLimit?: number;
    /** Image folders only: crop side, shorter side before cropping, decoding threads. */
    readonly cropSize?: number;
    readonly resizeShorter?: number;
    readonly decodeWorkers?: number;
  };
  readonly seed: number;
  readonly batchSize: number;
  readonly validationSize: number;
  readonly pretrain: PhaseConfig;
  readonly lr: PhaseConfig & { readonly probabilityDecay: number; readonly betaPenalty: number };
  readonly evaluation: { readonly samples: number; readonly every: number; readonly batchNormImages: number };
  readonly batchNormMomentum: number;
  readonly backend: BackendChoice;
  readonly checkpointEvery: number;
  /** Data-parallel worker threads on wasm ('auto': every core). */
  readonly threads?: number | 'auto';
}

export interface DatasetIdentity {
  readonly name: string;
  readonly source: string;
  readonly trainCount: number;
  readonly testCount: number;
  readonly checksum: string;
}

export interface RunListRow {
  readonly id: string;
  readonly name: string;
  readonly status: RunStatus;
  readonly createdAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly preset: string | null;
  readonly seed: number;
  readonly datasetName: string | null;
  readonly datasetChecksum: string | null;
  readonly backend: string | null;
  readonly adapter: string | null;
  readonly progress: number | null;
  readonly error: string | null;
  readonly tags: readonly string[];
  readonly metric: { readonly key: string; readonly best: number | null; readonly bestStep: number | null; readonly last: number; readonly lastStep: number } | null;
}

/** A page of the runs table. `kind` is the run's discrete kind (binary/ternary) read from its configuration. */
export interface RunsPage {
  readonly rows: readonly (RunListRow & { readonly kind: string | null })[];
  readonly total: number;
}

export interface EvaluationScores {
  readonly argmax: number | null;
  readonly sampledMean: number | null;
  readonly sampledMin: number | null;
  readonly sampledBest: number | null;
  readonly selected: number | null;
  readonly expected: number | null;
}

export interface LayerStats {
  readonly layer: string;
  readonly kind: string;
  readonly fracMinus: number;
  readonly fracZero: number;
  readonly fracPlus: number;
  /** Mean entropy of the weight distributions, in nats. */
  readonly meanEntropy: number;
}

export interface EvaluationRecord {
  readonly id: number;
  readonly runId: string;
  readonly step: number;
  readonly epoch: number | null;
  readonly phase: string | null;
  readonly createdAt: number;
  readonly test: EvaluationScores;
  readonly validation: EvaluationScores;
  readonly layerStats: readonly LayerStats[];
}

export interface CheckpointRecord {
  readonly id: number;
  readonly runId: string;
  readonly step: number;
  readonly epoch: number | null;
  readonly phase: string | null;
  readonly path: string;
  readonly bytes: number;
  readonly createdAt: number;
}

export type ArtifactStatus = 'pending' | 'running' | 'done' | 'failed';

export interface ArtifactRecord {
  readonly id: number;
  readonly runId: string;
  readonly kind: string;
  readonly path: string;
  readonly status: ArtifactStatus;
  readonly report: unknown;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface NoteRecord {
  readonly id: number;
  readonly runId: string;
  readonly text: string;
  readonly createdAt: number;
}

export interface MetricStats {
  readonly key: string;
  readonly count: number;
  readonly goal: 'max' | 'min';
  readonly best: number | null;
  readonly bestStep: number | null;
  readonly last: number;
  readonly lastStep: number;
}

export interface RunDetail {
  readonly id: string;
  readonly name: string;
  readonly status: RunStatus;
  readonly createdAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly preset: string | null;
  /** The run's TrainingConfig as stored. */
  readonly config: Record<string, unknown>;
  readonly seed: number;
  readonly dataset: DatasetIdentity | null;
  readonly backend: string | null;
  readonly adapter: string | null;
  readonly appVersion: string;
  readonly error: string | null;
  readonly progress: number | null;
  readonly tags: readonly string[];
  readonly notes: readonly NoteRecord[];
  readonly evaluations: readonly EvaluationRecord[];
  readonly checkpoints: readonly CheckpointRecord[];
  readonly artifacts: readonly ArtifactRecord[];
  readonly metrics: readonly MetricStats[];
}

/** A metric series as columns (cheap to send and to hand to a chart). Values that were NaN arrive as null. */
export interface MetricSeries {
  readonly runId: string;
  readonly key: string;
  readonly total: number;
  readonly downsampled: boolean;
  readonly steps: readonly number[];
  readonly values: readonly (number | null)[];
  readonly epochs: readonly (number | null)[];
  readonly wallTimes: readonly number[];
}

export interface DiffRow {
  readonly key: string;
  readonly values: Readonly<Record<string, unknown>>;
}

export interface ConfigDiff {
  readonly runIds: readonly string[];
  readonly config: readonly DiffRow[];
  readonly run: readonly DiffRow[];
}

/** One line of a run's log. `level` drives its colour. */
export interface LogLine {
  readonly time: number;
  readonly level: 'info' | 'warn' | 'error';
  readonly text: string;
}

/** The names of the engine's export-format registry (engine/export/registry.ts; app/services.ts checks they match). */
export const EXPORT_FORMAT_NAMES = ['packed', 'c', 'onnx', 'tfjs'] as const;
export type ExportFormat = (typeof EXPORT_FORMAT_NAMES)[number];

/** A format of the engine's export-format registry as the Export page shows it. */
export interface ExportFormatInfo {
  readonly name: ExportFormat;
  readonly title: string;
  readonly description: string;
  /** Whether this build can write it now (the page shows the others disabled). */
  readonly available: boolean;
}

/** What an export produced and whether its check passed (the export re-runs the test set through the file). */
export interface ExportOutcome {
  readonly runId: string;
  readonly format: ExportFormat;
  /** Folder or file written. */
  readonly path: string;
  readonly artifactId: number | null;
  readonly verification: { readonly passed: boolean; readonly summary: string };
  /** The exporter's full report (sizes, accuracies, warnings), shown as is. */
  readonly report: unknown;
}

export interface AppInfo {
  readonly version: string;
  /** 'electron' in the desktop app, 'browser' when served by `lrnet serve`. */
  readonly shell: 'electron' | 'browser';
  readonly databasePath: string;
  readonly dataFolder: string;
  /** The preset the New-run page opens with. */
  readonly defaultPreset: string;
  readonly presets: Readonly<Record<string, TrainingConfig>>;
  readonly architectures: readonly Architecture[];
  readonly datasets: readonly DatasetInfo[];
  readonly backends: readonly BackendChoice[];
  /** Every export format, each saying whether it is available now (none is until the exporter is installed). */
  readonly exportFormats: readonly ExportFormatInfo[];
  /** Whether dialog.pickFolder opens a native dialog (desktop app only). */
  readonly nativeDialogs: boolean;
  /** Runs training at once; the rest wait queued. */
  readonly concurrency: number;
}

/** Progress of a run as the engine reports it (engine/train.ts TrainingEvent), as the UI reads it. */
export type TrainingEvent =
  | {
      readonly type: 'start';
      readonly backend: { readonly name: string; readonly tfBackend: string; readonly adapter: string; readonly hardwareAccelerated: boolean; readonly notes: readonly string[] };
      readonly dataset: DatasetIdentity;
      readonly model: { readonly architecture: string; readonly totalParameters: number; readonly totalBytes: number; readonly totalMacs: number };
      readonly totalSteps: number;
      readonly resumedFromStep: number;
      readonly trainImages: number;
      readonly validationImages: number;
      readonly testImages: number;
    }
  | { readonly type: 'phase'; readonly phase: 'pretrain' | 'lr'; readonly epochs: number; readonly stepsPerEpoch: number }
  | {
      readonly type: 'step';
      readonly phase: 'pretrain' | 'lr';
      readonly epoch: number;
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
  | { readonly type: 'epoch'; readonly phase: 'pretrain' | 'lr'; readonly epoch: number; readonly step: number; readonly meanLoss: number; readonly trainAccuracy: number }
  | { readonly type: 'evaluation'; readonly phase: 'pretrain'; readonly epoch: number; readonly step: number; readonly fullPrecision: { readonly validation: number; readonly test: number } }
  | {
      readonly type: 'evaluation';
      readonly phase: 'lr';
      readonly epoch: number;
      readonly step: number;
      readonly discrete: {
        readonly test: Omit<EvaluationScores, never> & { readonly samples: readonly number[] };
        readonly validation: Omit<EvaluationScores, never> & { readonly samples: readonly number[] };
        readonly layers: readonly { readonly layer: string; readonly kind: string; readonly fractionMinus: number; readonly fractionZero: number; readonly fractionPlus: number; readonly meanEntropyBits: number }[];
      };
    }
  | { readonly type: 'evaluating'; readonly netsDone: number; readonly netsTotal: number }
  | { readonly type: 'checkpoint'; readonly phase: 'pretrain' | 'lr'; readonly epoch: number; readonly step: number; readonly path: string; readonly bytes: number };

/** What the UI hears without asking: the run manager's events plus the app's own. */
export type LiveEvent =
  | { readonly type: 'run-status'; readonly runId: string; readonly status: RunStatus; readonly error?: string }
  | { readonly type: 'run-progress'; readonly runId: string; readonly event: TrainingEvent }
  | { readonly type: 'run-deleted'; readonly runId: string }
  /** A run's tags or notes changed. */
  | { readonly type: 'run-updated'; readonly runId: string }
  | { readonly type: 'export-status'; readonly runId: string; readonly format: ExportFormat; readonly status: 'running' | 'done' | 'failed'; readonly message?: string }
  /** The desktop app's menu asks the page to show a route (a hash such as "#/new"). */
  | { readonly type: 'navigate'; readonly hash: string };

// ---------------------------------------------------------------------------------------------------------------
// The methods
// ---------------------------------------------------------------------------------------------------------------

const runId = s.string({ min: 1, max: 64, pattern: /^[A-Za-z0-9_-]+$/, what: 'a run id (letters and digits)' });
const runIds = (max: number) => s.array(runId, { min: 1, max });
const metricKey = s.string({ min: 1, max: 100, pattern: /^[A-Za-z0-9_./-]+$/, what: 'a metric key such as "train/loss"' });
const runStatus = s.oneOf(RUN_STATUSES);
/** A tag, as every entry point takes it (the API here, the CLI through the same schema). */
export const TAG_SCHEMA = s.string({ min: 1, max: 64, pattern: /^[^\s,]+$/, what: 'a tag without spaces or commas' });
/** A run's name: printed in tables and terminals, so no control characters (escape sequences, line breaks). */
export const RUN_NAME_SCHEMA = s.string({ min: 1, max: 200, pattern: /^[^\p{Cc}]+$/u, what: 'a name of at most 200 characters without control characters' });
const startRun = s.object({
  config: s.json(),
  name: s.optional(RUN_NAME_SCHEMA),
  tags: s.optional(s.array(TAG_SCHEMA, { max: 20 })),
});

/**
 * Limits of one runs.series answer: at most this many series (distinct runs x distinct keys), and about this many
 * points in all; each series is downsampled to its share (min/max per bucket, so peaks survive). 100k points are
 * about 5 MB of JSON: more would block the host for seconds and buy a chart nothing.
 */
export const MAX_SERIES_PER_REQUEST = 500;
export const MAX_SERIES_POINTS = 100_000;

/** Request schemas, by method. */
export const REQUESTS = {
  'app.info': s.object({}),
  /** Checks a training configuration; `problems` is empty when it is valid. */
  'config.validate': s.object({ config: s.json() }),
  'runs.list': s.object({
    status: s.optional(s.array(runStatus, { max: RUN_STATUSES.length })),
    preset: s.optional(s.string({ max: 100 })),
    tag: s.optional(s.array(TAG_SCHEMA, { max: 20 })),
    dataset: s.optional(s.string({ max: 100 })),
    search: s.optional(s.string({ max: 500 })),
    metric: s.optional(metricKey),
    sort: s.optional(s.oneOf(['created', 'started', 'finished', 'duration', 'name', 'status', 'preset', 'seed', 'dataset', 'backend', 'adapter', 'progress', 'best', 'last'] as const)),
    order: s.optional(s.oneOf(['asc', 'desc'] as const)),
    limit: s.optional(s.number({ integer: true, min: 1, max: 1000 })),
    offset: s.optional(s.number({ integer: true, min: 0 })),
  }),
  'runs.get': s.object({ id: runId }),
  'runs.getMany': s.object({ ids: runIds(200) }),
  /**
   * Series of several metrics of several runs in one round trip (the Compare page asks for 50 runs at once).
   * `maxPoints` per series (default 2000; 0: as many as the limits allow), within MAX_SERIES_POINTS in all.
   */
  'runs.series': s.object({
    runIds: runIds(200),
    keys: s.array(metricKey, { min: 1, max: 20 }),
    maxPoints: s.optional(s.number({ integer: true, min: 0, max: 100_000 })),
    fromStep: s.optional(s.number({ integer: true, min: 0 })),
  }),
  'runs.configDiff': s.object({ runIds: runIds(200) }),
  'runs.log': s.object({ id: runId }),
  /** Queues one or more runs; each configuration is validated as a whole before any is queued. */
  'runs.start': s.object({ runs: s.array(startRun, { min: 1, max: 50 }) }),
  'runs.stop': s.object({ id: runId }),
  /** `steal`: the user confirmed that the process holding a 'claimed' run is gone; it is released and resumed here. */
  'runs.resume': s.object({ id: runId, steal: s.optional(s.boolean()) }),
  'runs.clone': s.object({ id: runId, changes: s.optional(s.json()), name: s.optional(RUN_NAME_SCHEMA) }),
  /** `force`: delete a 'claimed' run too (see runs.resume). */
  'runs.delete': s.object({ id: runId, force: s.optional(s.boolean()) }),
  'runs.tag': s.object({ id: runId, tag: TAG_SCHEMA, remove: s.optional(s.boolean()) }),
  'runs.note': s.object({ id: runId, text: s.string({ min: 1, max: 10_000 }) }),
  /** Exports a run; `destination` is a folder (default: the run's folder under the data folder). */
  'export.run': s.object({
    runId,
    format: s.oneOf(EXPORT_FORMAT_NAMES),
    destination: s.optional(s.absolutePath()),
  }),
  /** Opens a native folder picker (desktop app only; the browser answers 'unavailable'). */
  'dialog.pickFolder': s.object({ purpose: s.oneOf(['data-folder', 'export-destination'] as const), defaultPath: s.optional(s.absolutePath()) }),
} as const satisfies Record<string, Schema<unknown>>;

/** Response types, by method. */
export interface Responses {
  'app.info': AppInfo;
  'config.validate': { readonly problems: readonly string[] };
  'runs.list': RunsPage;
  'runs.get': RunDetail;
  'runs.getMany': readonly RunDetail[];
  'runs.series': readonly MetricSeries[];
  'runs.configDiff': ConfigDiff;
  'runs.log': { readonly lines: readonly LogLine[] };
  'runs.start': { readonly ids: readonly string[] };
  'runs.stop': null;
  'runs.resume': null;
  'runs.clone': { readonly id: string };
  'runs.delete': null;
  'runs.tag': { readonly tags: readonly string[] };
  'runs.note': NoteRecord;
  'export.run': ExportOutcome;
  'dialog.pickFolder': { readonly path: string | null };
}

export type Method = keyof typeof REQUESTS;
export type Request<M extends Method> = Infer<(typeof REQUESTS)[M]>;
export type Response<M extends Method> = Responses[M];
export const METHODS = Object.keys(REQUESTS) as Method[];

// The two maps must name the same methods.
type _SameMethods = [Exclude<Method, keyof Responses>, Exclude<keyof Responses, Method>] extends [never, never] ? true : never;
const _sameMethods: _SameMethods = true;
void _sameMethods;

export function isMethod(name: unknown): name is Method {
  return typeof name === 'string' && Object.hasOwn(REQUESTS, name);
}

/** Validates a call before it reaches a handler: known method, payload matching its schema. */
export function validateCall(method: unknown, payload: unknown): ApiResult<{ method: Method; payload: unknown }> {
  if (!isMethod(method)) {
    return { ok: false, error: { code: 'unknown-method', message: `unknown method ${describe(method)}; expected one of ${METHODS.join(', ')}` } };
  }
  const result = validate(REQUESTS[method] as Schema<unknown>, payload ?? {});
  if (!result.ok) {
    return {
      ok: false,
      error: { code: 'invalid-request', message: `invalid ${method} request: ${result.problems.join('; ')}`, problems: result.problems },
    };
  }
  return { ok: true, value: { method, payload: result.value } };
}

/** The handler side: one async function per method. Expected failures throw errors that map to ApiError. */
export type Handlers = { [M in Method]: (request: Request<M>) => Promise<Response<M>> };

/** The client side, as the renderer sees it whichever shell it runs in. */
export interface ApiClient {
  call<M extends Method>(method: M, request: Request<M>): Promise<ApiResult<Response<M>>>;
  /** Live events; returns the function that unsubscribes. */
  subscribe(listener: (event: LiveEvent) => void): () => void;
}

// ---------------------------------------------------------------------------------------------------------------
// Transport details shared by both ends
// ---------------------------------------------------------------------------------------------------------------

/** Electron IPC channels (the preload exposes only these). */
export const IPC_CHANNELS = { invoke: 'lrnet:invoke', event: 'lrnet:event' } as const;

/** What the preload exposes as `window.lrnet` (a narrow bridge: no ipcRenderer, no Node). */
export interface PreloadBridge {
  invoke(method: string, payload: unknown): Promise<ApiResult<unknown>>;
  onEvent(listener: (event: LiveEvent) => void): () => void;
}

/** HTTP transport of the headless host: POST `${HTTP_API_PREFIX}<method>`, WebSocket at HTTP_EVENTS_PATH. */
export const HTTP_API_PREFIX = '/api/';
export const HTTP_EVENTS_PATH = '/api/events';
/** Request bodies larger than this are refused with 413. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Cookie that carries the host's token after the first visit with `?token=`. */
export const TOKEN_COOKIE = 'lrnet_token';
/** Header a non-browser client may send instead of the cookie. */
export const TOKEN_HEADER = 'x-lrnet-token';
