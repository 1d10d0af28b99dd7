/**
 * Databases lrnet cannot use: damaged, tampered with, locked, unwritable, or under a path that is not a folder.
 * Each is refused with a StoreError whose message names the file and what to do, and the file keeps every byte.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openStore, sqliteFailure, StoreError } from '../app/store/index.ts';
import { useTempDir } from './helpers/temp-dir.ts';

let dir: string;
let file: string;
useTempDir('lrnet-store-errors-', 'each', (created) => {
  dir = created;
  file = path.join(created, 'lrnet.db');
});

/** A real lrnet database with runs, tags and metrics spread over several pages; returns its bytes. */
function makeDatabase(target = file): Buffer {
  const store = openStore(target);
  for (let i = 0; i < 5; i++) {
    const run = store.createRun({ config: { lr: 0.01, note: 'x'.repeat(2000) }, seed: i, appVersion: '0.1.0', tags: ['a'] });
    const writer = store.metricWriter(run.id);
    for (let step = 0; step < 300; step++) writer.write('train/loss', step, 1 / (step + 1));
    writer.close();
  }
  store.close();
  return readFileSync(target);
}

function openError(target = file, options: { busyTimeoutMs?: number } = {}): StoreError {
  try {
    openStore(target, options).close();
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    return error as StoreError;
  }
  throw new Error(`expected openStore to refuse ${target}`);
}

/** The folder holds only what the test put there: lrnet created no -wal, -shm or -journal file next to it. */
function expectNothingAdded(names: readonly string[]): void {
  expect(readdirSync(dir).sort()).toEqual([...names].sort());
}

const IS_ROOT = process.getuid?.() === 0;

/**
 * Makes `target` unwritable for this process: chmod for a normal user; for root, whom permissions do not stop,
 * the immutable attribute (chattr +i), when the file system and capabilities allow it. Returns the undo, or
 * undefined when neither works here.
 */
function makeUnwritable(target: string): (() => void) | undefined {
  if (!IS_ROOT) {
    chmodSync(target, 0o555);
    return () => chmodSync(target, 0o755);
  }
  try {
    execFileSync('chattr', ['+i', target], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  return () => execFileSync('chattr', ['-i', target], { stdio: 'ignore' });
}

describe('damaged databases', () => {
  it('refuses a truncated file, saying how much is missing, without touching it', () => {
    const bytes = makeDatabase();
    const truncated = bytes.subarray(0, bytes.length / 2);
    writeFileSync(file, truncated);
    const error = openError();
    expect(error.code).toBe('damaged');
    expect(error.message).toContain(`${file} is damaged (truncated: ${truncated.length} bytes of the ${bytes.length}`);
    expect(error.message).toMatch(/restore it from a backup/);
    expect(readFileSync(file).equals(truncated)).toBe(true);
    expectNothingAdded(['lrnet.db']);
  });

  it('refuses a file that is only a header', () => {
    const header = makeDatabase().subarray(0, 100);
    writeFileSync(file, header);
    const error = openError();
    expect(error.code).toBe('damaged');
    expect(error.message).toContain('only its header is left');
    expect(readFileSync(file).equals(header)).toBe(true);
    expectNothingAdded(['lrnet.db']);
  });

  it('names the file when a query reaches a corrupted page', () => {
    const bytes = makeDatabase();
    const corrupted = Buffer.from(bytes);
    corrupted.fill(0x5a, 4096 * 2, bytes.length - 4096); // every page but the first and the last
    writeFileSync(file, corrupted);
    let failure: unknown;
    try {
      const store = openStore(file);
      try {
        store.listRuns({});
        store.markInterruptedRuns();
      } finally {
        store.close();
      }
    } catch (error) {
      failure = error instanceof StoreError ? error : sqliteFailure(error, file);
    }
    expect(failure).toBeInstanceOf(StoreError);
    expect((failure as StoreError).code).toBe('damaged');
    expect((failure as StoreError).message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is damaged \\(.*SQLITE_CORRUPT`));
    expect(readFileSync(file).equals(corrupted)).toBe(true);
  });

  it('explains a user_version set below the schema its tables have, and leaves the file as it was', () => {
    makeDatabase();
    const db = new Database(file);
    db.pragma('user_version = 1');
    db.close();
    const before = readFileSync(file);
    const error = openError();
    expect(error.code).toBe('damaged');
    expect(error.message).toContain(`${file} says it has schema 1 but its tables do not match it`);
    expect(error.message).toContain('user_version set by hand');
    expect(readFileSync(file).equals(before)).toBe(true);
  });
});

describe('databases this process cannot use', () => {
  it('says the database is locked when another connection holds the lock past the busy timeout', () => {
    const before = makeDatabase();
    const holder = new Database(file);
    holder.exec('BEGIN EXCLUSIVE');
    try {
      const error = openError(file, { busyTimeoutMs: 50 });
      expect(error.code).toBe('busy');
      expect(error.message).toContain(`${file} is locked by another process`);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it('names the file that stands where a folder should be (--db or LRNET_HOME under a file)', () => {
    const blocker = path.join(dir, 'not-a-folder');
    writeFileSync(blocker, 'my notes');
    for (const target of [path.join(blocker, 'lrnet.db'), path.join(blocker, 'deeper', 'lrnet.db')]) {
      const error = openError(target);
      expect(error.code).toBe('unavailable');
      expect(error.message).toBe(`cannot use ${target}: ${blocker} is a file, not a folder; use another --db (or point LRNET_HOME at a folder)`);
    }
    expect(readFileSync(blocker, 'utf8')).toBe('my notes');
  });

  it('refuses a database file it cannot write (immutable, or read-only for a normal user)', (context) => {
    const before = makeDatabase();
    const undo = makeUnwritable(file);
    if (!undo) return context.skip();
    try {
      const error = openError();
      expect(error.code).toBe('unavailable');
      expect(error.message).toMatch(new RegExp(`^cannot write ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(E(PERM|ACCES)`));
      expect(error.message).toContain('or copy it and pass --db COPY');
    } finally {
      undo();
    }
    expect(readFileSync(file).equals(before)).toBe(true);
    expectNothingAdded(['lrnet.db']);
  });

  it('refuses a folder it cannot write in, for an existing database and for a new one', (context) => {
    const folder = path.join(dir, 'locked-folder');
    mkdirSync(folder);
    const existing = path.join(folder, 'lrnet.db');
    const before = makeDatabase(existing);
    const undo = makeUnwritable(folder);
    if (!undo) return context.skip();
    try {
      for (const target of [existing, path.join(folder, 'new.db')]) {
        const error = openError(target);
        expect(error.code).toBe('unavailable');
        expect(error.message).toContain(`cannot write in the folder ${folder} (`);
        expect(error.message).toContain('make the folder writable for you');
      }
    } finally {
      undo();
    }
    expect(readFileSync(existing).equals(before)).toBe(true);
    expect(readdirSync(folder)).toEqual(['lrnet.db']);
    expect(existsSync(path.join(folder, 'new.db'))).toBe(false);
  });
});
