/**
 * Exports touch only what lrnet wrote (issue 11, items 3, 5 and 8): `--force` replaces an earlier export and nothing
 * else, a refused export records no artifact, `lrnet rm` deletes a run's exports but never a user's file at an
 * artifact's path, a folder that cannot be moved gets one line instead of a stack trace, and a killed export (the
 * real `lrnet export` process, or the host's export job) leaves neither a staging folder nor a 'running' artifact.
 * One tiny run is trained with the real CLI for the whole file; every export is `node bin/lrnet.js export` or the
 * host's export job process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../app/store/index.ts';
import { runExportJob } from '../app/export/job.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LRNET = path.join(ROOT, 'bin/lrnet.js');
/** LR phase only, 8 steps; the CLI's SMALL run. */
const SMALL = ['--train-limit', '300', '--validation', '100', '--batch', '25', '--fp-epochs', '0', '--epochs', '1', '--test-limit', '100', '--eval-samples', '1', '--backend', 'wasm'];
/** A quick export: one format, verified on 20 images. */
const QUICK = ['--format', 'packed', '--test-limit', '20', '--backend', 'wasm'];

let home: string;
let runId: string;

interface Result {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs lrnet in `cwd` (default: the home folder); `onSpawn` gets the child (to kill it). */
function lrnet(args: string[], options: { cwd?: string; onSpawn?: (child: ChildProcess) => void } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LRNET, ...args], { cwd: options.cwd ?? home, env: { ...process.env, LRNET_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    options.onSpawn?.(child);
  });
}

/** An error for the user: exit 1, one line on stderr, no stack trace. */
function expectOneLineError(r: Result, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('lrnet export:'))).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
}

/** What the export left next to `outDir`: its staging (.NAME.partial-*) and moved-aside (.NAME.old-*) folders. */
function leftovers(outDir: string): string[] {
  return fs.readdirSync(path.dirname(outDir)).filter((n) => n.startsWith(`.${path.basename(outDir)}.`));
}

