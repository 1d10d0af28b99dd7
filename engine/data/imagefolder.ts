/**
 * ImageNet-style image folders, streamed from disk: `ROOT/train/<class>/**.{jpg,jpeg,png}` and optionally
 * `ROOT/val/<class>/...`, for the ResNet-18 runs.
 *
 * Why a separate API and not a `loadDataset` spec: the in-memory `Dataset` holds every image as bytes of one fixed
 * size, and ImageNet (1.28 million images of varying sizes, ~150 GB) fits neither. So an image folder is scanned
 * once (file names only) and its images are read, decoded, resized and cropped batch by batch, a few batches ahead.
 *
 * The recipe (the usual ResNet one; sizes configurable): the shorter side is resized to `resizeShorter` (256) with an
 * antialiased bilinear filter (PIL's, as torchvision uses), then a `cropSize` x `cropSize` (224) window is taken: at
 * a random place and mirrored left-right with probability 1/2 for training (`augment: true`), in the centre for
 * evaluation. Only the cropped window is ever computed. Values are then normalized (default: ImageNet mean/std on the
 * [0, 1] scale) into float32 NHWC, RGB; grayscale and CMYK JPEGs become RGB, a PNG's alpha is dropped.
 *
 * Classes are the sorted (by code point) names of the folders in train/; val/ may hold a subset of them. Files are
 * taken in sorted order within each class. Decoding uses jpeg-js and pngjs (pure JavaScript, ~20-60 ms per
 * ImageNet-sized JPEG), so `workers: N` moves reading, decoding and resizing into N worker threads.
 *
 * How a trainer consumes it:
 *
 *     const folder = await openImageFolder(root, { workers: 4 });   // DatasetError for a bad layout
 *     // folder.classes, folder.numClasses, folder.inputShape = [224, 224, 3], folder.identity (record with the run)
 *     for (let epoch = first; epoch < epochs; epoch++) {
 *       for await (const b of folder.train.batches({ batchSize: 256, augment: true, seed, epoch, startBatch })) {
 *         const x = tf.tensor4d(b.images, b.shape);          // normalized float32 NHWC
 *         const y = tf.tensor1d(b.labels, 'int32');
 *         ... one step; b.index is the batch number within the epoch (checkpoint it to resume with startBatch)
 *       }
 *     }
 *     for await (const b of folder.val!.batches({ batchSize: 256, augment: false })) { ... }   // centre crops, in order
 *     await folder.close();                                  // ends the worker threads
 *
 * Shuffling and augmentation are a function of (seed, epoch, position) only: the same arguments give the same
 * batches whatever the prefetch depth, the number of workers or where the epoch was resumed. An image that cannot
 * be read or decoded fails its batch with a DatasetError naming the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { DatasetError } from './errors.ts';
import { fsError } from './io.ts';
import { Random, deriveSeed } from '../random.ts';
import type { DatasetIdentity } from './types.ts';
import { decodeImage, readImageHeader } from './imagefolder-decode.ts';
import { IMAGENET_NORMALIZATION, transformImage, type ImageNormalization, type ImageTransform } from './imagefolder-transform.ts';
import { DecodePool } from './imagefolder-pool.ts';
import { LAYOUT, listEntries, scanSplit, type ScannedSplit } from './imagefolder-scan.ts';

// The parts, one file each: decoding (imagefolder-decode.ts), resizing/cropping/normalizing
// (imagefolder-transform.ts), the decoding threads (imagefolder-pool.ts), listing the folder (imagefolder-scan.ts).
export { IMAGE_EXTENSIONS } from './imagefolder-scan.ts';
export { decodeImage, type RgbImage } from './imagefolder-decode.ts';
export { IMAGENET_NORMALIZATION, resizedSize, transformImage, type ImageNormalization, type ImageTransform } from './imagefolder-transform.ts';



export interface ImageFolderOptions {
  /** Length the shorter side is resized to before cropping (default 256). */
  readonly resizeShorter?: number;
  /** Side of the square crop the network sees (default 224); at most resizeShorter. */
  readonly cropSize?: number;
  /** Default IMAGENET_NORMALIZATION. */
  readonly normalization?: ImageNormalization;
  /** Worker threads that read, decode and resize (default 0: on the calling thread, between its awaits). */
  readonly workers?: number;
}

