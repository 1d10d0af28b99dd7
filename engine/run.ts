/**
 * One call that runs a configured training end to end: initialize the backend, load the data, train.
 * The CLI and the app's training workers both go through here.
 */
import { initBackend, type BackendInfo } from './backends/index.ts';
import { validateConfig, type TrainingConfig, type DatasetConfig } from './config.ts';
import { loadDataset, type DatasetSpec } from './data/index.ts';
import type { Dataset } from './data/types.ts';
import { train, type TrainingOptions, type TrainingResult } from './train.ts';

/** The data loader's view of a configuration's dataset. */
export function datasetSpec(dataset: DatasetConfig): DatasetSpec {
  const trainLimit = dataset.trainLimit;
  const limit = trainLimit !== undefined ? { trainLimit } : {};
  switch (dataset.name) {
    case 'mnist-sample':
      return { name: 'mnist-sample', ...limit };
    case 'mnist':
    case 'fashion-mnist':
      return { name: dataset.name, dir: dataset.path ?? '', ...limit };
    case 'cifar10':
      return { name: 'cifar10', path: dataset.path ?? '', ...limit };
  }
}

export interface PreparedRun {
  readonly config: TrainingConfig;
  readonly backend: BackendInfo;
  readonly dataset: Dataset;
}

/** Validates the configuration, then initializes its backend and loads its data (the slow, fallible parts). */
export async function prepareRun(config: TrainingConfig): Promise<PreparedRun> {
  validateConfig(config);
  const backend = await initBackend(config.backend);
  const dataset = loadDataset(datasetSpec(config.dataset));
  return { config, backend, dataset };
}

export async function runTraining(config: TrainingConfig, options: TrainingOptions = {}): Promise<TrainingResult> {
  const prepared = await prepareRun(config);
  return train(prepared.config, prepared.dataset, prepared.backend, options);
}
