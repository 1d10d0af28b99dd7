/**
 * One run, live: its record, curves that grow with every step event, the evaluation points and per-layer weight
 * statistics, progress with ETA and throughput, the log, and the actions (stop, resume, delete).
 *
 * Curves are kept in plain arrays that grow in place, with a version counter as the reactive signal: a chart redraws
 * on each bump instead of Svelte proxying tens of thousands of points.
 */
import type { ApiClient, LiveEvent, LogLine, MetricKey, MetricSeries, RunDetail, RunStatus, TrainingEvent } from '../../../app/contract.ts';
import { METRIC_KEYS, metricsOfEvent, RESUMABLE_STATUSES, scoreKey } from '../../../app/contract.ts';
import { realScheduler, type Scheduler } from './runs.svelte.ts';

/** The curves of a run: x = global step, one column per metric. */
export interface Curves {
  readonly steps: number[];
  readonly loss: (number | null)[];
  readonly batchAccuracy: (number | null)[];
}

/** Accuracy at each evaluation: x = step. */
export interface EvaluationCurves {
  readonly steps: number[];
  readonly argmax: (number | null)[];
  readonly sampledMean: (number | null)[];
  readonly sampledBest: (number | null)[];
  readonly expected: (number | null)[];
  /** Full-precision net during pretraining (its own steps). */
  readonly fullPrecisionSteps: number[];
  readonly fullPrecision: (number | null)[];
}

export interface LiveProgress {
  readonly step: number;
  readonly totalSteps: number;
  readonly fraction: number;
  readonly phase: 'pretrain' | 'lr' | null;
  readonly epoch: number | null;
  readonly etaSeconds: number | null;
  readonly imagesPerSecond: number | null;
  /** While the discrete nets are evaluated: nets done of total. */
  readonly evaluating: { readonly done: number; readonly total: number } | null;
}

/** The step curves' columns and the metric each shows. */
const CURVE_COLUMNS = { loss: METRIC_KEYS.loss, batchAccuracy: METRIC_KEYS.batchAccuracy } as const;
/** The evaluation columns (test split), aligned on the steps of the first: the argmax net's evaluations. */
const EVALUATION_COLUMNS = {
  argmax: scoreKey('test', 'argmax'),
  sampledMean: scoreKey('test', 'sampledMean'),
  sampledBest: scoreKey('test', 'sampledBest'),
  expected: scoreKey('test', 'expected'),
} as const;
const FULL_PRECISION = scoreKey('test', 'fullPrecision');

/** The metrics the page loads from the store; live events add to the same keys (metricsOfEvent). */
export const LIVE_KEYS: readonly MetricKey[] = [...Object.values(CURVE_COLUMNS), METRIC_KEYS.imagesPerSecond, ...Object.values(EVALUATION_COLUMNS), FULL_PRECISION];

type Columns<C extends string> = { readonly steps: number[] } & { readonly [K in C]: (number | null)[] };

/** Fills aligned columns from stored series: x = the steps of the first column's series. */
function fillFromSeries<C extends string>(target: Columns<NoInfer<C>>, columns: Readonly<Record<C, MetricKey>>, get: (key: MetricKey) => MetricSeries | undefined): void {
  const entries = Object.entries(columns) as [C, MetricKey][];
  const base = get(entries[0]![1]);
  if (!base) return;
  target.steps.push(...base.steps);
  for (const [column, key] of entries) {
    const s = get(key);
    const at = new Map(s ? s.steps.map((step, i) => [step, s.values[i] ?? null] as const) : []);
    target[column].push(...base.steps.map((step) => at.get(step) ?? null));
  }
}

/** Appends one event's values (by catalog key) to aligned columns; a missing or NaN value is a gap. */
function append<C extends string>(target: Columns<NoInfer<C>>, columns: Readonly<Record<C, MetricKey>>, step: number, values: ReadonlyMap<string, number>): void {
  target.steps.push(step);
  for (const [column, key] of Object.entries(columns) as [C, MetricKey][]) {
    const v = values.get(key);
    target[column].push(v !== undefined && Number.isFinite(v) ? v : null);
  }
}

/** Per layer, the statistic over evaluations (x = step). */
export interface LayerHistory {
  readonly layer: string;
  readonly steps: number[];
  readonly fracZero: number[];
  readonly fracPlus: number[];
  readonly fracMinus: number[];
  readonly meanEntropy: number[];
}

const emptyCurves = (): Curves => ({ steps: [], loss: [], batchAccuracy: [] });
const emptyEvaluations = (): EvaluationCurves => ({ steps: [], argmax: [], sampledMean: [], sampledBest: [], expected: [], fullPrecisionSteps: [], fullPrecision: [] });

/** An event's metric values by catalog key. */
const valuesOf = (e: TrainingEvent): ReadonlyMap<string, number> => new Map(metricsOfEvent(e).map((m) => [m.key, m.value]));

