/**
 * The Store on better-sqlite3: runs, evaluations, checkpoints, artifacts, tags, notes and run ownership. It composes
 * the parts that do one job each: the connection (statements, write transactions; connection.ts), the metrics table
 * (metrics-table.ts), the row mappers (rows.ts) and the checks of caller input (input-checks.ts).
 */
import type Database from 'better-sqlite3';
import { DISCRETE_SCORE_FIELDS, HEADLINE_METRIC, scoreKey, type ScoreSplit } from '../contract.ts';
import { flattenConfig, diffFlattened } from './config-diff.ts';
import { Connection } from './connection.ts';
import { StoreError } from './errors.ts';
import { newRunId, normalizeIdPrefix } from './ids.ts';
import { anyJson, checkProgress, checkStep, nonEmpty, normalizeTag, nullableJson, objectJson, optionalNumber } from './input-checks.ts';
import { FINISHED_STATUSES, metricGoal, transitionError } from './lifecycle.ts';
import { checkPoint, emptyBatch } from './metric-writer.ts';
import { MetricsTable } from './metrics-table.ts';
import { currentProcess, ownerState } from './process-identity.ts';
import {
  SCORE_COLUMNS,
  toArtifact,
  toCheckpoint,
  toEvaluation,
  toNote,
  toRunListRow,
  toRunRecord,
  type ArtifactRow,
  type CheckpointRow,
  type EvaluationRow,
  type NoteRow,
  type RunListSqlRow,
  type RunRow,
} from './rows.ts';
import { ftsQuery } from './search.ts';
import {
  ARTIFACT_STATUSES,
  RUN_STATUSES,
  type ArtifactInput,
  type ArtifactPatch,
  type ArtifactRecord,
  type ArtifactStatus,
  type CheckpointInput,
  type CheckpointRecord,
  type ConfigDiff,
  type CreateRunInput,
  type DeletedRun,
  type EvaluationInput,
  type EvaluationRecord,
  type EvaluationScores,
  type JsonObject,
  type JsonValue,
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
  type RunList,
  type RunPatch,
  type RunRecord,
  type SeriesOptions,
  type Store,
  type UpdateRunOptions,
  type RunSortKey,
} from './types.ts';

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

function asList<T>(value: T | readonly T[] | undefined): readonly T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? (value as readonly T[]) : [value as T];
}

export interface SqliteStoreOptions {
  readonly readonly: boolean;
  /** Clock in ms since the epoch (tests pin it). */
  readonly now: () => number;
}

/** Store over an open, migrated better-sqlite3 connection. Construct through openStore(). */
export class SqliteStore implements Store {
  private readonly conn: Connection;
  private readonly metrics: MetricsTable;
  private readonly now: () => number;

  constructor(
    db: Database.Database,
    readonly file: string,
    private readonly options: SqliteStoreOptions,
  ) {
    this.now = options.now;
    this.conn = new Connection(db, file);
    this.metrics = new MetricsTable(this.conn, this.now);
  }

  // ---- plumbing ------------------------------------------------------------------------------------------------

  private stmt(sql: string): Database.Statement {
    return this.conn.stmt(sql);
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction (see connection.ts). */
  private write<T>(fn: () => T): T {
    return this.conn.write(fn);
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
      metrics: this.metrics.summaries(runId),
    };
  }

  listArtifacts(query: { readonly runId?: string; readonly status?: readonly ArtifactStatus[] } = {}): ArtifactRecord[] {
    this.conn.checkOpen();
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
    ).all(params) as RunListSqlRow[];
    const total = this.stmt(`SELECT count(*) FROM runs r ${whereSql}`)
      .pluck()
      .get(Object.fromEntries(Object.entries(params).filter(([k]) => !['now', 'metric', 'limit', 'offset'].includes(k)))) as number;
    return {
      total,
      rows: rows.map((r) => toRunListRow(r, metric)),
    };
  }

  metricStats(runId: string, key: string, goal?: MetricGoal): MetricStats | undefined {
    return this.metrics.stats(this.resolveRunId(runId), key, goal);
  }

  metricSeries(runId: string, key: string, options: SeriesOptions = {}): MetricSeries {
    return this.metrics.series(this.resolveRunId(runId), key, options);
  }

  valueAt(runId: string, key: string, step: number): MetricPoint | undefined {
    return this.metrics.valueAt(this.resolveRunId(runId), key, step);
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
    return this.metrics.writer(this.resolveRunId(runId), options);
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
      for (const field of DISCRETE_SCORE_FIELDS) {
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
      if (points.keys.length > 0) this.metrics.insert(id, points);
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
    this.metrics.discardWriters(runId);
    return deleted;
  }

  markInterruptedRuns(): string[] {
    this.conn.checkOpen();
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
    if (this.conn.isClosed) return;
    const failure = this.metrics.closeWriters();
    this.conn.close(!this.options.readonly);
    if (failure !== undefined) throw failure;
  }
}
