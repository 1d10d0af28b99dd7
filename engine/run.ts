/**
 * One call that runs a configured training end to end: initialize the backend, load the data, train.
 * The CLI and the app's training workers both go through here.
 */
import { initBackend, type BackendInfo } from './backends/index.ts';
import type { TrainingConfig, DatasetConfig } from './config.ts';
import { openDataset } from './data/registry.ts';
import type { TrainingData } from './data/source.ts';
import { train, type TrainingOptions, type TrainingResult } from './train.ts';

/** Opens a configuration's data for training: loaded into memory, or an image folder streamed from disk. */
export function openTrainingData(dataset: DatasetConfig): Promise<TrainingData> {
  const { name, ...options } = dataset;
  return openDataset(name, options);
}

export interface PreparedRun {
  readonly config: TrainingConfig;
  readonly backend: BackendInfo;
  readonly dataset: TrainingData;
}

/** Initializes a (parsed) configuration's backend and loads its data: the slow, fallible parts. */
export async function prepareRun(config: TrainingConfig): Promise<PreparedRun> {
  const backend = await initBackend(config.backend);
  const dataset = await openTrainingData(config.dataset);
  return { config, backend, dataset };
}

export async function runTraining(config: TrainingConfig, options: TrainingOptions = {}): Promise<TrainingResult> {
  const prepared = await prepareRun(config);
  try {
    return await train(prepared.config, prepared.dataset, prepared.backend, options);
  } finally {
    await prepared.dataset.close();
  }
}
