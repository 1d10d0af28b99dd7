/**
 * The real `lrnet` command (node bin/lrnet.js) over bad input of every kind: flags, numbers, unknown runs, files
 * that are not databases, damaged, locked, unwritable and other users' databases, bad data folders, runs that
 * cannot be resumed or exported. Each case must end with exit code 1 or 2 and a message, never a stack trace, and
 * every database file involved keeps its bytes. The runs are made directly in the store: nothing here trains,
 * except the one case that checks what the automatic backend choice prints.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { openStore } from '../app/store/index.ts';
import { PRESETS } from '../engine/config.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LRNET = path.join(ROOT, 'bin/lrnet.js');
const IS_ROOT = process.getuid?.() === 0;
/** Processes at once: enough to hide start-up latency, few enough for a 2-core CI machine. */
const PARALLEL = 4;

let tmp: string;
let home: string;

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

interface RunOptions {
  readonly env?: Record<string, string>;
  /** Run as the `nobody` user (through setpriv): how root gets to meet a permission it does not bypass. */
  readonly asOtherUser?: boolean;
  /** Close our end of stdout at once, so every write of the child meets a closed pipe (EPIPE). */
  readonly closeStdout?: boolean;
}

function lrnet(args: readonly string[], options: RunOptions = {}): Promise<Result> {
  const command = options.asOtherUser ? 'setpriv' : process.execPath;
  const argv = options.asOtherUser
    ? ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, LRNET, ...args]
    : [LRNET, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, {
      cwd: tmp,
      env: { ...process.env, LRNET_HOME: home, HOME: path.join(tmp, 'user-home'), ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    if (options.closeStdout) child.stdout.destroy();
    else child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** What a stack trace or an uncaught exception leaves in the output. */
const STACK_PATTERNS = [/^\s+at .*(\(|\s)\S+:\d+:\d+\)?$/m, /node:internal/, /^\w*Error: .*\n\s+at /m, /^Node\.js v\d+/m, /Unhandled '?error'? event/i];

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  /** 2: wrong arguments or an unknown run; 1: anything else that failed. */
  readonly code: 1 | 2;
  /** What the message (a line of stderr starting "lrnet CMD: ") must say. */
  readonly says?: RegExp;
  readonly options?: RunOptions;
  /** Only where the environment allows it (root with setpriv, chattr...). */
  readonly when?: () => boolean;
}

const can = (tool: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Paths of the fixtures, filled in by beforeAll. */
const f = {} as Record<
  | 'db' | 'completed' | 'noCheckpoint' | 'missingCheckpoint' | 'badConfig'
  | 'truncated' | 'headerOnly' | 'corrupted' | 'lowVersion' | 'newer' | 'foreign' | 'text' | 'folder' | 'blocker'
  | 'immutable' | 'locked' | 'otherPrivate' | 'otherReadable' | 'rootFolder' | 'emptyDir' | 'junkDir' | 'junkCheckpoint',
  string
>;
/** Database files whose bytes must not change, with their bytes before. */
const untouched = new Map<string, Buffer>();
const cleanups: (() => void)[] = [];
let lockHolder: Database.Database | undefined;
let immutableSet = false;
let otherUserWorks = false;

/** A database with the runs the cases need, made through the store (no training). */
function makeDatabase(file: string): Record<'completed' | 'noCheckpoint' | 'missingCheckpoint' | 'badConfig', string> {
  const store = openStore(file);
  const config = { ...PRESETS['mnist-ternary-quick'] } as unknown as Record<string, unknown>;
  const run = (status: 'completed' | 'stopped', runConfig: Record<string, unknown> = config) => {
    const r = store.createRun({ config: runConfig, seed: 1, appVersion: '0.1.0', preset: 'mnist-ternary-quick', status: 'running' });
    store.updateRun(r.id, { status });
    return r.id;
  };
  const completed = run('completed');
  const noCheckpoint = run('stopped');
  const missingCheckpoint = run('stopped');
  store.addCheckpoint(missingCheckpoint, { step: 3, path: path.join(tmp, 'gone', 'step-3.ckpt'), bytes: 10 });
  const badConfig = run('stopped', { lr: 0.01 });
  // A checkpoint record, so export gets as far as its own flags (the file is junk; no case reads it).
  store.addCheckpoint(completed, { step: 9, path: path.join(tmp, 'junk.ckpt'), bytes: 16 });
  // Enough rows for several pages, so a damaged copy has pages a query reaches.
  const writer = store.metricWriter(completed);
  for (let step = 0; step < 2000; step++) writer.write('train/loss', step, 1 / (step + 1));
  writer.close();
  store.close();
  return { completed, noCheckpoint, missingCheckpoint, badConfig };
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'lrnet-hostile-'));
  chmodSync(tmp, 0o755); // the `nobody` cases must reach the files below
  home = path.join(tmp, 'home');
  mkdirSync(home);
  mkdirSync(path.join(tmp, 'user-home'));
  f.db = path.join(tmp, 'runs.db');
  Object.assign(f, makeDatabase(f.db));
  const bytes = readFileSync(f.db);
  const damagedCopy = (name: string, content: Buffer) => {
    const file = path.join(tmp, name);
    writeFileSync(file, content);
    return file;
  };
  f.truncated = damagedCopy('truncated.db', bytes.subarray(0, Math.floor(bytes.length / 2)));
  f.headerOnly = damagedCopy('header-only.db', bytes.subarray(0, 100));
  f.corrupted = damagedCopy('corrupted.db', Buffer.from(bytes).fill(0x5a, 4096 * 2, bytes.length - 4096));
  const tampered = (name: string, pragma: string) => {
    const file = path.join(tmp, name);
    copyFileSync(f.db, file);
    const db = new Database(file);
    db.pragma(pragma);
    db.close();
    return file;
  };
  f.lowVersion = tampered('low-version.db', 'user_version = 1');
  f.newer = tampered('newer.db', 'user_version = 99');
  f.foreign = path.join(tmp, 'foreign.sqlite');
  const foreign = new Database(f.foreign);
  foreign.exec('CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES (\'Ada\')');
  foreign.close();
  f.text = damagedCopy('notes.db', Buffer.from('my notes, not a database\n'));
  f.folder = path.join(tmp, 'a-folder');
  mkdirSync(f.folder);
  f.blocker = damagedCopy('blocker', Buffer.from('a file where a folder should be'));
  f.emptyDir = path.join(tmp, 'empty-data');
  mkdirSync(f.emptyDir);
  f.junkDir = path.join(tmp, 'junk-data');
  mkdirSync(f.junkDir);
  for (const name of ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) {
    writeFileSync(path.join(f.junkDir, name), 'not an IDX file');
  }
  f.junkCheckpoint = damagedCopy('junk.ckpt', Buffer.from('not a checkpoint'));

  f.immutable = path.join(tmp, 'immutable.db');
  copyFileSync(f.db, f.immutable);
  if (IS_ROOT) {
    try {
      execFileSync('chattr', ['+i', f.immutable], { stdio: 'ignore' });
      immutableSet = true;
      cleanups.push(() => execFileSync('chattr', ['-i', f.immutable], { stdio: 'ignore' }));
    } catch {
      // No CAP_LINUX_IMMUTABLE or a file system without the attribute: the case is skipped.
    }
  } else {
    chmodSync(f.immutable, 0o444);
    immutableSet = true;
  }

  f.locked = path.join(tmp, 'locked.db');
  copyFileSync(f.db, f.locked);
  lockHolder = new Database(f.locked);
  lockHolder.exec('BEGIN EXCLUSIVE');

  // Another user's files: made by root and used as `nobody`, or (not root) made unreadable/unwritable by chmod.
  otherUserWorks = IS_ROOT ? can('setpriv') : true;
  const otherDir = path.join(tmp, 'other-user');
  mkdirSync(otherDir, { mode: 0o755 });
  f.otherPrivate = path.join(otherDir, 'private.db');
  copyFileSync(f.db, f.otherPrivate);
  chmodSync(f.otherPrivate, 0o600);
  const sharedDir = path.join(tmp, 'shared');
  mkdirSync(sharedDir);
  chmodSync(sharedDir, 0o777);
  f.otherReadable = path.join(sharedDir, 'readable.db');
  copyFileSync(f.db, f.otherReadable);
  chmodSync(f.otherReadable, 0o644);
  f.rootFolder = path.join(tmp, 'root-folder');
  mkdirSync(f.rootFolder, { mode: 0o755 });
  if (!IS_ROOT) {
    chmodSync(f.otherPrivate, 0o000);
    chmodSync(f.otherReadable, 0o444);
    chmodSync(f.rootFolder, 0o555);
    cleanups.push(() => [f.otherPrivate, f.otherReadable, f.rootFolder].forEach((p) => chmodSync(p, 0o755)));
  }

  // Not f.db: the cases that fail inside a training run record that run there, as they should.
  for (const file of [f.truncated, f.headerOnly, f.corrupted, f.lowVersion, f.newer, f.foreign, f.text, f.immutable, f.locked, f.otherPrivate, f.otherReadable]) {
    untouched.set(file, readFileSync(file));
  }
});

