/**
 * A one-line progress bar for terminals. On a non-terminal stream (a pipe, a CI log) it stays silent, since the
 * caller logs epochs and evaluations as separate lines anyway.
 */
export class ProgressLine {
  private visible = false;
  private lastDraw = 0;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  /** Redraws the bar at `fraction` (0..1) with a status text; at most ten times a second. */
  update(fraction: number, text: string): void {
    if (!this.stream.isTTY) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && fraction < 1) return;
    this.lastDraw = now;
    const width = 24;
    const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const line = `${bar} ${(fraction * 100).toFixed(0).padStart(3)}% ${text}`;
    const columns = this.stream.columns ?? 100;
    this.stream.write(`\r${line.slice(0, columns - 1)}\x1b[K`);
    this.visible = true;
  }

  /** Erases the bar so a log line can take its place. */
  clear(): void {
    if (!this.visible) return;
    this.stream.write('\r\x1b[K');
    this.visible = false;
  }
}

/** "1h02m", "3m05s", "42s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** A fraction in [0, 1] as "97.52%". */
export function formatPercent(fraction: number): string {
  return `${(fraction * 100).toFixed(2)}%`;
}
