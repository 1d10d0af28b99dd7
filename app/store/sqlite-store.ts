/**
 * The Store on better-sqlite3. Every write runs in a BEGIN IMMEDIATE transaction: a deferred transaction that reads
 * and then writes can fail with SQLITE_BUSY at once when another process commits in between (busy_timeout does
 * not help there), whereas IMMEDIATE waits for the write lock up front.
 */
import type Database from 'better-sqlite3';
import { HEADLINE_METRIC, scoreKey, type ScoreSplit } from '../contract.ts';
import { flattenConfig, diffFlattened } from './config-diff.ts';
import { decimateMinMax } from './downsample.ts';
import { StoreError } from './errors.ts';
import { newRunId, normalizeIdPrefix } from './ids.ts';
import { FINISHED_STATUSES, metricGoal, transitionError } from './lifecycle.ts';
import { BufferedMetricWriter, checkPoint, emptyBatch, type PointBatch } from './metric-writer.ts';
import { currentProcess, ownerState } from './process-identity.ts';
import { ftsQuery } from './search.ts';
import {
  ARTIFACT_STATUSES,
  EVALUATION_SCORE_FIELDS,
  RUN_STATUSES,
  type ArtifactInput,
  type ArtifactPatch,
  type ArtifactRecord,
  type ArtifactStatus,
  type CheckpointInput,
  type CheckpointRecord,
  type ConfigDiff,
  type CreateRunInput,
  type DatasetIdentity,
  type DeletedRun,
  type EvaluationInput,
  type EvaluationRecord,
  type EvaluationScores,
  type JsonObject,
  type JsonValue,
  type LayerStats,
  type ListRunsQuery,
  type MetricGoal,
  type MetricPoint,
  type MetricSeries,
  type MetricStats,
  type MetricWriter,
  type MetricWriterOptions,
  type NoteRecord,
  type RunClaim,
  type RunDetail,
  type RunHost,
  type RunList,
  type RunListRow,
  type RunPatch,
  type RunRecord,
  type RunSortKey,
  type RunStatus,
  type SeriesOptions,
  type Store,
  type UpdateRunOptions,
} from './types.ts';

// ---- rows as SQLite returns them -------------------------------------------------------------------------------

interface RunRow {
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

interface SummaryRow {
  key: string;
  count: number;
  min_value: number | null;
  min_step: number | null;
  max_value: number | null;
  max_step: number | null;
  last_step: number;
  last_value: number | null;
}

type EvaluationRow = Record<string, number | string | null> & {
  id: number;
  run_id: string;
  step: number;
  epoch: number | null;
  phase: string | null;
  created_at: number;
  layer_stats: string;
};

interface CheckpointRow {
  id: number;
  run_id: string;
  step: number;
  epoch: number | null;
  phase: string | null;
  path: string;
  bytes: number;
  created_at: number;
}

interface ArtifactRow {
  id: number;
  run_id: string;
  kind: string;
  path: string;
  status: ArtifactStatus;
  report: string | null;
  created_at: number;
  updated_at: number;
}

interface NoteRow {
  id: number;
  run_id: string;
  text: string;
  created_at: number;
}

/** evaluations column for each EvaluationScores field. */
const SCORE_COLUMNS: Record<(typeof EVALUATION_SCORE_FIELDS)[number], string> = {
  argmax: 'argmax',
  sampledMean: 'sampled_mean',
  sampledMin: 'sampled_min',
  sampledBest: 'sampled_best',
  selected: 'selected',
  expected: 'expected',
};

/** SQL for each sort key; 'best' and 'last' are filled in per query. */
const SORT_COLUMNS: Record<Exclude<RunSortKey, 'best' | 'last'>, string> = {
  created: 'r.created_at',
  started: 'r.started_at',
  finished: 'r.finished_at',
  duration: '(coalesce(r.finished_at, @now) - r.started_at)',
  name: 'r.name COLLATE NOCASE',
  status: 'r.status',
  preset: 'r.preset',
  seed: 'r.seed',
  dataset: 'r.dataset_name',
  backend: 'r.backend',
  adapter: 'r.adapter',
  progress: 'r.progress',
};

const MAX_TAG_LENGTH = 100;

// ---- value conversion ---------------------------------------------------------------------------------------------

/** JSON text of a plain object, or StoreError naming `what`. */
function objectJson(value: unknown, what: string): string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new StoreError('invalid-argument', `${what} must be a JSON object, got ${Array.isArray(value) ? 'an array' : String(value)}`);
  }
  return anyJson(value, what);
}

function anyJson(value: unknown, what: string): string {
  try {
    const text = JSON.stringify(value);
    if (text === undefined) throw new Error('not serializable');
    return text;
  } catch (error) {
    throw new StoreError('invalid-argument', `${what} cannot be stored as JSON: ${(error as Error).message}`);
  }
}

function nullableJson(value: unknown, what: string): string | null {
  return value === null || value === undefined ? null : anyJson(value, what);
}

function parseJson<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

