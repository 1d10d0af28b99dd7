/**
 * The one error class the store throws for problems a person can act on (a wrong path, an unknown run id, a newer
 * database). Anything else that escapes the store is a bug or an I/O failure and keeps its original type.
 */

/** What went wrong, so callers can branch without parsing messages (the CLI maps `not-found` to exit code 2, say). */
export type StoreErrorCode =
  /** The file exists but is not an lrnet database (not SQLite, or SQLite written by another application). */
  | 'not-lrnet-database'
  /** The database was written by a newer lrnet: its schema version is higher than this build knows. */
  | 'newer-schema'
  /** A read-only open of a database that still needs migrating (or does not exist). */
  | 'not-ready'
  /** No run matches the id or prefix. */
  | 'not-found'
  /** A run id prefix matches more than one run. */
  | 'ambiguous-id'
  /** A run status change that the lifecycle does not allow (e.g. completed -> running without resume). */
  | 'invalid-transition'
  /** An argument the store cannot accept (empty tag, progress outside [0, 1], non-JSON config...). */
  | 'invalid-argument'
  /** Use of a store or metric writer after close(). */
  | 'closed'
  /** The file is an lrnet database but SQLite finds it damaged (truncated, corrupted pages, inconsistent schema). */
  | 'damaged'
  /** The file or its folder cannot be read or written by this process (permissions, immutable, read-only disk). */
  | 'unavailable'
  /** Another connection held the database lock for longer than busy_timeout. */
  | 'busy';

/** An expected store failure with a message meant for the person at the keyboard. */
export class StoreError extends Error {
  override readonly name = 'StoreError';

  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The advice that ends every message about a database lrnet cannot use: it never repairs or replaces the file. */
const LEFT_AS_IS = 'lrnet has not changed it';

/**
 * Turns a failure of SQLite with the file or its surroundings (better-sqlite3's SqliteError, recognized by its SQLITE_* code) into a StoreError
 * that names the file and what to do, or returns undefined for any other error. The SQLite message is kept in
 * parentheses for whoever has to dig further.
 */
export function sqliteFailure(error: unknown, file: string): StoreError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return undefined;
  const detail = `${(error as Error).message}, ${code}`;
  const options = { cause: error };
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return new StoreError(
      'damaged',
      `${file} is damaged (${detail}); ${LEFT_AS_IS}: restore it from a backup, or move it away and lrnet starts a new one, or use another --db`,
      options,
    );
  }
  if (isBusyError(error)) {
    return new StoreError(
      'busy',
      `${file} is locked by another process (${detail}): wait until that process (a training run, lrnet serve, a sqlite3 shell) is done, then try again`,
      options,
    );
  }
  if (code.startsWith('SQLITE_READONLY') || code === 'SQLITE_PERM' || code === 'SQLITE_AUTH') {
    return new StoreError(
      'unavailable',
      `${file} cannot be written (${detail}): lrnet needs to write the file and create files next to it; make both writable for you, or use another --db`,
      options,
    );
  }
  if (code.startsWith('SQLITE_CANTOPEN')) {
    return new StoreError(
      'unavailable',
      `cannot open ${file} (${detail}): check that its folder exists and that you may read and write the file and the folder, or use another --db`,
      options,
    );
  }
  if (code === 'SQLITE_FULL') {
    return new StoreError('unavailable', `cannot write ${file}: the disk is full (${detail}); free some space and try again`, options);
  }
  if (code.startsWith('SQLITE_IOERR')) {
    return new StoreError(
      'unavailable',
      `cannot read or write ${file} (${detail}): check the disk, and that the file is not immutable or on a read-only mount`,
      options,
    );
  }
  // SQLITE_ERROR, SQLITE_CONSTRAINT, SQLITE_MISMATCH...: a wrong statement or argument is lrnet's bug, not the file's.
  return undefined;
}

/** True for errors SQLite raises when another connection holds the lock for longer than busy_timeout. */
export function isBusyError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}
