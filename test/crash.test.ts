/**
 * Crash safety: a process running the run manager is killed with SIGKILL mid-run. The database must pass
 * integrity_check, the run must be marked interrupted at the next start, at most about the last second of metrics may
 * be lost, the orphaned worker must exit by itself, and resume must finish the run from its last checkpoint.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { tinyMnistConfig } from './helpers/tiny-config.ts';
import { workersOf } from './helpers/processes.ts';
import { openStore, type Store } from '../app/store/index.ts';
import { createRunManager } from '../app/runs/manager.ts';
import { METRIC_KEYS, type RunEvent } from '../app/runs/types.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** 8 steps per epoch, 2 LR epochs, a checkpoint every 2 steps. */
const config = tinyMnistConfig({
  trainLimit: 300, testLimit: 100, validationSize: 100, batchSize: 25, pretrainEpochs: 0, lrEpochs: 2,
  evaluation: { samples: 1, every: 0, batchNormImages: 0 }, checkpointEvery: 2, seed: 11,
});

/** The process to kill: opens the store, starts one run, prints one JSON line per event it hears. */
const SCRIPT = `
import { openStore } from ${JSON.stringify(path.join(ROOT, 'app/store/index.ts'))};
import { createRunManager } from ${JSON.stringify(path.join(ROOT, 'app/runs/manager.ts'))};
const [dbFile, dataFolder, configJson] = process.argv.slice(1);
const store = openStore(dbFile);
const manager = createRunManager({ store, dataFolder });
manager.subscribe((e) => {
  const step = e.type === 'run-progress' && 'step' in e.event ? e.event.step : null;
  process.stdout.write(JSON.stringify({ at: Date.now(), type: e.type === 'run-progress' ? e.event.type : e.type, step }) + '\\n');
});
const id = await manager.start({ config: JSON.parse(configJson) });
process.stdout.write(JSON.stringify({ runId: id }) + '\\n');
`;

let dir: string;
let child: ChildProcess | undefined;
let store: Store | undefined;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lrnet-crash-'));
});

afterAll(() => {
  child?.kill('SIGKILL');
  store?.close();
  rmSync(dir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

it('survives SIGKILL of the managing process mid-run and resumes from the last checkpoint', async () => {
  const dbFile = path.join(dir, 'lrnet.db');
  child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT, dbFile, dir, JSON.stringify(config)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines: { at: number; type: string; step: number | null; runId?: string }[] = [];
  let buffered = '';
  // Kill once a checkpoint is on disk and steps have been logged for more than a second after it.
  const killed = new Promise<number>((resolve, reject) => {
    child!.on('exit', (code) => reject(new Error(`the manager process exited early (${code}): ${stderr}`)));
    child!.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const part of parts) lines.push(JSON.parse(part));
      const checkpoint = lines.find((l) => l.type === 'checkpoint');
      const lastStep = lines.filter((l) => l.type === 'step').at(-1);
      if (checkpoint && lastStep && lastStep.at - checkpoint.at > 1200 && lastStep.step! < 16) {
        const workers = workersOf(child!.pid!);
        child!.removeAllListeners('exit');
        child!.kill('SIGKILL');
        resolve(Date.now());
        workersBeforeKill.push(...workers);
      }
    });
  });
  const workersBeforeKill: number[] = [];
  const killedAt = await killed;
  await new Promise((resolve) => (child!.exitCode !== null || child!.signalCode !== null ? resolve(null) : child!.once('exit', resolve)));
  const runId = lines.find((l) => l.runId)!.runId!;
  expect(workersBeforeKill).toHaveLength(1);

  // The orphaned worker notices its parent is gone and exits (it must not go on writing checkpoints).
  const deadline = Date.now() + 10_000;
  while (workersBeforeKill.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(workersBeforeKill.filter(alive)).toEqual([]);

  const raw = new Database(dbFile, { readonly: true });
  try {
    expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
  } finally {
    raw.close();
  }

  store = openStore(dbFile);
  expect(store.getRun(runId).status).toBe('running');
  expect(store.markInterruptedRuns()).toEqual([runId]);
  const interrupted = store.getRun(runId);
  expect(interrupted.status).toBe('interrupted');
  expect(interrupted.error).toMatch(/ended without recording how/);

  // Every step the manager had heard of more than a second before the kill is in the store.
  const heardBefore = lines.filter((l) => l.type === 'step' && l.at <= killedAt - 1000).at(-1)!;
  expect(heardBefore).toBeDefined();
  expect(store.valueAt(runId, METRIC_KEYS.loss, heardBefore.step!)?.step).toBe(heardBefore.step);
  const checkpoint = interrupted.checkpoints.find((c) => c.id === interrupted.lastCheckpointId)!;
  expect(checkpoint.step).toBeGreaterThanOrEqual(2);

  // A new manager resumes it from that checkpoint and finishes it.
  const manager = createRunManager({ store, dataFolder: dir });
  const events: RunEvent[] = [];
  const finished = new Promise<RunEvent>((resolve) =>
    manager.subscribe((e) => {
      events.push(e);
      if (e.type === 'run-status' && e.runId === runId && ['completed', 'failed'].includes(e.status)) resolve(e);
    }),
  );
  await manager.resume(runId);
  expect(await finished).toMatchObject({ status: 'completed' });
  const start = events.find((e) => e.type === 'run-progress' && e.event.type === 'start');
  expect(start?.type === 'run-progress' && start.event.type === 'start' && start.event.resumedFromStep).toBe(checkpoint.step);
  const run = store.getRun(runId);
  expect(run.status).toBe('completed');
  expect(store.metricStats(runId, METRIC_KEYS.loss)!.count).toBe(16);
  expect(run.evaluations).toHaveLength(1);
  await manager.close();
});
