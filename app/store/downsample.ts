/**
 * Min-max decimation of a metric series for charts. Each bucket of consecutive points keeps its first, last, lowest
 * and highest point, so spikes, the global extremes and both endpoints survive, which averaging or LTTB can drop.
 * Cost is one pass over the points.
 */

/**
 * Indices (ascending) of the points to keep so that at most `maxPoints` remain. `values` may contain NaN; NaN never
 * wins min or max, but the first NaN of a bucket is kept so divergence stays visible.
 * `maxPoints` below 4 is raised to 4 (one bucket: first, min, max, last).
 */
export function decimateMinMax(values: ArrayLike<number>, maxPoints: number): number[] {
  const n = values.length;
  if (n <= maxPoints) return Array.from({ length: n }, (_, i) => i);
  let hasNaN = false;
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(values[i]!)) {
      hasNaN = true;
      break;
    }
  }
  const perBucket = hasNaN ? 5 : 4;
  const buckets = Math.max(1, Math.floor(maxPoints / perBucket));
  const kept: number[] = [];
  const picks: number[] = [];
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor((b * n) / buckets);
    const end = Math.floor(((b + 1) * n) / buckets); // exclusive
    let minI = -1;
    let maxI = -1;
    let nanI = -1;
    for (let i = start; i < end; i++) {
      const v = values[i]!;
      if (Number.isNaN(v)) {
        if (nanI < 0) nanI = i;
        continue;
      }
      if (minI < 0 || v < values[minI]!) minI = i;
      if (maxI < 0 || v > values[maxI]!) maxI = i;
    }
    picks.length = 0;
    picks.push(start, end - 1);
    if (minI >= 0) picks.push(minI, maxI);
    if (nanI >= 0) picks.push(nanI);
    picks.sort((a, c) => a - c);
    for (let k = 0; k < picks.length; k++) if (k === 0 || picks[k] !== picks[k - 1]) kept.push(picks[k]!);
  }
  return kept;
}