export class LiveRunState {
  #detail = $state.raw<RunDetail | null>(null);
  #error = $state<string | null>(null);
  #status = $state<RunStatus | null>(null);
  #progress = $state.raw<LiveProgress | null>(null);
  #log = $state.raw<readonly LogLine[]>([]);
  #busy = $state<string | null>(null);
  /** The error code of the last failed action, null after one that worked. */
  #lastErrorCode: string | null = null;
  /** Bumped whenever the curves grow; charts read it to know when to redraw. */
  #version = $state(0);
  #curves: Curves = emptyCurves();
  #evaluations: EvaluationCurves = emptyEvaluations();
  #cancelDetail: (() => void) | null = null;
  #cancelLog: (() => void) | null = null;
  #disposed = false;

  constructor(
    private readonly client: ApiClient,
    readonly runId: string,
    private readonly scheduler: Scheduler = realScheduler,
  ) {}

  get detail(): RunDetail | null {
    return this.#detail;
  }
  get error(): string | null {
    return this.#error;
  }
  get status(): RunStatus | null {
    return this.#status;
  }
  get progress(): LiveProgress | null {
    return this.#progress;
  }
  get log(): readonly LogLine[] {
    return this.#log;
  }
  get busy(): string | null {
    return this.#busy;
  }
  get version(): number {
    return this.#version;
  }
  get curves(): Curves {
    return this.#curves;
  }
  get evaluations(): EvaluationCurves {
    return this.#evaluations;
  }
  get canStop(): boolean {
    return this.#status === 'running' || this.#status === 'queued';
  }
  get canResume(): boolean {
    return this.#status !== null && RESUMABLE_STATUSES.includes(this.#status);
  }

  /** Per-layer weight statistics at each evaluation, from the stored evaluations. */
  get layers(): LayerHistory[] {
    const byLayer = new Map<string, LayerHistory>();
    for (const e of this.#detail?.evaluations ?? []) {
      for (const l of e.layerStats) {
        let h = byLayer.get(l.layer);
        if (!h) byLayer.set(l.layer, (h = { layer: l.layer, steps: [], fracZero: [], fracPlus: [], fracMinus: [], meanEntropy: [] }));
        h.steps.push(e.step);
        h.fracZero.push(l.fracZero);
        h.fracPlus.push(l.fracPlus);
        h.fracMinus.push(l.fracMinus);
        h.meanEntropy.push(l.meanEntropy);
      }
    }
    return [...byLayer.values()];
  }

