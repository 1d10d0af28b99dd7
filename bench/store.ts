/**
 * Store benchmark: sustained metric inserts through MetricWriter, and reading + downsampling a 100,000-point series.
 * Run with `node bin/run-ts.js bench/store.ts [--points N]`; prints one JSON object.
 * Targets: >= 200,000 points/s inserted; < 50 ms to read and downsample 100k points to ~1,000.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { currentHost, openStore } from '../app/store/index.ts';

const INSERT_TARGET = 200_000;
const SERIES_TARGET_MS = 50;
const SERIES_POINTS = 100_000;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const totalPoints = arg('--points', 1_000_000);
const dir = mkdtempSync(path.join(os.tmpdir(), 'lrnet-bench-store-'));
const file = path.join(dir, 'lrnet.db');
try {
  const store = openStore(file);

  // --- sustained inserts: a training loop logging 4 metrics per step, through the default MetricWriter ---------
  const keys = ['train/loss', 'train/accuracy', 'train/entropy', 'lr'];
  const rounds: number[] = [];
  for (let r = 0; r < 3; r++) {
    const run = store.createRun({ config: { bench: true, round: r }, seed: r, appVersion: 'bench', status: 'running' });
    const writer = store.metricWriter(run.id, { phase: 'lr' });
    const start = performance.now();
    const steps = totalPoints / keys.length;
    for (let step = 0; step < steps; step++) {
      const epoch = step / 600;
      for (let k = 0; k < keys.length; k++) writer.write(keys[k]!, step, Math.sin(step * 0.001 + k), { epoch });
    }
    writer.close(); // the last batch counts too
    rounds.push(totalPoints / ((performance.now() - start) / 1000));
  }
  rounds.sort((a, b) => a - b);

  // --- read + downsample a 100k-point series (stored among other keys, as in a real run) -----------------------
  const run = store.createRun({ config: { bench: 'series' }, seed: 0, appVersion: 'bench' });
  const writer = store.metricWriter(run.id);
  for (let step = 0; step < SERIES_POINTS; step++) {
    writer.write('train/loss', step, Math.exp(-step / 20_000) + 0.05 * Math.sin(step));
    writer.write('train/accuracy', step, 1 - Math.exp(-step / 20_000));
  }
  writer.close();
  const times: number[] = [];
  let returned = 0;
  for (let i = 0; i < 30; i++) {
    const start = performance.now();
    const series = store.metricSeries(run.id, 'train/loss', { maxPoints: 1000 });
    times.push(performance.now() - start);
    returned = series.steps.length;
  }
  times.sort((a, b) => a - b);

  // For comparison: the straightforward read, one JS array per row, before any downsampling.
  const raw = new Database(file, { readonly: true });
  const rawQuery = raw.prepare('SELECT step, value FROM metrics WHERE run_id = ? AND key = ? ORDER BY step').raw();
  const rawTimes: number[] = [];
  for (let i = 0; i < 10; i++) {
    const start = performance.now();
    rawQuery.all(run.id, 'train/loss');
    rawTimes.push(performance.now() - start);
  }
  rawTimes.sort((a, b) => a - b);
  const sqliteVersion = raw.prepare('SELECT sqlite_version()').pluck().get() as string;
  raw.close();
  store.close();

  const host = currentHost();
  const insertMedian = percentile(rounds, 0.5);
  const seriesMedian = percentile(times, 0.5);
  console.log(
    JSON.stringify(
      {
        benchmark: 'store',
        date: new Date().toISOString(),
        machine: {
          cpuModel: host.cpuModel,
          cores: host.cores,
          memoryGiB: round(host.memoryBytes / 2 ** 30, 1),
          platform: `${process.platform}-${process.arch}`,
          node: process.version,
          sqlite: sqliteVersion,
        },
        insert: {
          pointsPerRound: totalPoints,
          rounds: rounds.length,
          pointsPerSecond: { median: Math.round(insertMedian), min: Math.round(rounds[0]!), max: Math.round(rounds.at(-1)!) },
          target: INSERT_TARGET,
          meetsTarget: insertMedian >= INSERT_TARGET,
        },
        series: {
          points: SERIES_POINTS,
          maxPoints: 1000,
          returned,
          readAndDownsampleMs: { median: round(seriesMedian), p90: round(percentile(times, 0.9)), min: round(times[0]!) },
          rawRowReadMs: { median: round(percentile(rawTimes, 0.5)), min: round(rawTimes[0]!) },
          target: SERIES_TARGET_MS,
          meetsTarget: seriesMedian < SERIES_TARGET_MS,
        },
        databaseBytes: statSync(file).size + (statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0),
      },
      null,
      2,
    ),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
