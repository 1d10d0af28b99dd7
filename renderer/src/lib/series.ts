/**
 * Series arithmetic for the charts: smoothing, the x axis a person picks, and the discretization gap. Pure
 * functions on plain arrays so they are cheap on 50 runs x 10,000 points and easy to test.
 */
import type { MetricSeries } from '../../../app/contract.ts';

export type XAxis = 'step' | 'epoch' | 'wall';

/**
 * Exponential moving average with TensorBoard's debiasing, so the first points are not pulled towards zero.
 * `weight` in [0, 1): 0 returns the values as they are. Nulls (NaN in the store) are kept and skipped.
 */
export function ema(values: readonly (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) return values.slice();
  const out: (number | null)[] = new Array(values.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || !Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = last / (1 - weight ** n);
  }
  return out;
}

/** What the x axis needs to know about a run to place its points. */
export interface RunAxisInfo {
  /** Optimizer steps per epoch (see inferStepsPerEpoch); null when unknown, and epochs are then unavailable. */
  readonly stepsPerEpoch: number | null;
  /** The run's first wall time (ms); wall-time axes start at 0 for every run. */
  readonly startedAt: number | null;
}

/**
 * Steps per epoch from a training series whose first points are in the first phase: the store records epochs per
 * phase (fractional, restarting with the LR phase), so the first point with an epoch gives step / epoch exactly.
 */
export function inferStepsPerEpoch(series: MetricSeries | undefined): number | null {
  if (!series) return null;
  for (let i = 0; i < series.steps.length; i++) {
    const e = series.epochs[i];
    if (e !== null && e !== undefined && e > 0) return Math.round(series.steps[i]! / e);
  }
  return null;
}

/**
 * The x values of a series: global step, global epoch (counted over both phases, so pretraining and the LR phase
 * line up on one axis), or minutes since the run started.
 */
export function xValues(series: MetricSeries, axis: XAxis, run: RunAxisInfo): (number | null)[] {
  switch (axis) {
    case 'step':
      return series.steps.slice();
    case 'wall': {
      const t0 = run.startedAt ?? series.wallTimes[0] ?? 0;
      return series.wallTimes.map((t) => (t - t0) / 60_000);
    }
    case 'epoch': {
      const spe = run.stepsPerEpoch;
      return series.steps.map((s) => (spe ? s / spe : null));
    }
  }
}

/** Largest and smallest non-null values, or null when there are none. */
export function extent(values: readonly (number | null)[]): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : null;
}

/**
 * The discretization gap at an evaluation: how much accuracy the mean-weight ("expected") net has over the
 * discrete nets actually deployed (argmax and the sampled mean). Positive: discretizing costs accuracy.
 */
export function discretizationGap(scores: { expected: number | null; argmax: number | null; sampledMean: number | null }): { argmax: number | null; sampledMean: number | null } {
  const gap = (d: number | null) => (scores.expected === null || d === null ? null : scores.expected - d);
  return { argmax: gap(scores.argmax), sampledMean: gap(scores.sampledMean) };
}

/** A palette that stays distinguishable for the first 10 runs and cycles with varied lightness after that. */
const PALETTE = ['#4f46e5', '#e11d48', '#059669', '#d97706', '#0891b2', '#7c3aed', '#db2777', '#65a30d', '#2563eb', '#ea580c'];

export function runColor(index: number): string {
  const base = PALETTE[index % PALETTE.length]!;
  const round = Math.floor(index / PALETTE.length);
  if (round === 0) return base;
  // Later rounds: same hues, alternately lighter and darker.
  const n = parseInt(base.slice(1), 16);
  const f = round % 2 === 1 ? 0.35 : -0.3;
  const ch = (c: number) => Math.round(f > 0 ? c + (255 - c) * f : c * (1 + f));
  const r = ch((n >> 16) & 255), g = ch((n >> 8) & 255), b = ch(n & 255);
  return `#${((1 << 24) | (r << 16) | (g << 8) | b).toString(16).slice(1)}`;
}