export interface ImageBatchOptions {
  readonly batchSize: number;
  /** Random crop + horizontal flip (training) instead of the centre crop (evaluation). */
  readonly augment: boolean;
  /** Shuffle the order each epoch (default: the value of augment). */
  readonly shuffle?: boolean;
  /** Seed of the shuffle and the augmentation (default 0). */
  readonly seed?: number;
  /** Epoch number: each epoch has its own order and crops (default 0). */
  readonly epoch?: number;
  /** First batch to produce, to resume an epoch where a checkpoint left it (default 0). */
  readonly startBatch?: number;
  /** Leave out a last batch smaller than batchSize (default false). */
  readonly dropLast?: boolean;
  /** Use only the first N images of the epoch's order (e.g. a quick run); default all. */
  readonly limit?: number;
  /** Batches prepared ahead of the one being consumed (default 2). Each holds batchSize * crop * crop * 3 floats. */
  readonly prefetch?: number;
  /** Images read at once on the calling thread (default 8); with workers, 2 per worker. */
  readonly concurrency?: number;
}

export interface ImageBatch {
  /** Batch number within the epoch (startBatch for the first one produced). */
  readonly index: number;
  /** Images in this batch (the last one may be smaller unless dropLast). */
  readonly count: number;
  /** [count, cropSize, cropSize, 3] */
  readonly shape: readonly [number, number, number, number];
  /** count * cropSize * cropSize * 3 normalized values, NHWC, RGB. */
  readonly images: Float32Array;
  /** Class index of each image. */
  readonly labels: Int32Array;
  /** Index of each image in its split (split.files[i]). */
  readonly indices: Int32Array;
}

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
}

function checkNormalization(n: ImageNormalization): void {
  if (n.kind === 'mean-std') {
    const ok = n.mean.length === 3 && n.std.length === 3 && n.mean.every(Number.isFinite) && n.std.every((s) => Number.isFinite(s) && s > 0);
    if (!ok) throw new RangeError('normalization mean-std needs 3 finite means and 3 positive standard deviations');
  } else if (n.kind !== 'unit' && n.kind !== 'per-image-standardization') {
    throw new RangeError(`unknown normalization ${JSON.stringify((n as { kind?: unknown }).kind)}`);
  }
}

/** Runs at most `max` tasks at once, in the order they were queued. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

class Cancelled extends Error {}

/** Stream tags for deriveSeed: the shuffle and the crops draw from independent generators. */
const SHUFFLE_STREAM = 0x5348;
const AUGMENT_STREAM = 0x4147;

/** Image headers read at once by checkImageHeaders (small reads: the disk's queue, not the CPU, bounds them). */
const HEADER_READS = 16;

/** One split (train or val) of an image folder. */
export class ImageFolderSplit {
  /** Number of images. */
  readonly count: number;

  /** @internal Built by openImageFolder. */
  constructor(
    readonly name: 'train' | 'val',
    /** The split's folder. */
    readonly dir: string,
    /** Absolute paths of the images, in class then file order. */
    readonly files: readonly string[],
    /** Class index of each image. */
    readonly labels: Int32Array,
    private readonly owner: ImageFolder,
  ) {
    this.count = files.length;
  }

  /** Batches per epoch for a batch size. */
  batchCount(batchSize: number, dropLast = false, limit?: number): number {
    const n = Math.min(this.count, limit ?? this.count);
    return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
  }

  /** The image order of an epoch: shuffled from (seed, epoch), or the stored order. */
  epochOrder(shuffle: boolean, seed = 0, epoch = 0): Int32Array {
    const order = new Int32Array(this.count);
    for (let i = 0; i < order.length; i++) order[i] = i;
    if (shuffle) new Random(deriveSeed(seed, SHUFFLE_STREAM, epoch)).shuffle(order);
    return order;
  }

