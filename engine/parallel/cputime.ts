/**
 * CPU time of the calling thread, where the OS tells it (Linux: /proc/thread-self/stat). On a machine shared with
 * other jobs wall time says little about the code; CPU time per step does, so the benchmark reports both.
 */
import fs from 'node:fs';

/** Clock ticks per second of /proc's utime/stime (USER_HZ, 100 on every mainstream Linux). */
const TICKS_PER_SECOND = 100;

let available = process.platform === 'linux';

/** User + system CPU time of this thread in ms (10 ms resolution), or undefined where unavailable. */
export function threadCpuMs(): number | undefined {
  if (!available) return undefined;
  try {
    const stat = fs.readFileSync('/proc/thread-self/stat', 'utf8');
    // Fields after the parenthesized command name: state is field 3, utime field 14, stime field 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    available = false;
    return undefined;
  }
}
