/**
 * The run manager: a queue of runs with a concurrency limit, each run training in its own child process (worker.ts)
 * so the engine never blocks the process that serves the UI and a crash takes down only that run. Everything a
 * worker reports is logged into the store by a RunRecorder in this process, the store's only writer for the run.
 *
 * Runs it sets 'running' are claimed in the store by this process, so if it dies (even by SIGKILL) the next
 * markInterruptedRuns() marks them 'interrupted'; its workers notice the closed IPC channel and exit.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig, type TrainingConfig } from '../../engine/config.ts';
import { forkTypeScript } from '../../engine/typescript-entry.ts';
import { storedConfig } from './stored-config.ts';
import type { TrainingEvent } from '../../engine/train.ts';
import { StoreError, type DeletedRun, type RunStatus, type Store } from '../store/index.ts';
import { deleteExportFiles } from '../export/folders.ts';
import { SERIALIZATION, isWorkerMessage, type ManagerMessage, type WorkerMessage } from './protocol.ts';
import { takeOverRun } from './claims.ts';
import { RunRecorder } from './recorder.ts';
import {
  RunManagerError,
  type DeepPartial,
  type RunEvent,
  type RunManager,
  type RunManagerOptions,
  type StartRunRequest,
} from './types.ts';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
/** Step events reach subscribers at most this often per run (10 a second). */
const STEP_EVENT_INTERVAL_MS = 100;
/** How an API caller takes over a run held by a process that cannot be checked (see claims.ts). */
const STEAL_HINT = 'resume it with steal: true to take it over';
/** How much of a worker's stderr is kept to explain a crash. */
const STDERR_TAIL_BYTES = 4000;

/** This build's version, recorded with each run. */
export const APP_VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/** Where a run's files live: `<dataFolder>/runs/<runId>`; checkpoints in its `checkpoints/` folder. */
export function runFolder(dataFolder: string, runId: string): string {
  return path.join(dataFolder, 'runs', runId);
}

export function checkpointFolder(dataFolder: string, runId: string): string {
  return path.join(runFolder(dataFolder, runId), 'checkpoints');
}

/**
 * Deletes the files of a run that the store has just forgotten, and only those lrnet wrote for it: the checkpoint
 * files it recorded (plain files only), the checkpoint files its training wrote into its own checkpoints folder
 * (named after the run, or after the step alone as before checkpoint names carried the run id; also ones a crash
 * left unrecorded or half-written), and its exports, only where an lrnet export made from this run's checkpoints
 * still is (see deleteExportFiles: a user's file at an artifact's path, or another run's export, stays). Then the
 * folders this leaves empty in the run's own folder. A file the user put in the run's folder keeps it (and is
 * returned in `kept`). Returns the paths removed.
 */
export function deleteRunFiles(dataFolder: string, deleted: DeletedRun): { removed: string[]; kept: string[] } {
  const removed: string[] = [];
  const own = runFolder(dataFolder, deleted.id);
  const removeFile = (file: string) => {
    try {
      if (statSync(file).isFile()) {
        rmSync(file, { force: true });
        removed.push(file);
      }
    } catch {
      // Already gone.
    }
  };
  for (const file of deleted.checkpointPaths) removeFile(file);
  const checkpoints = checkpointFolder(dataFolder, deleted.id);
  const written = new RegExp(`^(${deleted.id}-)?step-\\d+\\.ckpt(\\.tmp-\\d+)?$`);
  for (const name of listFolder(checkpoints)) if (written.test(name)) removeFile(path.join(checkpoints, name));
  const ownCheckpoint = (file: string) => deleted.checkpointPaths.some((c) => path.resolve(c) === path.resolve(file)) ||
    (path.dirname(path.resolve(file)) === checkpoints && written.test(path.basename(file)));
  for (const artifact of deleted.artifactPaths) removed.push(...deleteExportFiles(artifact, ownCheckpoint));
  const kept = removeEmptyFolders(own);
  if (!existsSync(own)) removed.push(own);
  return { removed, kept };
}

/** The names in a folder; none when it does not exist or cannot be read. */
function listFolder(folder: string): string[] {
  try {
    return readdirSync(folder);
  } catch {
    return [];
  }
}

