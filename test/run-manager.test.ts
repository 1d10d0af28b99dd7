/**
 * The run manager with real worker processes and a real SQLite file: the queue, events, stop and resume, clone,
 * delete, failures, and what it refuses. Runs are tiny (200 training images, 8 steps per epoch) so the file stays
 * around a minute on two cores.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError, type TrainingConfig } from '../engine/config.ts';
import { tinyMnistConfig } from './helpers/tiny-config.ts';
import { workersOf } from './helpers/processes.ts';
import { openStore, StoreError, type Store } from '../app/store/index.ts';
import { createRunManager } from '../app/runs/manager.ts';
import { RunRecorder } from '../app/runs/recorder.ts';
import { METRIC_KEYS, RunManagerError, type RunEvent, type RunManager } from '../app/runs/types.ts';

/** 300 images minus 100 for validation, batch 25: 8 steps per epoch, LR phase only, one sampled net, no BN re-estimation. */
const tiny = tinyMnistConfig({
  trainLimit: 300, testLimit: 100, validationSize: 100, batchSize: 25, pretrainEpochs: 0, lrEpochs: 1,
  evaluation: { samples: 1, every: 0, batchNormImages: 0 }, seed: 7,
});
const twoEpochs: TrainingConfig = { ...tiny, lr: { ...tiny.lr, epochs: 2 } };

let dir: string;
let store: Store;
let manager: RunManager;
const events: { at: number; event: RunEvent }[] = [];

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lrnet-manager-'));
  store = openStore(path.join(dir, 'lrnet.db'));
  manager = createRunManager({ store, dataFolder: dir });
  manager.subscribe((event) => events.push({ at: Date.now(), event }));
});

afterAll(async () => {
  await manager?.close();
  store?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Resolves with the first event (from now on) that matches, or fails after `timeoutMs`. */
function nextEvent(match: (event: RunEvent) => boolean, timeoutMs = 90_000): Promise<RunEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error('timed out waiting for a run event'));
    }, timeoutMs);
    const unsubscribe = manager.subscribe((event) => {
      if (!match(event)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(event);
    });
  });
}

const ended = (runId: string) => (e: RunEvent) => e.type === 'run-status' && e.runId === runId && ['completed', 'failed', 'stopped'].includes(e.status);
const eventsOf = (runId: string) => events.filter((e) => e.event.runId === runId);
const progressOf = (runId: string) =>
  eventsOf(runId).flatMap(({ at, event }) => (event.type === 'run-progress' ? [{ at, event: event.event }] : []));

let firstId: string;
let secondId: string;
let stepSeconds: number;