/** Every file under `dir` with its contents, to show a folder is untouched. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const file = path.join(entry.parentPath, entry.name);
    if (entry.isFile()) out[path.relative(dir, file)] = fs.readFileSync(file, 'utf8');
  }
  return out;
}

/** A folder of the user's own files. */
function userFolder(name: string): string {
  const dir = path.join(home, name);
  fs.mkdirSync(path.join(dir, 'photos'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'my notes');
  fs.writeFileSync(path.join(dir, 'photos', 'a.jpg'), 'not really a jpeg');
  return dir;
}

/** Resolves once `found()` returns something, polling every 10 ms. */
async function waitFor<T>(what: string, found: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = found();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The staging folder of an export to `outDir` once it has started writing (its golden/ exists). */
function writingStaging(outDir: string): string | undefined {
  const name = leftovers(outDir).find((n) => n.includes('.partial-') && fs.existsSync(path.join(path.dirname(outDir), n, 'golden')));
  return name && path.join(path.dirname(outDir), name);
}

const database = () => path.join(home, 'lrnet.db');
const artifactsOf = () => {
  const store = openStore(database());
  try {
    return store.getRun(runId).artifacts;
  } finally {
    store.close();
  }
};
const lastCheckpoint = () => {
  const store = openStore(database());
  try {
    const run = store.getRun(runId);
    return run.checkpoints.find((c) => c.id === run.lastCheckpointId)!.path;
  } finally {
    store.close();
  }
};

beforeAll(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-export-safety-'));
  const r = await lrnet(['train', ...SMALL, '--json']);
  expect(r.code, r.stderr).toBe(0);
  runId = (JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { runId: string }).runId;
}, 120_000);

afterAll(() => {
  fs.rmSync(home, { recursive: true, force: true });
});

describe('export --force replaces only an earlier export', () => {
  it('refuses a folder of the user\'s files, also as --out . in it, and deletes nothing', async () => {
    const mine = userFolder('mine');
    const before = snapshot(mine);
    expectOneLineError(await lrnet(['export', runId, ...QUICK, '--out', mine, '--force']), /mine is not an lrnet export .*nothing was changed/);
    expectOneLineError(await lrnet(['export', runId, ...QUICK, '--out', '.', '--force'], { cwd: mine }), /mine is not an lrnet export/);
    expect(snapshot(mine)).toEqual(before);
    expect(leftovers(mine)).toEqual([]);
    expect(fs.readdirSync(mine)).toEqual(expect.arrayContaining(['notes.txt', 'photos']));
    expect(artifactsOf().filter((a) => a.path.startsWith(mine))).toEqual([]);
  });

  it('replaces an earlier export, but not once the user has added files to it', async () => {
    const out = path.join(home, 'out');
    expect((await lrnet(['export', runId, ...QUICK, '--out', out])).code).toBe(0);
    const first = fs.readFileSync(path.join(out, 'report.json'), 'utf8');
    expectOneLineError(await lrnet(['export', runId, ...QUICK, '--out', out]), /already holds an lrnet export.*--force/);

    fs.writeFileSync(path.join(out, 'deployed.txt'), 'flashed to the board on Monday');
    fs.writeFileSync(path.join(out, 'packed', 'loader.c'), '/* my loader */');
    expectOneLineError(await lrnet(['export', runId, ...QUICK, '--out', out, '--force']), /holds files that are not part of its lrnet export \(deployed\.txt, packed\/loader\.c\)/);
    expect(fs.readFileSync(path.join(out, 'deployed.txt'), 'utf8')).toBe('flashed to the board on Monday');
    expect(fs.readFileSync(path.join(out, 'report.json'), 'utf8')).toBe(first);

    fs.rmSync(path.join(out, 'deployed.txt'));
    fs.rmSync(path.join(out, 'packed', 'loader.c'));
    const forced = await lrnet(['export', runId, ...QUICK, '--out', out, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(fs.readFileSync(path.join(out, 'report.json'), 'utf8')).not.toBe(first);
    expect(fs.readdirSync(out).sort()).toEqual(['golden', 'packed', 'report.json']);
    expect(leftovers(out)).toEqual([]);
  });

  it('the host\'s export job refuses the same folders and records no artifact for them', async () => {
    const mine = userFolder('mine-api');
    // A user's file named like the format folder: what deleting the run would have removed.
    fs.writeFileSync(path.join(mine, 'packed'), 'my own file called packed');
    const before = snapshot(mine);
    for (const force of [false, true]) {
      const reply = await runExportJob({ databasePath: database(), runId, checkpoint: lastCheckpoint(), format: 'packed', outDir: mine, force, backend: 'wasm' });
      expect(reply).toMatchObject({ type: 'failed', code: 'exists' });
    }
    expect(snapshot(mine)).toEqual(before);
    expect(leftovers(mine)).toEqual([]);
    expect(artifactsOf().filter((a) => a.path.startsWith(mine))).toEqual([]);
  });

  const root = process.getuid?.() === 0 && spawnSync('chattr', ['--help']).error === undefined;
  it.skipIf(!root)('--force onto a folder that cannot be moved (immutable) says so in one line and keeps it', async () => {
    const locked = path.join(home, 'locked');
    fs.cpSync(path.join(home, 'out'), locked, { recursive: true }); // an earlier export, exported above
    const before = snapshot(locked);
    expect(spawnSync('chattr', ['+i', locked]).status).toBe(0);
    try {
      expectOneLineError(await lrnet(['export', runId, ...QUICK, '--out', locked, '--force']), /cannot replace .*locked: it cannot be moved \(EPERM\)/);
    } finally {
      spawnSync('chattr', ['-i', locked]);
    }
    expect(snapshot(locked)).toEqual(before);
    expect(leftovers(locked)).toEqual([]);
  });
});

describe('a killed export', () => {
  it('lrnet export killed mid-way: the next command marks its artifacts failed and removes its staging folder', async () => {
    const out = path.join(home, 'killed-cli');
    let staging = '';
    const killed = await lrnet(['export', runId, '--format', 'c', '--test-limit', '20', '--backend', 'wasm', '--out', out], {
      onSpawn: (child) => {
        // '' once the process has ended by itself: the assertions below then say what went wrong.
        void waitFor('the export to start writing', () => (child.exitCode !== null ? '' : writingStaging(out))).then((dir) => {
          staging = dir;
          child.kill('SIGKILL');
        });
      },
    });
    expect(killed.signal).toBe('SIGKILL');
    expect(fs.existsSync(staging)).toBe(true);
    expect(artifactsOf().filter((a) => a.path === path.join(out, 'c')).map((a) => a.status)).toEqual(['running']);

    // Any command that opens the store notices the dead process.
    const shown = await lrnet(['show', runId]);
    expect(shown.code, shown.stderr).toBe(0);
    const artifact = artifactsOf().find((a) => a.path === path.join(out, 'c'))!;
    expect(artifact.status).toBe('failed');
    expect(artifact.report).toMatchObject({ code: 'interrupted', error: expect.stringMatching(/^interrupted: the export process \(pid \d+/) });
    expect(leftovers(out)).toEqual([]);
    expect(fs.existsSync(out)).toBe(false);
    expect((await lrnet(['export', runId, ...QUICK, '--out', out])).code).toBe(0);
  });

  it('the host\'s export job killed mid-way: its reply says so, its artifact is failed and its staging folder gone', async () => {
    const out = path.join(home, 'killed-job');
    const job = runExportJob({ databasePath: database(), runId, checkpoint: lastCheckpoint(), format: 'c', outDir: out, force: false, backend: 'wasm' });
    const staging = await waitFor('the export job to start writing', () => writingStaging(out));
    const pid = Number(/\.partial-(\d+)-/.exec(staging)![1]);
    expect(pid).not.toBe(process.pid);
    process.kill(pid, 'SIGKILL');
    const reply = await job;
    expect(reply).toMatchObject({ type: 'failed', message: expect.stringContaining('SIGKILL') });
    const artifact = artifactsOf().find((a) => a.path === path.join(out, 'c'))!;
    expect(artifact).toMatchObject({ status: 'failed', report: { code: 'interrupted' } });
    expect(leftovers(out)).toEqual([]);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('killed between moving the earlier export aside and putting the new one in place: the earlier export is put back', async () => {
    const out = path.join(home, 'half-published');
    fs.cpSync(path.join(home, 'out'), out, { recursive: true }); // an earlier export, exported above
    const before = snapshot(out);
    // What publishing leaves at that moment, from a process that is now gone.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const suffix = `${dead.stdout}-0123abcd`;
    fs.renameSync(out, path.join(home, `.half-published.old-${suffix}`));
    fs.mkdirSync(path.join(home, `.half-published.partial-${suffix}`, 'packed'), { recursive: true });

    expectOneLineError(await lrnet(['export', runId, ...QUICK, '--out', out]), /already holds an lrnet export/);
    expect(snapshot(out)).toEqual(before);
    expect(leftovers(out)).toEqual([]);
  });
});

describe('lrnet rm', () => {
  it('deletes the files of the run\'s exports, and nothing of the user\'s: not a file at a recorded artifact path, nor one added to an export', async () => {
    const exported = path.join(home, 'killed-cli'); // exported above
    const added = path.join(home, 'out'); // exported above; the user adds a file to it
    fs.writeFileSync(path.join(added, 'packed', 'loader.c'), '/* my loader */');
    // A database written before this fix recorded refused exports as failed artifacts at DEST/FORMAT.
    const mine = path.join(home, 'mine-api');
    const store = openStore(database());
    try {
      store.addArtifact(runId, { kind: 'export-packed', path: path.join(mine, 'packed'), status: 'failed', report: { code: 'exists' } });
    } finally {
      store.close();
    }
    const before = snapshot(mine);
    const r = await lrnet(['rm', runId]);
    expect(r.code, r.stderr).toBe(0);
    expect(snapshot(mine)).toEqual(before);
    expect(fs.existsSync(exported)).toBe(false);
    expect(r.stdout).toMatch(/ and .*killed-cli/);
    expect(snapshot(added)).toEqual({ 'packed/loader.c': '/* my loader */' });
  });
});
