/**
 * The data sets the engine trains on, behind one entry point.
 */
import { loadInMemory, type DatasetName } from './registry.ts';
import type { Dataset } from './types.ts';

/**
 * An in-memory data set and where its files are: `dir` or `path`, the folder of MNIST-format files or CIFAR-10's
 * archive or folder (the bundled sample needs neither).
 */
export interface DatasetSpec {
  readonly name: DatasetName;
  readonly dir?: string;
  readonly path?: string;
  readonly trainLimit?: number;
}

/**
 * Loads an in-memory data set. Problems with the files are DatasetErrors naming the file; an unknown name or a spec
 * without its dir/path is a TypeError listing what is accepted.
 */
export function loadDataset(spec: DatasetSpec): Dataset {
  const location = spec.dir ?? spec.path;
  return loadInMemory(spec.name, {
    ...(location !== undefined ? { path: location } : {}),
    ...(spec.trainLimit !== undefined ? { trainLimit: spec.trainLimit } : {}),
  });
}

export { DATASETS, DATASET_NAMES, datasetEntry, isDatasetName, loadInMemory, openDataset, type DatasetName } from './registry.ts';
export type { DatasetEntry, DatasetReadOptions, DownloadManifest, PublishedFile } from './entry.ts';
export type { Dataset, DatasetIdentity, ImageSet, InputNormalization } from './types.ts';
export { DatasetError, isDatasetError } from './errors.ts';
export { fillBatch, fillLabels } from './batch.ts';
export { loadBundledMnistSample, loadMnistFolder } from './mnist.ts';
export { loadCifar10, CIFAR10_CLASSES } from './cifar10.ts';
export { datasetChecksum } from './checksum.ts';
// Image folders (ImageNet-style, streamed from disk) do not fit the in-memory Dataset (every image held as bytes of
// one size), so they have their own entry point instead of a loadDataset spec: see imagefolder.ts, and source.ts for
// how training reads both kinds.
export { openImageFolder, ImageFolder, ImageFolderSplit, IMAGENET_NORMALIZATION } from './imagefolder.ts';
export { openImageFolderData, inMemoryData, asTrainingData } from './source.ts';
export type { ImageSource, TrainingData, ImageFolderDataOptions } from './source.ts';
export type { ImageBatch, ImageBatchOptions, ImageFolderOptions, ImageNormalization } from './imagefolder.ts';
