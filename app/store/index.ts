/**
 * The experiment store: runs, their metrics, evaluations, checkpoints, artifacts, tags and notes in one SQLite file.
 * Open it with openStore(); everything else is types and helpers.
 */
export { openStore, type OpenStoreOptions } from './open.ts';
export { defaultDataFolder, defaultDatabasePath, fileBlockingFolder, DATABASE_FILE_NAME } from './paths.ts';
export { StoreError, sqliteFailure, type StoreErrorCode } from './errors.ts';
export { SCHEMA_VERSION } from './schema.ts';
export { metricGoal, transitionError } from './lifecycle.ts';
export { decimateMinMax } from './downsample.ts';
export { currentHost } from './host.ts';
export { currentProcess, describeClaim, ownerState } from './process-identity.ts';
export type * from './types.ts';
export { RUN_STATUSES, ARTIFACT_STATUSES } from './types.ts';
