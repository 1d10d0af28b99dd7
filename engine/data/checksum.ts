import crypto from 'node:crypto';
import type { Dataset, ImageSet } from './types.ts';

/**
 * The checksum recorded in DatasetIdentity: sha256 (hex) over the loaded bytes in this order: training pixels,
 * training labels, test pixels, test labels. A subset (trainLimit) therefore has a different checksum.
 */
export function datasetChecksum(train: ImageSet, test: ImageSet): string {
  const h = crypto.createHash('sha256');
  h.update(train.pixels);
  h.update(train.labels);
  h.update(test.pixels);
  h.update(test.labels);
  return h.digest('hex');
}

/** A loaded data set with the identity runs record: where it came from, its counts, and the checksum of its bytes. */
export function assembleDataset(
  name: string,
  source: string,
  train: ImageSet,
  test: ImageSet,
  recipe: Pick<Dataset, 'numClasses' | 'normalization' | 'augmentation'>,
): Dataset {
  return {
    identity: { name, source, trainCount: train.count, testCount: test.count, checksum: datasetChecksum(train, test) },
    train,
    test,
    ...recipe,
  };
}

/** Validates a trainLimit option: undefined, or a positive integer (larger than the set keeps all of it). */
export function checkTrainLimit(trainLimit: number | undefined): void {
  if (trainLimit === undefined) return;
  if (!Number.isInteger(trainLimit) || trainLimit < 1) {
    throw new RangeError(`trainLimit must be a positive integer, got ${trainLimit}`);
  }
}

/** The first `limit` images of a set (copied, so the rest can be freed); the set itself when limit is undefined or not smaller. */
export function firstImages(set: ImageSet, limit: number | undefined): ImageSet {
  if (limit === undefined || limit >= set.count) return set;
  const size = set.height * set.width * set.channels;
  return {
    count: limit,
    height: set.height,
    width: set.width,
    channels: set.channels,
    pixels: set.pixels.slice(0, limit * size),
    labels: set.labels.slice(0, limit),
  };
}
