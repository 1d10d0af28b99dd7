/**
 * The data sets lrnet can download: where the official files live and the checksums their publishers give, taken
 * from each data set's registry entry (engine/data/mnist.ts, cifar10.ts), and where downloads go.
 *
 * Sources, checked against the publishers (and torchvision's `datasets/mnist.py` and `datasets/cifar.py`, which
 * carry the same values):
 * - MNIST: the four `*-ubyte.gz` files. yann.lecun.com is often down, so the first mirror is the one torchvision
 *   uses (PyTorch's S3 copy of the same files); the original site stays as the fallback. The published md5s are
 *   those of the .gz files as distributed; `inflatedMd5` are the md5s of the uncompressed IDX files (also published
 *   with the data set, and what matters for training: a mirror that re-compresses the files still serves the
 *   official data, and is accepted on that ground).
 * - Fashion-MNIST: Zalando's S3 bucket (the address in its README and torchvision), then the copy in its GitHub
 *   repository. Only the .gz md5s are published.
 * - CIFAR-10: the binary version from the Toronto site (https://www.cs.toronto.edu/~kriz/cifar.html, which lists
 *   its md5).
 */
import path from 'node:path';
import { DATASETS } from '../../engine/data/registry.ts';
import type { DownloadManifest } from '../../engine/data/entry.ts';

export type { PublishedFile } from '../../engine/data/entry.ts';

type Downloadable = Extract<(typeof DATASETS)[number], { readonly download: DownloadManifest }>;

/** The data sets of the registry (engine/data/registry.ts) that have official files to download. */
export type DownloadableDataset = Downloadable['name'];

const DOWNLOADABLE: readonly Downloadable[] = DATASETS.filter((d): d is Downloadable => 'download' in d);

export const DOWNLOADABLE_DATASETS: readonly DownloadableDataset[] = DOWNLOADABLE.map((d) => d.name);

export interface DatasetSource extends DownloadManifest {
  readonly name: DownloadableDataset;
}

/** Each downloadable data set's manifest by name (every name is there: fromEntries cannot say so itself). */
export const DATASET_SOURCES = Object.fromEntries(
  DOWNLOADABLE.map((d): [DownloadableDataset, DatasetSource] => [d.name, { name: d.name, ...d.download }]),
) as Readonly<Record<DownloadableDataset, DatasetSource>>;

/** Environment variable naming the base URL(s) to download from instead of the official mirrors (comma-separated). */
export const BASE_URL_ENV = 'LRNET_DATA_BASE_URL';

/** Name of the record a completed download leaves in the data set's folder (see download.ts). */
export const MANIFEST_FILE = 'lrnet-dataset.json';

/** Suffix of a file being downloaded; it is renamed to the final name only once its checksum is verified. */
export const PART_SUFFIX = '.part';

export function isDownloadableDataset(name: unknown): name is DownloadableDataset {
  return typeof name === 'string' && (DOWNLOADABLE_DATASETS as readonly string[]).includes(name);
}

/** `<dataFolder>/datasets/<name>`: where a downloaded data set lives. */
export function datasetFolder(dataFolder: string, name: DownloadableDataset): string {
  return path.join(dataFolder, 'datasets', name);
}
