/**
 * A run's configuration read back from the store: the store keeps what was recorded (possibly by another version of
 * lrnet), so it is parsed like any other input before the engine trains on it.
 */
import { ConfigError, parseConfig, type TrainingConfig } from '../../engine/config.ts';

/** A stored configuration this version cannot train (written by another version, or edited by hand). */
export class StoredConfigError extends Error {
  override name = 'StoredConfigError';
  constructor(runId: string, readonly problems: readonly string[]) {
    super(`run ${runId} has a configuration this version cannot train:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** The run's configuration, parsed; a StoredConfigError listing every problem when it does not parse. */
export function storedConfig(run: { readonly id: string; readonly config: unknown }): TrainingConfig {
  try {
    return parseConfig(run.config);
  } catch (error) {
    if (error instanceof ConfigError) throw new StoredConfigError(run.id, error.problems);
    throw error;
  }
}
