/**
 * The way out for a run stuck 'running': its row names the process that claimed it (host, pid, start token), and
 * only that process may record it. markInterruptedRuns frees a run whose process on this machine has ended. A claim
 * from another host (the database was moved, or the container that trained it was recreated under a new host name)
 * cannot be checked from here, so such a run stays 'running' until a person confirms that nothing trains it any
 * more: `lrnet resume RUN --steal`, `lrnet rm RUN --force`, or the app's confirmation dialog.
 */
import { currentProcess, describeClaim, ownerState, type Store } from '../store/index.ts';
import { RunManagerError } from './types.ts';

export interface TakeOverOptions {
  /** The user confirmed that the claiming process is gone. */
  readonly force: boolean;
  /** How to confirm it where the request came from, e.g. "take it over with: lrnet resume RUN --steal". */
  readonly howToForce: string;
}

/**
 * Frees a 'running' run that no process here is training, so it can be resumed or deleted. A claim whose process on
 * this machine is gone is released on its own ('interrupted'); one from another host only with `force`
 * (RunManagerError 'claimed' without it); one whose process is alive here never ('not-managed': stop it there).
 * Refusals name the host and pid that hold the run. Returns a line saying what was released, or undefined when the
 * run was not running.
 */
export function takeOverRun(store: Store, runId: string, options: TakeOverOptions): string | undefined {
  store.markInterruptedRuns();
  const run = store.getRun(runId);
  if (run.status !== 'running') return undefined;
  const claim = store.runClaim(run.id);
  const holder = claim === null ? 'an unrecorded process' : describeClaim(claim);
  const state = claim === null ? 'unknown' : ownerState(claim);
  if (state === 'alive') {
    throw new RunManagerError('not-managed', `run ${run.id} is training in ${holder} (this machine); stop it there first` +
      (claim?.pid != null ? ` (Ctrl-C in its terminal, or kill ${claim.pid})` : ''));
  }
  if (!options.force) {
    throw new RunManagerError('claimed', `run ${run.id} is held by ${holder}, which cannot be checked from ${currentProcess().host}; ` +
      `if nothing trains it there any more (the database was moved or its container recreated), ${options.howToForce}`);
  }
  const reason = `released by the user on ${currentProcess().host}: it was held by ${holder}`;
  if (!store.releaseRun(run.id, claim ?? { host: null, pid: null, token: null }, reason)) {
    throw new RunManagerError('claimed', `run ${run.id} changed hands while it was being released; look at it again (lrnet show ${run.id})`);
  }
  return `released run ${run.id} from ${holder}`;
}
