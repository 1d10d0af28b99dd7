/**
 * Messages between the stepper (main thread) and its workers: discriminated unions of plain data. Tensors never
 * cross; parameters, moments, gradients and statistics live in the shared buffers (layout.ts).
 */
import type { Phase, TrainingConfig } from '../config.ts';
import type { ModelDefinition } from '../models.ts';
import type { ParameterLayout, SharedBuffers } from './layout.ts';

/** workerData of every worker. */
export interface WorkerInit {
  readonly index: number;
  readonly workers: number;
  readonly model: ModelDefinition;
  readonly config: TrainingConfig;
  readonly numClasses: number;
}

export type ToWorker =
  /** Rebuild the replica's variables from the shared buffers (which hold the state to train from). */
  | { readonly type: 'load'; readonly seq: number; readonly phase: Phase; readonly layout: ParameterLayout; readonly buffers: SharedBuffers }
  /** One training step on this worker's shard (its own copy of the images: the buffer is transferred). */
  | {
      readonly type: 'step';
      readonly seq: number;
      readonly input: Float32Array;
      readonly labels: Int32Array;
      readonly shape: readonly [number, number, number, number];
      readonly globalStep: number;
      readonly learningRate: number;
      /** Adam's step count after this update. */
      readonly adamStep: number;
      /** Every worker's share of the batch, in worker order. */
      readonly weights: readonly number[];
    }
  /** Send back the replica's own variables (to check that the replicas agree). */
  | { readonly type: 'snapshot'; readonly seq: number }
  | { readonly type: 'close' };

/** Where one worker's step time went, in ms. */
export interface StepTimings {
  /** Forward and backward pass of the shard. */
  readonly compute: number;
  /** Writing gradients and statistics into the shared slots. */
  readonly publish: number;
  /** Waiting for the other workers' gradients (the first barrier). */
  readonly waitGradients: number;
  /** Reducing this worker's slice and applying Adam there (and the moving statistics, worker 0). */
  readonly update: number;
  /** Waiting for the other workers' slices (the second barrier). */
  readonly waitUpdate: number;
  /** Copying the updated parameters into the replica's variables. */
  readonly upload: number;
  /** CPU time the worker's thread spent on the step (10 ms resolution; absent where the OS does not say). */
  readonly cpu?: number;
}

export type FromWorker =
  | { readonly type: 'ready'; readonly index: number }
  | { readonly type: 'done'; readonly seq: number; readonly index: number; readonly timings?: StepTimings }
  | {
      readonly type: 'snapshot';
      readonly seq: number;
      readonly index: number;
      readonly values: readonly (readonly [string, Float32Array])[];
      /** Live tensors in the worker's TensorFlow.js engine (a leak shows as growth between steps). */
      readonly numTensors: number;
    }
  | {
      readonly type: 'error';
      readonly seq: number;
      readonly index: number;
      readonly message: string;
      /** The worker's stack trace, kept as the `cause` of the error the stepper throws. */
      readonly stack?: string;
      /** The worker was released from a barrier by another worker's failure (that one explains the step). */
      readonly aborted: boolean;
    };
