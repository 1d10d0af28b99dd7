/**
 * The data sets lrnet can download: where the official files live and the checksums their publishers give.
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

export type DownloadableDataset = 'mnist' | 'fashion-mnist' | 'cifar10';

export const DOWNLOADABLE_DATASETS: readonly DownloadableDataset[] = ['mnist', 'fashion-mnist', 'cifar10'];

/** One file as its publisher distributes it. */
export interface PublishedFile {
  /** File name on the server and on disk. */
  readonly name: string;
  /** Published md5 (hex) of the file as distributed. */
  readonly md5: string;
  /** Published md5 of the gunzipped content, where there is one (MNIST). */
  readonly inflatedMd5?: string;
  /** Size in bytes as distributed, used for progress when a server sends no length. */
  readonly bytes: number;
}

export interface DatasetSource {
  readonly name: DownloadableDataset;
  readonly title: string;
  readonly homepage: string;
  /** Base URLs tried in order; a file's URL is the base followed by the file name. */
  readonly mirrors: readonly string[];
  readonly files: readonly PublishedFile[];
}

export const DATASET_SOURCES: Readonly<Record<DownloadableDataset, DatasetSource>> = {
  mnist: {
    name: 'mnist',
    title: 'MNIST',
    homepage: 'http://yann.lecun.com/exdb/mnist/',
    mirrors: ['https://ossci-datasets.s3.amazonaws.com/mnist/', 'http://yann.lecun.com/exdb/mnist/'],
    files: [
      { name: 'train-images-idx3-ubyte.gz', md5: 'f68b3c2dcbeaaa9fbdd348bbdeb94873', inflatedMd5: '6bbc9ace898e44ae57da46a324031adb', bytes: 9_912_422 },
      { name: 'train-labels-idx1-ubyte.gz', md5: 'd53e105ee54ea40749a09fcbcd1e9432', inflatedMd5: 'a25bea736e30d166cdddb491f175f624', bytes: 28_881 },
      { name: 't10k-images-idx3-ubyte.gz', md5: '9fb629c4189551a2d022fa330f9573f3', inflatedMd5: '2646ac647ad5339dbf082846283269ea', bytes: 1_648_877 },
      { name: 't10k-labels-idx1-ubyte.gz', md5: 'ec29112dd5afa0611ce80d1b7f02629c', inflatedMd5: '27ae3e4e09519cfbb04c329615203637', bytes: 4_542 },
    ],
  },
  'fashion-mnist': {
    name: 'fashion-mnist',
    title: 'Fashion-MNIST',
    homepage: 'https://github.com/zalandoresearch/fashion-mnist',
    mirrors: [
      'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
      'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/',
    ],
    files: [
      { name: 'train-images-idx3-ubyte.gz', md5: '8d4fb7e6c68d591d4c3dfef9ec88bf0d', bytes: 26_421_880 },
      { name: 'train-labels-idx1-ubyte.gz', md5: '25c81989df183df01b3e8a0aad5dffbe', bytes: 29_515 },
      { name: 't10k-images-idx3-ubyte.gz', md5: 'bef4ecab320f06d8554ea6380940ec79', bytes: 4_422_102 },
      { name: 't10k-labels-idx1-ubyte.gz', md5: 'bb300cfdad3c16e7a12a480ee83cd310', bytes: 5_148 },
    ],
  },
  cifar10: {
    name: 'cifar10',
    title: 'CIFAR-10 (binary version)',
    homepage: 'https://www.cs.toronto.edu/~kriz/cifar.html',
    mirrors: ['https://www.cs.toronto.edu/~kriz/'],
    files: [{ name: 'cifar-10-binary.tar.gz', md5: 'c32a1d4ab5d03f1284b67883e8d87530', bytes: 170_052_171 }],
  },
};

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