afterAll(() => {
  lockHolder?.exec('ROLLBACK');
  lockHolder?.close();
  for (const undo of cleanups) undo();
  rmSync(tmp, { recursive: true, force: true });
});

/** Every case, built once the fixtures exist. */
function cases(): Case[] {
  const db = ['--db', f.db];
  const usage = (name: string, args: readonly string[], says?: RegExp): Case => ({ name, args, code: 2, ...(says ? { says } : {}) });
  const failure = (name: string, args: readonly string[], says?: RegExp, extra: Partial<Case> = {}): Case => ({ name, args, code: 1, ...(says ? { says } : {}), ...extra });
  const other = { options: { asOtherUser: IS_ROOT } as RunOptions, when: () => otherUserWorks };
  return [
    // Commands and flags.
    usage('no command', []),
    usage('unknown command', ['frobnicate'], /unknown command "frobnicate"/),
    usage('unknown train flag', ['train', '--bogus'], /--bogus/),
    usage('train flag without its value', ['train', '--epochs']),
    usage('positional argument to train', ['train', 'extra']),
    usage('--seed 1e20', ['train', '--seed', '1e20', ...db], /--seed: expected an integer >= 0 and <= 4294967295/),
    usage('--seed -1', ['train', '--seed', '-1', ...db], /--seed/),
    usage('--seed 1.5', ['train', '--seed', '1.5', ...db], /--seed/),
    usage('--seed 2^32', ['train', '--seed', '4294967296', ...db], /--seed/),
    usage('--epochs abc', ['train', '--epochs', 'abc', ...db], /--epochs: expected an integer, got "abc"/),
    usage('--epochs 0', ['train', '--epochs', '0', ...db], /--epochs/),
    usage('--epochs 1e300', ['train', '--epochs', '1e300', ...db], /--epochs/),
    usage('--train-limit beyond 2^53', ['train', '--train-limit', '99999999999999999999', ...db], /--train-limit/),
    usage('--batch 0', ['train', '--batch', '0', ...db], /--batch/),
    usage('--lr -1', ['train', '--lr', '-1', ...db], /--lr/),
    usage('--lr NaN', ['train', '--lr', 'NaN', ...db], /--lr/),
    usage('--lr 1e400', ['train', '--lr', '1e400', ...db], /--lr/),
    usage('--lr empty', ['train', '--lr=', ...db], /--lr/),
    usage('--eval-samples 0', ['train', '--eval-samples', '0', ...db], /--eval-samples/),
    usage('--crop-size for MNIST', ['train', '--crop-size', '32', ...db], /--crop-size/),
    usage('unknown backend', ['train', '--backend', 'quantum', ...db], /--backend: unknown backend "quantum"/),
    usage('unknown preset', ['train', '--preset', 'nope', ...db], /--preset: unknown preset "nope"/),
    usage('unknown dataset', ['train', '--dataset', 'nope', ...db], /--dataset/),
    usage('image folder without --data', ['train', '--dataset', 'imagefolder', ...db], /--data/),
    usage('empty --name', ['train', '--name', ' ', ...db], /--name/),
    usage('empty --tag', ['train', '--tag', '', ...db], /--tag/),
    usage('--name with terminal escapes', ['train', '--name', 'a\u001b[31mred\nline', ...db], /--name: expected a name of at most 200 characters without control characters/),
    usage('--name of 100,000 characters', ['train', '--name', 'n'.repeat(100_000), ...db], /--name: expected at most 200 characters/),
    usage('--tag with a comma', ['train', '--tag', 'a,b', ...db], /--tag: expected a tag without spaces or commas/),
    usage('tag with a comma', ['tag', f.completed, 'a,b', ...db], /TAG: expected a tag without spaces or commas/),
    usage('--checkpoint-dir under a file', ['train', '--checkpoint-dir', path.join(f.blocker, 'sub'), ...db], /--checkpoint-dir: .* cannot be a folder: .*blocker is a file/),
    usage('--resume of a folder', ['train', '--resume', tmp, ...db], /--resume: .* is a folder; give the checkpoint file in it/),
    usage('--checkpoint-dir is a file', ['train', '--checkpoint-dir', f.blocker, ...db], /--checkpoint-dir: .* cannot be a folder/),
    usage('--resume of a missing file', ['train', '--resume', path.join(tmp, 'nowhere.ckpt'), ...db], /--resume: there is no checkpoint file/),
    usage('several bad flags at once', ['train', '--seed', 'x', '--batch', 'y', ...db], /invalid options/),
    usage('runs --limit 0', ['runs', '--limit', '0', ...db], /--limit/),
    usage('runs --limit 1e20', ['runs', '--limit', '1e20', ...db], /--limit/),
    usage('runs --status bogus', ['runs', '--status', 'bogus', ...db], /--status/),
    usage('runs --sort bogus', ['runs', '--sort', 'bogus', ...db], /--sort/),
    usage('runs --order sideways', ['runs', '--order', 'sideways', ...db], /--order/),
    usage('show without a run', ['show', ...db], /missing/),
    usage('compare with an unknown run', ['compare', f.completed, 'zzzzzzzz', ...db], /zzzzzzzz/),
    // Unknown runs.
    usage('show an unknown run', ['show', 'zzzzzzzz', ...db], /zzzzzzzz/),
    usage('rm an unknown run', ['rm', 'zzzzzzzz', ...db], /zzzzzzzz/),
    usage('tag an unknown run', ['tag', 'zzzzzzzz', 'x', ...db], /zzzzzzzz/),
    usage('note on an unknown run', ['note', 'zzzzzzzz', 'text', ...db], /zzzzzzzz/),
    usage('resume an unknown run', ['resume', 'zzzzzzzz', ...db], /zzzzzzzz/),
    usage('export an unknown run', ['export', 'zzzzzzzz', '--format', 'packed', '--out', path.join(tmp, 'out-unknown'), ...db], /zzzzzzzz/),
    // Runs that cannot be resumed or exported.
    failure('resume a completed run', ['resume', f.completed, ...db], /completed; there is nothing to resume/),
    failure('resume a run whose checkpoint is missing', ['resume', f.missingCheckpoint, ...db], /checkpoint .* is missing/),
    failure('resume a run with a config this version cannot train', ['resume', f.badConfig, ...db], /configuration this version cannot train/),
    failure('export a run without a checkpoint', ['export', f.noCheckpoint, '--format', 'packed', '--out', path.join(tmp, 'out-none'), ...db]),
    usage('export with an unknown format', ['export', f.completed, '--format', 'bogus', '--out', path.join(tmp, 'out-bogus'), ...db], /--format/),
    usage('export without --out', ['export', f.completed, '--format', 'packed', ...db], /--out/),
    // Data commands.
    usage('data without a subcommand', ['data'], /missing a subcommand/),
    usage('data with an unknown subcommand', ['data', 'frob'], /unknown subcommand/),
    usage('download an unknown data set', ['data', 'download', 'nope'], /unknown data set "nope"/),
    usage('download with a bad base URL', ['data', 'download', 'mnist', '--base-url', 'not a url', '--data-folder', path.join(tmp, 'dl')], /--base-url/),
    // Data folders a run cannot train on.
    failure('--data that does not exist', ['train', '--dataset', 'mnist', '--data', path.join(tmp, 'no-such-folder'), '--backend', 'cpu', ...db]),
    failure('--data that is a file', ['train', '--dataset', 'mnist', '--data', f.text, '--backend', 'cpu', ...db]),
    failure('--data with no data set in it', ['train', '--dataset', 'mnist', '--data', f.emptyDir, '--backend', 'cpu', ...db]),
    failure('--data with damaged MNIST files', ['train', '--dataset', 'mnist', '--data', f.junkDir, '--backend', 'cpu', ...db]),
    failure('--resume of a file that is not a checkpoint', ['train', '--resume', f.junkCheckpoint, '--backend', 'cpu', '--train-limit', '100', '--validation', '50', ...db], /junk\.ckpt|checkpoint/),
    // Files that are not (usable) lrnet databases.
    failure('--db is a folder', ['runs', '--db', f.folder], /is not an lrnet database \(it is a folder\)/),
    failure('--db is a text file', ['runs', '--db', f.text], /not a SQLite file/),
    failure('--db is another application\'s SQLite file', ['train', '--db', f.foreign], /tables but no lrnet schema/),
    failure('--db written by a newer lrnet', ['show', f.completed, '--db', f.newer], /newer lrnet/),
    failure('runs on a truncated database', ['runs', '--db', f.truncated], /is damaged \(truncated/),
    failure('show on a header-only database', ['show', f.completed, '--db', f.headerOnly], /only its header is left/),
    failure('runs on a database with corrupted pages', ['runs', '--db', f.corrupted], /corrupted\.db is damaged/),
    failure('train on a database with corrupted pages', ['train', '--db', f.corrupted], /corrupted\.db is damaged/),
    failure('a user_version below its schema', ['runs', '--db', f.lowVersion], /says it has schema 1 but its tables do not match/),
    failure('--db under a file', ['train', '--db', path.join(f.blocker, 'lrnet.db')], /blocker is a file, not a folder/),
    failure('LRNET_HOME is a file', ['train'], /blocker is a file, not a folder/, { options: { env: { LRNET_HOME: f.blocker } } }),
    failure('tag with LRNET_HOME a file', ['tag', 'abc', 'x'], /no lrnet database/, { options: { env: { LRNET_HOME: f.blocker } } }),
    failure('an immutable database', ['tag', f.completed, 'x', '--db', f.immutable], /cannot write .*immutable\.db/, { when: () => immutableSet }),
    failure('a database locked for more than 5 s', ['runs', '--db', f.locked], /locked\.db is locked by another process/),
    failure('another user\'s private database: runs', ['runs', '--db', f.otherPrivate], /private\.db/, other),
    failure('another user\'s private database: show', ['show', f.completed, '--db', f.otherPrivate], /private\.db/, other),
    failure('another user\'s readable database: show', ['show', f.completed, '--db', f.otherReadable], /cannot write .*readable\.db/, other),
    failure('another user\'s readable database: runs', ['runs', '--db', f.otherReadable], /cannot write .*readable\.db/, other),
    failure('a new database in a folder this user cannot write', ['train', '--db', path.join(f.rootFolder, 'new.db')], /cannot write in the folder .*root-folder/, other),
  ];
}

describe('lrnet over bad input', () => {
  it('answers every case with exit code 1 or 2 and a message, never a stack trace, and keeps every file', async () => {
    const all = cases();
    const active = all.filter((c) => c.when?.() ?? true);
    const results = new Map<Case, Result>();
    const seconds = new Map<Case, number>();
    let next = 0;
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next < active.length) {
          const c = active[next++]!;
          const started = Date.now();
          results.set(c, await lrnet(c.args, c.options));
          seconds.set(c, (Date.now() - started) / 1000);
        }
      }),
    );
    const problems: string[] = [];
    for (const c of active) {
      const r = results.get(c)!;
      const output = `${r.stdout}\n${r.stderr}`;
      // The message: the first line naming the command (a training run prints its header line before it).
      const message = r.stderr.split('\n').find((line) => /^lrnet( [a-z]+)?: (?!run \w{8} ")\S/.test(line));
      const stack = STACK_PATTERNS.find((p) => p.test(output));
      if (stack) problems.push(`${c.name}: stack trace (${String(stack)}):\n${output.slice(0, 600)}`);
      else if (r.code !== c.code) problems.push(`${c.name}: exit code ${r.code}, expected ${c.code}:\n${output.slice(0, 400)}`);
      else if (c.args.length > 0 && message === undefined) problems.push(`${c.name}: no "lrnet CMD: message" line:\n${output.slice(0, 400)}`);
      else if (c.says && !c.says.test(r.stderr)) problems.push(`${c.name}: the message does not match ${String(c.says)}:\n${r.stderr.slice(0, 400)}`);
    }
    const handled = active.length - problems.length;
    const slowest = [...seconds].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([c, t]) => `${c.name} ${t.toFixed(1)} s`);
    console.info(`lrnet over bad input: ${handled} of ${active.length} cases handled cleanly (${all.length - active.length} skipped here); slowest: ${slowest.join(', ')}`);
    expect(problems).toEqual([]);
    expect(active.length).toBeGreaterThanOrEqual(60);

    for (const [file, bytes] of untouched) expect(readFileSync(file).equals(bytes), `${file} changed`).toBe(true);
    // No -wal/-shm files left next to another user's database, and no new database where none could be made.
    expect(readdirSync(path.dirname(f.otherReadable))).toEqual(['readable.db']);
    expect(existsSync(path.join(f.rootFolder, 'new.db'))).toBe(false);
    expect(readFileSync(f.blocker, 'utf8')).toBe('a file where a folder should be');
  }, 400_000);

  it('stops quietly when the reader of its output goes away (lrnet data list | head)', async () => {
    for (const args of [['data', 'list', '--data-folder', path.join(tmp, 'data-list')], ['runs', '--db', f.db], ['--help']]) {
      const r = await lrnet(args, { closeStdout: true });
      expect(r.stderr, args.join(' ')).toBe('');
      expect(r.code, args.join(' ')).toBe(0);
    }
  }, 60_000);
});

describe('the automatic backend choice on a machine without a GPU', () => {
  const hasGpuNode = () =>
    process.platform !== 'linux' ||
    ['/dev/dri', '/dev'].some((d) => existsSync(d) && readdirSync(d).some((n) => /^(renderD\d+|nvidia\d+|dxg)$/.test(n)));

  it('prints no Dawn warnings and writes no shader cache outside the data folder', async (context) => {
    if (hasGpuNode()) return context.skip();
    const dbFile = path.join(tmp, 'auto-backend.db');
    const r = await lrnet([
      'train', '--backend', 'auto', '--db', dbFile, '--fp-epochs', '0', '--epochs', '1', '--train-limit', '100',
      '--validation', '50', '--batch', '50', '--test-limit', '50', '--eval-samples', '1',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/artificially reduced|Warning:/);
    expect(r.stderr).toMatch(/backend (wasm|cpu|tensorflow)/);
    expect(existsSync(path.join(tmp, 'user-home', '.cache'))).toBe(false);
  }, 120_000);
});
