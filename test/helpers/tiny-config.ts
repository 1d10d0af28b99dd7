/** Training configurations small enough for a test: the quick ternary MNIST preset on the bundled sample. */
import { PRESETS, type TrainingConfig } from '../../engine/config.ts';

const QUICK = PRESETS['mnist-ternary-quick'];

/** The sizes and settings in which the tests' small runs differ. */
export interface TinyRun {
  readonly trainLimit: number;
  readonly testLimit: number;
  /** Taken from the training images. */
  readonly validationSize: number;
  readonly batchSize: number;
  readonly pretrainEpochs: number;
  readonly lrEpochs: number;
  readonly evaluation: TrainingConfig['evaluation'];
  readonly seed: number;
  readonly checkpointEvery?: number;
}

/** The quick ternary MNIST preset shrunk to `run`, on the bundled MNIST sample and the wasm backend. */
export function tinyMnistConfig(run: TinyRun): TrainingConfig {
  return {
    ...QUICK,
    dataset: { name: 'mnist-sample', trainLimit: run.trainLimit, testLimit: run.testLimit },
    batchSize: run.batchSize,
    validationSize: run.validationSize,
    pretrain: { ...QUICK.pretrain, epochs: run.pretrainEpochs },
    lr: { ...QUICK.lr, epochs: run.lrEpochs },
    evaluation: run.evaluation,
    backend: 'wasm',
    checkpointEvery: run.checkpointEvery ?? QUICK.checkpointEvery,
    seed: run.seed,
  };
}