  /** The run's record, its curves so far and its log. */
  async load(): Promise<void> {
    const [detail, series] = await Promise.all([
      this.client.call('runs.get', { id: this.runId }),
      this.client.call('runs.series', { runIds: [this.runId], keys: [...LIVE_KEYS], maxPoints: 5000 }),
    ]);
    if (!detail.ok) {
      this.#error = detail.error.message;
      return;
    }
    this.#setDetail(detail.value);
    if (series.ok) this.#setSeries(series.value);
    const ips = detail.value.metrics.find((m) => m.key === METRIC_KEYS.imagesPerSecond);
    const stepsDone = detail.value.metrics.find((m) => m.key === METRIC_KEYS.loss)?.lastStep ?? 0;
    const fraction = detail.value.progress ?? 0;
    this.#progress = {
      step: stepsDone,
      totalSteps: fraction > 0 ? Math.round(stepsDone / fraction) : 0,
      fraction,
      phase: null,
      epoch: null,
      etaSeconds: null,
      imagesPerSecond: ips ? ips.last : null,
      evaluating: null,
    };
    await this.loadLog();
  }

  async loadLog(): Promise<void> {
    const log = await this.client.call('runs.log', { id: this.runId });
    if (log.ok) this.#log = log.value.lines;
  }

  #setDetail(detail: RunDetail): void {
    this.#detail = detail;
    this.#status = detail.status;
    this.#error = null;
  }

  #setSeries(series: readonly MetricSeries[]): void {
    const get = (key: MetricKey) => series.find((s) => s.key === key);
    const curves = emptyCurves();
    fillFromSeries(curves, CURVE_COLUMNS, get);
    const evaluations = emptyEvaluations();
    fillFromSeries(evaluations, EVALUATION_COLUMNS, get);
    const fp = get(FULL_PRECISION);
    if (fp) {
      evaluations.fullPrecisionSteps.push(...fp.steps);
      evaluations.fullPrecision.push(...fp.values);
    }
    this.#curves = curves;
    this.#evaluations = evaluations;
    this.#version++;
  }

  /** Applies a live event of this run. */
  handle(event: LiveEvent): void {
    if (this.#disposed || !('runId' in event) || event.runId !== this.runId) return;
    switch (event.type) {
      case 'run-status':
        this.#status = event.status;
        if (event.status !== 'running') this.#progress = this.#progress && { ...this.#progress, etaSeconds: null, evaluating: null };
        this.#scheduleDetail(0);
        this.#scheduleLog();
        return;
      case 'run-deleted':
        this.#error = 'This run was deleted.';
        this.#status = null;
        return;
      case 'run-updated':
      case 'export-status':
        this.#scheduleDetail(0);
        return;
      case 'run-progress':
        this.#apply(event.event);
    }
  }

  #apply(e: TrainingEvent): void {
    const previous = this.#progress;
    switch (e.type) {
      case 'start':
        this.#progress = { step: e.resumedFromStep, totalSteps: e.totalSteps, fraction: e.totalSteps ? e.resumedFromStep / e.totalSteps : 0, phase: null, epoch: null, etaSeconds: null, imagesPerSecond: previous?.imagesPerSecond ?? null, evaluating: null };
        this.#status = 'running';
        // A resumed run replays from its checkpoint: drop the points after it so the curve does not double back.
        this.#truncate(e.resumedFromStep);
        this.#scheduleLog();
        return;
      case 'phase':
        this.#progress = previous && { ...previous, phase: e.phase };
        this.#scheduleLog();
        return;
      case 'step': {
        const c = this.#curves;
        if (c.steps.length === 0 || c.steps[c.steps.length - 1]! < e.step) {
          append(c, CURVE_COLUMNS, e.step, valuesOf(e));
          this.#version++;
        }
        this.#status = 'running';
        this.#progress = {
          step: e.step,
          totalSteps: e.totalSteps,
          fraction: e.totalSteps > 0 ? e.step / e.totalSteps : 0,
          phase: e.phase,
          epoch: e.epoch,
          etaSeconds: e.etaSeconds,
          imagesPerSecond: e.imagesPerSecond,
          evaluating: null,
        };
        return;
      }
      case 'evaluating':
        this.#progress = previous && { ...previous, evaluating: { done: e.netsDone, total: e.netsTotal } };
        return;
      case 'evaluation': {
        const ev = this.#evaluations;
        const values = valuesOf(e);
        if (e.phase === 'pretrain') {
          ev.fullPrecisionSteps.push(e.step);
          ev.fullPrecision.push(values.get(FULL_PRECISION) ?? null);
        } else {
          append(ev, EVALUATION_COLUMNS, e.step, values);
        }
        this.#version++;
        this.#progress = previous && { ...previous, evaluating: null };
        // The stored evaluation carries the per-layer statistics.
        this.#scheduleDetail(300);
        this.#scheduleLog();
        return;
      }
      case 'epoch':
      case 'checkpoint':
        this.#scheduleDetail(300);
        this.#scheduleLog();
        return;
    }
  }

  #truncate(step: number): void {
    const c = this.#curves;
    const keep = c.steps.findIndex((s) => s > step);
    if (keep >= 0) {
      for (const column of [c.steps, c.loss, c.batchAccuracy]) column.length = keep;
      this.#version++;
    }
  }

  #scheduleDetail(ms: number): void {
    if (this.#cancelDetail) return;
    this.#cancelDetail = this.scheduler.after(ms, () => {
      this.#cancelDetail = null;
      void this.client.call('runs.get', { id: this.runId }).then((r) => {
        if (r.ok && !this.#disposed) this.#setDetail(r.value);
      });
    });
  }

  #scheduleLog(): void {
    if (this.#cancelLog) return;
    this.#cancelLog = this.scheduler.after(500, () => {
      this.#cancelLog = null;
      if (!this.#disposed) void this.loadLog();
    });
  }

  async #act(label: string, call: () => Promise<{ ok: boolean; error?: { code: string; message: string } }>): Promise<string | null> {
    this.#busy = label;
    try {
      const r = await call();
      this.#lastErrorCode = r.ok ? null : r.error!.code;
      return r.ok ? null : r.error!.message;
    } finally {
      this.#busy = null;
    }
  }

  /** Stops the run (it writes a checkpoint first). Returns an error message, or null. */
  stop(): Promise<string | null> {
    return this.#act('stopping', () => this.client.call('runs.stop', { id: this.runId }));
  }

  /**
   * Whether the last action failed because a process on another host holds the run ('claimed'): the page then asks
   * the user to confirm that it is gone and repeats the action with `steal` / `force`.
   */
  get lastFailedClaimed(): boolean {
    return this.#lastErrorCode === 'claimed';
  }

  /** `steal`: take over a run held by a process on another host that the user confirmed is gone. */
  resume(steal = false): Promise<string | null> {
    return this.#act('resuming', () => this.client.call('runs.resume', { id: this.runId, ...(steal ? { steal } : {}) }));
  }

  /** `force`: also delete a run held by a process on another host that the user confirmed is gone. */
  remove(force = false): Promise<string | null> {
    return this.#act('deleting', () => this.client.call('runs.delete', { id: this.runId, ...(force ? { force } : {}) }));
  }

  async addTag(tag: string): Promise<string | null> {
    return this.#act('tagging', () => this.client.call('runs.tag', { id: this.runId, tag }));
  }

  async removeTag(tag: string): Promise<string | null> {
    return this.#act('tagging', () => this.client.call('runs.tag', { id: this.runId, tag, remove: true }));
  }

  async addNote(text: string): Promise<string | null> {
    return this.#act('saving note', () => this.client.call('runs.note', { id: this.runId, text }));
  }

  dispose(): void {
    this.#disposed = true;
    this.#cancelDetail?.();
    this.#cancelLog?.();
  }
}
