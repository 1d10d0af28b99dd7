/**
 * Comparing any number of runs: overlaid curves (EMA smoothing; x by step, epoch or wall time), the configuration
 * table (optionally only what differs), final and best metrics, the discretization gap, per-layer statistics side
 * by side and export status, plus the comparison as CSV.
 */
import type { ApiClient, LiveEvent, MetricInfo, MetricKey, MetricSeries, RunDetail } from '../../../app/contract.ts';
import { METRIC_CATALOG, METRIC_KEYS, metricInfo, scoreKey } from '../../../app/contract.ts';
import { discretizationGap, ema, inferStepsPerEpoch, runColor, xValues, type XAxis } from '../lib/series.ts';
import { toCsv } from '../lib/csv.ts';
import { realScheduler, type Scheduler } from './runs.svelte.ts';

/** Metrics a person can overlay: the whole catalog, with its labels, units and default smoothing. */
export const COMPARE_METRICS: readonly MetricInfo[] = METRIC_CATALOG;
/** The charts shown at first. */
export const DEFAULT_COMPARE_METRICS: readonly MetricKey[] = [METRIC_KEYS.loss, METRIC_KEYS.batchAccuracy, scoreKey('test', 'argmax'), scoreKey('test', 'expected')];

/** Scores shown in the metrics table: final (at the last evaluation) and best. */
export const SCORE_KEYS = (['argmax', 'sampledMean', 'sampledBest', 'selected', 'expected'] as const).map((field) => scoreKey('test', field));
/** The full-precision net's test accuracy, beside the scores. */
export const FULL_PRECISION = scoreKey('test', 'fullPrecision');

export interface ChartLine {
  readonly runId: string;
  readonly label: string;
  readonly color: string;
  readonly xs: (number | null)[];
  readonly ys: (number | null)[];
}

export interface ConfigRow {
  readonly key: string;
  readonly values: readonly string[];
  readonly differs: boolean;
}

/** Flattens a configuration to dotted keys (arrays kept whole), as the store's configDiff does. */
export function flatten(value: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = value;
  }
  return out;
}

const show = (v: unknown) => (v === undefined ? '–' : typeof v === 'string' ? v : JSON.stringify(v));

export class CompareState {
  /** Points per series fetched from the store: min/max decimated, about two per pixel of a chart. */
  static readonly MAX_POINTS = 1000;

  #ids = $state.raw<readonly string[]>([]);
  #runs = $state.raw<readonly RunDetail[]>([]);
  #series = $state.raw<ReadonlyMap<string, MetricSeries>>(new Map());
  #error = $state<string | null>(null);
  #loading = $state(false);
  xAxis = $state<XAxis>('step');
  smoothing = $state(0.6);
  diffOnly = $state(true);
  #metrics = $state.raw<readonly string[]>(DEFAULT_COMPARE_METRICS);
  #cancelRefresh: (() => void) | null = null;

  constructor(
    private readonly client: ApiClient,
    private readonly scheduler: Scheduler = realScheduler,
  ) {}

  get ids(): readonly string[] {
    return this.#ids;
  }
  get runs(): readonly RunDetail[] {
    return this.#runs;
  }
  get error(): string | null {
    return this.#error;
  }
  get loading(): boolean {
    return this.#loading;
  }
  get metrics(): readonly string[] {
    return this.#metrics;
  }

