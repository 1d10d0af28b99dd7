/**
 * The on-disk schema, one migration per version. `PRAGMA user_version` holds the version reached; each migration
 * runs in its own IMMEDIATE transaction and re-checks the version inside it, so two processes opening an old
 * database at once migrate it exactly once. Migrations are append-only: never edit one that has shipped, add the
 * next version instead (and a test that migrates to it from the previous one with rows present).
 */
import type Database from 'better-sqlite3';
import { StoreError } from './errors.ts';

/** Marks the file as lrnet's in the SQLite header (`PRAGMA application_id`): ASCII "LRNT". */
export const APPLICATION_ID = 0x4c524e54;

export interface Migration {
  /** The user_version this migration produces; migration i has version i + 1. */
  readonly version: number;
  readonly description: string;
  readonly up: (db: Database.Database) => void;
}

const RUN_STATUS_CHECK = `status IN ('queued', 'running', 'completed', 'failed', 'stopped', 'interrupted')`;
const EVALUATION_COLUMNS = ['argmax', 'sampled_mean', 'sampled_min', 'sampled_best', 'selected', 'expected'];

/** Version 1: runs and everything recorded about them. */
function createCoreTables(db: Database.Database): void {
  db.pragma(`application_id = ${APPLICATION_ID}`);
  db.exec(`
    CREATE TABLE runs (
      id TEXT PRIMARY KEY NOT NULL,
      name TEXT NOT NULL,
      status TEXT NOT NULL CHECK (${RUN_STATUS_CHECK}),
      created_at INTEGER NOT NULL,          -- ms since the Unix epoch, like every *_at column
      started_at INTEGER,
      finished_at INTEGER,
      preset TEXT,
      config TEXT NOT NULL CHECK (json_valid(config) AND json_type(config) = 'object'),
      seed INTEGER NOT NULL,
      dataset TEXT CHECK (dataset IS NULL OR json_valid(dataset)),   -- DatasetIdentity JSON
      dataset_name TEXT GENERATED ALWAYS AS (json_extract(dataset, '$.name')) STORED,
      dataset_checksum TEXT GENERATED ALWAYS AS (json_extract(dataset, '$.checksum')) STORED,
      backend TEXT,
      adapter TEXT,
      app_version TEXT NOT NULL,
      host TEXT CHECK (host IS NULL OR json_valid(host)),            -- RunHost JSON
      error TEXT,
      progress REAL CHECK (progress IS NULL OR (progress >= 0 AND progress <= 1)),
      last_checkpoint INTEGER REFERENCES checkpoints(id) ON DELETE SET NULL,
      -- The process that set the run running, so markInterruptedRuns can tell a live run from an orphan.
      owner_host TEXT,
      owner_pid INTEGER,
      owner_token TEXT
    ) STRICT;
    CREATE INDEX runs_created ON runs(created_at);
    CREATE INDEX runs_last_checkpoint ON runs(last_checkpoint) WHERE last_checkpoint IS NOT NULL;

    -- Clustered on (run, key, step): a series is one contiguous range of the b-tree, so reading 100k points is a
    -- sequential scan, and there is no second index to maintain on insert. One value per step; writing a step
    -- again (a resumed run repeating steps after its checkpoint) replaces it.
    CREATE TABLE metrics (
      run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      key TEXT NOT NULL,
      step INTEGER NOT NULL,
      phase TEXT,
      epoch REAL,
      wall_time INTEGER NOT NULL,
      value REAL,                           -- NULL stands for NaN (SQLite stores NaN as NULL)
      PRIMARY KEY (run_id, key, step)
    ) STRICT, WITHOUT ROWID;

    -- Per (run, key) aggregates kept up to date by the metric writer, so listing and sorting runs by a metric's
    -- best or last value never scans series.
    CREATE TABLE metric_summary (
      run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      key TEXT NOT NULL,
      count INTEGER NOT NULL,
      min_value REAL,
      min_step INTEGER,
      max_value REAL,
      max_step INTEGER,
      last_step INTEGER NOT NULL,
      last_value REAL,
      PRIMARY KEY (run_id, key)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE evaluations (
      id INTEGER PRIMARY KEY,
      run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      phase TEXT,
      epoch REAL,
      step INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      ${EVALUATION_COLUMNS.map((c) => `${c} REAL, val_${c} REAL`).join(',\n      ')},
      layer_stats TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(layer_stats) AND json_type(layer_stats) = 'array')
    ) STRICT;
    CREATE INDEX evaluations_run ON evaluations(run_id, step);

    CREATE TABLE checkpoints (
      id INTEGER PRIMARY KEY,
      run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      step INTEGER NOT NULL,
      epoch REAL,
      phase TEXT,
      path TEXT NOT NULL,
      bytes INTEGER NOT NULL CHECK (bytes >= 0),
      created_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX checkpoints_run ON checkpoints(run_id, step);

    CREATE TABLE artifacts (
      id INTEGER PRIMARY KEY,
      run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      kind TEXT NOT NULL,
      path TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
      report TEXT CHECK (report IS NULL OR json_valid(report)),
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX artifacts_run ON artifacts(run_id);

    CREATE TABLE tags (
      run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      tag TEXT NOT NULL COLLATE NOCASE CHECK (length(tag) > 0),
      PRIMARY KEY (run_id, tag)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX tags_tag ON tags(tag);

    CREATE TABLE notes (
      id INTEGER PRIMARY KEY,
      run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      text TEXT NOT NULL,
      created_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX notes_run ON notes(run_id);
  `);
}