/** Removes `folder` and the folders below it that hold nothing; returns the files left (what lrnet did not write). */
function removeEmptyFolders(folder: string): string[] {
  const kept: string[] = [];
  for (const entry of listFolder(folder)) {
    const full = path.join(folder, entry);
    let isFolder = false;
    try {
      isFolder = lstatSync(full).isDirectory();
    } catch {
      continue;
    }
    if (isFolder) kept.push(...removeEmptyFolders(full));
    else kept.push(full);
  }
  try {
    rmdirSync(folder);
  } catch {
    // Not empty (kept files), or already gone.
  }
  return kept;
}

/** `base` with `changes` merged in: objects recursively, everything else (arrays included) replaced. */
export function mergeConfig(base: unknown, changes: unknown): unknown {
  const isPlain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isPlain(base) || !isPlain(changes)) return changes === undefined ? base : changes;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(changes)) {
    if (value === undefined) continue;
    // Defined, not assigned: a "__proto__" key from JSON stays a key (that parseConfig then refuses by name) instead
    // of replacing the object's prototype.
    const old = Object.hasOwn(merged, key) ? merged[key] : undefined;
    Object.defineProperty(merged, key, { value: isPlain(value) && isPlain(old) ? mergeConfig(old, value) : value, enumerable: true, writable: true, configurable: true });
  }
  return merged;
}

/** One run with a worker process. */
interface ActiveRun {
  readonly runId: string;
  readonly child: ChildProcess;
  readonly recorder: RunRecorder;
  readonly start: Extract<ManagerMessage, { type: 'start' }>;
  /** The worker's last word: 'done' or 'failed'; absent when it died without one. */
  outcome?: Extract<WorkerMessage, { type: 'done' | 'failed' }>;
  stopRequested: boolean;
  /** Killed for delete(): nothing more is recorded. */
  deleting: boolean;
  stderrTail: string;
  /** Resolves once the worker is gone and the outcome recorded. */
  readonly finished: Promise<void>;
  resolveFinished: () => void;
  lastStepSent: number;
  pendingStep?: TrainingEvent;
  stepTimer?: ReturnType<typeof setTimeout>;
}

class ProcessRunManager implements RunManager {
  private readonly store: Store;
  private readonly dataFolder: string;
  private readonly concurrency: number;
  private readonly queue: string[] = [];
  private readonly active = new Map<string, ActiveRun>();
  private readonly listeners = new Set<(event: RunEvent) => void>();
  private closed = false;

