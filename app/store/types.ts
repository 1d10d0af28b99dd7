/**
 * What the experiment store records and how it is read back. These are the runtime shapes callers see (camelCase);
 * the on-disk layout lives in schema.ts and only rows.ts translates between the two.
 */
import type { DatasetIdentity } from '../../engine/data/types.ts';
import type { DISCRETE_SCORE_FIELDS } from '../contract.ts';

export type { DatasetIdentity };

/** A JSON value as stored in the config, report and dataset columns. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * Where a run is in its life. `interrupted` is what a run becomes when the process that ran it died without saying
 * how it ended (see WritableStore.markInterruptedRuns); it can be resumed like `stopped` and `failed`.
 */
export type RunStatus = 'queued' | 'running' | 'completed' | 'failed' | 'stopped' | 'interrupted';
export const RUN_STATUSES: readonly RunStatus[] = ['queued', 'running', 'completed', 'failed', 'stopped', 'interrupted'];

/** The machine a run trained on, recorded so timings are only compared like for like. */
export interface RunHost {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryBytes: number;
  /** GPU adapter description when a GPU backend was used, else null. */
  readonly gpu: string | null;
}

/** One row of the runs table. Timestamps are milliseconds since the Unix epoch. */
export interface RunRecord {
  /** 8 characters of base32; any unique prefix is accepted wherever a run id is taken. */
  readonly id: string;
  readonly name: string;
  readonly status: RunStatus;
  readonly createdAt: number;
  /** When it first started running (kept across resumes); null while it has never run. */
  readonly startedAt: number | null;
  /** When it last reached completed/failed/stopped/interrupted; null while queued or running. */
  readonly finishedAt: number | null;
  readonly preset: string | null;
  readonly config: JsonObject;
  readonly seed: number;
  /** Known once the data is loaded; runs on different data must not be compared silently. */
  readonly dataset: DatasetIdentity | null;
  /** TensorFlow.js backend, e.g. "cpu", "wasm", "webgpu", "tensorflow". */
  readonly backend: string | null;
  /** The engine adapter (model family / training recipe) that ran it. */
  readonly adapter: string | null;
  readonly appVersion: string;
  readonly host: RunHost | null;
  /** Why it failed (or was stopped), for people; null otherwise. */
  readonly error: string | null;
  /** Fraction of the planned training done, in [0, 1]; null when unknown. */
  readonly progress: number | null;
  /** Id of the newest checkpoint (see CheckpointRecord), null when none. */
  readonly lastCheckpointId: number | null;
}

/** What createRun needs; everything the run learns later (dataset, host, backend) may also come via updateRun. */
export interface CreateRunInput {
  /** Defaults to "<preset or run>-<id>". */
  readonly name?: string;
  readonly preset?: string | null;
  /** Any JSON-serializable plain object (typed config interfaces are accepted as they are). */
  readonly config: object;
  readonly seed: number;
  readonly appVersion: string;
  readonly dataset?: DatasetIdentity | null;
  readonly backend?: string | null;
  readonly adapter?: string | null;
  readonly host?: RunHost | null;
  /** 'queued' (default) or 'running' for a run that starts at once. */
  readonly status?: 'queued' | 'running';
  readonly tags?: readonly string[];
}

/** Fields updateRun may change. Omitted fields keep their value; `null` clears a nullable field. */
export interface RunPatch {
  readonly name?: string;
  readonly status?: RunStatus;
  readonly config?: object;
  readonly dataset?: DatasetIdentity | null;
  readonly backend?: string | null;
  readonly adapter?: string | null;
  readonly host?: RunHost | null;
  readonly error?: string | null;
  readonly progress?: number | null;
}

export interface UpdateRunOptions {
  /**
   * Allow a finished run (completed, failed, stopped, interrupted) to become running or queued again. Without it such
   * a transition is refused, so a stray status update cannot silently reopen a finished run.
   */
  readonly resume?: boolean;
}

/** One metric observation as a MetricWriter takes it. */
export interface MetricPointInput {
  /** e.g. "train/loss", "test/argmax", "lr". */
  readonly key: string;
  /** Global optimizer step; one value per (run, key, step): writing a step again replaces it (resumed runs). */
  readonly step: number;
  /** NaN is kept (as SQL NULL) so diverged runs show it. */
  readonly value: number;
  /** Fractional epoch at this step, when known. */
  readonly epoch?: number | null;
  /** Training phase, e.g. "pretrain", "lr", "finetune"; defaults to the writer's phase. */
  readonly phase?: string | null;
  /** Milliseconds since the epoch; defaults to the time of write(). */
  readonly wallTime?: number;
}

