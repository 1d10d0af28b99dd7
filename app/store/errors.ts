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
  | 'closed';

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

/** True for errors SQLite raises when another connection holds the lock for longer than busy_timeout. */
export function isBusyError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}
