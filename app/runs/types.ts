/**
 * The run manager's contract: what the UI, the headless host and the CLI ask of it and the events it sends back.
 * The implementation is createRunManager() in manager.ts; each run trains in its own child process (worker.ts).
 */
import type { TrainingConfig } from '../../engine/config.ts';
import type { TrainingEvent } from '../../engine/train.ts';
import type { RunStatus, Store } from '../store/index.ts';

export type { RunStatus, TrainingConfig, TrainingEvent };

/** Every field optional, recursively: the changes a clone makes to its source's configuration. */
export type DeepPartial<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { -readonly [K in keyof T]?: DeepPartial<T[K]> }
    : T;

export interface StartRunRequest {
  config: TrainingConfig;
  /** Defaults to "<preset>-<id>". */
  name?: string;
  tags?: string[];
}

/**
 * What subscribers hear. Every status change of a run the manager handles is a 'run-status' event; 'run-progress'
 * forwards the engine's events, with step events throttled to at most 10 a second per run (the last step before any
 * other event, and the last one of a burst, always come through).
 */
export type RunEvent =
  | { type: 'run-status'; runId: string; status: RunStatus; error?: string }
  | { type: 'run-progress'; runId: string; event: TrainingEvent }
  /** The run and its files are gone (after delete()). */
  | { type: 'run-deleted'; runId: string };

export interface RunManagerOptions {
  /** An open read-write store; the manager does not close it. */
  store: Store;
  /** Checkpoints go to `<dataFolder>/runs/<runId>/checkpoints/`. */
  dataFolder: string;
  /** Runs training at once (default 1); the others wait 'queued'. */
  concurrency?: number;
}

export interface RunManager {
  /** Validates the config (ConfigError lists every wrong field), creates the run 'queued' and returns its id. */
  start(request: StartRunRequest): Promise<string>;
  /**
   * A running run stops after writing a checkpoint (resolves once it is 'stopped'); a queued one becomes 'stopped'
   * at once. Finished runs are left as they are.
   */
  stop(runId: string): Promise<void>;
  /**
   * Queues a stopped, interrupted or failed run again; it continues from its last checkpoint (from the start when
   * it has none). Also adopts a run left 'queued' by a manager that is gone. A run 'running' under a claim that
   * cannot be checked (another host) is refused, RunManagerError('claimed'), unless `steal`: the user confirmed that
   * its process is gone, and the run is released and resumed here.
   */
  resume(runId: string, options?: { readonly steal?: boolean }): Promise<void>;
  /** Starts a new run with the source run's configuration and `changes` merged in (validated like start). */
  clone(runId: string, changes: DeepPartial<TrainingConfig> | Readonly<Record<string, unknown>>, name?: string): Promise<string>;
  /**
   * Stops the run if it trains here (without a final checkpoint), then deletes its rows and its files. A run held by
   * a process that cannot be checked (another host) is deleted only with `force` (see resume's `steal`).
   */
  delete(runId: string, options?: { readonly force?: boolean }): Promise<void>;
  /** Returns the function that unsubscribes. A listener that throws is reported on stderr and kept. */
  subscribe(listener: (event: RunEvent) => void): () => void;
  /**
   * Stops every running run (each writes a checkpoint and becomes 'stopped') and marks queued ones 'stopped', so
   * nothing is left 'queued' without a manager to run it; every one of them can be resumed later.
   */
  close(): Promise<void>;
}

/** Why the manager refused a request; the message says what to do instead. */
export class RunManagerError extends Error {
  override name = 'RunManagerError';
  constructor(
    /** 'claimed': another process holds the run (see claims.ts); the message names it and how to take over. */
    readonly code: 'not-resumable' | 'not-managed' | 'claimed' | 'closed',
    message: string,
  ) {
    super(message);
  }
}

/** Metric keys of the training curves; the metric catalog in app/contract.ts defines them and every score. */
export { METRIC_KEYS } from '../contract.ts';
