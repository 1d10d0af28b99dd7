/** The processes a test started, read from /proc (Linux), to check that none outlives what it belonged to. */
import { readdirSync, readFileSync } from 'node:fs';

/** Training workers (app/runs/worker.ts) among the children of `pid`; tsx's esbuild service is a child too. */
export function workersOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('app/runs/worker.ts')) out.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}