describe('run manager', () => {
  it('runs one run at a time: the second waits queued, then trains, and everything is recorded', async () => {
    firstId = await manager.start({ config: tiny, name: 'first', tags: ['queue'] });
    secondId = await manager.start({ config: twoEpochs });
    expect(store.getRun(firstId).status).toBe('running');
    expect(store.getRun(secondId).status).toBe('queued');
    const end = await nextEvent(ended(secondId), 120_000);
    expect(end).toMatchObject({ status: 'completed' });

    // Order of status events: the second ran only after the first completed.
    const statuses = events.flatMap(({ event: e }) => (e.type === 'run-status' ? [`${e.runId === firstId ? 'A' : 'B'}:${e.status}`] : []));
    expect(statuses).toEqual(['A:queued', 'A:running', 'B:queued', 'A:completed', 'B:running', 'B:completed']);

    // The engine's events came through, step events throttled to at most 10 a second.
    for (const id of [firstId, secondId]) {
      const types = new Set(progressOf(id).map((p) => p.event.type));
      for (const t of ['start', 'phase', 'step', 'epoch', 'evaluation', 'checkpoint']) expect(types, `${id} ${t}`).toContain(t);
      const steps = progressOf(id).filter((p) => p.event.type === 'step');
      for (let i = 1; i < steps.length; i++) expect(steps[i]!.at - steps[i - 1]!.at).toBeGreaterThanOrEqual(95);
    }

    const run = store.getRun(secondId);
    expect(run).toMatchObject({ status: 'completed', progress: 1, backend: 'wasm', error: null });
    expect(run.adapter).toBeTruthy();
    expect(run.dataset).toMatchObject({ name: 'mnist-sample', trainCount: 300 });
    expect(run.host?.cores).toBeGreaterThan(0);
    const keys = run.metrics.map((m) => m.key);
    for (const key of [METRIC_KEYS.loss, METRIC_KEYS.crossEntropy, METRIC_KEYS.batchAccuracy, METRIC_KEYS.learningRate, METRIC_KEYS.imagesPerSecond]) {
      expect(run.metrics.find((m) => m.key === key)?.count, key).toBe(16);
    }
    expect(keys).toEqual(expect.arrayContaining([METRIC_KEYS.epochLoss, METRIC_KEYS.epochAccuracy, 'test/argmax', 'validation/selected']));
    // Per-step points carry the fractional epoch: step 12 of 8-step epochs is 1.5 epochs in.
    expect(store.valueAt(secondId, METRIC_KEYS.loss, 12)).toMatchObject({ step: 12, epoch: 1.5, phase: 'lr' });
    expect(run.evaluations).toHaveLength(1);
    const evaluation = run.evaluations[0]!;
    for (const v of Object.values(evaluation.test)) expect(v).toBeGreaterThanOrEqual(0);
    expect(evaluation.layerStats.map((l) => l.layer)).toEqual(['conv1', 'conv2', 'fc1']);
    const l = evaluation.layerStats[0]!;
    expect(l.fracMinus + l.fracZero + l.fracPlus).toBeCloseTo(1, 5);
    expect(l.meanEntropy).toBeGreaterThan(0);
    expect(l.meanEntropy).toBeLessThanOrEqual(Math.log(3) + 1e-9);
    expect(run.checkpoints.map((c) => c.step)).toEqual([8, 16]);
    for (const c of run.checkpoints) {
      expect(path.dirname(c.path)).toBe(path.join(dir, 'runs', secondId, 'checkpoints'));
      expect(c.bytes).toBeGreaterThan(0);
      expect(existsSync(c.path)).toBe(true);
    }
    const ips = store.metricStats(secondId, METRIC_KEYS.imagesPerSecond)!;
    stepSeconds = tiny.batchSize / ips.last;
    expect(workersOf(process.pid)).toEqual([]);
  });

  it('stops a run mid-training with a checkpoint, and resumes it to the same result as an uninterrupted run', async () => {
    const id = await manager.start({ config: twoEpochs, name: 'stop-and-resume' });
    const step3 = await nextEvent((e) => e.type === 'run-progress' && e.runId === id && e.event.type === 'step' && e.event.step >= 3);
    expect(step3.type).toBe('run-progress');
    await manager.stop(id);
    const stopped = store.getRun(id);
    expect(stopped.status).toBe('stopped');
    const checkpoint = stopped.checkpoints.at(-1)!;
    expect(checkpoint.step).toBeGreaterThanOrEqual(3);
    expect(checkpoint.step).toBeLessThan(16);
    expect(stopped.lastCheckpointId).toBe(checkpoint.id);
    expect(stopped.progress).toBeCloseTo(checkpoint.step / 16, 6);
    expect(store.metricStats(id, METRIC_KEYS.loss)!.lastStep).toBe(checkpoint.step);
    await manager.stop(id); // stopping a stopped run changes nothing
    expect(store.getRun(id).status).toBe('stopped');

    const done = nextEvent(ended(id), 120_000);
    await manager.resume(id);
    expect(await done).toMatchObject({ status: 'completed' });
    const starts = progressOf(id).filter((p) => p.event.type === 'start').map((p) => (p.event.type === 'start' ? p.event.resumedFromStep : -1));
    expect(starts).toEqual([0, checkpoint.step]);
    const run = store.getRun(id);
    expect(run.status).toBe('completed');
    expect(store.metricStats(id, METRIC_KEYS.loss)!.count).toBe(16);
    // Same seed and data as the second run of the first test, which never stopped: identical losses and accuracies.
    const lossesOf = (runId: string) => store.metricSeries(runId, METRIC_KEYS.loss, { maxPoints: 0 }).values;
    expect(lossesOf(id)).toEqual(lossesOf(secondId));
    expect(run.evaluations.at(-1)!.test).toEqual(store.getRun(secondId).evaluations.at(-1)!.test);
  });

  it('clones a run with a changed setting, and deletes a run while it trains, rows and files', async () => {
    const cloneId = await manager.clone(firstId, { lr: { learningRate: 0.02 } }, 'faster');
    const diff = store.configDiff([firstId, cloneId]);
    expect(diff.config).toEqual([{ key: 'lr.learningRate', values: { [firstId]: 0.003, [cloneId]: 0.02 } }]);
    expect(store.getRun(cloneId).name).toBe('faster');

    await nextEvent((e) => e.type === 'run-progress' && e.runId === cloneId && e.event.type === 'step');
    expect(workersOf(process.pid)).toHaveLength(1);
    const deleted = nextEvent((e) => e.type === 'run-deleted' && e.runId === cloneId);
    await manager.delete(cloneId);
    await deleted;
    expect(() => store.getRun(cloneId)).toThrow(StoreError);
    expect(existsSync(path.join(dir, 'runs', cloneId))).toBe(false);
    expect(workersOf(process.pid)).toEqual([]);

    // A finished run: its rows in every table and its checkpoint files go.
    const files = store.getRun(firstId).checkpoints.map((c) => c.path);
    expect(files.length).toBeGreaterThan(0);
    await manager.delete(firstId);
    const db = new Database(path.join(dir, 'lrnet.db'), { readonly: true });
    try {
      for (const table of ['metrics', 'metric_summary', 'evaluations', 'checkpoints', 'tags']) {
        expect(db.prepare(`SELECT count(*) FROM ${table} WHERE run_id = ?`).pluck().get(firstId), table).toBe(0);
      }
      expect(db.prepare('SELECT count(*) FROM runs WHERE id = ?').pluck().get(firstId)).toBe(0);
    } finally {
      db.close();
    }
    for (const file of files) expect(existsSync(file)).toBe(false);
    expect(existsSync(path.join(dir, 'runs', firstId))).toBe(false);
  });

  // A configuration for start() is parsed where it enters (the services, the CLI: test/config-parse.test.ts); a
  // clone merges changes into a stored configuration, which the manager parses itself.
  it('rejects a clone whose changes break the configuration, listing the field, and creates no run', async () => {
    const before = store.listRuns().total;
    const cloneError = await manager.clone(secondId, { evaluation: { samples: 0 } }).catch((e: unknown) => e);
    expect((cloneError as ConfigError).problems).toEqual([expect.stringContaining('evaluation.samples')]);
    expect(store.listRuns().total).toBe(before);
  });

  it('says which run id it does not know, and refuses to resume a completed run', async () => {
    for (const call of [() => manager.stop('zzzzzzzz'), () => manager.resume('zzzz'), () => manager.delete('zzzzzzzz'), () => manager.clone('zzzzzzzz', {})]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({ code: 'not-found', message: expect.stringContaining('zzzz') });
    }
    const error = await manager.resume(secondId).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RunManagerError);
    expect((error as Error).message).toMatch(/completed/);
  });

  it('marks a run failed with the reason: an error the engine reports, or a worker that dies', async () => {
    const missing = path.join(dir, 'no-such-folder');
    const failedId = await manager.start({ config: { ...tiny, dataset: { name: 'mnist', path: missing } } });
    const failed = await nextEvent(ended(failedId));
    expect(failed).toMatchObject({ status: 'failed', error: expect.stringContaining(missing) });
    expect(store.getRun(failedId).error).toContain(missing);

    const crashId = await manager.start({ config: tiny });
    await nextEvent((e) => e.type === 'run-progress' && e.runId === crashId && e.event.type === 'start');
    const [pid] = workersOf(process.pid);
    process.kill(pid!, 'SIGKILL');
    const crashed = await nextEvent(ended(crashId));
    expect(crashed).toMatchObject({ status: 'failed', error: expect.stringContaining('killed by SIGKILL') });
    expect(store.getRun(crashId)).toMatchObject({ status: 'failed', error: expect.stringContaining('SIGKILL') });
  });

  it('records a step in well under 1% of the time the step takes', () => {
    const run = store.createRun({ config: tiny, seed: 1, appVersion: 'test', status: 'running' });
    const recorder = new RunRecorder(store, run.id, tiny);
    const n = 3000;
    const started = performance.now();
    for (let step = 1; step <= n; step++) {
      recorder.record({
        type: 'step', phase: 'lr', epoch: 1, step, totalSteps: n, loss: 1 / step, crossEntropy: 1 / step, batchAccuracy: 0.5,
        learningRate: 0.003, imagesPerSecond: 100, etaSeconds: 1, elapsedSeconds: step,
      });
    }
    recorder.finish({ status: 'completed' });
    const perStep = (performance.now() - started) / 1000 / n;
    expect(store.metricStats(run.id, METRIC_KEYS.loss)!.count).toBe(n);
    // stepSeconds: the real steps of the first test (tens to hundreds of ms on a CPU).
    expect(perStep).toBeLessThan(0.01 * stepSeconds);
  });

  it('close() stops the running run with a checkpoint and the queued one, all resumable, and refuses new work', async () => {
    const running = await manager.start({ config: tiny });
    const queued = await manager.start({ config: tiny });
    await nextEvent((e) => e.type === 'run-progress' && e.runId === running && e.event.type === 'step');
    await manager.close();
    expect(store.getRun(running)).toMatchObject({ status: 'stopped', lastCheckpointId: expect.any(Number) });
    expect(store.getRun(queued)).toMatchObject({ status: 'stopped', error: expect.stringContaining('closed') });
    expect(workersOf(process.pid)).toEqual([]);
    await expect(manager.start({ config: tiny })).rejects.toThrow(RunManagerError);
    await expect(manager.resume(running)).rejects.toMatchObject({ code: 'closed' });
  });
});
