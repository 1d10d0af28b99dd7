/**
 * A reusable barrier for worker threads over a shared Int32Array (see CONTROL in layout.ts), with an abort word so
 * that one failing worker releases the others instead of leaving them blocked in Atomics.wait forever.
 */
import { CONTROL } from './layout.ts';

/** Thrown in a worker released from a barrier because another worker (or the main thread) aborted the step. */
export class StepAbortedError extends Error {
  override name = 'StepAbortedError';
}

/** How long one Atomics.wait may block before the abort word is looked at again, in ms (a safety net only). */
const WAIT_SLICE_MS = 500;

function checkAbort(control: Int32Array): void {
  if (Atomics.load(control, CONTROL.abort) !== 0) {
    const failed = Atomics.load(control, CONTROL.failedWorker);
    throw new StepAbortedError(failed > 0 ? `worker ${failed - 1} failed during this step` : 'the step was aborted');
  }
}

/**
 * Blocks until all `parties` workers have arrived. The last to arrive resets the count before it bumps the
 * generation, so a worker that races ahead to the next barrier counts towards that one.
 */
export function arriveAndWait(control: Int32Array, parties: number): void {
  checkAbort(control);
  const generation = Atomics.load(control, CONTROL.generation);
  if (Atomics.add(control, CONTROL.arrived, 1) === parties - 1) {
    Atomics.store(control, CONTROL.arrived, 0);
    Atomics.add(control, CONTROL.generation, 1);
    Atomics.notify(control, CONTROL.generation);
    return;
  }
  while (Atomics.load(control, CONTROL.generation) === generation) {
    checkAbort(control);
    Atomics.wait(control, CONTROL.generation, generation, WAIT_SLICE_MS);
  }
  checkAbort(control);
}

/** Marks the step as failed (by worker `index`, or by the main thread when index is -1) and wakes every waiter. */
export function abortStep(control: Int32Array, index: number): void {
  if (Atomics.compareExchange(control, CONTROL.abort, 0, 1) === 0) Atomics.store(control, CONTROL.failedWorker, index + 1);
  Atomics.add(control, CONTROL.generation, 1);
  Atomics.notify(control, CONTROL.generation);
}

/** Clears an abort and the barrier count; only while no worker is inside a step. */
export function resetBarrier(control: Int32Array): void {
  Atomics.store(control, CONTROL.arrived, 0);
  Atomics.store(control, CONTROL.failedWorker, 0);
  Atomics.store(control, CONTROL.abort, 0);
}
