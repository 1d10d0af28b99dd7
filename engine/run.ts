/**
 * One call that runs a configured training end to end: initialize the backend, load the data, train.
 * The CLI and the app's training workers both go through here.
 */
import { initBackend, type BackendInfo } from './backends/index.ts';
import { validateConfig, type TrainingConfig, type DatasetConfig } from './config.ts';
import { loadDataset, type DatasetSpec } from './data/index.ts';
import { inMemoryData, openImageFolderData, type TrainingData } from './data/source.ts';
import { train, type TrainingOptions, type TrainingResult } from './train.ts';

/** The in-memory loader's view of a configuration's dataset (image folders are streamed: see openTrainingData). */
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
    case 'imagefolder':
      throw new TypeError('an image folder is streamed from disk, not loaded into memory: open it with openTrainingData');
  }
}

/** Opens a configuration's data for training: loaded into memory, or an image folder streamed from disk. */
export async function openTrainingData(dataset: DatasetConfig): Promise<TrainingData> {
  if (dataset.name !== 'imagefolder') return inMemoryData(loadDataset(datasetSpec(dataset)));
  const { path = '', trainLimit, cropSize, resizeShorter, decodeWorkers } = dataset;
  return openImageFolderData(path, {
    ...(trainLimit !== undefined ? { trainLimit } : {}),
    ...(cropSize !== undefined ? { cropSize } : {}),
    ...(resizeShorter !== undefined ? { resizeShorter } : {}),
    ...(decodeWorkers !== undefined ? { workers: decodeWorkers } : {}),
  });
}

export interface PreparedRun {
  readonly config: TrainingConfig;
  readonly backend: BackendInfo;
  readonly dataset: TrainingData;
}

/** Validates the configuration, then initializes its backend and loads its data (the slow, fallible parts). */
export async function prepareRun(config: TrainingConfig): Promise<PreparedRun> {
  validateConfig(config);
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
