/**
 * Messages between the run manager and a training worker (one child process per run), as discriminated unions.
 * The channel uses Node's 'advanced' serialization (structured clone), so NaN and typed arrays survive the trip.
 */
import type { TrainingConfig } from '../../engine/config.ts';
import type { TrainingEvent, TrainingResult } from '../../engine/train.ts';

/** The manager's side of the conversation. */
export type ManagerMessage =
  /** Train this run; sent once, after the worker said 'ready'. */
  | { readonly type: 'start'; readonly runId: string; readonly config: TrainingConfig; readonly checkpointDir: string; readonly resumeFrom?: string }
  /** Stop after the current step, writing a checkpoint first; the worker then answers 'done' with status 'stopped'. */
  | { readonly type: 'stop' };

/** What crosses back from a finished run: the result without the model definition and parameters. */
export type WorkerResult = Omit<TrainingResult, 'model' | 'parameters'>;

/** The worker's side. */
export type WorkerMessage =
  /** Listening for 'start' (messages sent before a listener exists would be lost). */
  | { readonly type: 'ready' }
  | { readonly type: 'event'; readonly event: TrainingEvent }
  | { readonly type: 'done'; readonly result: WorkerResult }
  /** Training threw; `error` is the message a person reads, `stack` is for logs. */
  | { readonly type: 'failed'; readonly error: string; readonly stack?: string };

/** Node's IPC serialization for this channel; both ends must agree. */
export const SERIALIZATION = 'advanced' as const;

/** Narrows an incoming IPC message to a ManagerMessage (the parent is trusted; this guards against stray sends). */
export function isManagerMessage(value: unknown): value is ManagerMessage {
  const type = (value as { type?: unknown } | null)?.type;
  return type === 'start' || type === 'stop';
}

/** Narrows an incoming IPC message to a WorkerMessage. */
export function isWorkerMessage(value: unknown): value is WorkerMessage {
  const type = (value as { type?: unknown } | null)?.type;
  return type === 'ready' || type === 'event' || type === 'done' || type === 'failed';
}
