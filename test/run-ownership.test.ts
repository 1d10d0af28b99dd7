/**
 * What belongs to which run, with the real `lrnet` command, a real SQLite file and the bundled MNIST sample:
 * runs that share a --checkpoint-dir keep their own checkpoints (names, pruning, rm, export); a checkpoint of the
 * other weight kind is refused; and a run stuck 'running' under a claim that is gone (this host, dead pid) or
 * cannot be checked (another host) can be released.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { PRESETS, type TrainingConfig } from '../engine/config.ts';
import { openStore, type Store } from '../app/store/index.ts';
import { createRunManager } from '../app/runs/manager.ts';
import { RunRecorder } from '../app/runs/recorder.ts';
import { RunManagerError } from '../app/runs/types.ts';
import { type CliResult, runLrnet } from './helpers/lrnet-cli.ts';
import { useTempDir } from './helpers/temp-dir.ts';

/** LR phase only, 4 steps, one sampled net: a few seconds. */
const SMALL = ['--train-limit', '150', '--validation', '50', '--batch', '25', '--fp-epochs', '0', '--epochs', '1', '--test-limit', '50', '--eval-samples', '1', '--backend', 'wasm'];

let home: string;
let db: string;
useTempDir('lrnet-ownership-', 'all', (dir) => {
  home = dir;
  db = path.join(dir, 'lrnet.db');
});

const lrnet = (args: string[]) => runLrnet(args, { home });

const runIdOf = (r: CliResult) => /run ([0-9a-z]{8})/.exec(r.stderr)![1]!;

/** Opens the test database for a moment (the CLI processes open it themselves). */
function withStore<T>(use: (store: Store) => T): T {
  const store = openStore(db);
  try {
    return use(store);
  } finally {
    store.close();
  }
}

/** Makes a run look set 'running' by another process, as a moved database or a recreated container leaves it. */
function claim(runId: string, host: string, pid: number): void {
  const raw = new Database(db);
  try {
    raw.prepare(`UPDATE runs SET status = 'running', finished_at = NULL, owner_host = ?, owner_pid = ?, owner_token = 'elsewhere' WHERE id = ?`).run(host, pid, runId);
  } finally {
    raw.close();
  }
}

