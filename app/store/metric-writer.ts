/**
 * Buffered metric writing. Training logs a handful of values per step; a transaction per point would cap throughput
 * at the fsync rate, so points are buffered in columns and written in one transaction per batch.
 */
import { isBusyError, StoreError } from './errors.ts';
import type { MetricPointInput, MetricWriter, MetricWriterOptions } from './types.ts';

/** A batch of points for one run, column by column (no object per point). */
export interface PointBatch {
  readonly keys: string[];
  readonly steps: number[];
  readonly values: number[];
  readonly epochs: (number | null)[];
  readonly phases: (string | null)[];
  readonly wallTimes: number[];
}

/** A batch with no points, to fill column by column. */
export function emptyBatch(): PointBatch {
  return { keys: [], steps: [], values: [], epochs: [], phases: [], wallTimes: [] };
}

const DEFAULT_FLUSH_EVERY = 2000;
const DEFAULT_FLUSH_INTERVAL_MS = 1000;

/** Throws StoreError 'invalid-argument' unless the point can be stored. */
export function checkPoint(key: unknown, step: unknown, value: unknown, epoch: unknown): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw new StoreError('invalid-argument', `metric key must be a non-empty string, got ${JSON.stringify(key)}`);
  }
  if (!Number.isSafeInteger(step) || (step as number) < 0) {
    throw new StoreError('invalid-argument', `metric step must be an integer >= 0, got ${String(step)} for "${key}"`);
  }
  if (typeof value !== 'number') {
    throw new StoreError('invalid-argument', `metric value must be a number, got ${typeof value} for "${key}"`);
  }
  if (epoch !== undefined && epoch !== null && typeof epoch !== 'number') {
    throw new StoreError('invalid-argument', `metric epoch must be a number or null, got ${typeof epoch} for "${key}"`);
  }
}

/** The MetricWriter a store hands out; `sink` writes one batch in one transaction. */
export class BufferedMetricWriter implements MetricWriter {
  private batch: PointBatch = emptyBatch();
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** A failed timed flush, rethrown by the next call so the failure is not silent. */
  private failure: unknown;
  private closedReason: string | undefined;
  private readonly flushEvery: number;
  private readonly flushIntervalMs: number;
  private readonly phase: string | null;

  constructor(
    readonly runId: string,
    private readonly sink: (runId: string, batch: PointBatch) => void,
    private readonly now: () => number,
    private readonly onClose: (writer: BufferedMetricWriter) => void,
    options: MetricWriterOptions = {},
  ) {
    this.flushEvery = Math.max(1, Math.floor(options.flushEvery ?? DEFAULT_FLUSH_EVERY));
    this.flushIntervalMs = Math.max(0, options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS);
    this.phase = options.phase ?? null;
  }

  get pending(): number {
    return this.batch.keys.length;
  }

  write(key: string, step: number, value: number, extra?: Pick<MetricPointInput, 'epoch' | 'phase' | 'wallTime'>): void {
    this.checkUsable();
    checkPoint(key, step, value, extra?.epoch);
    const b = this.batch;
    b.keys.push(key);
    b.steps.push(step);
    b.values.push(value);
    b.epochs.push(extra?.epoch ?? null);
    b.phases.push(extra?.phase ?? this.phase);
    b.wallTimes.push(extra?.wallTime ?? this.now());
    if (b.keys.length >= this.flushEvery) this.flush();
    else if (this.timer === undefined) {
      // Not unref'd: a process that forgets close() then exits at most flushIntervalMs later, after the flush,
      // instead of exiting at once with the points still buffered.
      this.timer = setTimeout(() => this.timedFlush(), this.flushIntervalMs);
    }
  }

  writePoint(point: MetricPointInput): void {
    this.write(point.key, point.step, point.value, point);
  }

  flush(): void {
    this.checkUsable();
    this.flushBuffered();
  }

  close(): void {
    if (this.closedReason !== undefined) return;
    try {
      this.flushBuffered();
      this.rethrowFailure();
    } finally {
      this.closedReason = `metric writer for run ${this.runId} is closed`;
      this.onClose(this);
    }
  }

  /** Drops buffered points and closes (the run was deleted). */
  discard(reason: string): void {
    this.clearTimer();
    this.batch = emptyBatch();
    this.closedReason = reason;
  }

  private flushBuffered(): void {
    this.clearTimer();
    if (this.batch.keys.length === 0) return;
    const batch = this.batch;
    this.batch = emptyBatch();
    try {
      this.sink(this.runId, batch);
    } catch (error) {
      // Lock contention is transient: keep the points (ahead of newer ones) for the next flush. Anything else
      // (the run was deleted, the disk is full) would fail again, so those points are dropped with the error.
      if (isBusyError(error)) {
        const newer = this.batch;
        this.batch = {
          keys: batch.keys.concat(newer.keys),
          steps: batch.steps.concat(newer.steps),
          values: batch.values.concat(newer.values),
          epochs: batch.epochs.concat(newer.epochs),
          phases: batch.phases.concat(newer.phases),
          wallTimes: batch.wallTimes.concat(newer.wallTimes),
        };
      }
      throw error;
    }
  }

  private timedFlush(): void {
    this.timer = undefined;
    try {
      this.flushBuffered();
    } catch (error) {
      this.failure = error;
    }
  }

  private clearTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private checkUsable(): void {
    if (this.closedReason !== undefined) throw new StoreError('closed', this.closedReason);
    this.rethrowFailure();
  }

  private rethrowFailure(): void {
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.failure = undefined;
      throw failure;
    }
  }
}
