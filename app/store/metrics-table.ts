/**
 * The metrics table and its summaries: writing points (through buffered writers), keeping metric_summary up to
 * date, and reading series (downsampled for charts), single values and summaries back. Run ids here are full ids;
 * the Store resolves prefixes before calling in.
 */
import type Database from 'better-sqlite3';
import type { Connection } from './connection.ts';
import { decimateMinMax } from './downsample.ts';
import { BufferedMetricWriter, type PointBatch } from './metric-writer.ts';
import { metricValue, toStats, type SummaryRow } from './rows.ts';
import type { MetricGoal, MetricPoint, MetricSeries, MetricStats, MetricWriter, MetricWriterOptions, SeriesOptions } from './types.ts';

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

export class MetricsTable {
  private readonly writers = new Set<BufferedMetricWriter>();
  /** Output slot of the lrnet_collect aggregate (better-sqlite3 is synchronous, so one slot is enough). */
  private collected: SeriesCollector | undefined;

  constructor(
    private readonly conn: Connection,
    private readonly now: () => number,
  ) {
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
    conn.db.aggregate('lrnet_collect', collect as unknown as Database.AggregateOptions);
  }

  // ---- writing -------------------------------------------------------------------------------------------------

  /** A buffered writer for one run; each flush is one write transaction. */
  writer(runId: string, options?: MetricWriterOptions): MetricWriter {
    this.conn.checkOpen();
    const writer = new BufferedMetricWriter(
      runId,
      (run, batch) => this.conn.write(() => this.insert(run, batch)),
      this.now,
      (w) => this.writers.delete(w),
      options,
    );
    this.writers.add(writer);
    return writer;
  }

  /** Drops the buffered points of a deleted run's writers and closes them. */
  discardWriters(runId: string): void {
    for (const w of this.writers) {
      if (w.runId === runId) {
        w.discard(`run ${runId} was deleted`);
        this.writers.delete(w);
      }
    }
  }

  /** Flushes and closes every open writer; returns the first failure (each writer is closed regardless). */
  closeWriters(): unknown {
    let failure: unknown;
    for (const w of [...this.writers]) {
      try {
        w.close();
      } catch (error) {
        failure ??= error;
      }
    }
    return failure;
  }

  /**
   * Inserts a batch and brings metric_summary up to date. Must run inside a write transaction. A batch that only
   * appends (every step after the key's last one) updates the summary incrementally; one that rewrites earlier
   * steps (a resumed run) recomputes that key's summary from its series, since a replaced value may have been
   * the minimum or maximum.
   */
  insert(runId: string, batch: PointBatch): void {
    const insert = this.conn.stmt(
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
    const select = this.conn.stmt('SELECT * FROM metric_summary WHERE run_id = ? AND key = ?');
    const replace = this.conn.stmt(
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
    this.conn
      .stmt(
        `INSERT OR REPLACE INTO metric_summary (run_id, key, count, min_value, min_step, max_value, max_step, last_step, last_value)
         SELECT @run, @key, c.n, mn.v, CASE WHEN mn.v IS NULL THEN NULL ELSE mn.s END,
                mx.v, CASE WHEN mx.v IS NULL THEN NULL ELSE mx.s END, ls.step, ls.value
           FROM (SELECT count(*) AS n FROM metrics WHERE run_id = @run AND key = @key) c,
                (SELECT min(value) AS v, step AS s FROM metrics WHERE run_id = @run AND key = @key) mn,
                (SELECT max(value) AS v, step AS s FROM metrics WHERE run_id = @run AND key = @key) mx,
                (SELECT step, value FROM metrics WHERE run_id = @run AND key = @key ORDER BY step DESC LIMIT 1) ls`,
      )
      .run({ run: runId, key });
  }

  // ---- reading -------------------------------------------------------------------------------------------------

  /** One summary per metric key of the run, sorted by key. */
  summaries(runId: string): MetricStats[] {
    return (this.conn.stmt('SELECT * FROM metric_summary WHERE run_id = ? ORDER BY key').all(runId) as SummaryRow[]).map((r) => toStats(r));
  }

  stats(runId: string, key: string, goal?: MetricGoal): MetricStats | undefined {
    const row = this.conn.stmt('SELECT * FROM metric_summary WHERE run_id = ? AND key = ?').get(runId, key) as SummaryRow | undefined;
    return row === undefined ? undefined : toStats(row, goal);
  }

  series(runId: string, key: string, options: SeriesOptions = {}): MetricSeries {
    const maxPoints = options.maxPoints ?? 1000;
    const from = options.fromStep ?? Number.MIN_SAFE_INTEGER;
    const to = options.toStep ?? Number.MAX_SAFE_INTEGER;
    this.collected = undefined;
    this.conn
      .stmt(`SELECT lrnet_collect(step, value) FROM metrics WHERE run_id = ? AND key = ? AND step >= ? AND step <= ?`)
      .get(runId, key, from, to);
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
    const rows = this.conn
      .stmt(
        `SELECT step, epoch, wall_time FROM metrics
          WHERE run_id = ? AND key = ? AND step IN (SELECT value FROM json_each(?))`,
      )
      .raw()
      .all(runId, key, JSON.stringify(keptSteps)) as [number, number | null, number][];
    for (const [step, epoch, wall] of rows) extras.set(step, [epoch, wall]);
    return {
      runId,
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
    const row = this.conn
      .stmt(
        `SELECT key, step, value, epoch, phase, wall_time FROM metrics
          WHERE run_id = ? AND key = ? AND step <= ? ORDER BY step DESC LIMIT 1`,
      )
      .get(runId, key, step) as
      | { key: string; step: number; value: number | null; epoch: number | null; phase: string | null; wall_time: number }
      | undefined;
    if (row === undefined) return undefined;
    return { key: row.key, step: row.step, value: metricValue(row.value), epoch: row.epoch, phase: row.phase, wallTime: row.wall_time };
  }
}
