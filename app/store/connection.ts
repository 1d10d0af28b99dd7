/**
 * One open better-sqlite3 connection as the store's parts share it: cached prepared statements and write
 * transactions. Every write runs in a BEGIN IMMEDIATE transaction: a deferred transaction that reads and then
 * writes can fail with SQLITE_BUSY at once when another process commits in between (busy_timeout does not help
 * there), whereas IMMEDIATE waits for the write lock up front.
 */
import type Database from 'better-sqlite3';
import { StoreError } from './errors.ts';

export class Connection {
  private readonly statements = new Map<string, Database.Statement>();
  private closed = false;

  constructor(
    readonly db: Database.Database,
    /** Absolute path of the database file, for messages. */
    readonly file: string,
  ) {}

  /** The prepared statement for `sql`, prepared once per connection. */
  stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (s === undefined) {
      this.checkOpen();
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction (or a savepoint when already inside one). */
  write<T>(fn: () => T): T {
    this.checkOpen();
    return this.db.transaction(fn).immediate();
  }

  checkOpen(): void {
    if (this.closed) throw new StoreError('closed', `the store ${this.file} is closed`);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Closes the database; `optimize` first leaves the query planner a hint (a writable connection only). */
  close(optimize: boolean): void {
    if (this.closed) return;
    if (optimize) {
      try {
        this.db.pragma('optimize');
      } catch {
        // Only a planner hint; never worth failing a close over.
      }
    }
    this.closed = true;
    this.statements.clear();
    this.db.close();
  }
}
