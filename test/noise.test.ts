/** The LR noise generator draws standard normal values, reproducibly from its seed. */
import { describe, it, expect } from 'vitest';
import { fillStandardNormal } from '../engine/noise.ts';

describe('standard normal noise (ziggurat)', () => {
  const n = 2_000_000;
  const values = new Float32Array(n);
  fillStandardNormal(values, 42);

  it('has the moments and tail probabilities of N(0, 1)', () => {
    let sum = 0;
    let squares = 0;
    let fourth = 0;
    const beyond = { 1: 0, 2: 0, 3: 0, 4: 0 } as Record<number, number>;
    for (const v of values) {
      sum += v;
      squares += v * v;
      fourth += v ** 4;
      for (const k of [1, 2, 3, 4]) if (Math.abs(v) > k) beyond[k]!++;
    }
    const mean = sum / n;
    expect(Math.abs(mean)).toBeLessThan(5 / Math.sqrt(n));
    expect(squares / n).toBeCloseTo(1, 2);
    expect(fourth / n).toBeCloseTo(3, 1);
    // Two-sided tail probabilities P(|z| > k) of the standard normal, within 5 standard errors.
    const expected = { 1: 0.31731, 2: 0.0455, 3: 0.0026998, 4: 6.334e-5 } as Record<number, number>;
    for (const k of [1, 2, 3, 4]) {
      const p = expected[k]!;
      expect(Math.abs(beyond[k]! / n - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
    }
    // Symmetric: as many positive as negative values.
    const positive = values.reduce((count, v) => count + (v > 0 ? 1 : 0), 0);
    expect(Math.abs(positive / n - 0.5)).toBeLessThan(5 * Math.sqrt(0.25 / n));
  });

  it('has no correlation between neighbours', () => {
    let lag = 0;
    for (let i = 1; i < n; i++) lag += values[i]! * values[i - 1]!;
    expect(Math.abs(lag / n)).toBeLessThan(5 / Math.sqrt(n));
  });

  it('repeats exactly for the same seed and differs for another', () => {
    const again = new Float32Array(1000);
    const other = new Float32Array(1000);
    fillStandardNormal(again, 42);
    fillStandardNormal(other, 43);
    expect(Array.from(again)).toEqual(Array.from(values.subarray(0, 1000)));
    expect(Array.from(other)).not.toEqual(Array.from(again));
  });
});
