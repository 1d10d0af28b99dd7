/**
 * The data sets the engine trains on, behind one entry point.
 */
import { loadBundledMnistSample, loadMnistFolder } from './mnist.ts';
import { loadCifar10 } from './cifar10.ts';
import type { Dataset } from './types.ts';

export type DatasetSpec =
  | { readonly name: 'mnist-sample'; readonly trainLimit?: number }
  | { readonly name: 'mnist' | 'fashion-mnist'; readonly dir: string; readonly trainLimit?: number }
  | { readonly name: 'cifar10'; readonly path: string; readonly trainLimit?: number };

/** Every data set a run can train on: the in-memory ones above, and 'imagefolder', streamed (see source.ts). */
export type DatasetName = DatasetSpec['name'] | 'imagefolder';

export const DATASET_NAMES: readonly DatasetName[] = ['mnist-sample', 'mnist', 'fashion-mnist', 'cifar10', 'imagefolder'];

/**
 * Loads a data set. Problems with the files are DatasetErrors naming the file; an unknown name or a spec without
 * its dir/path is a TypeError listing what is accepted.
 */
export function loadDataset(spec: DatasetSpec): Dataset {
  const s = spec as { name?: unknown; dir?: unknown; path?: unknown; trainLimit?: number };
  const trainLimit = s.trainLimit;
  switch (s.name) {
    case 'mnist-sample':
      return loadBundledMnistSample({ trainLimit });
    case 'mnist':
    case 'fashion-mnist':
      if (typeof s.dir !== 'string' || s.dir === '') {
        throw new TypeError(`dataset "${s.name}" needs "dir": the folder holding its four IDX files (raw or .gz)`);
      }
      return loadMnistFolder(s.dir, { name: s.name, trainLimit });
    case 'cifar10':
      if (typeof s.path !== 'string' || s.path === '') {
        throw new TypeError('dataset "cifar10" needs "path": cifar-10-binary.tar.gz or the folder of its batch files');
      }
      return loadCifar10(s.path, { trainLimit });
    default:
      throw new TypeError(`unknown dataset ${JSON.stringify(s.name)}; valid names: ${DATASET_NAMES.join(', ')}`);
  }
}

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
