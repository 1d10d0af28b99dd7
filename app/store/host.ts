/** A description of this machine to record with runs and benchmark results. */
import os from 'node:os';
import type { RunHost } from './types.ts';

/** The current machine; `gpu` is whatever the backend reports about its adapter, if a GPU is used. */
export function currentHost(gpu: string | null = null): RunHost {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() || 'unknown',
    cores: typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    memoryBytes: os.totalmem(),
    gpu,
  };
}