/** A stored metric point. */
export interface MetricPoint {
  readonly key: string;
  readonly step: number;
  readonly value: number;
  readonly epoch: number | null;
  readonly phase: string | null;
  readonly wallTime: number;
}

/** Whether larger or smaller values of a metric are better. */
export type MetricGoal = 'max' | 'min';

/** Summary of one metric of one run, maintained as points are written (no scan of the series needed). */
export interface MetricStats {
  readonly key: string;
  readonly count: number;
  readonly goal: MetricGoal;
  /** Best value by `goal`, ignoring NaN; null when every point is NaN. */
  readonly best: number | null;
  readonly bestStep: number | null;
  readonly min: number | null;
  readonly minStep: number | null;
  readonly max: number | null;
  readonly maxStep: number | null;
  /** Value at the highest step (may be NaN). */
  readonly last: number;
  readonly lastStep: number;
}

/** Buffers metric points and writes them in one transaction every `flushEvery` points or `flushIntervalMs` ms. */
export interface MetricWriter {
  readonly runId: string;
  /** Points written but not yet flushed. */
  readonly pending: number;
  write(key: string, step: number, value: number, extra?: Pick<MetricPointInput, 'epoch' | 'phase' | 'wallTime'>): void;
  writePoint(point: MetricPointInput): void;
  /** Writes buffered points now. A failed timed flush is rethrown from the next write/flush/close. */
  flush(): void;
  /** Flushes and stops the timer; further writes throw. Closing the store closes its writers too. */
  close(): void;
}

export interface MetricWriterOptions {
  /** Flush when this many points are buffered (default 2000). */
  readonly flushEvery?: number;
  /** Flush at most this long after the first buffered point (default 1000 ms), so live charts stay fresh. */
  readonly flushIntervalMs?: number;
  /** Phase recorded for points that do not name one. */
  readonly phase?: string | null;
}

/** Accuracies of one evaluation, in [0, 1]; any may be missing. */
export interface EvaluationScores {
  /** Deterministic network using each weight's most probable value. */
  readonly argmax?: number | null;
  /** Mean / min / best accuracy over networks sampled from the weight distributions. */
  readonly sampledMean?: number | null;
  readonly sampledMin?: number | null;
  readonly sampledBest?: number | null;
  /** The sampled network picked on validation data. */
  readonly selected?: number | null;
  /** Network with the expected (mean) weights. */
  readonly expected?: number | null;
}

// The list of these fields is the contract's DISCRETE_SCORE_FIELDS (the metric catalog's order); the store reads and
// writes one evaluations column per field (rows.ts SCORE_COLUMNS). This breaks the build if the two drift apart.
type DiscreteScoreField = (typeof DISCRETE_SCORE_FIELDS)[number];
const _scoreFieldsMatch: [keyof EvaluationScores] extends [DiscreteScoreField] ? ([DiscreteScoreField] extends [keyof EvaluationScores] ? true : never) : never = true;
void _scoreFieldsMatch;

/** Per-layer weight distribution statistics at an evaluation. */
export interface LayerStats {
  readonly layer: string;
  /** e.g. "ternary", "binary", "full". */
  readonly kind: string;
  readonly fracMinus: number;
  readonly fracZero: number;
  readonly fracPlus: number;
  /** Mean entropy of the weight distributions, in nats. */
  readonly meanEntropy: number;
}

export interface EvaluationInput {
  readonly step: number;
  readonly epoch?: number | null;
  readonly phase?: string | null;
  readonly test: EvaluationScores;
  readonly validation?: EvaluationScores | null;
  readonly layerStats?: readonly LayerStats[];
}

export interface EvaluationRecord {
  readonly id: number;
  readonly runId: string;
  readonly step: number;
  readonly epoch: number | null;
  readonly phase: string | null;
  readonly createdAt: number;
  readonly test: Required<{ [K in keyof EvaluationScores]: number | null }>;
  readonly validation: Required<{ [K in keyof EvaluationScores]: number | null }>;
  readonly layerStats: LayerStats[];
}

export interface CheckpointInput {
  readonly step: number;
  readonly epoch?: number | null;
  readonly phase?: string | null;
  /** Where the checkpoint files are; the store never touches them. */
  readonly path: string;
  readonly bytes: number;
}

export interface CheckpointRecord extends Required<CheckpointInput> {
  readonly id: number;
  readonly runId: string;
  readonly epoch: number | null;
  readonly phase: string | null;
  readonly createdAt: number;
}