  /**
   * Reads the header of every image (not the pixels) and throws the DatasetError of the first damaged one in file
   * order: a run checks its val/ images this way before training, instead of finding one an epoch later.
   */
  async checkImageHeaders(): Promise<void> {
    const limiter = new Limiter(HEADER_READS);
    const results = await Promise.allSettled(this.files.map((file) => limiter.run(() => readImageHeader(file))));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** One image as the batches give it (cropSize * cropSize * 3 floats); `seed` only matters with augment. */
  async loadImage(index: number, options: { augment: boolean; seed?: number } = { augment: false }): Promise<Float32Array> {
    checkInt('index', index, 0);
    if (index >= this.count) throw new RangeError(`index ${index} is outside the ${this.count} images of ${this.name}/`);
    const crop = this.owner.cropSize;
    const out = new Float32Array(crop * crop * 3);
    await this.owner.load(this.files[index]!, this.owner.transform(options.augment, options.seed ?? 0), out, 0);
    return out;
  }

  /**
   * Reads the images `indices` (in any order) into `out` (indices.length * cropSize * cropSize * 3 floats, NHWC) and
   * their classes into `labels`, for a trainer that draws its own batches. With `augment`, image k of the call is
   * cropped and flipped from deriveSeed(seed, k), so the result depends on the arguments only. With worker threads
   * every image is queued at once; on the calling thread at most `concurrency` (default 8) are read at a time.
   */
  async readImages(
    indices: Int32Array,
    out: Float32Array,
    labels: Int32Array,
    options: { readonly augment: boolean; readonly seed?: number; readonly concurrency?: number },
  ): Promise<void> {
    const crop = this.owner.cropSize;
    const perImage = crop * crop * 3;
    if (out.length < indices.length * perImage || labels.length < indices.length) {
      throw new RangeError(`readImages: ${indices.length} images need ${indices.length * perImage} values and ${indices.length} labels`);
    }
    for (const index of indices) {
      if (!Number.isInteger(index) || index < 0 || index >= this.count) throw new RangeError(`index ${index} is outside the ${this.count} images of ${this.name}/`);
    }
    const limiter = new Limiter(this.owner.workers > 0 ? Math.max(1, indices.length) : (options.concurrency ?? 8));
    const seed = options.seed ?? 0;
    let failed = false;
    const jobs = this.queueReads(indices, out, labels, options.augment, (k) => deriveSeed(seed, AUGMENT_STREAM, k), limiter, () => failed)
      .map((job) => job.catch((err: unknown) => {
        failed = true; // one unreadable file fails the call: do not read the rest
        throw err;
      }));
    await settleAll(jobs);
  }

  /**
   * Queues the reading of images `indices` into out (image k at k * crop * crop * 3) and their classes into labels;
   * image k is transformed with the seed seedOf(k). A job that starts after `cancelled()` turns true does not read.
   */
  private queueReads(
    indices: Int32Array,
    out: Float32Array,
    labels: Int32Array,
    augment: boolean,
    seedOf: (k: number) => number,
    limiter: Limiter,
    cancelled: () => boolean,
  ): Promise<void>[] {
    const perImage = this.owner.cropSize * this.owner.cropSize * 3;
    return Array.from(indices, (index, k) => {
      labels[k] = this.labels[index]!;
      const transform = this.owner.transform(augment, seedOf(k));
      return limiter.run(async () => {
        if (cancelled()) throw new Cancelled();
        await this.owner.load(this.files[index]!, transform, out, k * perImage);
      });
    });
  }

  /**
   * The epoch's batches, read and decoded `prefetch` batches ahead. Leaving the loop early (break, an exception)
   * stops the reading. A file that cannot be read or decoded fails its batch with a DatasetError naming it.
   */
  async *batches(options: ImageBatchOptions): AsyncGenerator<ImageBatch, void, undefined> {
    const { batchSize, augment } = options;
    checkInt('batchSize', batchSize, 1);
    const seed = options.seed ?? 0;
    const epoch = options.epoch ?? 0;
    const prefetch = options.prefetch ?? 2;
    checkInt('prefetch', prefetch, 0);
    const startBatch = options.startBatch ?? 0;
    checkInt('startBatch', startBatch, 0);
    if (options.limit !== undefined) checkInt('limit', options.limit, 1);
    const concurrency = options.concurrency ?? (this.owner.workers > 0 ? this.owner.workers * 2 : 8);
    checkInt('concurrency', concurrency, 1);
    const order = this.epochOrder(options.shuffle ?? augment, seed, epoch);
    const n = Math.min(this.count, options.limit ?? this.count);
    const batches = this.batchCount(batchSize, options.dropLast ?? false, options.limit);
    const crop = this.owner.cropSize;
    const perImage = crop * crop * 3;
    const limiter = new Limiter(concurrency);
    let stopped = false;

    const make = async (b: number): Promise<ImageBatch> => {
      const first = b * batchSize;
      const count = Math.min(batchSize, n - first);
      const images = new Float32Array(count * perImage);
      const labels = new Int32Array(count);
      const indices = order.slice(first, first + count);
      // Augmentation depends on (seed, epoch, position) only, never on timing.
      await settleAll(this.queueReads(indices, images, labels, augment, (k) => deriveSeed(seed, AUGMENT_STREAM, epoch, first + k), limiter, () => stopped));
      return { index: b, count, shape: [count, crop, crop, 3], images, labels, indices };
    };

    const queue: Promise<ImageBatch>[] = [];
    let next = startBatch;
    const fill = () => {
      while (queue.length <= prefetch && next < batches) {
        const p = make(next++);
        p.catch(() => undefined); // consumed below; keeps an abandoned batch from being an unhandled rejection
        queue.push(p);
      }
    };
    try {
      fill();
      while (queue.length > 0) {
        const batch = await queue.shift()!;
        fill();
        yield batch;
      }
    } finally {
      stopped = true;
    }
  }
}

/** Waits for every job, then rethrows the first real failure (cancellations only when nothing else failed). */
async function settleAll(jobs: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(jobs);
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
  const real = failures.find((e) => !(e instanceof Cancelled));
  if (real !== undefined) throw real;
  if (failures.length > 0) throw failures[0];
}

/** An opened image folder: its classes, splits, and the shared decoding threads. */
export class ImageFolder {
  readonly numClasses: number;
  /** [cropSize, cropSize, 3]: the shape of one network input. */
  readonly inputShape: readonly [number, number, number];
  readonly train: ImageFolderSplit;
  readonly val: ImageFolderSplit | undefined;
  /** Recorded with runs: name 'imagefolder', the root, the counts, and a sha256 over the class list and file names (not the pixels, which would mean reading every image). */
  readonly identity: DatasetIdentity;
  private pool: DecodePool | undefined;

