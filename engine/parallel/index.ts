/**
 * Data-parallel training across worker threads: see stepper.ts for the design.
 */
export { createParallelStepper, defaultWorkerCount, ParallelStepError } from './stepper.ts';
export type { ParallelStepper, ParallelStepperOptions } from './stepper.ts';
export type { StepTimings } from './protocol.ts';
export { shardGradients, shardSeeds } from './shard.ts';
