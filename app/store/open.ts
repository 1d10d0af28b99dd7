/**
 * Opening the database. Before anything is written the file is vetted with a read-only connection, so a file that
 * is not lrnet's, or that a newer lrnet wrote, is refused byte-for-byte untouched (even switching it to WAL mode
 * would rewrite its header).
 */
import Database from 'better-sqlite3';
import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { StoreError } from './errors.ts';
import {
  APPLICATION_ID,
  assertLrnetDatabase,
  foreignApplicationError,
  migrate,
  newerSchemaError,
  schemaVersion,
  SCHEMA_VERSION,
} from './schema.ts';
import { SqliteStore } from './sqlite-store.ts';
import type { ReadonlyStore, Store } from './types.ts';

export interface OpenStoreOptions {
  /** Open for reading only: nothing is created or migrated, and the write API is absent. */
  readonly readonly?: boolean;
  /** How long a write waits for another connection's lock before failing (default 5000 ms). */
  readonly busyTimeoutMs?: number;
  /** Clock in ms since the epoch; tests pin it. */
  readonly now?: () => number;
}

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/** What a person should be told about a file that is not a SQLite database. */
function notSqlite(file: string, detail: string, cause?: unknown): StoreError {
  return new StoreError('not-lrnet-database', `${file} is not an lrnet database (${detail}): use another --db`, { cause });
}

/** Size of a file, 0 when it does not exist. */
function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/**
 * Checks an existing file without changing it. Returns its schema version, or undefined when there is no file
 * (or an empty one, which SQLite treats as a new database).
 */
function vet(file: string): number | undefined {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw notSqlite(file, st.isDirectory() ? 'it is a folder' : 'it is not a regular file');
    size = st.size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (size === 0) return undefined;
  const header = Buffer.alloc(100);
  const fd = openSync(file, 'r');
  let read: number;
  try {
    read = readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (!header.subarray(0, SQLITE_HEADER.length).equals(SQLITE_HEADER)) throw notSqlite(file, 'not a SQLite file');
  if (read < header.length) throw notSqlite(file, 'damaged: shorter than a SQLite header');
  // Opening a WAL-mode database, even read-only, creates its -wal and -shm files. When there is no WAL content the
  // header is authoritative (no WAL frame can hold a newer page 1), so the version is read from it directly:
  // user_version at byte 60, application_id at byte 68, big-endian; byte 18 is 2 in WAL mode.
  if (header[18] === 2 && fileSize(`${file}-wal`) === 0) {
    const version = header.readInt32BE(60);
    if (version > 0) {
      const applicationId = header.readInt32BE(68);
      if (applicationId !== APPLICATION_ID) throw foreignApplicationError(file, applicationId);
      return version;
    }
  }
  let probe: Database.Database | undefined;
  try {
    probe = new Database(file, { readonly: true, fileMustExist: true });
    assertLrnetDatabase(probe, file);
    return schemaVersion(probe);
  } catch (error) {
    if (error instanceof StoreError) throw error;
    const code = (error as { code?: string }).code;
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') throw notSqlite(file, 'damaged or not a SQLite file', error);
    throw error;
  } finally {
    probe?.close();
  }
}

function configure(db: Database.Database, readonly: boolean, busyTimeoutMs: number): void {
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
  // WAL: readers never block the writer and vice versa (the UI reads while training writes). In WAL mode
  // synchronous=NORMAL stays consistent after a crash and may only lose the last commits on power loss.
  if (!readonly) db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
}

/**
 * Opens (creating and migrating when needed) the store at `file`; see defaultDatabasePath() for the usual place.
 * Throws StoreError 'not-lrnet-database' for a file that is not an lrnet database and 'newer-schema' for one written
 * by a newer lrnet, in both cases without modifying it. With { readonly: true } the database must exist and be at
 * this build's schema version.
 */
export function openStore(file: string, options: OpenStoreOptions & { readonly: true }): ReadonlyStore;
export function openStore(file: string, options?: OpenStoreOptions): Store;
export function openStore(file: string, options: OpenStoreOptions = {}): Store | ReadonlyStore {
  const absolute = path.resolve(file);
  const readonly = options.readonly === true;
  const found = vet(absolute);
  if (found !== undefined && found > SCHEMA_VERSION) throw newerSchemaError(absolute, found);
  if (readonly && found === undefined) {
    throw new StoreError('not-ready', `there is no lrnet database at ${absolute}`);
  }
  if (readonly && found !== SCHEMA_VERSION) {
    throw new StoreError(
      'not-ready',
      `${absolute} has schema ${found} and needs upgrading to ${SCHEMA_VERSION}: open it once without --readonly`,
    );
  }
  if (!readonly) mkdirSync(path.dirname(absolute), { recursive: true });
  const db = new Database(absolute, { readonly, fileMustExist: readonly });
  try {
    configure(db, readonly, options.busyTimeoutMs ?? 5000);
    if (!readonly) {
      // Between vet() and here another process may have created or upgraded the file; check again under the
      // connection that will write (migrate() re-checks inside each transaction too).
      assertLrnetDatabase(db, absolute);
      migrate(db, SCHEMA_VERSION, absolute);
    }
    return new SqliteStore(db, absolute, { readonly, now: options.now ?? Date.now });
  } catch (error) {
    db.close();
    throw error;
  }
}