  /** @internal Use openImageFolder. */
  constructor(
    readonly root: string,
    readonly classes: readonly string[],
    train: ScannedSplit,
    val: ScannedSplit | undefined,
    readonly resizeShorter: number,
    readonly cropSize: number,
    readonly normalization: ImageNormalization,
    readonly workers: number,
  ) {
    this.numClasses = classes.length;
    this.inputShape = [cropSize, cropSize, 3];
    this.train = new ImageFolderSplit('train', train.dir, train.files, train.labels, this);
    this.val = val ? new ImageFolderSplit('val', val.dir, val.files, val.labels, this) : undefined;
    const h = crypto.createHash('sha256');
    h.update(`classes\n${classes.join('\n')}\n`);
    for (const [name, s] of [['train', train], ['val', val]] as const) {
      if (!s) continue;
      h.update(`${name}\n`);
      for (const r of s.relative) h.update(`${r}\n`);
    }
    this.identity = { name: 'imagefolder', source: root, trainCount: train.files.length, testCount: val?.files.length ?? 0, checksum: h.digest('hex') };
  }

  /** @internal The transform of one image. */
  transform(augment: boolean, seed: number): ImageTransform {
    return { resizeShorter: this.resizeShorter, cropSize: this.cropSize, normalization: this.normalization, augment, seed };
  }

  /** @internal Reads, decodes and transforms one file into out[offset...], in a worker when there are any. */
  async load(file: string, t: ImageTransform, out: Float32Array, offset: number): Promise<void> {
    if (this.workers > 0) {
      this.pool ??= new DecodePool(this.workers);
      out.set(await this.pool.run(file, t), offset);
      return;
    }
    let bytes: Buffer;
    try {
      bytes = await fs.promises.readFile(file);
    } catch (err) {
      throw fsError(file, err);
    }
    transformImage(decodeImage(bytes, file), t, out, offset);
  }

  /** Ends the decoding threads (if any); the folder can still be used afterwards, starting new ones. */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.close();
  }
}

/**
 * Opens `root`, an ImageNet-style folder (train/<class>/..., optionally val/<class>/...), listing its files (no
 * image is read yet). Throws a DatasetError for a missing or empty folder, a split without class subfolders, an
 * empty class folder, or a val/ class that train/ lacks.
 */
export async function openImageFolder(root: string, options: ImageFolderOptions = {}): Promise<ImageFolder> {
  const resizeShorter = options.resizeShorter ?? 256;
  const cropSize = options.cropSize ?? 224;
  const workers = options.workers ?? 0;
  const normalization = options.normalization ?? IMAGENET_NORMALIZATION;
  checkInt('cropSize', cropSize, 1);
  checkInt('resizeShorter', resizeShorter, cropSize);
  checkInt('workers', workers, 0);
  checkNormalization(normalization);
  const abs = path.resolve(root);
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(abs);
  } catch (err) {
    throw fsError(root, err);
  }
  if (!st.isDirectory()) throw new DatasetError(root, 'is not a folder', LAYOUT);
  const top = await listEntries(abs);
  if (!top.dirs.includes('train')) {
    const what =
      top.dirs.length === 0 && top.images.length === 0 && top.others === 0
        ? 'is an empty folder'
        : `has no train/ subfolder${top.dirs.length > 0 ? ` (it holds ${top.dirs.slice(0, 3).join(', ')}${top.dirs.length > 3 ? ', ...' : ''}; if those are the classes, put them in train/)` : ''}`;
    throw new DatasetError(root, what, LAYOUT);
  }
  const train = await scanSplit(path.join(abs, 'train'), 'train', undefined);
  const val = top.dirs.includes('val') ? (await scanSplit(path.join(abs, 'val'), 'val', train.classes)).scanned : undefined;
  return new ImageFolder(abs, train.classes, train.scanned, val, resizeShorter, cropSize, normalization, workers);
}
