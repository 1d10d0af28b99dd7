/**
 * Rows as SQLite returns them (snake_case, JSON in text columns) and their translation into the records callers
 * see (types.ts). The only place that knows both shapes; queries live in sqlite-store.ts and metrics-table.ts.
 */
import { DISCRETE_SCORE_FIELDS } from '../contract.ts';
import { metricGoal } from './lifecycle.ts';
import type {
  ArtifactRecord,
  ArtifactStatus,
  CheckpointRecord,
  DatasetIdentity,
  EvaluationRecord,
  JsonObject,
  JsonValue,
  LayerStats,
  MetricGoal,
  MetricStats,
  NoteRecord,
  RunHost,
  RunListRow,
  RunRecord,
  RunStatus,
} from './types.ts';

export interface RunRow {
  id: string;
  name: string;
  status: RunStatus;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  preset: string | null;
  config: string;
  seed: number;
  dataset: string | null;
  backend: string | null;
  adapter: string | null;
  app_version: string;
  host: string | null;
  error: string | null;
  progress: number | null;
  last_checkpoint: number | null;
  owner_host: string | null;
  owner_pid: number | null;
  owner_token: string | null;
}

/** A row of listRuns' query: the run's columns without the JSON ones, its tags and the named metric's summary. */
export type RunListSqlRow = Omit<RunRow, 'config' | 'dataset' | 'host'> & {
  dataset_name: string | null;
  dataset_checksum: string | null;
  /** JSON array of the run's tags, sorted. */
  tags: string;
  best: number | null;
  best_step: number | null;
  last_value: number | null;
  last_step: number | null;
};

export interface SummaryRow {
  key: string;
  count: number;
  min_value: number | null;
  min_step: number | null;
  max_value: number | null;
  max_step: number | null;
  last_step: number;
  last_value: number | null;
}

export type EvaluationRow = Record<string, number | string | null> & {
  id: number;
  run_id: string;
  step: number;
  epoch: number | null;
  phase: string | null;
  created_at: number;
  layer_stats: string;
};

export interface CheckpointRow {
  id: number;
  run_id: string;
  step: number;
  epoch: number | null;
  phase: string | null;
  path: string;
  bytes: number;
  created_at: number;
}

export interface ArtifactRow {
  id: number;
  run_id: string;
  kind: string;
  path: string;
  status: ArtifactStatus;
  report: string | null;
  created_at: number;
  updated_at: number;
}

export interface NoteRow {
  id: number;
  run_id: string;
  text: string;
  created_at: number;
}

/** evaluations column for each discrete score (the validation scores add a "val_" prefix). */
export const SCORE_COLUMNS: Readonly<Record<(typeof DISCRETE_SCORE_FIELDS)[number], string>> = {
  argmax: 'argmax',
  sampledMean: 'sampled_mean',
  sampledMin: 'sampled_min',
  sampledBest: 'sampled_best',
  selected: 'selected',
  expected: 'expected',
};

/** SQL NULL stands for NaN in metric values. */
export function metricValue(v: number | null): number {
  return v === null ? NaN : v;
}

function parseJson<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

/** The columns every run row starts with, named as the record and the list row name them. */
function runHead(row: Pick<RunRow, 'id' | 'name' | 'status' | 'created_at' | 'started_at' | 'finished_at' | 'preset'>) {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    preset: row.preset,
  };
}

export function toRunRecord(row: RunRow): RunRecord {
  return {
    ...runHead(row),
    config: JSON.parse(row.config) as JsonObject,
    seed: row.seed,
    dataset: parseJson<DatasetIdentity>(row.dataset),
    backend: row.backend,
    adapter: row.adapter,
    appVersion: row.app_version,
    host: parseJson<RunHost>(row.host),
    error: row.error,
    progress: row.progress,
    lastCheckpointId: row.last_checkpoint,
  };
}

/** `metric` is the key the query named (undefined: the row carries no metric). */
export function toRunListRow(row: RunListSqlRow, metric: string | undefined): RunListRow {
  return {
    ...runHead(row),
    seed: row.seed,
    datasetName: row.dataset_name,
    datasetChecksum: row.dataset_checksum,
    backend: row.backend,
    adapter: row.adapter,
    progress: row.progress,
    error: row.error,
    tags: JSON.parse(row.tags) as string[],
    metric:
      metric === undefined || row.last_step === null
        ? null
        : { key: metric, best: row.best, bestStep: row.best_step, last: metricValue(row.last_value), lastStep: row.last_step },
  };
}

export function toStats(row: SummaryRow, goal: MetricGoal = metricGoal(row.key)): MetricStats {
  const max = goal === 'max';
  return {
    key: row.key,
    count: row.count,
    goal,
    best: max ? row.max_value : row.min_value,
    bestStep: max ? row.max_step : row.min_step,
    min: row.min_value,
    minStep: row.min_step,
    max: row.max_value,
    maxStep: row.max_step,
    last: metricValue(row.last_value),
    lastStep: row.last_step,
  };
}

/** The columns of what a run records at a training step (an evaluation, a checkpoint), as their records name them. */
function stepHead(row: Pick<EvaluationRow, 'id' | 'run_id' | 'step' | 'epoch' | 'phase'>) {
  return { id: row.id, runId: row.run_id, step: row.step, epoch: row.epoch, phase: row.phase };
}

export function toEvaluation(row: EvaluationRow): EvaluationRecord {
  const scores = (prefix: string) => {
    const out: Record<string, number | null> = {};
    for (const f of DISCRETE_SCORE_FIELDS) out[f] = row[prefix + SCORE_COLUMNS[f]] as number | null;
    return out as EvaluationRecord['test'];
  };
  return {
    ...stepHead(row),
    createdAt: row.created_at,
    test: scores(''),
    validation: scores('val_'),
    layerStats: JSON.parse(row.layer_stats) as LayerStats[],
  };
}

export function toCheckpoint(row: CheckpointRow): CheckpointRecord {
  return {
    ...stepHead(row),
    path: row.path,
    bytes: row.bytes,
    createdAt: row.created_at,
  };
}

export function toArtifact(row: ArtifactRow): ArtifactRecord {
  return {
    id: row.id,
    runId: row.run_id,
    kind: row.kind,
    path: row.path,
    status: row.status,
    report: parseJson<JsonValue>(row.report),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function toNote(row: NoteRow): NoteRecord {
  return { id: row.id, runId: row.run_id, text: row.text, createdAt: row.created_at };
}
