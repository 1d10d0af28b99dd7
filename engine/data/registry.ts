/**
 * Every data set a run can train on, one entry each (see entry.ts). Every list of names, every reader dispatch,
 * the configuration checks, the download catalogue and the New-run form derive from this list.
 */
import { MNIST_SAMPLE_DATASET, MNIST_DATASET, FASHION_MNIST_DATASET } from './mnist.ts';
import { CIFAR10_DATASET } from './cifar10.ts';
import { IMAGE_FOLDER_DATASET } from './imagefolder-dataset.ts';
import { inMemoryData, type TrainingData } from './source.ts';
import type { DatasetEntry, DatasetReadOptions } from './entry.ts';
import type { Dataset } from './types.ts';

export const DATASETS = [MNIST_SAMPLE_DATASET, MNIST_DATASET, FASHION_MNIST_DATASET, CIFAR10_DATASET, IMAGE_FOLDER_DATASET] as const;

export type DatasetName = (typeof DATASETS)[number]['name'];

export const DATASET_NAMES: readonly DatasetName[] = DATASETS.map((d) => d.name);

export function isDatasetName(name: unknown): name is DatasetName {
  return typeof name === 'string' && (DATASET_NAMES as readonly string[]).includes(name);
}

/** The entry of a data set by name; a TypeError listing the valid names for any other value. */
export function datasetEntry(name: unknown): DatasetEntry<DatasetName> {
  const entry = DATASETS.find((d) => d.name === name);
  if (!entry) throw new TypeError(`unknown dataset ${JSON.stringify(name)}; valid names: ${DATASET_NAMES.join(', ')}`);
  return entry;
}

/** Loads a data set into memory (the exporters' calibration and golden images); image folders are refused. */
export function loadInMemory(name: DatasetName, options: DatasetReadOptions): Dataset {
  const entry = datasetEntry(name);
  if (!entry.load) throw new TypeError(`${entry.title} is streamed from disk, not loaded into memory: open it with openDataset`);
  return entry.load(options);
}

/** Opens a data set for training: loaded into memory, or streamed from disk. */
export async function openDataset(name: DatasetName, options: DatasetReadOptions): Promise<TrainingData> {
  const entry = datasetEntry(name);
  if (entry.open) return entry.open(options);
  return inMemoryData(entry.load!(options));
}