function nonEmpty(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.trim().length === 0) {
    throw new StoreError('invalid-argument', `${what} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value;
}

function optionalNumber(value: unknown, what: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new StoreError('invalid-argument', `${what} must be a number or null, got ${String(value)}`);
  }
  return value;
}

function checkStep(step: unknown, what: string): number {
  if (!Number.isSafeInteger(step) || (step as number) < 0) {
    throw new StoreError('invalid-argument', `${what} step must be an integer >= 0, got ${String(step)}`);
  }
  return step as number;
}

function checkProgress(progress: unknown): number | null {
  const p = optionalNumber(progress, 'progress');
  if (p !== null && !(p >= 0 && p <= 1)) throw new StoreError('invalid-argument', `progress must be in [0, 1], got ${p}`);
  return p;
}

function normalizeTag(tag: unknown): string {
  const t = nonEmpty(tag, 'tag').trim();
  if (t.length > MAX_TAG_LENGTH) throw new StoreError('invalid-argument', `tag is longer than ${MAX_TAG_LENGTH} characters`);
  return t;
}

/** SQL NULL stands for NaN in metric values. */
function metricValue(v: number | null): number {
  return v === null ? NaN : v;
}

function toRunRecord(row: RunRow): RunRecord {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    preset: row.preset,
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

function toStats(row: SummaryRow, goal: MetricGoal = metricGoal(row.key)): MetricStats {
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

function toEvaluation(row: EvaluationRow): EvaluationRecord {
  const scores = (prefix: string) => {
    const out: Record<string, number | null> = {};
    for (const f of EVALUATION_SCORE_FIELDS) out[f] = row[prefix + SCORE_COLUMNS[f]] as number | null;
    return out as EvaluationRecord['test'];
  };
  return {
    id: row.id,
    runId: row.run_id,
    step: row.step,
    epoch: row.epoch,
    phase: row.phase,
    createdAt: row.created_at,
    test: scores(''),
    validation: scores('val_'),
    layerStats: JSON.parse(row.layer_stats) as LayerStats[],
  };
}

function toCheckpoint(row: CheckpointRow): CheckpointRecord {
  return {
    id: row.id,
    runId: row.run_id,
    step: row.step,
    epoch: row.epoch,
    phase: row.phase,
    path: row.path,
    bytes: row.bytes,
    createdAt: row.created_at,
  };
}

function toArtifact(row: ArtifactRow): ArtifactRecord {
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

function toNote(row: NoteRow): NoteRecord {
  return { id: row.id, runId: row.run_id, text: row.text, createdAt: row.created_at };
}

function asList<T>(value: T | readonly T[] | undefined): readonly T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? (value as readonly T[]) : [value as T];
}

/** Aggregates of one key within one batch. */
interface BatchAggregate {
  count: number;
  firstStep: number;
  minValue: number | null;
  minStep: number | null;
  maxValue: number | null;
  maxStep: number | null;
  lastStep: number;
  lastValue: number;
}

/** Collects (step, value) pairs from the lrnet_collect SQL aggregate into growable typed arrays. */
class SeriesCollector {
  count = 0;
  steps = new Float64Array(1024);
  values = new Float64Array(1024);

  add(step: number, value: number | null): void {
    if (this.count === this.steps.length) {
      const steps = new Float64Array(this.count * 2);
      steps.set(this.steps);
      this.steps = steps;
      const values = new Float64Array(this.count * 2);
      values.set(this.values);
      this.values = values;
    }
    this.steps[this.count] = step;
    this.values[this.count] = value === null ? NaN : value;
    this.count++;
  }
}

export interface SqliteStoreOptions {
  readonly readonly: boolean;
  /** Clock in ms since the epoch (tests pin it). */
  readonly now: () => number;
}

/** Store over an open, migrated better-sqlite3 connection. Construct through openStore(). */
export class SqliteStore implements Store {
  private readonly statements = new Map<string, Database.Statement>();
  private readonly writers = new Set<BufferedMetricWriter>();
  private readonly now: () => number;
  private closed = false;
  /** Output slot of the lrnet_collect aggregate (better-sqlite3 is synchronous, so one slot is enough). */
  private collected: SeriesCollector | undefined;

  constructor(
    private readonly db: Database.Database,
    readonly file: string,
    private readonly options: SqliteStoreOptions,
  ) {
    this.now = options.now;
    // Reading a series through an aggregate keeps the per-row work in a tight JS callback instead of materializing
    // one JS array per row, about 4x faster on 100k points (see bench/store.ts).
    const collect = {
      start: () => new SeriesCollector(),
      step: (collector: SeriesCollector, step: number, value: number | null) => {
        collector.add(step, value);
      },
      result: (collector: SeriesCollector) => {
        this.collected = collector;
        return collector.count;
      },
    };
    // @types/better-sqlite3 types step() with a single argument; SQLite passes one per SQL argument.
    db.aggregate('lrnet_collect', collect as unknown as Database.AggregateOptions);
  }

  // ---- plumbing ------------------------------------------------------------------------------------------------

  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (s === undefined) {
      this.checkOpen();
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction (or a savepoint when already inside one). */
  private write<T>(fn: () => T): T {
    this.checkOpen();
    return this.db.transaction(fn).immediate();
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreError('closed', `the store ${this.file} is closed`);
  }

  private runRow(id: string): RunRow {
    const row = this.stmt('SELECT * FROM runs WHERE id = ?').get(id) as RunRow | undefined;
    if (row === undefined) throw new StoreError('not-found', `no run with id ${id}`);
    return row;
  }

  // ---- ReadableStore -------------------------------------------------------------------------------------------

  resolveRunId(idOrPrefix: string): string {
    const prefix = typeof idOrPrefix === 'string' ? normalizeIdPrefix(idOrPrefix) : undefined;
    if (prefix === undefined) throw new StoreError('not-found', `no run with id ${String(idOrPrefix)}`);
    // A range scan on the primary key: every id starting with the prefix sorts in [prefix, prefix + 0x7f).
    const matches = this.stmt('SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 6')
      .pluck()
      .all(prefix, `${prefix}\u007f`) as string[];
    if (matches.length === 1) return matches[0]!;
    if (matches.length === 0) throw new StoreError('not-found', `no run with id ${idOrPrefix}`);
    if (matches.includes(prefix)) return prefix;
    const shown = matches.slice(0, 5).join(', ') + (matches.length > 5 ? ', ...' : '');
    throw new StoreError('ambiguous-id', `run id prefix ${idOrPrefix} is ambiguous: it matches ${shown}; type more characters`);
  }

  getRun(id: string): RunDetail {
    const runId = this.resolveRunId(id);
    const run = toRunRecord(this.runRow(runId));
    return {
      ...run,
      tags: this.stmt('SELECT tag FROM tags WHERE run_id = ? ORDER BY tag').pluck().all(runId) as string[],
      notes: (this.stmt('SELECT * FROM notes WHERE run_id = ? ORDER BY created_at, id').all(runId) as NoteRow[]).map(toNote),
      evaluations: (this.stmt('SELECT * FROM evaluations WHERE run_id = ? ORDER BY step, id').all(runId) as EvaluationRow[]).map(
        toEvaluation,
      ),
      checkpoints: (this.stmt('SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step, id').all(runId) as CheckpointRow[]).map(
        toCheckpoint,
      ),
      artifacts: (this.stmt('SELECT * FROM artifacts WHERE run_id = ? ORDER BY created_at, id').all(runId) as ArtifactRow[]).map(
        toArtifact,
      ),
      metrics: (this.stmt('SELECT * FROM metric_summary WHERE run_id = ? ORDER BY key').all(runId) as SummaryRow[]).map((r) =>
        toStats(r),
      ),
    };
  }

  listArtifacts(query: { readonly runId?: string; readonly status?: readonly ArtifactStatus[] } = {}): ArtifactRecord[] {
    this.checkOpen();
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.runId !== undefined) {
      where.push('run_id = ?');
      params.push(this.resolveRunId(query.runId));
    }
    if (query.status !== undefined) {
      where.push(`status IN (${query.status.map(() => '?').join(', ') || 'NULL'})`);
      params.push(...query.status);
    }
    const sql = `SELECT * FROM artifacts${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at, id`;
    return (this.stmt(sql).all(...params) as ArtifactRow[]).map(toArtifact);
  }

  listRuns(query: ListRunsQuery = {}): RunList {
    const where: string[] = [];
    const params: Record<string, unknown> = { now: this.now() };
    const statuses = asList(query.status);
    if (statuses.length > 0) {
      for (const s of statuses) {
        if (!RUN_STATUSES.includes(s)) throw new StoreError('invalid-argument', `unknown run status "${s}"`);
      }
      where.push('r.status IN (SELECT value FROM json_each(@statuses))');
      params['statuses'] = JSON.stringify(statuses);
    }
    const presets = asList(query.preset);
    if (presets.length > 0) {
      where.push('r.preset IN (SELECT value FROM json_each(@presets))');
      params['presets'] = JSON.stringify(presets);
    }
    asList(query.tag).forEach((tag, i) => {
      where.push(`EXISTS (SELECT 1 FROM tags t WHERE t.run_id = r.id AND t.tag = @tag${i})`);
      params[`tag${i}`] = normalizeTag(tag);
    });
    if (query.dataset !== undefined) {
      where.push('(r.dataset_name = @dataset OR r.dataset_checksum = @dataset)');
      params['dataset'] = query.dataset;
    }
    const fts = query.search === undefined ? undefined : ftsQuery(query.search);
    if (fts !== undefined) {
      where.push('r.id IN (SELECT run_id FROM runs_fts WHERE runs_fts MATCH @fts)');
      params['fts'] = fts;
    }
    const whereSql = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';

    const metric = query.metric;
    const goal = query.goal ?? (metric === undefined ? 'max' : metricGoal(metric));
    const bestValue = goal === 'max' ? 's.max_value' : 's.min_value';
    const bestStep = goal === 'max' ? 's.max_step' : 's.min_step';
    const sort = query.sort ?? 'created';
    let sortSql: string;
    if (sort === 'best' || sort === 'last') {
      if (metric === undefined) throw new StoreError('invalid-argument', `sorting by ${sort} needs a metric (e.g. ${HEADLINE_METRIC})`);
      sortSql = sort === 'best' ? bestValue : 's.last_value';
    } else if (Object.hasOwn(SORT_COLUMNS, sort)) {
      sortSql = SORT_COLUMNS[sort];
    } else {
      throw new StoreError('invalid-argument', `cannot sort runs by "${String(sort)}"`);
    }
    const order = query.order ?? (sort === 'name' || sort === 'preset' || sort === 'dataset' ? 'asc' : 'desc');
    if (order !== 'asc' && order !== 'desc') throw new StoreError('invalid-argument', `order must be asc or desc`);
    params['metric'] = metric ?? null;
    params['limit'] = Math.max(0, Math.floor(query.limit ?? 100));
    params['offset'] = Math.max(0, Math.floor(query.offset ?? 0));

    const rows = this.stmt(
      `SELECT r.id, r.name, r.status, r.created_at, r.started_at, r.finished_at, r.preset, r.seed, r.dataset_name,
              r.dataset_checksum, r.backend, r.adapter, r.progress, r.error,
              (SELECT json_group_array(tag) FROM (SELECT tag FROM tags WHERE run_id = r.id ORDER BY tag)) AS tags,
              ${bestValue} AS best, ${bestStep} AS best_step, s.last_value, s.last_step
         FROM runs r LEFT JOIN metric_summary s ON s.run_id = r.id AND s.key = @metric
         ${whereSql}
         ORDER BY ${sortSql} ${order} NULLS LAST, r.created_at DESC, r.id
         LIMIT @limit OFFSET @offset`,
    ).all(params) as Array<
      Omit<RunRow, 'config' | 'dataset' | 'host'> & {
        dataset_name: string | null;
        dataset_checksum: string | null;
        tags: string;
        best: number | null;
        best_step: number | null;
        last_value: number | null;
        last_step: number | null;
      }
    >;
    const total = this.stmt(`SELECT count(*) FROM runs r ${whereSql}`)
      .pluck()
      .get(Object.fromEntries(Object.entries(params).filter(([k]) => !['now', 'metric', 'limit', 'offset'].includes(k)))) as number;
    return {
      total,
      rows: rows.map(
        (r): RunListRow => ({
          id: r.id,
          name: r.name,
          status: r.status,
          createdAt: r.created_at,
          startedAt: r.started_at,
          finishedAt: r.finished_at,
          preset: r.preset,
          seed: r.seed,
          datasetName: r.dataset_name,
          datasetChecksum: r.dataset_checksum,
          backend: r.backend,
          adapter: r.adapter,
          progress: r.progress,
          error: r.error,
          tags: JSON.parse(r.tags) as string[],
          metric:
            metric === undefined || r.last_step === null
              ? null
              : { key: metric, best: r.best, bestStep: r.best_step, last: metricValue(r.last_value), lastStep: r.last_step },
        }),
      ),
    };
  }

  metricStats(runId: string, key: string, goal?: MetricGoal): MetricStats | undefined {
    const id = this.resolveRunId(runId);
    const row = this.stmt('SELECT * FROM metric_summary WHERE run_id = ? AND key = ?').get(id, key) as SummaryRow | undefined;
    return row === undefined ? undefined : toStats(row, goal);
  }

  metricSeries(runId: string, key: string, options: SeriesOptions = {}): MetricSeries {
    const id = this.resolveRunId(runId);
    const maxPoints = options.maxPoints ?? 1000;
    const from = options.fromStep ?? Number.MIN_SAFE_INTEGER;
    const to = options.toStep ?? Number.MAX_SAFE_INTEGER;
    this.collected = undefined;
    this.stmt(
      `SELECT lrnet_collect(step, value) FROM metrics WHERE run_id = ? AND key = ? AND step >= ? AND step <= ?`,
    ).get(id, key, from, to);
    const collected = this.collected ?? new SeriesCollector();
    this.collected = undefined;
    const n = collected.count;
    let steps = collected.steps.subarray(0, n);
    let values = collected.values.subarray(0, n);
    // The primary key scan yields steps in order; should a future SQLite choose another plan, sort rather than
    // draw a scrambled line.
    let sorted = true;
    for (let i = 1; i < n && sorted; i++) sorted = steps[i - 1]! < steps[i]!;
    if (!sorted) {
      const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => steps[a]! - steps[b]!);
      steps = Float64Array.from(order, (i) => steps[i]!);
      values = Float64Array.from(order, (i) => values[i]!);
    }
    const kept = maxPoints > 0 ? decimateMinMax(values, maxPoints) : Array.from({ length: n }, (_, i) => i);
    const keptSteps = kept.map((i) => steps[i]!);
    // Epoch and wall time only for the points kept: a few hundred primary-key lookups instead of 100k rows.
    const extras = new Map<number, [number | null, number]>();
    const rows = this.stmt(
      `SELECT step, epoch, wall_time FROM metrics
        WHERE run_id = ? AND key = ? AND step IN (SELECT value FROM json_each(?))`,
    )
      .raw()
      .all(id, key, JSON.stringify(keptSteps)) as [number, number | null, number][];
    for (const [step, epoch, wall] of rows) extras.set(step, [epoch, wall]);
    return {
      runId: id,
      key,
      total: n,
      downsampled: kept.length < n,
      steps: keptSteps,
      values: kept.map((i) => values[i]!),
      epochs: keptSteps.map((s) => extras.get(s)?.[0] ?? null),
      wallTimes: keptSteps.map((s) => extras.get(s)?.[1] ?? NaN),
    };
  }

  valueAt(runId: string, key: string, step: number): MetricPoint | undefined {
    const id = this.resolveRunId(runId);
    const row = this.stmt(
      `SELECT key, step, value, epoch, phase, wall_time FROM metrics
        WHERE run_id = ? AND key = ? AND step <= ? ORDER BY step DESC LIMIT 1`,
    ).get(id, key, step) as
      | { key: string; step: number; value: number | null; epoch: number | null; phase: string | null; wall_time: number }
      | undefined;
    if (row === undefined) return undefined;
    return { key: row.key, step: row.step, value: metricValue(row.value), epoch: row.epoch, phase: row.phase, wallTime: row.wall_time };
  }

  configDiff(runIds: readonly string[]): ConfigDiff {
    const ids = [...new Set(runIds.map((r) => this.resolveRunId(r)))];
    const configs = new Map<string, Map<string, JsonValue>>();
    const fields = new Map<string, Map<string, JsonValue>>();
    for (const id of ids) {
      const run = toRunRecord(this.runRow(id));
      configs.set(id, flattenConfig(run.config));
      const f = new Map<string, JsonValue>([
        ['seed', run.seed],
        ['preset', run.preset],
        ['backend', run.backend],
        ['adapter', run.adapter],
        ['appVersion', run.appVersion],
      ]);
      if (run.dataset !== null) flattenConfig(run.dataset as unknown as JsonObject, 'dataset', f);
      fields.set(id, f);
    }
    return { runIds: ids, config: diffFlattened(configs), run: diffFlattened(fields) };
  }

  // ---- WritableStore -------------------------------------------------------------------------------------------

  createRun(input: CreateRunInput): RunRecord {
    const config = objectJson(input.config, 'config');
    if (!Number.isSafeInteger(input.seed)) throw new StoreError('invalid-argument', `seed must be an integer, got ${input.seed}`);
    const appVersion = nonEmpty(input.appVersion, 'appVersion');
    const status = input.status ?? 'queued';
    if (status !== 'queued' && status !== 'running') {
      throw new StoreError('invalid-argument', `a new run is queued or running, not ${String(status)}`);
    }
    if (input.name !== undefined) nonEmpty(input.name, 'name');
    const tags = (input.tags ?? []).map(normalizeTag);
    const now = this.now();
    const owner = status === 'running' ? currentProcess() : undefined;
    return this.write(() => {
      for (let attempt = 0; ; attempt++) {
        const id = newRunId();
        try {
          this.stmt(
            `INSERT INTO runs (id, name, status, created_at, started_at, preset, config, seed, dataset, backend, adapter,
                               app_version, host, owner_host, owner_pid, owner_token)
             VALUES (@id, @name, @status, @now, @started, @preset, @config, @seed, @dataset, @backend, @adapter,
                     @appVersion, @host, @ownerHost, @ownerPid, @ownerToken)`,
          ).run({
            id,
            name: input.name ?? `${input.preset ?? 'run'}-${id}`,
            status,
            now,
            started: status === 'running' ? now : null,
            preset: input.preset ?? null,
            config,
            seed: input.seed,
            dataset: nullableJson(input.dataset, 'dataset'),
            backend: input.backend ?? null,
            adapter: input.adapter ?? null,
            appVersion,
            host: nullableJson(input.host, 'host'),
            ownerHost: owner?.host ?? null,
            ownerPid: owner?.pid ?? null,
            ownerToken: owner?.token ?? null,
          });
        } catch (error) {
          // 40 random bits: a collision is rare, but possible in a store with many runs.
          if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY' && attempt < 8) continue;
          throw error;
        }
        const insertTag = this.stmt('INSERT OR IGNORE INTO tags (run_id, tag) VALUES (?, ?)');
        for (const tag of tags) insertTag.run(id, tag);
        return toRunRecord(this.runRow(id));
      }
    });
  }

  updateRun(id: string, patch: RunPatch, options: UpdateRunOptions = {}): RunRecord {
    const runId = this.resolveRunId(id);
    return this.write(() => {
      const row = this.runRow(runId);
      const sets: Record<string, unknown> = {};
      if (patch.name !== undefined) sets['name'] = nonEmpty(patch.name, 'name');
      if (patch.config !== undefined) sets['config'] = objectJson(patch.config, 'config');
      if (patch.dataset !== undefined) sets['dataset'] = nullableJson(patch.dataset, 'dataset');
      if (patch.backend !== undefined) sets['backend'] = patch.backend;
      if (patch.adapter !== undefined) sets['adapter'] = patch.adapter;
      if (patch.host !== undefined) sets['host'] = nullableJson(patch.host, 'host');
      if (patch.error !== undefined) sets['error'] = patch.error;
      if (patch.progress !== undefined) sets['progress'] = checkProgress(patch.progress);
      const to = patch.status;
      if (to !== undefined && to !== row.status) {
        if (!RUN_STATUSES.includes(to)) throw new StoreError('invalid-argument', `unknown run status "${String(to)}"`);
        const why = transitionError(row.status, to, options.resume === true);
        if (why !== undefined) {
          throw new StoreError('invalid-transition', `cannot change run ${runId} from ${row.status} to ${to}: ${why}`);
        }
        const now = this.now();
        const resumed = FINISHED_STATUSES.has(row.status);
        sets['status'] = to;
        if (to === 'running' || to === 'queued') {
          // The process that runs it, or that queued it again for resuming (its queue dies with it): either way
          // markInterruptedRuns can tell when the run has been orphaned.
          const me = currentProcess();
          Object.assign(sets, { finished_at: null, owner_host: me.host, owner_pid: me.pid, owner_token: me.token });
          if (to === 'running') sets['started_at'] = row.started_at ?? now;
        } else {
          Object.assign(sets, { finished_at: now, owner_host: null, owner_pid: null, owner_token: null });
          if (to === 'completed' && patch.progress === undefined) sets['progress'] = 1;
        }
        if (resumed && patch.error === undefined) sets['error'] = null;
      }
      const columns = Object.keys(sets);
      if (columns.length > 0) {
        // Column names come from the fixed list above, never from the caller.
        this.stmt(`UPDATE runs SET ${columns.map((c) => `${c} = @${c}`).join(', ')} WHERE id = @id`).run({ ...sets, id: runId });
      }
      return toRunRecord(this.runRow(runId));
    });
  }

  metricWriter(runId: string, options?: MetricWriterOptions): MetricWriter {
    this.checkOpen();
    const id = this.resolveRunId(runId);
    const writer = new BufferedMetricWriter(
      id,
      (run, batch) => this.write(() => this.insertPoints(run, batch)),
      this.now,
      (w) => this.writers.delete(w),
      options,
    );
    this.writers.add(writer);
    return writer;
  }

  /**
   * Inserts a batch and brings metric_summary up to date. Must run inside a write transaction. A batch that only
   * appends (every step after the key's last one) updates the summary incrementally; one that rewrites earlier
   * steps (a resumed run) recomputes that key's summary from its series, since a replaced value may have been
   * the minimum or maximum.
   */
  private insertPoints(runId: string, batch: PointBatch): void {
    const insert = this.stmt(
      `INSERT INTO metrics (run_id, key, step, phase, epoch, wall_time, value) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (run_id, key, step) DO UPDATE SET
         phase = excluded.phase, epoch = excluded.epoch, wall_time = excluded.wall_time, value = excluded.value`,
    );
    const aggregates = new Map<string, BatchAggregate>();
    const { keys, steps, values, epochs, phases, wallTimes } = batch;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const step = steps[i]!;
      const value = values[i]!;
      insert.run(runId, key, step, phases[i]!, epochs[i]!, wallTimes[i]!, value);
      let a = aggregates.get(key);
      if (a === undefined) {
        a = { count: 0, firstStep: step, minValue: null, minStep: null, maxValue: null, maxStep: null, lastStep: step, lastValue: value };
        aggregates.set(key, a);
      }
      a.count++;
      if (step < a.firstStep) a.firstStep = step;
      if (step >= a.lastStep) {
        a.lastStep = step;
        a.lastValue = value;
      }
      if (!Number.isNaN(value)) {
        if (a.minValue === null || value < a.minValue) {
          a.minValue = value;
          a.minStep = step;
        }
        if (a.maxValue === null || value > a.maxValue) {
          a.maxValue = value;
          a.maxStep = step;
        }
      }
    }
    const select = this.stmt('SELECT * FROM metric_summary WHERE run_id = ? AND key = ?');
    const replace = this.stmt(
      `INSERT OR REPLACE INTO metric_summary (run_id, key, count, min_value, min_step, max_value, max_step, last_step, last_value)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const [key, a] of aggregates) {
      const old = select.get(runId, key) as SummaryRow | undefined;
      if (old !== undefined && a.firstStep <= old.last_step) {
        this.recomputeSummary(runId, key);
        continue;
      }
      // Strict comparisons: on ties the earlier step keeps the record.
      const takeMin = old === undefined || old.min_value === null || (a.minValue !== null && a.minValue < old.min_value);
      const takeMax = old === undefined || old.max_value === null || (a.maxValue !== null && a.maxValue > old.max_value);
      replace.run(
        runId,
        key,
        (old?.count ?? 0) + a.count,
        takeMin ? a.minValue : old.min_value,
        takeMin ? a.minStep : old.min_step,
        takeMax ? a.maxValue : old.max_value,
        takeMax ? a.maxStep : old.max_step,
        a.lastStep,
        a.lastValue,
      );
    }
  }

  private recomputeSummary(runId: string, key: string): void {
    this.stmt(
      `INSERT OR REPLACE INTO metric_summary (run_id, key, count, min_value, min_step, max_value, max_step, last_step, last_value)
       SELECT @run, @key, c.n, mn.v, CASE WHEN mn.v IS NULL THEN NULL ELSE mn.s END,
              mx.v, CASE WHEN mx.v IS NULL THEN NULL ELSE mx.s END, ls.step, ls.value
         FROM (SELECT count(*) AS n FROM metrics WHERE run_id = @run AND key = @key) c,
              (SELECT min(value) AS v, step AS s FROM metrics WHERE run_id = @run AND key = @key) mn,
              (SELECT max(value) AS v, step AS s FROM metrics WHERE run_id = @run AND key = @key) mx,
              (SELECT step, value FROM metrics WHERE run_id = @run AND key = @key ORDER BY step DESC LIMIT 1) ls`,
    ).run({ run: runId, key });
  }

  addEvaluation(runId: string, evaluation: EvaluationInput): EvaluationRecord {
    const id = this.resolveRunId(runId);
    const step = checkStep(evaluation.step, 'evaluation');
    const epoch = optionalNumber(evaluation.epoch, 'evaluation epoch');
    const params: Record<string, unknown> = {
      run: id,
      phase: evaluation.phase ?? null,
      epoch,
      step,
      now: this.now(),
      layerStats: anyJson(evaluation.layerStats ?? [], 'layerStats'),
    };
    // Mirror the scores into metrics (keys from the metric catalog) so listRuns can rank runs by, say, test/selected.
    const points = emptyBatch();
    const sets: [string, ScoreSplit, EvaluationScores | null | undefined][] = [
      ['', 'test', evaluation.test],
      ['val_', 'validation', evaluation.validation],
    ];
    for (const [prefix, split, scores] of sets) {
      for (const field of EVALUATION_SCORE_FIELDS) {
        const value = optionalNumber(scores?.[field], `${split}.${field}`);
        params[prefix + SCORE_COLUMNS[field]] = value;
        if (value !== null) {
          const key = scoreKey(split, field);
          checkPoint(key, step, value, epoch);
          points.keys.push(key);
          points.steps.push(step);
          points.values.push(value);
          points.epochs.push(epoch);
          points.phases.push(evaluation.phase ?? null);
          points.wallTimes.push(params['now'] as number);
        }
      }
    }
    const columns = Object.values(SCORE_COLUMNS).flatMap((c) => [c, `val_${c}`]);
    return this.write(() => {
      const { lastInsertRowid } = this.stmt(
        `INSERT INTO evaluations (run_id, phase, epoch, step, created_at, layer_stats, ${columns.join(', ')})
         VALUES (@run, @phase, @epoch, @step, @now, @layerStats, ${columns.map((c) => `@${c}`).join(', ')})`,
      ).run(params);
      if (points.keys.length > 0) this.insertPoints(id, points);
      return toEvaluation(this.stmt('SELECT * FROM evaluations WHERE id = ?').get(lastInsertRowid) as EvaluationRow);
    });
  }

  addCheckpoint(runId: string, checkpoint: CheckpointInput): CheckpointRecord {
    const id = this.resolveRunId(runId);
    const step = checkStep(checkpoint.step, 'checkpoint');
    const path = nonEmpty(checkpoint.path, 'checkpoint path');
    if (!Number.isSafeInteger(checkpoint.bytes) || checkpoint.bytes < 0) {
      throw new StoreError('invalid-argument', `checkpoint bytes must be an integer >= 0, got ${checkpoint.bytes}`);
    }
    return this.write(() => {
      const { lastInsertRowid } = this.stmt(
        `INSERT INTO checkpoints (run_id, step, epoch, phase, path, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(id, step, optionalNumber(checkpoint.epoch, 'checkpoint epoch'), checkpoint.phase ?? null, path, checkpoint.bytes, this.now());
      this.stmt('UPDATE runs SET last_checkpoint = ? WHERE id = ?').run(lastInsertRowid, id);
      return toCheckpoint(this.stmt('SELECT * FROM checkpoints WHERE id = ?').get(lastInsertRowid) as CheckpointRow);
    });
  }

  deleteCheckpoint(checkpointId: number): string | undefined {
    return this.write(() => {
      const row = this.stmt('SELECT * FROM checkpoints WHERE id = ?').get(checkpointId) as CheckpointRow | undefined;
      if (row === undefined) throw new StoreError('not-found', `no checkpoint with id ${checkpointId}`);
      this.stmt('DELETE FROM checkpoints WHERE id = ?').run(checkpointId);
      // The foreign key cleared last_checkpoint if it pointed here; fall back to the newest remaining one.
      this.stmt(
        `UPDATE runs SET last_checkpoint =
           (SELECT id FROM checkpoints WHERE run_id = runs.id ORDER BY step DESC, id DESC LIMIT 1)
         WHERE id = ? AND last_checkpoint IS NULL`,
      ).run(row.run_id);
      const stillRecorded = this.stmt('SELECT 1 FROM checkpoints WHERE path = ? LIMIT 1').get(row.path) !== undefined;
      return stillRecorded ? undefined : row.path;
    });
  }

  addArtifact(runId: string, artifact: ArtifactInput): ArtifactRecord {
    const id = this.resolveRunId(runId);
    const kind = nonEmpty(artifact.kind, 'artifact kind');
    const path = nonEmpty(artifact.path, 'artifact path');
    const status = artifact.status ?? 'pending';
    if (!ARTIFACT_STATUSES.includes(status)) throw new StoreError('invalid-argument', `unknown artifact status "${status}"`);
    const report = nullableJson(artifact.report, 'artifact report');
    return this.write(() => {
      const now = this.now();
      const { lastInsertRowid } = this.stmt(
        `INSERT INTO artifacts (run_id, kind, path, status, report, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(id, kind, path, status, report, now, now);
      return toArtifact(this.stmt('SELECT * FROM artifacts WHERE id = ?').get(lastInsertRowid) as ArtifactRow);
    });
  }

  updateArtifact(artifactId: number, patch: ArtifactPatch): ArtifactRecord {
    if (patch.status !== undefined && !ARTIFACT_STATUSES.includes(patch.status)) {
      throw new StoreError('invalid-argument', `unknown artifact status "${patch.status}"`);
    }
    const sets: Record<string, unknown> = {};
    if (patch.path !== undefined) sets['path'] = nonEmpty(patch.path, 'artifact path');
    if (patch.status !== undefined) sets['status'] = patch.status;
    if (patch.report !== undefined) sets['report'] = nullableJson(patch.report, 'artifact report');
    return this.write(() => {
      sets['updated_at'] = this.now();
      const { changes } = this.stmt(
        `UPDATE artifacts SET ${Object.keys(sets).map((c) => `${c} = @${c}`).join(', ')} WHERE id = @id`,
      ).run({ ...sets, id: artifactId });
      if (changes === 0) throw new StoreError('not-found', `no artifact with id ${artifactId}`);
      return toArtifact(this.stmt('SELECT * FROM artifacts WHERE id = ?').get(artifactId) as ArtifactRow);
    });
  }

  addTag(runId: string, tag: string): boolean {
    const id = this.resolveRunId(runId);
    const t = normalizeTag(tag);
    return this.write(() => this.stmt('INSERT OR IGNORE INTO tags (run_id, tag) VALUES (?, ?)').run(id, t).changes > 0);
  }

  removeTag(runId: string, tag: string): boolean {
    const id = this.resolveRunId(runId);
    const t = normalizeTag(tag);
    return this.write(() => this.stmt('DELETE FROM tags WHERE run_id = ? AND tag = ?').run(id, t).changes > 0);
  }

  addNote(runId: string, text: string): NoteRecord {
    const id = this.resolveRunId(runId);
    nonEmpty(text, 'note text');
    return this.write(() => {
      const { lastInsertRowid } = this.stmt('INSERT INTO notes (run_id, text, created_at) VALUES (?, ?, ?)').run(id, text, this.now());
      return toNote(this.stmt('SELECT * FROM notes WHERE id = ?').get(lastInsertRowid) as NoteRow);
    });
  }

  deleteRun(id: string): DeletedRun {
    const runId = this.resolveRunId(id);
    const deleted = this.write((): DeletedRun => {
      // A file that another run also records (two runs that shared a checkpoint folder before checkpoint names
      // carried the run id) is that run's too: its path is not handed back for deletion.
      const recordedElsewhere = `path NOT IN (SELECT path FROM checkpoints WHERE run_id != @id UNION SELECT path FROM artifacts WHERE run_id != @id)`;
      const checkpointPaths = this.stmt(`SELECT path FROM checkpoints WHERE run_id = @id AND ${recordedElsewhere} ORDER BY step`).pluck().all({ id: runId }) as string[];
      const artifactPaths = this.stmt(`SELECT path FROM artifacts WHERE run_id = @id AND ${recordedElsewhere} ORDER BY id`).pluck().all({ id: runId }) as string[];
      // Foreign keys cascade to metrics, summaries, evaluations, checkpoints, artifacts, tags and notes.
      this.stmt('DELETE FROM runs WHERE id = ?').run(runId);
      return { id: runId, checkpointPaths, artifactPaths };
    });
    for (const w of this.writers) {
      if (w.runId === runId) {
        w.discard(`run ${runId} was deleted`);
        this.writers.delete(w);
      }
    }
    return deleted;
  }

  markInterruptedRuns(): string[] {
    this.checkOpen();
    const candidates = this.stmt(
      `SELECT id, status, owner_host, owner_pid, owner_token FROM runs
        WHERE status = 'running' OR (status = 'queued' AND started_at IS NOT NULL)`,
    ).all() as Pick<RunRow, 'id' | 'status' | 'owner_host' | 'owner_pid' | 'owner_token'>[];
    // Liveness is checked outside the transaction (it reads /proc); the UPDATE only applies if the run still has
    // the same status and owner, so a run claimed meanwhile by a live process is left alone.
    const orphans = candidates.filter((r) => ownerState({ host: r.owner_host, pid: r.owner_pid, token: r.owner_token }) === 'dead');
    if (orphans.length === 0) return [];
    return this.write(() => {
      const now = this.now();
      const marked: string[] = [];
      const update = this.stmt(
        `UPDATE runs SET status = 'interrupted', finished_at = @now,
                error = coalesce(error, @reason), owner_host = NULL, owner_pid = NULL, owner_token = NULL
          WHERE id = @id AND status = @status AND owner_pid IS @pid AND owner_token IS @token`,
      );
      for (const r of orphans) {
        const reason =
          r.owner_pid === null
            ? 'the process running it ended without recording how'
            : `the process running it (pid ${r.owner_pid} on ${r.owner_host ?? 'unknown host'}) ended without recording how`;
        const { changes } = update.run({ now, reason, id: r.id, status: r.status, pid: r.owner_pid, token: r.owner_token });
        if (changes > 0) marked.push(r.id);
      }
      return marked;
    });
  }

  runClaim(id: string): RunClaim | null {
    const runId = this.resolveRunId(id);
    const row = this.stmt(
      `SELECT owner_host, owner_pid, owner_token FROM runs WHERE id = ? AND status IN ('running', 'queued')`,
    ).get(runId) as Pick<RunRow, 'owner_host' | 'owner_pid' | 'owner_token'> | undefined;
    if (row === undefined || (row.owner_host === null && row.owner_pid === null)) return null;
    return { host: row.owner_host, pid: row.owner_pid, token: row.owner_token };
  }

  releaseRun(id: string, claim: RunClaim, reason: string): boolean {
    const runId = this.resolveRunId(id);
    return this.write(() => {
      const { changes } = this.stmt(
        `UPDATE runs SET status = 'interrupted', finished_at = @now, error = @reason,
                owner_host = NULL, owner_pid = NULL, owner_token = NULL
          WHERE id = @id AND status IN ('running', 'queued')
            AND owner_host IS @host AND owner_pid IS @pid AND owner_token IS @token`,
      ).run({ now: this.now(), reason, id: runId, host: claim.host, pid: claim.pid, token: claim.token });
      return changes > 0;
    });
  }

  close(): void {
    if (this.closed) return;
    let failure: unknown;
    for (const w of [...this.writers]) {
      try {
        w.close();
      } catch (error) {
        failure ??= error;
      }
    }
    if (!this.options.readonly) {
      try {
        this.db.pragma('optimize');
      } catch {
        // Only a planner hint; never worth failing a close over.
      }
    }
    this.closed = true;
    this.statements.clear();
    this.db.close();
    if (failure !== undefined) throw failure;
  }
}