  colorOf(runId: string): string {
    return runColor(Math.max(0, this.#runs.findIndex((r) => r.id === runId)));
  }

  async load(ids: readonly string[]): Promise<void> {
    this.#ids = ids;
    if (ids.length === 0) {
      this.#runs = [];
      this.#series = new Map();
      return;
    }
    this.#loading = true;
    try {
      const runs = await this.client.call('runs.getMany', { ids: [...ids] });
      if (!runs.ok) {
        this.#error = runs.error.message;
        return;
      }
      this.#runs = runs.value;
      this.#error = null;
      await this.#loadSeries();
    } finally {
      this.#loading = false;
    }
  }

  async #loadSeries(): Promise<void> {
    // The loss is always fetched: it gives each run's steps per epoch for the epoch axis.
    const keys = [...new Set([METRIC_KEYS.loss, ...this.#metrics])];
    const result = await this.client.call('runs.series', { runIds: this.#runs.map((r) => r.id), keys, maxPoints: CompareState.MAX_POINTS });
    if (!result.ok) {
      this.#error = result.error.message;
      return;
    }
    this.#series = new Map(result.value.map((s) => [`${s.runId} ${s.key}`, s]));
  }

  toggleMetric(key: string): void {
    this.#metrics = this.#metrics.includes(key) ? this.#metrics.filter((k) => k !== key) : [...this.#metrics, key];
    void this.#loadSeries();
  }

  seriesOf(runId: string, key: string): MetricSeries | undefined {
    return this.#series.get(`${runId} ${key}`);
  }

  /** The lines of one chart: one per run that has points, smoothed when the metric is a noisy training curve. */
  lines(key: string): ChartLine[] {
    const weight = metricInfo(key)?.smooth ? this.smoothing : 0;
    const lines: ChartLine[] = [];
    this.#runs.forEach((run, i) => {
      const s = this.seriesOf(run.id, key);
      if (!s || s.steps.length === 0) return;
      const axis = { stepsPerEpoch: inferStepsPerEpoch(this.seriesOf(run.id, METRIC_KEYS.loss)), startedAt: run.startedAt };
      lines.push({ runId: run.id, label: run.name, color: runColor(i), xs: xValues(s, this.xAxis, axis), ys: ema(s.values, weight) });
    });
    return lines;
  }

  /** The configuration table as shown: every row, or only the differing ones. */
  get configRows(): ConfigRow[] {
    const rows = this.configRowsAll();
    return this.diffOnly ? rows.filter((r) => r.differs) : rows;
  }

  /**
   * Every configuration key (and the run-level fields that change results), each run's value, whether they differ.
   * The seed is one row: the run's seed is its configuration's (a run recorded without one in its configuration
   * shows the run's).
   */
  configRowsAll(): ConfigRow[] {
    const flat = this.#runs.map((r): Record<string, unknown> => ({
      seed: r.seed,
      ...flatten(r.config),
      'run.dataset': r.dataset ? `${r.dataset.name} (${r.dataset.checksum.slice(0, 8)})` : undefined,
      'run.backend': r.backend ?? undefined,
      'run.appVersion': r.appVersion,
    }));
    const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
    return keys.map((key) => {
      const values = flat.map((f) => show(f[key]));
      return { key, values, differs: new Set(values).size > 1 };
    });
  }

  /** Final (last evaluation) and best value of each score, per run. */
  scores(run: RunDetail): Record<string, { final: number | null; best: number | null }> {
    const out: Record<string, { final: number | null; best: number | null }> = {};
    for (const key of [...SCORE_KEYS, FULL_PRECISION, METRIC_KEYS.loss]) {
      const m = run.metrics.find((x) => x.key === key);
      out[key] = { final: m ? m.last : null, best: m ? m.best : null };
    }
    return out;
  }

  /** The discretization gap at each run's last evaluation. */
  gap(run: RunDetail): { expected: number | null; argmax: number | null; sampledMean: number | null; gapArgmax: number | null; gapSampled: number | null } {
    const last = run.evaluations[run.evaluations.length - 1];
    const t = last?.test ?? { expected: null, argmax: null, sampledMean: null };
    const g = discretizationGap({ expected: t.expected, argmax: t.argmax, sampledMean: t.sampledMean });
    return { expected: t.expected, argmax: t.argmax, sampledMean: t.sampledMean, gapArgmax: g.argmax, gapSampled: g.sampledMean };
  }

  /** Layer names over all runs, and each run's statistics at its last evaluation. */
  get layerTable(): { layer: string; perRun: ({ fracMinus: number; fracZero: number; fracPlus: number; meanEntropy: number } | null)[] }[] {
    const lastStats = this.#runs.map((r) => r.evaluations[r.evaluations.length - 1]?.layerStats ?? []);
    const layers = [...new Set(lastStats.flatMap((s) => s.map((l) => l.layer)))];
    return layers.map((layer) => ({ layer, perRun: lastStats.map((s) => s.find((l) => l.layer === layer) ?? null) }));
  }

  /** Per run: each export kind with its latest status. */
  exportStatus(run: RunDetail): { kind: string; status: string; passed: boolean | null }[] {
    const latest = new Map<string, (typeof run.artifacts)[number]>();
    for (const a of run.artifacts) if (!latest.has(a.kind) || latest.get(a.kind)!.updatedAt <= a.updatedAt) latest.set(a.kind, a);
    return [...latest.values()].map((a) => {
      // app/export records each format's report under `format` (its verification inside).
      const report = a.report as { format?: { verification?: { passed?: unknown } } } | null;
      const passed = report?.format?.verification?.passed;
      return { kind: a.kind, status: a.status, passed: typeof passed === 'boolean' ? passed : null };
    });
  }

  /** The comparison as CSV: one row per run with its scores, gap and the configuration keys that differ. */
  toCsv(): string {
    const diff = this.#runs.length > 1 ? this.configRowsAll().filter((r) => r.differs) : [];
    const header = [
      'id', 'name', 'status', 'preset', 'kind', 'seed', 'dataset', 'backend', 'duration_s',
      ...SCORE_KEYS.flatMap((k) => [`${k} final`, `${k} best`]),
      'gap expected-argmax', 'gap expected-sampledMean', `${METRIC_KEYS.loss} final`,
      ...diff.map((r) => `config ${r.key}`),
    ];
    const rows = this.#runs.map((run, i) => {
      const s = this.scores(run);
      const g = this.gap(run);
      const seconds = run.startedAt !== null && run.finishedAt !== null ? (run.finishedAt - run.startedAt) / 1000 : null;
      return [
        run.id, run.name, run.status, run.preset, (run.config as { kind?: string }).kind ?? null, run.seed, run.dataset?.name ?? null, run.backend, seconds,
        ...SCORE_KEYS.flatMap((k) => [s[k]!.final, s[k]!.best]),
        g.gapArgmax, g.gapSampled, s[METRIC_KEYS.loss]!.final,
        ...diff.map((r) => r.values[i]),
      ];
    });
    return toCsv(header, rows);
  }

  /** Refreshes when a compared run changes; step events (10 a second per run) fold into one refresh every 2 s. */
  handle(event: LiveEvent): void {
    if (!('runId' in event) || !this.#ids.includes(event.runId) || this.#cancelRefresh) return;
    this.#cancelRefresh = this.scheduler.after(2000, () => {
      this.#cancelRefresh = null;
      void this.load(this.#ids);
    });
  }

  dispose(): void {
    this.#cancelRefresh?.();
  }
}
