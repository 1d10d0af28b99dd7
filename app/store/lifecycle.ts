/** Which run status changes are allowed, and what counts as finished. */
import type { RunStatus } from './types.ts';

/** Statuses a run ends in; it only leaves them when resumed explicitly. */
export const FINISHED_STATUSES: ReadonlySet<RunStatus> = new Set(['completed', 'failed', 'stopped', 'interrupted']);

const FORWARD: Readonly<Record<RunStatus, readonly RunStatus[]>> = {
  queued: ['running', 'failed', 'stopped', 'interrupted'],
  running: ['completed', 'failed', 'stopped', 'interrupted'],
  completed: [],
  failed: [],
  stopped: [],
  interrupted: [],
};

/**
 * Why `from -> to` is not allowed, or undefined when it is. Staying in the same status is always allowed (updates
 * of progress and such). A finished run may go back to running or queued only with `resume`, so that continuing a
 * completed run for more epochs is a deliberate act, never the side effect of a late status message.
 */
export function transitionError(from: RunStatus, to: RunStatus, resume: boolean): string | undefined {
  if (from === to) return undefined;
  if (FORWARD[from].includes(to)) return undefined;
  if (FINISHED_STATUSES.has(from) && (to === 'running' || to === 'queued')) {
    return resume ? undefined : `run is ${from}; resuming it must be requested explicitly`;
  }
  return `a ${from} run cannot become ${to}`;
}

/** Whether bigger is better for a metric: the metric catalog's goal (app/contract.ts), 'max' outside it. */
export { metricGoal } from '../contract.ts';