  constructor(options: RunManagerOptions) {
    this.store = options.store;
    this.dataFolder = path.resolve(options.dataFolder);
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`concurrency must be an integer >= 1, got ${concurrency}`);
    }
    this.concurrency = concurrency;
  }

  async start(request: StartRunRequest): Promise<string> {
    this.checkOpen();
    const config = request.config;
    const run = this.store.createRun({
      config,
      preset: config.preset,
      seed: config.seed,
      appVersion: APP_VERSION,
      ...(request.name !== undefined ? { name: request.name } : {}),
      ...(request.tags !== undefined ? { tags: request.tags } : {}),
    });
    this.enqueue(run.id);
    return run.id;
  }

  async stop(runId: string): Promise<void> {
    const id = this.store.resolveRunId(runId);
    const active = this.active.get(id);
    if (active) {
      if (!active.stopRequested) {
        active.stopRequested = true;
        this.send(active, { type: 'stop' });
      }
      return active.finished;
    }
    const queued = this.queue.indexOf(id);
    if (queued >= 0) this.queue.splice(queued, 1);
    const run = this.store.getRun(id);
    if (run.status === 'queued') {
      this.store.updateRun(id, { status: 'stopped' });
      this.emit({ type: 'run-status', runId: id, status: 'stopped' });
    } else if (run.status === 'running') {
      // Not trained here: a process that is gone is released ('interrupted'), anything else is refused by name.
      takeOverRun(this.store, id, { force: false, howToForce: STEAL_HINT });
    }
  }

  async resume(runId: string, options: { readonly steal?: boolean } = {}): Promise<void> {
    this.checkOpen();
    const id = this.store.resolveRunId(runId);
    if (this.active.has(id) || this.queue.includes(id)) return;
    // A run stuck 'running' for a process that is gone becomes 'interrupted' here (refused while it cannot be told).
    takeOverRun(this.store, id, { force: options.steal === true, howToForce: STEAL_HINT });
    const run = this.store.getRun(id);
    switch (run.status) {
      case 'stopped':
      case 'interrupted':
      case 'failed':
        this.store.updateRun(id, { status: 'queued', error: null }, { resume: true });
        break;
      case 'queued':
        // Left queued by a manager that closed or died before starting it: adopt it.
        break;
      case 'completed':
        throw new RunManagerError('not-resumable', `run ${id} is completed; clone it to train with more epochs`);
      case 'running':
        throw new RunManagerError('not-resumable', `run ${id} is already running`);
    }
    this.enqueue(id);
  }

  async clone(runId: string, changes: DeepPartial<TrainingConfig> | Readonly<Record<string, unknown>>, name?: string): Promise<string> {
    this.checkOpen();
    const source = this.store.getRun(runId);
    // The merged configuration is new input: parse it (a ConfigError lists what the changes broke).
    const config = parseConfig(mergeConfig(source.config, changes));
    return this.start({ config, ...(name !== undefined ? { name } : {}) });
  }

  async delete(runId: string, options: { readonly force?: boolean } = {}): Promise<void> {
    const id = this.store.resolveRunId(runId);
    const queued = this.queue.indexOf(id);
    if (queued >= 0) this.queue.splice(queued, 1);
    const active = this.active.get(id);
    if (active) {
      // No final checkpoint: the run and its files are about to go.
      active.deleting = true;
      active.child.kill('SIGKILL');
      await active.finished;
    } else {
      takeOverRun(this.store, id, { force: options.force === true, howToForce: 'delete it with force: true to delete it anyway' });
    }
    const deleted = this.store.deleteRun(id);
    deleteRunFiles(this.dataFolder, deleted);
    this.emit({ type: 'run-deleted', runId: id });
  }

  subscribe(listener: (event: RunEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const id of this.queue.splice(0)) {
      try {
        this.store.updateRun(id, { status: 'stopped', error: 'the run manager closed before this run started' });
        this.emit({ type: 'run-status', runId: id, status: 'stopped' });
      } catch (error) {
        this.report(`could not mark queued run ${id} stopped`, error);
      }
    }
    await Promise.all([...this.active.keys()].map((id) => this.stop(id)));
  }

  // ---- the queue -------------------------------------------------------------------------------------------------

  private checkOpen(): void {
    if (this.closed) throw new RunManagerError('closed', 'the run manager is closed');
  }

  private enqueue(id: string): void {
    this.queue.push(id);
    this.emit({ type: 'run-status', runId: id, status: 'queued' });
    this.pump();
  }

  private pump(): void {
    while (!this.closed && this.active.size < this.concurrency && this.queue.length > 0) {
      const id = this.queue.shift()!;
      try {
        this.launch(id);
      } catch (error) {
        this.failUnlaunched(id, error);
      }
    }
  }

  /** A run that could not get a worker (its checkpoint is gone, the fork failed) fails with the reason. */
  private failUnlaunched(id: string, error: unknown): void {
    if (error instanceof StoreError && (error.code === 'invalid-transition' || error.code === 'not-found')) return; // stopped or deleted meanwhile
    const message = error instanceof Error ? error.message : String(error);
    try {
      this.store.updateRun(id, { status: 'failed', error: message });
      this.emit({ type: 'run-status', runId: id, status: 'failed', error: message });
    } catch (inner) {
      this.report(`could not mark run ${id} failed (${message})`, inner);
    }
  }

  private launch(id: string): void {
    const run = this.store.getRun(id);
    if (run.status !== 'queued') return; // stopped or claimed elsewhere since it was queued
    const config = storedConfig(run);
    let resumeFrom: string | undefined;
    if (run.lastCheckpointId !== null) {
      const checkpoint = run.checkpoints.find((c) => c.id === run.lastCheckpointId);
      if (checkpoint && !existsSync(checkpoint.path)) {
        throw new Error(`cannot resume: its last checkpoint ${checkpoint.path} is missing`);
      }
      resumeFrom = checkpoint?.path;
    }
    const checkpointDir = resumeFrom ? path.dirname(resumeFrom) : checkpointFolder(this.dataFolder, id);
    mkdirSync(checkpointDir, { recursive: true });
    this.store.updateRun(id, { status: 'running', error: null });

    const child = forkTypeScript(WORKER, [], {
      serialization: SERIALIZATION,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let resolveFinished!: () => void;
    const finished = new Promise<void>((resolve) => (resolveFinished = resolve));
    const active: ActiveRun = {
      runId: id,
      child,
      recorder: new RunRecorder(this.store, id, config, { onError: (error) => this.report(`recording run ${id}`, error) }),
      start: { type: 'start', runId: id, config, checkpointDir, ...(resumeFrom ? { resumeFrom } : {}) },
      stopRequested: false,
      deleting: false,
      stderrTail: '',
      finished,
      resolveFinished,
      lastStepSent: 0,
    };
    this.active.set(id, active);
    child.stdout!.resume(); // TensorFlow.js greets on stdout; nobody reads it
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      active.stderrTail = (active.stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    });
    child.on('message', (message: unknown) => {
      if (isWorkerMessage(message)) this.onMessage(active, message);
    });
    child.on('error', (error) => {
      // Spawning failed or a message could not be sent; 'close' still follows when the process existed.
      active.stderrTail += `\n${error.message}`;
    });
    // 'close' comes after 'exit', once stdio and the IPC channel are closed: every message has been handled.
    child.on('close', (code, signal) => this.onClose(active, code, signal));
    this.emit({ type: 'run-status', runId: id, status: 'running' });
  }

  private send(active: ActiveRun, message: ManagerMessage): void {
    if (!active.child.connected) return;
    active.child.send(message, (error) => {
      if (error) active.stderrTail += `\ncould not send '${message.type}' to the worker: ${error.message}`;
    });
  }

  private onMessage(active: ActiveRun, message: WorkerMessage): void {
    switch (message.type) {
      case 'ready':
        this.send(active, active.start);
        if (active.stopRequested) this.send(active, { type: 'stop' });
        return;
      case 'event':
        if (active.deleting) return;
        active.recorder.record(message.event);
        this.forward(active, message.event);
        return;
      case 'done':
      case 'failed':
        active.outcome = message;
        return;
    }
  }

  /** Passes an engine event to subscribers, at most one step event per STEP_EVENT_INTERVAL_MS. */
  private forward(active: ActiveRun, event: TrainingEvent): void {
    if (event.type !== 'step') {
      this.flushStep(active);
      this.emit({ type: 'run-progress', runId: active.runId, event });
      return;
    }
    const wait = active.lastStepSent + STEP_EVENT_INTERVAL_MS - Date.now();
    if (wait <= 0 && active.stepTimer === undefined) {
      active.lastStepSent = Date.now();
      this.emit({ type: 'run-progress', runId: active.runId, event });
      return;
    }
    active.pendingStep = event;
    active.stepTimer ??= setTimeout(() => this.flushStep(active), Math.max(0, wait));
  }

  private flushStep(active: ActiveRun): void {
    if (active.stepTimer !== undefined) {
      clearTimeout(active.stepTimer);
      active.stepTimer = undefined;
    }
    const event = active.pendingStep;
    if (event === undefined) return;
    active.pendingStep = undefined;
    active.lastStepSent = Date.now();
    this.emit({ type: 'run-progress', runId: active.runId, event });
  }

  private onClose(active: ActiveRun, code: number | null, signal: NodeJS.Signals | null): void {
    const id = active.runId;
    this.flushStep(active);
    this.active.delete(id);
    try {
      if (active.deleting) {
        active.recorder.close();
        return;
      }
      const outcome = active.outcome;
      let status: RunStatus;
      let error: string | undefined;
      if (outcome?.type === 'done') {
        status = outcome.result.status;
      } else {
        status = 'failed';
        error = outcome?.type === 'failed' ? outcome.error : this.crashMessage(active, code, signal);
      }
      try {
        active.recorder.finish(status === 'failed' ? { status, error: error! } : { status: status as 'completed' | 'stopped' });
      } catch (storeError) {
        this.report(`could not record the end of run ${id}`, storeError);
      }
      this.emit({ type: 'run-status', runId: id, status, ...(error !== undefined ? { error } : {}) });
    } finally {
      active.resolveFinished();
      this.pump();
    }
  }

  /** What to tell a person when a worker died without reporting: the exit and the end of its stderr. */
  private crashMessage(active: ActiveRun, code: number | null, signal: NodeJS.Signals | null): string {
    const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
    const tail = active.stderrTail.trim();
    return `the training process ${how} without reporting a result${tail ? `; its last output:\n${tail}` : ''}`;
  }

  private emit(event: RunEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.report('a run event listener threw', error);
      }
    }
  }

  private report(what: string, error: unknown): void {
    process.stderr.write(`lrnet run manager: ${what}: ${error instanceof Error ? error.message : String(error)}\n`);
  }
}

/** A run manager over an open store. Close it (which stops its runs, resumably) before closing the store. */
export function createRunManager(options: RunManagerOptions): RunManager {
  return new ProcessRunManager(options);
}
