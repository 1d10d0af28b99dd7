/**
 * What the trainer and the evaluator read images from, whether the images are held in memory (MNIST, CIFAR-10) or
 * streamed from an image folder on disk (ImageNet-style, for ResNet-18).
 *
 * Both are an `ImageSource`: images addressed by index, read a batch at a time into normalized float32 NHWC, with the
 * recipe's training augmentation when asked for. Augmentation is a function of the seed passed in, so a run replays
 * the same crops after a resume whatever the reading speed or the number of decoding threads.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import { Random } from '../random.ts';
import { fillBatch, fillLabels } from './batch.ts';
import { DatasetError } from './errors.ts';
import { openImageFolder, IMAGENET_NORMALIZATION, type ImageFolder, type ImageFolderSplit } from './imagefolder.ts';
import type { Dataset, DatasetIdentity, ImageSet } from './types.ts';

export interface ImageSource {
  /** Number of images, addressed 0..count-1. */
  readonly count: number;
  /** [height, width, channels] of one network input. */
  readonly shape: readonly [number, number, number];
  /**
   * Writes the images `indices` as normalized float32 NHWC into the first indices.length * h * w * c values of `out`
   * and their classes into `labels`. With `augmentSeed` they are augmented as the data set's recipe says (nothing
   * for MNIST), deterministically in that seed; without it they are not augmented.
   */
  read(indices: Int32Array, out: Float32Array, labels: Int32Array, augmentSeed?: number): Promise<void>;
}

/** A data set as training consumes it. */
export interface TrainingData {
  readonly identity: DatasetIdentity;
  readonly numClasses: number;
  /** [height, width, channels] of one network input. */
  readonly inputShape: readonly [number, number, number];
  readonly train: ImageSource;
  readonly test: ImageSource;
  /** Ends whatever reads the images (an image folder's decoding threads); a no-op for data in memory. */
  close(): Promise<void>;
}

/** An in-memory ImageSet with its normalization and augmentation. */
export function inMemorySource(set: ImageSet, normalization: Dataset['normalization'], augmentation: Dataset['augmentation']): ImageSource {
  return {
    count: set.count,
    shape: [set.height, set.width, set.channels],
    read(indices, out, labels, augmentSeed) {
      const augment = augmentSeed !== undefined && augmentation !== 'none';
      fillBatch(set, indices, normalization, augment, new Random(augmentSeed ?? 0), out);
      fillLabels(set, indices, labels);
      return Promise.resolve();
    },
  };
}

/** A loaded (in-memory) data set as TrainingData. */
export function inMemoryData(dataset: Dataset): TrainingData {
  const { train, test } = dataset;
  return {
    identity: dataset.identity,
    numClasses: dataset.numClasses,
    inputShape: [train.height, train.width, train.channels],
    train: inMemorySource(train, dataset.normalization, dataset.augmentation),
    test: inMemorySource(test, dataset.normalization, 'none'),
    close: () => Promise.resolve(),
  };
}

/** TrainingData as it is, or a loaded Dataset wrapped as TrainingData. */
export function asTrainingData(data: Dataset | TrainingData): TrainingData {
  return 'inputShape' in data ? data : inMemoryData(data);
}

export interface ImageFolderDataOptions {
  /** Shorter side after resizing (default 256). */
  readonly resizeShorter?: number;
  /** Side of the square crop the network sees (default 224). */
  readonly cropSize?: number;
  /** Use only N training images: a fixed random subset over all classes. */
  readonly trainLimit?: number;
  /** Decoding threads (default: every core but one, at most 8; they idle once the next batch is ready). */
  readonly workers?: number;
}

/** Seed of the fixed order in which an image folder's images are addressed (so that "the first N" is a random subset). */
const FOLDER_ORDER_SEED = 0x1f01de5;

/** A split of an image folder addressed through a fixed permutation of its files, cut to `limit` images. */
function folderSource(split: ImageFolderSplit, shape: ImageFolder['inputShape'], limit: number | undefined): ImageSource {
  const order = Int32Array.from({ length: split.count }, (_, i) => i);
  new Random(FOLDER_ORDER_SEED).shuffle(order);
  const count = Math.min(split.count, limit ?? split.count);
  return {
    count,
    shape,
    async read(indices, out, labels, augmentSeed) {
      const files = new Int32Array(indices.length);
      for (let i = 0; i < indices.length; i++) {
        const k = indices[i]!;
        if (!Number.isInteger(k) || k < 0 || k >= count) throw new RangeError(`index ${k} is outside the ${count} images of ${split.name}/`);
        files[i] = order[k]!;
      }
      await split.readImages(files, out, labels, augmentSeed === undefined ? { augment: false } : { augment: true, seed: augmentSeed });
    },
  };
}

/**
 * Opens an ImageNet-style folder (train/<class>/..., val/<class>/...) for training: train/ trains (and gives the
 * validation split), val/ is the test set. Images are read from disk batch by batch, never all at once.
 */
export async function openImageFolderData(root: string, options: ImageFolderDataOptions = {}): Promise<TrainingData> {
  const workers = options.workers ?? Math.max(1, Math.min(8, os.availableParallelism() - 1));
  const folder: ImageFolder = await openImageFolder(root, {
    workers,
    normalization: IMAGENET_NORMALIZATION,
    ...(options.resizeShorter !== undefined ? { resizeShorter: options.resizeShorter } : {}),
    ...(options.cropSize !== undefined ? { cropSize: options.cropSize } : {}),
  });
  if (!folder.val) {
    await folder.close();
    throw new DatasetError(
      root,
      'has no val/ subfolder, which holds the test images',
      'Add val/<class>/... with held-out images of the same classes (ImageNet: its validation set sorted into class folders)',
    );
  }
  // The test images are first read at the first evaluation, an epoch into the run: find a damaged one now.
  await folder.val.checkImageHeaders().catch(async (error: unknown) => {
    await folder.close();
    throw error;
  });
  const train = folderSource(folder.train, folder.inputShape, options.trainLimit);
  const test = folderSource(folder.val, folder.inputShape, undefined);
  // The folder's checksum covers class and file names; a training subset and the crop size make other data.
  const checksum = crypto.createHash('sha256')
    .update(`${folder.identity.checksum}\ntrain ${train.count}\ncrop ${folder.cropSize} of ${folder.resizeShorter}\n`)
    .digest('hex');
  return {
    identity: { ...folder.identity, trainCount: train.count, checksum },
    numClasses: folder.numClasses,
    inputShape: folder.inputShape,
    train,
    test,
    close: () => folder.close(),
  };
}