export type ArtifactStatus = 'pending' | 'running' | 'done' | 'failed';
export const ARTIFACT_STATUSES: readonly ArtifactStatus[] = ['pending', 'running', 'done', 'failed'];

export interface ArtifactInput {
  /** What it is, e.g. an export format ("tfjs-graph", "onnx", "packed-ternary"). */
  readonly kind: string;
  readonly path: string;
  readonly status?: ArtifactStatus;
  /** Free-form JSON report (sizes, accuracy check of the export, warnings). */
  readonly report?: object | null;
}

export interface ArtifactPatch {
  readonly path?: string;
  readonly status?: ArtifactStatus;
  readonly report?: object | null;
}

export interface ArtifactRecord {
  readonly id: number;
  readonly runId: string;
  readonly kind: string;
  readonly path: string;
  readonly status: ArtifactStatus;
  readonly report: JsonValue | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface NoteRecord {
  readonly id: number;
  readonly runId: string;
  readonly text: string;
  readonly createdAt: number;
}

/** Everything known about one run. */
export interface RunDetail extends RunRecord {
  readonly tags: string[];
  readonly notes: NoteRecord[];
  readonly evaluations: EvaluationRecord[];
  readonly checkpoints: CheckpointRecord[];
  readonly artifacts: ArtifactRecord[];
  /** One entry per metric key, sorted by key. */
  readonly metrics: MetricStats[];
}

/** Columns listRuns can sort by; 'best' and 'last' refer to the metric named in the query. */
export type RunSortKey =
  | 'created'
  | 'started'
  | 'finished'
  | 'duration'
  | 'name'
  | 'status'
  | 'preset'
  | 'seed'
  | 'dataset'
  | 'backend'
  | 'adapter'
  | 'progress'
  | 'best'
  | 'last';

export interface ListRunsQuery {
  readonly status?: RunStatus | readonly RunStatus[];
  readonly preset?: string | readonly string[];
  /** Runs carrying all of these tags (case-insensitive). */
  readonly tag?: string | readonly string[];
  /** Dataset name or checksum. */
  readonly dataset?: string;
  /**
   * Full-text search over name, tags, notes, preset, status and config. Words are ANDed and match as prefixes;
   * `field:word` limits a word to one of name, tags, notes, preset, status, config; "quoted words" form a phrase.
   */
  readonly search?: string;
  /** Metric whose best and last values each row carries, e.g. "test/argmax". */
  readonly metric?: string;
  /** Defaults to metricGoal(metric). */
  readonly goal?: MetricGoal;
  /** Default 'created' descending. Nulls sort last either way. */
  readonly sort?: RunSortKey;
  readonly order?: 'asc' | 'desc';
  /** Default 100. */
  readonly limit?: number;
  readonly offset?: number;
}

/** A run as the runs table lists it: the record's scalar columns, the dataset's name and checksum, tags and a metric. */
export interface RunListRow
  extends Pick<RunRecord, 'id' | 'name' | 'status' | 'createdAt' | 'startedAt' | 'finishedAt' | 'preset' | 'seed' | 'backend' | 'adapter' | 'progress' | 'error'> {
  readonly datasetName: string | null;
  readonly datasetChecksum: string | null;
  readonly tags: string[];
  /** Present when the query named a metric and the run has points for it. */
  readonly metric: { readonly key: string; readonly best: number | null; readonly bestStep: number | null; readonly last: number; readonly lastStep: number } | null;
}

export interface RunList {
  readonly rows: RunListRow[];
  /** Matching runs before limit/offset. */
  readonly total: number;
}

export interface SeriesOptions {
  /** Upper bound on returned points (default 1000); 0 returns every point. */
  readonly maxPoints?: number;
  readonly fromStep?: number;
  readonly toStep?: number;
}

/**
 * A metric series, possibly decimated. Columns rather than point objects: cheap to send over IPC and to hand to a
 * chart. NaN values stay NaN (they become null in JSON).
 */
export interface MetricSeries {
  readonly runId: string;
  readonly key: string;
  /** Points in the requested range before downsampling. */
  readonly total: number;
  readonly downsampled: boolean;
  readonly steps: number[];
  readonly values: number[];
  readonly epochs: (number | null)[];
  readonly wallTimes: number[];
}

/** One differing field: each run's value, keyed by run id; a run lacking the field is absent. */
export interface DiffRow {
  readonly key: string;
  readonly values: Record<string, JsonValue>;
}

export interface ConfigDiff {
  /** Full run ids, in the order asked. */
  readonly runIds: string[];
  /** Config keys as dotted paths (objects are flattened, arrays compared whole), sorted. */
  readonly config: DiffRow[];
  /** Differing run-level fields that also change results: seed, preset, dataset, backend, adapter, appVersion. */
  readonly run: DiffRow[];
}

/**
 * The process that set a run running (or queued it again to resume), as recorded in its row; process-identity.ts
 * tells whether it is still alive.
 */
export interface RunClaim {
  readonly host: string | null;
  readonly pid: number | null;
  readonly token: string | null;
}

/**
 * What deleteRun removed; the files behind these paths are the caller's to delete. Paths that another run also
 * records are left out: those files are not this run's to delete.
 */
export interface DeletedRun {
  readonly id: string;
  readonly checkpointPaths: string[];
  readonly artifactPaths: string[];
}

/** Queries for browsing and comparing runs. Every run id argument accepts a unique prefix. */
export interface ReadableStore {
  /** Absolute path of the database file. */
  readonly file: string;
  /** Full id for an id or unique prefix; StoreError 'not-found' / 'ambiguous-id' otherwise. */
  resolveRunId(idOrPrefix: string): string;
  getRun(id: string): RunDetail;
  listRuns(query?: ListRunsQuery): RunList;
  /** Artifacts of every run (or of one), oldest first, optionally only those with one of the given statuses. */
  listArtifacts(query?: { readonly runId?: string; readonly status?: readonly ArtifactStatus[] }): ArtifactRecord[];
  /** Best/last of one metric, or undefined when the run has no point for it. */
  metricStats(runId: string, key: string, goal?: MetricGoal): MetricStats | undefined;
  /** The series of one metric, decimated to at most maxPoints keeping endpoints and each bucket's min and max. */
  metricSeries(runId: string, key: string, options?: SeriesOptions): MetricSeries;
  /** The point at `step`, or the last one before it; undefined when there is none. */
  valueAt(runId: string, key: string, step: number): MetricPoint | undefined;
  configDiff(runIds: readonly string[]): ConfigDiff;
  /** Who holds a running or re-queued run; null when no process does (the run is not running or queued). */
  runClaim(id: string): RunClaim | null;
}

/** Changes to runs. Every run id argument accepts a unique prefix. */
export interface WritableStore {
  createRun(input: CreateRunInput): RunRecord;
  /** Validates status changes (see UpdateRunOptions.resume) and stamps started/finished times. */
  updateRun(id: string, patch: RunPatch, options?: UpdateRunOptions): RunRecord;
  metricWriter(runId: string, options?: MetricWriterOptions): MetricWriter;
  /** Also records each score as metric "test/<field>" / "validation/<field>" so listRuns can rank by it. */
  addEvaluation(runId: string, evaluation: EvaluationInput): EvaluationRecord;
  /** Also makes it the run's last checkpoint. */
  addCheckpoint(runId: string, checkpoint: CheckpointInput): CheckpointRecord;
  /**
   * Forgets one checkpoint (pruning old ones); returns its path so the caller can delete the file, or undefined when
   * another checkpoint row (of this run or another) still records the same file.
   */
  deleteCheckpoint(checkpointId: number): string | undefined;
  addArtifact(runId: string, artifact: ArtifactInput): ArtifactRecord;
  updateArtifact(artifactId: number, patch: ArtifactPatch): ArtifactRecord;
  /** Returns false when the run already had the tag. */
  addTag(runId: string, tag: string): boolean;
  /** Returns false when the run did not have the tag. */
  removeTag(runId: string, tag: string): boolean;
  addNote(runId: string, text: string): NoteRecord;
  /** Deletes the run and everything recorded about it. */
  deleteRun(id: string): DeletedRun;
  /**
   * Marks runs whose process died as 'interrupted': runs 'running' (or 'queued' but already started) whose owning
   * process on this host is gone or is not the one that claimed them. Runs owned by another host are left alone.
   * Returns the ids marked. The app calls it when it opens the store.
   */
  markInterruptedRuns(): string[];
  /**
   * Marks a running or re-queued run 'interrupted' with `reason`, whatever its process: for a claim that cannot be
   * checked from here (another host) and that the user says is gone. Applies only while `claim` still holds the run
   * (a compare-and-set, like markInterruptedRuns); returns whether it did.
   */
  releaseRun(id: string, claim: RunClaim, reason: string): boolean;
}

/** A read-write store. */
export interface Store extends ReadableStore, WritableStore {
  /** Flushes open metric writers and closes the database. */
  close(): void;
}

/** A store opened with { readonly: true }. */
export interface ReadonlyStore extends ReadableStore {
  close(): void;
}