/** A pid that belonged to a process of this host that has ended. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

let runA: string;
let runB: string;

describe('runs that share a --checkpoint-dir', () => {
  it('write checkpoints named after their run; rm of one leaves the other its files and its export', async () => {
    const shared = path.join(home, 'shared-checkpoints');
    // At the same time, as two terminals would: both write the same steps into the same folder.
    const [a, b] = await Promise.all([1, 2].map((seed) => lrnet(['train', ...SMALL, '--seed', String(seed), '--checkpoint-dir', shared, '--db', db])));
    expect(a!.code, a!.stderr).toBe(0);
    expect(b!.code, b!.stderr).toBe(0);
    runA = runIdOf(a!);
    runB = runIdOf(b!);

    const [pathsA, pathsB] = withStore((s) => [runA, runB].map((id) => s.getRun(id).checkpoints.map((c) => c.path)));
    expect(pathsA!.length).toBeGreaterThan(0);
    for (const p of pathsA!) expect(path.basename(p).startsWith(`${runA}-step-`), p).toBe(true);
    for (const p of pathsB!) expect(path.basename(p).startsWith(`${runB}-step-`), p).toBe(true);
    expect(pathsA!.filter((p) => pathsB!.includes(p))).toEqual([]);

    const rm = await lrnet(['rm', runB, '--db', db]);
    expect(rm.code, rm.stderr).toBe(0);
    for (const p of pathsA!) expect(existsSync(p), p).toBe(true);
    for (const p of pathsB!) expect(existsSync(p), p).toBe(false);

    const out = path.join(home, 'export-a');
    const exported = await lrnet(['export', runA, '--format', 'packed', '--out', out, '--db', db]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(readdirSync(out).length).toBeGreaterThan(0);
  });

  it("rm deletes what lrnet wrote for the run and keeps what else is in its folder: a user's file, another run's export", async () => {
    const trained = await lrnet(['train', ...SMALL, '--db', db]);
    expect(trained.code, trained.stderr).toBe(0);
    const runC = runIdOf(trained);
    const folderC = path.join(path.dirname(db), 'runs', runC);
    const checkpointsC = withStore((s) => s.getRun(runC).checkpoints.map((c) => c.path));
    expect(checkpointsC.length).toBeGreaterThan(0);
    for (const p of checkpointsC) expect(p.startsWith(folderC + path.sep), p).toBe(true);
    const notes = path.join(folderC, 'notes.txt');
    writeFileSync(notes, 'mine');
    const exportOfA = path.join(folderC, 'a-export');
    const exported = await lrnet(['export', runA, '--format', 'packed', '--out', exportOfA, '--db', db]);
    expect(exported.code, exported.stderr).toBe(0);
    const listing = () => readdirSync(exportOfA, { recursive: true }).map(String).sort();
    const filesOfA = listing();

    const rm = await lrnet(['rm', runC, '--db', db]);
    expect(rm.code, rm.stderr).toBe(0);
    for (const p of checkpointsC) expect(existsSync(p), p).toBe(false);
    expect(existsSync(notes)).toBe(true);
    expect(listing()).toEqual(filesOfA);
    expect(rm.stderr).toMatch(/kept \d+ files in the run's folder that lrnet did not write for it/);
  });

  it('prune and delete only files no other run records (records left by older versions that shared names)', () => {
    const dir = mkdtempSync(path.join(home, 'legacy-'));
    const store = openStore(path.join(dir, 'lrnet.db'));
    try {
      const config = PRESETS['mnist-ternary-quick'];
      const other = store.createRun({ name: 'other', config, seed: 1, appVersion: 'test' });
      const mine = store.createRun({ name: 'mine', config, seed: 2, appVersion: 'test' });
      // Both recorded step-10.ckpt: the other run's file, overwritten by this one.
      const sharedFile = path.join(dir, 'step-10.ckpt');
      writeFileSync(sharedFile, 'checkpoint');
      store.addCheckpoint(other.id, { step: 10, path: sharedFile, bytes: 10 });
      const recorder = new RunRecorder(store, mine.id, config, { onError: (e) => { throw e; } });
      const files = [sharedFile];
      recorder.record({ type: 'checkpoint', phase: 'lr', epoch: 1, step: 10, path: sharedFile, bytes: 10 });
      for (let epoch = 2; epoch <= 4; epoch++) {
        const file = path.join(dir, `${mine.id}-step-${epoch * 10}.ckpt`);
        writeFileSync(file, 'checkpoint');
        files.push(file);
        recorder.record({ type: 'checkpoint', phase: 'lr', epoch, step: epoch * 10, path: file, bytes: 10 });
      }
      recorder.close();
      // Pruning forgot this run's oldest record but kept the file the other run still needs.
      expect(store.getRun(mine.id).checkpoints.map((c) => c.step)).toEqual([20, 30, 40]);
      expect(existsSync(sharedFile)).toBe(true);

      store.addCheckpoint(mine.id, { step: 50, path: sharedFile, bytes: 10 });
      const deleted = store.deleteRun(mine.id);
      expect(deleted.checkpointPaths).toEqual(files.slice(1));
      expect(store.getRun(other.id).checkpoints[0]!.path).toBe(sharedFile);
    } finally {
      store.close();
    }
  });
});

describe('a checkpoint of the other weight kind', () => {
  it('train --resume refuses it naming both kinds, and records no run', async () => {
    const ternary = withStore((s) => s.getRun(runA).checkpoints.at(-1)!.path);
    const before = withStore((s) => s.listRuns().total);
    const r = await lrnet(['train', '--preset', 'mnist-binary-quick', ...SMALL, '--resume', ternary, '--db', db]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--resume');
    expect(r.stderr).toContain('holds ternary weights');
    expect(r.stderr).toContain('trains binary weights');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(withStore((s) => s.listRuns().total)).toBe(before);
  });

  it('resume of a run whose last checkpoint holds the other kind fails with the same message', async () => {
    const ternary = withStore((s) => s.getRun(runA).checkpoints.at(-1)!.path);
    const binaryConfig = { ...(withStore((s) => s.getRun(runA).config) as unknown as TrainingConfig), kind: 'binary' as const, preset: 'mnist-binary-quick' };
    const id = withStore((s) => {
      const run = s.createRun({ name: 'mixed', config: binaryConfig, seed: 1, appVersion: 'test', status: 'running' });
      s.addCheckpoint(run.id, { step: 4, path: ternary, bytes: 10 });
      s.updateRun(run.id, { status: 'stopped' });
      return run.id;
    });
    const r = await lrnet(['resume', id, '--db', db]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('holds ternary weights');
    expect(r.stderr).toContain('trains binary weights');
    expect(existsSync(ternary)).toBe(true);
  });
});

describe('a run stuck running', () => {
  it('is released on its own when its process on this host is gone', async () => {
    const id = withStore((s) => s.createRun({ name: 'orphan', config: PRESETS['mnist-ternary-quick'], seed: 1, appVersion: 'test' }).id);
    const pid = deadPid();
    claim(id, os.hostname(), pid);
    const shown = await lrnet(['show', id, '--json', '--db', db]);
    const run = JSON.parse(shown.stdout) as { status: string; error: string };
    expect(run.status).toBe('interrupted');
    expect(run.error).toContain(`pid ${pid}`);
  });

  it('held by another host: resume and rm name the host and pid and how to take over; --steal and --force do', async () => {
    const config = withStore((s) => s.getRun(runA).config);
    const [toResume, toDelete] = withStore((s) => ['stuck-resume', 'stuck-delete'].map((name) => {
      const run = s.createRun({ name, config, seed: 1, appVersion: 'test', status: 'running' });
      // The end-of-training checkpoint of run A: resuming it only evaluates, a few seconds.
      s.addCheckpoint(run.id, { step: 4, path: s.getRun(runA).checkpoints.at(-1)!.path, bytes: 10 });
      return run.id;
    }));
    claim(toResume!, 'old-container', 4242);
    claim(toDelete!, 'old-container', 4343);

    const refused = await lrnet(['resume', toResume!, '--db', db]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('pid 4242 on host old-container');
    expect(refused.stderr).toContain(`lrnet resume ${toResume} --steal`);
    const notRemoved = await lrnet(['rm', toDelete!, '--db', db]);
    expect(notRemoved.code).toBe(1);
    expect(notRemoved.stderr).toContain('pid 4343 on host old-container');
    expect(notRemoved.stderr).toContain(`lrnet rm ${toDelete} --force`);
    expect(withStore((s) => [s.getRun(toResume!).status, s.getRun(toDelete!).status])).toEqual(['running', 'running']);

    const stolen = await lrnet(['resume', toResume!, '--steal', '--json', '--db', db]);
    expect(stolen.code, stolen.stderr).toBe(0);
    expect(stolen.stderr).toContain(`released run ${toResume} from pid 4242 on host old-container`);
    expect(withStore((s) => s.getRun(toResume!).status)).toBe('completed');

    const removed = await lrnet(['rm', toDelete!, '--force', '--db', db]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain(`deleted run ${toDelete}`);
    // The checkpoint it recorded is run A's file: it stays.
    expect(existsSync(withStore((s) => s.getRun(runA).checkpoints.at(-1)!.path))).toBe(true);
  }, 60_000);

  it('the run manager refuses it as claimed, and deletes it with force', async () => {
    const dir = mkdtempSync(path.join(home, 'manager-'));
    const store = openStore(path.join(dir, 'lrnet.db'));
    const manager = createRunManager({ store, dataFolder: dir });
    try {
      const id = store.createRun({ name: 'stuck', config: PRESETS['mnist-ternary-quick'], seed: 1, appVersion: 'test' }).id;
      const raw = new Database(store.file);
      raw.prepare(`UPDATE runs SET status = 'running', owner_host = 'old-container', owner_pid = 77, owner_token = 'x' WHERE id = ?`).run(id);
      raw.close();
      for (const attempt of [() => manager.stop(id), () => manager.resume(id), () => manager.delete(id)]) {
        const error = await attempt().then(() => undefined, (e: unknown) => e);
        expect(error).toBeInstanceOf(RunManagerError);
        expect((error as RunManagerError).code).toBe('claimed');
        expect((error as Error).message).toContain('pid 77 on host old-container');
      }
      await manager.delete(id, { force: true });
      expect(store.listRuns().total).toBe(0);
    } finally {
      await manager.close();
      store.close();
    }
  });
});
