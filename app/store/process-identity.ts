/**
 * Telling a live run from one whose process died. A run that goes 'running' records (host, pid, token); the token
 * identifies the process instance, so a recycled pid (containers restart with the same small pids) is not mistaken
 * for the process that claimed the run.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** Who claimed a run. */
export interface ProcessIdentity {
  readonly host: string;
  readonly pid: number;
  readonly token: string;
}

/**
 * Start identity of a process on Linux: boot id + start time in clock ticks since boot (field 22 of
 * /proc/PID/stat), the same for every thread of the process. Undefined elsewhere or when the process is gone.
 */
function linuxStartToken(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses; fields after it are space-separated.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTime = fields[19]; // field 22 overall; fields[0] is field 3
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return startTime ? `${bootId}:${startTime}` : undefined;
  } catch {
    return undefined;
  }
}

/** Shared by all copies of this module and all threads of the process (the /proc token is per process). */
const TOKEN_KEY = Symbol.for('lrnet.store.processToken');

function ownToken(): string {
  const g = globalThis as { [TOKEN_KEY]?: string };
  if (g[TOKEN_KEY] === undefined) {
    // Off Linux: start time rounded to 10 s; threads computing it at slightly different moments agree.
    g[TOKEN_KEY] = linuxStartToken(process.pid) ?? `start:${Math.round((Date.now() - process.uptime() * 1000) / 10_000)}`;
  }
  return g[TOKEN_KEY];
}

/** This process, as recorded on the runs it sets running. */
export function currentProcess(): ProcessIdentity {
  return { host: os.hostname(), pid: process.pid, token: ownToken() };
}

/**
 * Whether the process that claimed a run may still be running it: 'alive', 'dead', or 'unknown' for another
 * host (its processes cannot be checked from here, so such runs are left alone).
 */
export function ownerState(owner: { host: string | null; pid: number | null; token: string | null }): 'alive' | 'dead' | 'unknown' {
  if (owner.pid === null) return 'dead';
  const me = currentProcess();
  if (owner.host !== null && owner.host !== me.host) return 'unknown';
  if (owner.pid === me.pid) return owner.token === me.token ? 'alive' : 'dead';
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    // EPERM: the pid exists but belongs to another user, so it is alive; ESRCH: no such process.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return 'dead';
  }
  const token = linuxStartToken(owner.pid);
  if (token !== undefined && owner.token !== null && !owner.token.startsWith('start:') && token !== owner.token) {
    return 'dead'; // the pid now belongs to a different process
  }
  return 'alive';
}

/** "pid 4242 on host build-7", for messages that must name who holds a run. */
export function describeClaim(claim: { host: string | null; pid: number | null }): string {
  return `${claim.pid === null ? 'an unknown process' : `pid ${claim.pid}`} on host ${claim.host ?? '(unknown)'}`;
}