/**
 * Version 2: full-text search over name, tags, notes, preset, status and config, kept in sync by triggers and
 * filled from the rows already there. Rows are keyed by run id, not rowid: runs has a TEXT primary key, so its
 * rowids may change on VACUUM.
 */
function createSearchIndex(db: Database.Database): void {
  const tagsOf = (runId: string) => `(SELECT coalesce(group_concat(tag, ' '), '') FROM tags WHERE run_id = ${runId})`;
  const notesOf = (runId: string) =>
    `(SELECT coalesce(group_concat(text, char(10)), '') FROM notes WHERE run_id = ${runId})`;
  db.exec(`
    CREATE VIRTUAL TABLE runs_fts USING fts5(
      run_id UNINDEXED, name, tags, notes, preset, status, config,
      tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO runs_fts (run_id, name, tags, notes, preset, status, config)
      SELECT id, name, ${tagsOf('runs.id')}, ${notesOf('runs.id')}, coalesce(preset, ''), status, config FROM runs;

    CREATE TRIGGER runs_fts_insert AFTER INSERT ON runs BEGIN
      INSERT INTO runs_fts (run_id, name, tags, notes, preset, status, config)
        VALUES (new.id, new.name, ${tagsOf('new.id')}, ${notesOf('new.id')}, coalesce(new.preset, ''), new.status,
                new.config);
    END;
    -- Only these columns: progress updates (many per run) must not touch the index.
    CREATE TRIGGER runs_fts_update AFTER UPDATE OF name, preset, status, config ON runs BEGIN
      UPDATE runs_fts SET name = new.name, preset = coalesce(new.preset, ''), status = new.status, config = new.config
        WHERE run_id = new.id;
    END;
    CREATE TRIGGER runs_fts_delete AFTER DELETE ON runs BEGIN
      DELETE FROM runs_fts WHERE run_id = old.id;
    END;
    CREATE TRIGGER tags_fts_insert AFTER INSERT ON tags BEGIN
      UPDATE runs_fts SET tags = ${tagsOf('new.run_id')} WHERE run_id = new.run_id;
    END;
    CREATE TRIGGER tags_fts_delete AFTER DELETE ON tags BEGIN
      UPDATE runs_fts SET tags = ${tagsOf('old.run_id')} WHERE run_id = old.run_id;
    END;
    CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes BEGIN
      UPDATE runs_fts SET notes = ${notesOf('new.run_id')} WHERE run_id = new.run_id;
    END;
    CREATE TRIGGER notes_fts_update AFTER UPDATE OF text ON notes BEGIN
      UPDATE runs_fts SET notes = ${notesOf('new.run_id')} WHERE run_id = new.run_id;
    END;
    CREATE TRIGGER notes_fts_delete AFTER DELETE ON notes BEGIN
      UPDATE runs_fts SET notes = ${notesOf('old.run_id')} WHERE run_id = old.run_id;
    END;
  `);
}

/**
 * Version 3: metric keys in one spelling, "<stream>/<camelCase name>" as the metric catalog (app/contract.ts) has
 * them; until version 2 the training curves were snake_case beside camelCase scores. Written out here, not read
 * from the catalog: a migration must keep doing what it did when it shipped. One pass over each table; should a
 * new key already exist for a run (no lrnet wrote one before this migration), the primary key refuses the rename
 * and the transaction leaves the file at version 2, nothing lost.
 */
