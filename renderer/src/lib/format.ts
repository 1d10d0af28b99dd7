/** Formatting for people: durations, percentages, counts and times, with a dash for unknowns. */

export const DASH = '–';

/** "97.31%" from a fraction; a dash for null/NaN. */
export function percent(value: number | null | undefined, digits = 2): string {
  return value === null || value === undefined || !Number.isFinite(value) ? DASH : `${(100 * value).toFixed(digits)}%`;
}

/** Signed percentage points, e.g. "+1.20 pp". */
export function points(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  const pp = 100 * value;
  return `${pp > 0 ? '+' : pp < 0 ? '−' : '±'}${Math.abs(pp).toFixed(digits)} pp`;
}

/** "1 h 02 min", "3 min 05 s", "42 s" from seconds. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return DASH;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${String(m % 60).padStart(2, '0')} min`;
}

/** How long a run has run: to its end, or to `now` while it is running. */
export function runDuration(run: { startedAt: number | null; finishedAt: number | null; status: string }, now: number): number | null {
  if (run.startedAt === null) return null;
  const end = run.finishedAt ?? (run.status === 'running' ? now : null);
  return end === null ? null : (end - run.startedAt) / 1000;
}

/** "1,234" / "12.3k" / "4.5M". */
export function count(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  const a = Math.abs(value);
  if (a >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return Math.round(value).toLocaleString('en-US');
}

/** A number with up to `digits` significant digits, for losses and hyperparameters. */
export function number(value: number | null | undefined, digits = 4): string {
  if (value === null || value === undefined) return DASH;
  if (!Number.isFinite(value)) return String(value);
  if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e6)) return value.toExponential(Math.max(0, digits - 2));
  return String(Number(value.toPrecision(digits)));
}

/** "2025-06-01 14:03" in local time. */
export function dateTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return DASH;
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** "14:03:22" in local time. */
export function clock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A configuration value as one short line. */
export function configValue(value: unknown): string {
  if (value === undefined) return DASH;
  if (typeof value === 'number') return number(value, 6);
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

/** Bytes as "12.3 KiB" / "4.5 MiB". */
export function bytes(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  if (value < 1024) return `${value} B`;
  if (value < 1024 ** 2) return `${(value / 1024).toFixed(1)} KiB`;
  return `${(value / 1024 ** 2).toFixed(1)} MiB`;
}

/** "14:03" today, "Jun 01 14:03" this year, "2024-06-01" before. */
export function shortDate(ms: number, now: number = Date.now()): string {
  const d = new Date(ms);
  const n = new Date(now);
  const p = (x: number) => String(x).padStart(2, '0');
  const time = `${p(d.getHours())}:${p(d.getMinutes())}`;
  if (d.toDateString() === n.toDateString()) return time;
  if (d.getFullYear() === n.getFullYear()) return `${MONTHS[d.getMonth()]} ${p(d.getDate())} ${time}`;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
