/**
 * Runs the engine in a worker thread, so the thread that asked for it keeps a free event loop.
 *
 * Why: the training loop only awaits promises that the CPU and wasm backends resolve at once, so while it trains
 * no timer, signal handler or IPC message of its thread ever runs. A stop request (Ctrl-C, the manager's 'stop'),
 * the parent's death ('disconnect') and the MetricWriter's timed flush would all wait for the run to end. In a
 * thread of its own the engine can starve only itself; the stop request reaches it through shared memory, which it
 * reads at each event (the engine checks its AbortSignal before every step, right after the previous step's event).
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { typeScriptWorker } from '../../engine/typescript-entry.ts';
import type { TrainingConfig } from '../../engine/config.ts';
import type { TrainingEvent } from '../../engine/train.ts';
import type { WorkerResult } from './protocol.ts';

/** What a training thread is asked to do. */
export interface TrainingJob {
  readonly config: TrainingConfig;
  readonly checkpointDir?: string;
  /** Starts the checkpoint file names: the run id, so runs sharing a checkpoint folder keep apart. */
  readonly checkpointPrefix?: string;
  readonly resumeFrom?: string;
}

/** The training thread's messages to the thread that started it. */
type ThreadMessage =
  | { readonly type: 'event'; readonly event: TrainingEvent }
  | { readonly type: 'done'; readonly result: WorkerResult }
  | { readonly type: 'failed'; readonly name: string; readonly message: string; readonly stack?: string };

interface ThreadData {
  readonly lrnetTrainingThread: true;
  readonly job: TrainingJob;
  /** Int32Array view: [0] becomes 1 when a stop is requested. */
  readonly stopFlag: SharedArrayBuffer;
}

/** Training threw in the thread; `name` is the engine's error class (ConfigError, TrainingError, DatasetError...). */
export class TrainingFailedError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
    readonly threadStack?: string,
  ) {
    super(message);
    this.name = 'TrainingFailedError';
  }
}

export interface TrainingThread {
  /** Settles when the run ends: the result, or a TrainingFailedError. */
  readonly result: Promise<WorkerResult>;
  /** Asks the run to stop after its current step (it writes a checkpoint when it has a folder for them). */
  stop(): void;
  /** Ends the thread at once, mid-step. */
  terminate(): Promise<void>;
}

/** Starts training `job` in a new worker thread; `onEvent` gets the engine's events on this thread. */
export function startTrainingThread(job: TrainingJob, onEvent: (event: TrainingEvent) => void): TrainingThread {
  const stopFlag = new SharedArrayBuffer(4);
  const flag = new Int32Array(stopFlag);
  const data: ThreadData = { lrnetTrainingThread: true, job, stopFlag };
  const worker = typeScriptWorker(import.meta.url, { workerData: data });
  let settled = false;
  const result = new Promise<WorkerResult>((resolve, reject) => {
    worker.on('message', (message: ThreadMessage) => {
      switch (message.type) {
        case 'event':
          onEvent(message.event);
          return;
        case 'done':
          settled = true;
          resolve(message.result);
          void worker.terminate();
          return;
        case 'failed':
          settled = true;
          reject(new TrainingFailedError(message.name, message.message, message.stack));
          void worker.terminate();
          return;
      }
    });
    worker.on('error', (error) => {
      if (settled) return;
      settled = true;
      reject(new TrainingFailedError(error.name, error.message, error.stack));
    });
    worker.on('exit', (code) => {
      if (settled) return;
      settled = true;
      reject(new TrainingFailedError('Error', `the training thread ended (exit code ${code}) without a result`));
    });
  });
  return {
    result,
    stop: () => {
      Atomics.store(flag, 0, 1);
    },
    terminate: async () => {
      await worker.terminate();
    },
  };
}

/** The thread's side: train, posting every event, then the result or the failure. */
async function runInThread(data: ThreadData): Promise<void> {
  const port = parentPort!;
  const flag = new Int32Array(data.stopFlag);
  const controller = new AbortController();
  const post = (message: ThreadMessage) => port.postMessage(message);
  try {
    const { runTraining } = await import('../../engine/run.ts');
    const { job } = data;
    const result = await runTraining(job.config, {
      signal: controller.signal,
      ...(job.checkpointDir !== undefined ? { checkpointDir: job.checkpointDir } : {}),
      ...(job.checkpointPrefix !== undefined ? { checkpointPrefix: job.checkpointPrefix } : {}),
      ...(job.resumeFrom !== undefined ? { resumeFrom: job.resumeFrom } : {}),
      onEvent: (event) => {
        post({ type: 'event', event });
        if (Atomics.load(flag, 0) === 1 && !controller.signal.aborted) controller.abort();
      },
    });
    const { model: _model, parameters: _parameters, ...rest } = result;
    post({ type: 'done', result: rest });
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    post({ type: 'failed', name: e.name, message: e.message, ...(e.stack !== undefined ? { stack: e.stack } : {}) });
  }
}

if (!isMainThread && (workerData as Partial<ThreadData> | null)?.lrnetTrainingThread === true) {
  await runInThread(workerData as ThreadData);
}
