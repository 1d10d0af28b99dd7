import { readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openStore, SCHEMA_VERSION, StoreError } from '../app/store/index.ts';
import { APPLICATION_ID, METRIC_KEY_RENAMES_V3, migrate, MIGRATIONS, schemaVersion } from '../app/store/schema.ts';
import { METRIC_KEYS, metricInfo } from '../app/contract.ts';
import { useTempDir } from './helpers/temp-dir.ts';

let dir: string;
let file: string;
useTempDir('lrnet-migrations-', 'each', (created) => {
  dir = created;
  file = path.join(created, 'lrnet.db');
});

function rawDb(): Database.Database {
  const db = new Database(file);
  db.pragma('foreign_keys = ON');
  return db;
}

function openError(options?: { readonly: true }): StoreError {
  try {
    (options ? openStore(file, options) : openStore(file)).close();
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    return error as StoreError;
  }
  throw new Error('expected openStore to refuse the file');
}

/**
 * For each schema version: rows written at the previous version, and what must hold once migrated.
 * A migration added without an entry here fails the completeness test below.
 */
const FIXTURES: Record<number, { seed(db: Database.Database): void; check(db: Database.Database): void }> = {
  1: {
    seed() {
      // Version 0 is an empty file: nothing to carry over.
    },
    check(db) {
      expect(db.pragma('application_id', { simple: true })).toBe(APPLICATION_ID);
      const tables = db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`).pluck().all();
      expect(tables).toEqual(['artifacts', 'checkpoints', 'evaluations', 'metric_summary', 'metrics', 'notes', 'runs', 'tags']);
    },
  },
  2: {
    seed(db) {
      db.prepare(
        `INSERT INTO runs (id, name, status, created_at, preset, config, seed, app_version)
         VALUES ('abcd0001', 'ternary baseline', 'completed', 1, 'mnist-ternary', '{"optimizer":"adam"}', 1, '0.1.0'),
                ('abcd0002', 'binary sweep', 'queued', 2, 'mnist-binary', '{"optimizer":"sgd"}', 2, '0.1.0')`,
      ).run();
      db.prepare(`INSERT INTO tags (run_id, tag) VALUES ('abcd0001', 'paper-figure')`).run();
      db.prepare(`INSERT INTO notes (run_id, text, created_at) VALUES ('abcd0002', 'diverged after warmup', 3)`).run();
      db.prepare(
        `INSERT INTO metrics (run_id, key, step, wall_time, value) VALUES ('abcd0001', 'test/argmax', 10, 5, 0.97)`,
      ).run();
    },
    check(db) {
      const search = (q: string) =>
        db.prepare(`SELECT run_id FROM runs_fts WHERE runs_fts MATCH ? ORDER BY run_id`).pluck().all(q);
      // Existing rows were indexed by the migration...
      expect(search('baseline')).toEqual(['abcd0001']);
      expect(search('"paper-figure"')).toEqual(['abcd0001']);
      expect(search('diverged')).toEqual(['abcd0002']);
      expect(search('sgd')).toEqual(['abcd0002']);
      expect(search('completed')).toEqual(['abcd0001']);
      // ...and the triggers keep new ones in sync.
      db.prepare(`INSERT INTO tags (run_id, tag) VALUES ('abcd0002', 'rerun')`).run();
      expect(search('rerun')).toEqual(['abcd0002']);
      // Rows of the previous version are untouched.
      expect(db.prepare(`SELECT count(*) FROM runs`).pluck().get()).toBe(2);
      expect(db.prepare(`SELECT value FROM metrics WHERE run_id = 'abcd0001'`).pluck().get()).toBe(0.97);
    },
  },
  3: {
    seed(db) {
      db.prepare(
        `INSERT INTO runs (id, name, status, created_at, preset, config, seed, app_version)
         VALUES ('abcd0001', 'before the rename', 'completed', 1, 'mnist-ternary', '{}', 1, '0.1.0'),
                ('abcd0002', 'another', 'completed', 2, 'mnist-ternary', '{}', 2, '0.1.0')`,
      ).run();
      const point = db.prepare(`INSERT INTO metrics (run_id, key, step, phase, epoch, wall_time, value) VALUES (?, ?, ?, 'lr', ?, ?, ?)`);
      const summary = db.prepare(
        `INSERT INTO metric_summary (run_id, key, count, min_value, min_step, max_value, max_step, last_step, last_value)
         VALUES (?, ?, 2, ?, 1, ?, 2, 2, ?)`,
      );
      for (const run of ['abcd0001', 'abcd0002']) {
        for (const [key] of METRIC_KEY_RENAMES_V3) {
          point.run(run, key, 1, 0.5, 100, 0.25);
          point.run(run, key, 2, 1, 200, null); // a NaN
          summary.run(run, key, 0.25, 0.25, null);
        }
        // Keys already in the new spelling, and one lrnet never wrote, stay as they are.
        point.run(run, 'train/loss', 1, 0.5, 100, 2.3);
        point.run(run, 'test/argmax', 2, 1, 200, 0.97);
        point.run(run, 'custom/my_metric', 1, 0.5, 100, 7);
        summary.run(run, 'train/loss', 2.3, 2.3, 2.3);
      }
    },
    check(db) {
      const keys = (table: string, run: string) =>
        db.prepare(`SELECT DISTINCT key FROM ${table} WHERE run_id = ? ORDER BY key`).pluck().all(run);
      for (const run of ['abcd0001', 'abcd0002']) {
        expect(keys('metrics', run)).toEqual([
          'custom/my_metric', 'epoch/trainAccuracy', 'test/argmax', 'train/batchAccuracy', 'train/crossEntropy',
          'train/imagesPerSecond', 'train/learningRate', 'train/loss',
        ]);
        expect(keys('metric_summary', run)).toEqual([
          'epoch/trainAccuracy', 'train/batchAccuracy', 'train/crossEntropy', 'train/imagesPerSecond', 'train/learningRate', 'train/loss',
        ]);
      }
      // Every point moved with its step, phase, epoch, time and value (NaN stays NULL).
      expect(
        db.prepare(`SELECT step, phase, epoch, wall_time, value FROM metrics WHERE run_id = 'abcd0002' AND key = 'train/batchAccuracy' ORDER BY step`).all(),
      ).toEqual([
        { step: 1, phase: 'lr', epoch: 0.5, wall_time: 100, value: 0.25 },
        { step: 2, phase: 'lr', epoch: 1, wall_time: 200, value: null },
      ]);
      expect(db.prepare(`SELECT count(*) FROM metrics`).pluck().get()).toBe(2 * (2 * METRIC_KEY_RENAMES_V3.length + 3));
      // The new keys are exactly the catalog's.
      for (const [, to] of METRIC_KEY_RENAMES_V3) expect(metricInfo(to)?.key).toBe(to);
    },
  },
};

describe('migrations', () => {
  it('are numbered 1..SCHEMA_VERSION and each has a test fixture', () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
    expect(Object.keys(FIXTURES).map(Number)).toEqual(MIGRATIONS.map((m) => m.version));
  });

  for (const migration of MIGRATIONS) {
    it(`migrates ${migration.version - 1} -> ${migration.version} (${migration.description}) with rows present`, () => {
      const db = rawDb();
      try {
        expect(migrate(db, migration.version - 1)).toBe(migration.version - 1);
        FIXTURES[migration.version]!.seed(db);
        expect(migrate(db, migration.version)).toBe(migration.version);
        expect(schemaVersion(db)).toBe(migration.version);
        FIXTURES[migration.version]!.check(db);
        // Running it again is a no-op.
        expect(migrate(db, migration.version)).toBe(migration.version);
      } finally {
        db.close();
      }
    });
  }

  it('openStore upgrades an old database and keeps its rows', () => {
    const db = rawDb();
    migrate(db, 1);
    FIXTURES[2]!.seed(db);
    db.close();
    const store = openStore(file);
    try {
      expect(store.getRun('abcd0001').name).toBe('ternary baseline');
      expect(store.listRuns({ search: 'paper' }).rows.map((r) => r.id)).toEqual(['abcd0001']);
    } finally {
      store.close();
    }
    const check = new Database(file, { readonly: true });
    expect(schemaVersion(check)).toBe(SCHEMA_VERSION);
    check.close();
  });

  it('openStore reads the curves of a version-2 database under the catalog keys', () => {
    const db = rawDb();
    migrate(db, 2);
    FIXTURES[3]!.seed(db);
    db.close();
    const store = openStore(file);
    try {
      expect(store.metricStats('abcd0001', METRIC_KEYS.batchAccuracy)).toMatchObject({ count: 2, goal: 'max', best: 0.25, lastStep: 2 });
      expect(store.metricSeries('abcd0001', METRIC_KEYS.imagesPerSecond, { maxPoints: 0 }).steps).toEqual([1, 2]);
      expect(store.metricStats('abcd0001', 'train/batch_accuracy')).toBeUndefined();
      expect(store.listRuns({ metric: METRIC_KEYS.crossEntropy, sort: 'best' }).rows[0]!.metric).toMatchObject({ key: 'train/crossEntropy', best: 0.25 });
    } finally {
      store.close();
    }
  });

  it('leaves a database at version 2, rows untouched, when a renamed key is already there', () => {
    const db = rawDb();
    try {
      migrate(db, 2);
      FIXTURES[3]!.seed(db);
      db.prepare(`INSERT INTO metrics (run_id, key, step, wall_time, value) VALUES ('abcd0001', 'train/batchAccuracy', 1, 5, 0.5)`).run();
      const before = db.prepare(`SELECT * FROM metrics ORDER BY run_id, key, step`).all();
      expect(() => migrate(db, 3)).toThrow(/UNIQUE constraint failed/);
      expect(schemaVersion(db)).toBe(2);
      expect(db.prepare(`SELECT * FROM metrics ORDER BY run_id, key, step`).all()).toEqual(before);
    } finally {
      db.close();
    }
  });

  it('makes every ordinary table STRICT', () => {
    openStore(file).close();
    const db = new Database(file, { readonly: true });
    try {
      const tables = db.prepare(`SELECT name, strict FROM pragma_table_list WHERE schema = 'main' AND type = 'table'`).all() as {
        name: string;
        strict: number;
      }[];
      // sqlite_* are SQLite's own; runs_fts_* are FTS5's shadow tables (virtual tables cannot be STRICT).
      const ours = tables.filter((t) => !t.name.startsWith('sqlite_') && !t.name.startsWith('runs_fts'));
      expect(ours.length).toBeGreaterThanOrEqual(8);
      expect(ours.filter((t) => t.strict !== 1)).toEqual([]);
    } finally {
      db.close();
    }
  });
});

describe('refusing files', () => {
  it('refuses a database from a newer lrnet and leaves it byte-identical', () => {
    openStore(file).close();
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    const before = readFileSync(file);
    const filesBefore = readdirSync(dir).sort();

    const error = openError();
    expect(error.code).toBe('newer-schema');
    expect(error.message).toBe(
      `${file} was written by a newer lrnet (schema ${SCHEMA_VERSION + 1}, this version knows ${SCHEMA_VERSION}): ` +
        'upgrade lrnet or use another --db',
    );
    expect(openError({ readonly: true }).code).toBe('newer-schema');
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(filesBefore);
  });

  it('sees a newer schema that is still only in the WAL, and leaves the file unchanged', () => {
    openStore(file).close();
    // Another process has upgraded the database and is still running: the change sits in the -wal file and the
    // main file header still says the old version.
    const newer = new Database(file);
    try {
      newer.pragma('wal_autocheckpoint = 0');
      newer.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
      const peek = new Database(file, { readonly: true });
      expect(peek.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 1);
      peek.close();
      expect(readFileSync(file).readInt32BE(60)).toBe(SCHEMA_VERSION);
      const before = readFileSync(file);
      expect(openError().code).toBe('newer-schema');
      expect(readFileSync(file).equals(before)).toBe(true);
    } finally {
      newer.close();
    }
  });

  it('refuses a file that is not SQLite, naming it, and leaves it unchanged', () => {
    const text = Buffer.from('epoch,loss\n1,2.3\n2,1.9\n'.repeat(100));
    writeFileSync(file, text);
    const error = openError();
    expect(error.code).toBe('not-lrnet-database');
    expect(error.message).toContain(file);
    expect(error.message).toMatch(/not a SQLite file/);
    expect(readFileSync(file).equals(text)).toBe(true);
    expect(readdirSync(dir)).toEqual(['lrnet.db']);
  });

  it('refuses a damaged SQLite file and another application database, unchanged', () => {
    const damaged = Buffer.concat([Buffer.from('SQLite format 3\0', 'latin1'), Buffer.alloc(4080, 0xab)]);
    writeFileSync(file, damaged);
    expect(openError().message).toContain(file);
    expect(readFileSync(file).equals(damaged)).toBe(true);

    rmSync(file);
    const other = new Database(file);
    other.exec(`CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('ada')`);
    other.close();
    const before = readFileSync(file);
    const error = openError();
    expect(error.code).toBe('not-lrnet-database');
    expect(error.message).toMatch(/tables but no lrnet schema/);
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it('refuses a folder, and a read-only open of a missing database', () => {
    mkdirSync(file);
    expect(openError().message).toMatch(/is a folder/);
    rmSync(file, { recursive: true });
    expect(openError({ readonly: true }).code).toBe('not-ready');
    expect(readdirSync(dir)).toEqual([]);
  });
});