export const METRIC_KEY_RENAMES_V3: readonly (readonly [from: string, to: string])[] = [
  ['train/cross_entropy', 'train/crossEntropy'],
  ['train/batch_accuracy', 'train/batchAccuracy'],
  ['train/learning_rate', 'train/learningRate'],
  ['train/images_per_second', 'train/imagesPerSecond'],
  ['epoch/train_accuracy', 'epoch/trainAccuracy'],
];

function renameMetricKeys(db: Database.Database): void {
  const cases = METRIC_KEY_RENAMES_V3.map(() => 'WHEN ? THEN ?').join(' ');
  const olds = METRIC_KEY_RENAMES_V3.map(() => '?').join(', ');
  const params = [...METRIC_KEY_RENAMES_V3.flat(), ...METRIC_KEY_RENAMES_V3.map(([from]) => from)];
  for (const table of ['metrics', 'metric_summary']) {
    db.prepare(`UPDATE ${table} SET key = CASE key ${cases} END WHERE key IN (${olds})`).run(...params);
  }
}

/** Every schema version in order; the array index + 1 is the version. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, description: 'runs, metrics, evaluations, checkpoints, artifacts, tags, notes', up: createCoreTables },
  { version: 2, description: 'full-text search over runs', up: createSearchIndex },
  { version: 3, description: 'metric keys in one spelling (train/batchAccuracy, ...)', up: renameMetricKeys },
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** `PRAGMA user_version`: the schema version the database has reached (0 for a new file). */
export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** The refusal for a database from a newer lrnet, worded for a person who has just typed a command. */
export function newerSchemaError(file: string, found: number): StoreError {
  return new StoreError(
    'newer-schema',
    `${file} was written by a newer lrnet (schema ${found}, this version knows ${SCHEMA_VERSION}): ` +
      'upgrade lrnet or use another --db',
  );
}

/** The refusal for a SQLite file whose header names another application. */
export function foreignApplicationError(file: string, applicationId: number): StoreError {
  return new StoreError(
    'not-lrnet-database',
    `${file} is a SQLite database of another application (application_id ${applicationId}), not an lrnet database: ` +
      'use another --db',
  );
}

/**
 * Refuses SQLite files that belong to another application: a versioned file must carry lrnet's application_id,
 * and an unversioned one must be empty (lrnet never adds its tables next to someone else's).
 */
export function assertLrnetDatabase(db: Database.Database, file: string): void {
  const version = schemaVersion(db);
  if (version > 0) {
    const appId = db.pragma('application_id', { simple: true }) as number;
    if (appId !== APPLICATION_ID) throw foreignApplicationError(file, appId);
  } else {
    const objects = db.prepare(`SELECT count(*) FROM sqlite_schema`).pluck().get() as number;
    if (objects > 0) {
      throw new StoreError(
        'not-lrnet-database',
        `${file} is a SQLite database with tables but no lrnet schema: use another --db`,
      );
    }
  }
}

/**
 * Brings the database to `target` (default: the newest version), one transaction per migration.
 * Throws StoreError 'newer-schema' without writing anything when the database is already past what this build knows.
 * Returns the version reached. `target` below the newest exists for migration tests.
 */
export function migrate(db: Database.Database, target: number = SCHEMA_VERSION, file: string = db.name): number {
  if (!Number.isInteger(target) || target < 0 || target > SCHEMA_VERSION) {
    throw new RangeError(`migrate: target must be an integer in [0, ${SCHEMA_VERSION}], got ${target}`);
  }
  const found = schemaVersion(db);
  if (found > SCHEMA_VERSION) throw newerSchemaError(file, found);
  for (const migration of MIGRATIONS) {
    if (migration.version > target) break;
    const step = db.transaction(() => {
      // Another process may have migrated between our check and our lock; the lock makes this check final.
      const current = schemaVersion(db);
      if (current > SCHEMA_VERSION) throw newerSchemaError(file, current);
      if (current >= migration.version) return;
      if (current !== migration.version - 1) {
        throw new Error(`migrate: database is at schema ${current}, cannot apply migration ${migration.version}`);
      }
      migration.up(db);
      db.pragma(`user_version = ${migration.version}`);
    });
    step.immediate();
  }
  return schemaVersion(db);
}
