/**
 * Opening the database. Before anything is written the file is vetted with a read-only connection, so a file that
 * is not lrnet's, or that a newer lrnet wrote, is refused byte-for-byte untouched (even switching it to WAL mode
 * would rewrite its header).
 */
import Database from 'better-sqlite3';
import { accessSync, closeSync, constants as fsConstants, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { sqliteFailure, StoreError } from './errors.ts';
import { fileBlockingFolder } from './paths.ts';
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

/** What a person should be told about a SQLite file that cannot be read back whole. */
function damaged(file: string, detail: string): StoreError {
  return new StoreError(
    'damaged',
    `${file} is damaged (${detail}); lrnet has not changed it: restore it from a backup, or move it away and lrnet starts a new one, or use another --db`,
  );
}

/**
 * A file-system error met while looking at or next to the database, as a StoreError naming the path and what to do;
 * errors that are not about the environment (bugs) are returned unchanged.
 */
function fileSystemFailure(error: unknown, file: string): unknown {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOTDIR' || code === 'EEXIST') {
    const blocker = fileBlockingFolder(path.dirname(file)) ?? path.dirname(file);
    return new StoreError(
      'unavailable',
      `cannot use ${file}: ${blocker} is a file, not a folder; use another --db (or point LRNET_HOME at a folder)`,
      { cause: error },
    );
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new StoreError(
      'unavailable',
      `cannot use ${file}: ${(error as Error).message}; make the file and its folder readable and writable for you (is it another user's, read-only or immutable?), or use another --db`,
      { cause: error },
    );
  }
  return error;
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
    throw fileSystemFailure(error, file);
  }
  if (size === 0) return undefined;
  const header = Buffer.alloc(100);
  let read: number;
  try {
    const fd = openSync(file, 'r');
    try {
      read = readSync(fd, header, 0, header.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    throw fileSystemFailure(error, file);
  }
  if (!header.subarray(0, SQLITE_HEADER.length).equals(SQLITE_HEADER)) throw notSqlite(file, 'not a SQLite file');
  if (read < header.length) throw notSqlite(file, 'damaged: shorter than a SQLite header');
  const walContent = fileSize(`${file}-wal`) > 0;
  // Without WAL content the file alone must hold every page its header announces (byte 16: page size, 1 meaning
  // 65536; byte 28: page count, trustworthy when the change counters at bytes 24 and 92 agree). SQLite itself would
  // only notice a missing page when a query reaches it, or report "malformed" without saying why.
  if (!walContent) {
    const pageSize = header.readUInt16BE(16) === 1 ? 65536 : header.readUInt16BE(16);
    const pageCount = header.readUInt32BE(24) === header.readUInt32BE(92) ? header.readUInt32BE(28) : 0;
    if (size < pageSize) throw damaged(file, `${size} bytes, less than one ${pageSize}-byte page: only its header is left`);
    if (pageCount > 0 && size < pageCount * pageSize) {
      throw damaged(file, `truncated: ${size} bytes of the ${pageCount * pageSize} its header announces`);
    }
  }
  // Opening a WAL-mode database, even read-only, creates its -wal and -shm files. When there is no WAL content the
  // header is authoritative (no WAL frame can hold a newer page 1), so the version is read from it directly:
  // user_version at byte 60, application_id at byte 68, big-endian; byte 18 is 2 in WAL mode.
  if (header[18] === 2 && !walContent) {
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
    if (code === 'SQLITE_NOTADB') throw notSqlite(file, 'damaged or not a SQLite file', error);
    throw sqliteFailure(error, file) ?? error;
  } finally {
    probe?.close();
  }
}

/**
 * Refuses, before SQLite touches anything, a database this process could only half use: SQLite would open a file
 * it cannot write read-only without a word (and leave -wal/-shm files owned by us in someone else's folder), then
 * fail at the first write.
 */
function assertWritable(file: string, exists: boolean): void {
  const folder = path.dirname(file);
  try {
    if (exists) accessSync(file, fsConstants.R_OK | fsConstants.W_OK);
  } catch (error) {
    throw new StoreError(
      'unavailable',
      `cannot write ${file} (${(error as Error).message}): lrnet writes to its database even to list runs; ` +
        'make it writable for you (is it another user\'s, read-only or immutable?), or copy it and pass --db COPY',
      { cause: error },
    );
  }
  try {
    if (!exists) mkdirSync(folder, { recursive: true });
  } catch (error) {
    throw fileSystemFailure(error, file);
  }
  try {
    accessSync(folder, fsConstants.W_OK);
  } catch (error) {
    throw new StoreError(
      'unavailable',
      `cannot write in the folder ${folder} (${(error as Error).message}): SQLite keeps its -wal and -shm files next to ` +
        'the database; make the folder writable for you, or use another --db (or LRNET_HOME)',
      { cause: error },
    );
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
  if (!readonly) assertWritable(absolute, found !== undefined || existsSync(absolute));
  let db: Database.Database | undefined;
  try {
    db = new Database(absolute, { readonly, fileMustExist: readonly });
    configure(db, readonly, options.busyTimeoutMs ?? 5000);
    if (!readonly) {
      // Between vet() and here another process may have created or upgraded the file; check again under the
      // connection that will write (migrate() re-checks inside each transaction too).
      assertLrnetDatabase(db, absolute);
      migrateOrExplain(db, absolute);
    }
    return new SqliteStore(db, absolute, { readonly, now: options.now ?? Date.now });
  } catch (error) {
    db?.close();
    if (error instanceof StoreError) throw error;
    throw sqliteFailure(error, absolute) ?? error;
  }
}

/**
 * migrate(), with a failing migration explained: the migrations of every released version are tested, so one
 * that fails on a real file means the file is not what its user_version says (set by hand, or a schema edited
 * outside lrnet). Each migration is one transaction, so the file is left as it was.
 */
function migrateOrExplain(db: Database.Database, file: string): void {
  const before = schemaVersion(db);
  try {
    migrate(db, SCHEMA_VERSION, file);
  } catch (error) {
    if (error instanceof StoreError || sqliteFailure(error, file)) throw error;
    throw new StoreError(
      'damaged',
      `${file} says it has schema ${before} but its tables do not match it (upgrading to ${SCHEMA_VERSION} failed: ` +
        `${(error as Error).message}); lrnet has not changed it: was its PRAGMA user_version set by hand? ` +
        'Restore it from a backup or use another --db',
      { cause: error },
    );
  }
}
