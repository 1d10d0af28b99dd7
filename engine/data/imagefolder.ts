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
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { DatasetError } from './errors.ts';
import { fsError } from './io.ts';
import { Random, deriveSeed } from '../random.ts';
import type { DatasetIdentity } from './types.ts';

/** File extensions read as images (case-insensitive); other files are ignored, as are names starting with '.'. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png'];

/** How cropped pixels (0..255) become network inputs. */
export type ImageNormalization =
  /** x / 255. */
  | { readonly kind: 'unit' }
  /** (x - mean) / max(std, 1/sqrt(N)) over the crop's own values, as fillBatch does for CIFAR-10. */
  | { readonly kind: 'per-image-standardization' }
  /** (x / 255 - mean[c]) / std[c] per channel (RGB). */
  | { readonly kind: 'mean-std'; readonly mean: readonly [number, number, number]; readonly std: readonly [number, number, number] };

/** The ImageNet statistics torchvision's pretrained models use. */
export const IMAGENET_NORMALIZATION: ImageNormalization = { kind: 'mean-std', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

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

/** A decoded image: width * height RGB pixels, row-major. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** Everything that decides how one image becomes network input. Plain data, so it can go to a worker. */
export interface ImageTransform {
  readonly resizeShorter: number;
  readonly cropSize: number;
  readonly normalization: ImageNormalization;
  /** Random crop and flip drawn from `seed` (rng draws: dy, dx, flip), or the centre crop. */
  readonly augment: boolean;
  readonly seed: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

const REPLACE = 'Replace or remove this file (every image must be a readable JPEG or PNG)';

function isJpeg(b: Uint8Array): boolean {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

function isPng(b: Uint8Array): boolean {
  return b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a;
}

/**
 * Decodes JPEG or PNG bytes (recognised by their signature, whatever the file's extension) into RGB. Anything else,
 * or data that does not decode, is a DatasetError naming `file`.
 */
export function decodeImage(bytes: Uint8Array, file: string): RgbImage {
  let image: RgbImage;
  if (isJpeg(bytes)) {
    try {
      const d = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false });
      image = { width: d.width, height: d.height, data: d.data };
    } catch (err) {
      throw new DatasetError(file, `cannot be decoded as a JPEG image (${(err as Error).message})`, REPLACE, { cause: err });
    }
  } else if (isPng(bytes)) {
    let png: { width: number; height: number; data: Uint8Array };
    try {
      png = pngjs.PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch (err) {
      throw new DatasetError(file, `cannot be decoded as a PNG image (${(err as Error).message})`, REPLACE, { cause: err });
    }
    // pngjs gives 8-bit RGBA whatever the colour type and depth; alpha is dropped (as PIL's convert('RGB') does).
    const n = png.width * png.height;
    const rgb = new Uint8Array(n * 3);
    const rgba = png.data;
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      rgb[i * 3] = rgba[j]!;
      rgb[i * 3 + 1] = rgba[j + 1]!;
      rgb[i * 3 + 2] = rgba[j + 2]!;
    }
    image = { width: png.width, height: png.height, data: rgb };
  } else {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new DatasetError(file, bytes.length === 0 ? 'is empty (0 bytes), not an image' : `is neither a JPEG nor a PNG image (it starts with bytes ${head})`, REPLACE);
  }
  if (image.width < 1 || image.height < 1 || image.data.length < image.width * image.height * 3) {
    throw new DatasetError(file, `decodes to an image of ${image.width}x${image.height} pixels`, REPLACE);
  }
  return image;
}

// ---------------------------------------------------------------------------------------------------------------
// Resizing and cropping

/** Size after resizing the shorter side to `shorter` (the longer side scaled alike and truncated, as torchvision does). */
export function resizedSize(width: number, height: number, shorter: number): { width: number; height: number } {
  if (width <= height) return { width: shorter, height: Math.max(shorter, Math.floor((shorter * height) / width)) };
  return { width: Math.max(shorter, Math.floor((shorter * width) / height)), height: shorter };
}

/**
 * Filter taps of an antialiased bilinear resize from `inSize` to `outSize`, for the output coordinates `positions`
 * only (PIL's precompute_coeffs with its triangle filter: when shrinking, the filter widens by the scale factor).
 */
function bilinearTaps(inSize: number, outSize: number, positions: ArrayLike<number>): { start: Int32Array; count: Int32Array; weights: Float32Array; stride: number } {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // triangle filter support 1, widened
  const stride = Math.ceil(support) * 2 + 1;
  const n = positions.length;
  const start = new Int32Array(n);
  const count = new Int32Array(n);
  const weights = new Float32Array(n * stride);
  const inv = 1 / filterScale;
  for (let k = 0; k < n; k++) {
    const center = (positions[k]! + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    let total = 0;
    const m = Math.min(hi - lo, stride);
    for (let t = 0; t < m; t++) {
      const x = (t + lo - center + 0.5) * inv;
      const w = Math.max(0, 1 - Math.abs(x));
      weights[k * stride + t] = w;
      total += w;
    }
    if (total > 0) for (let t = 0; t < m; t++) weights[k * stride + t]! /= total;
    start[k] = lo;
    count[k] = m;
  }
  return { start, count, weights, stride };
}

/**
 * Writes `image` resized (shorter side to t.resizeShorter), cropped to t.cropSize (random place and flip drawn from
 * t.seed when t.augment, else centred) and normalized into out[offset ...] (cropSize * cropSize * 3 floats, HWC).
 */
export function transformImage(image: RgbImage, t: ImageTransform, out: Float32Array, offset = 0): void {
  const crop = t.cropSize;
  const { width: rw, height: rh } = resizedSize(image.width, image.height, t.resizeShorter);
  let dy: number;
  let dx: number;
  let flip = false;
  if (t.augment) {
    const rng = new Random(t.seed);
    dy = rng.nextInt(rh - crop + 1);
    dx = rng.nextInt(rw - crop + 1);
    flip = rng.next() < 0.5;
  } else {
    dy = Math.round((rh - crop) / 2);
    dx = Math.round((rw - crop) / 2);
  }
  const cols = new Int32Array(crop);
  const rows = new Int32Array(crop);
  for (let j = 0; j < crop; j++) cols[j] = dx + (flip ? crop - 1 - j : j);
  for (let i = 0; i < crop; i++) rows[i] = dy + i;
  const hx = bilinearTaps(image.width, rw, cols);
  const vy = bilinearTaps(image.height, rh, rows);
  // Source rows the vertical taps touch.
  const y0 = vy.start[0]!;
  const y1 = vy.start[crop - 1]! + vy.count[crop - 1]!;
  const W = image.width;
  const src = image.data;
  const rowLen = crop * 3;
  // Horizontal pass over the needed rows only.
  const tmp = new Float32Array((y1 - y0) * rowLen);
  for (let y = y0; y < y1; y++) {
    const srcRow = y * W * 3;
    const tmpRow = (y - y0) * rowLen;
    for (let j = 0; j < crop; j++) {
      const s0 = hx.start[j]!;
      const m = hx.count[j]!;
      const wBase = j * hx.stride;
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = 0; k < m; k++) {
        const w = hx.weights[wBase + k]!;
        const p = srcRow + (s0 + k) * 3;
        r += w * src[p]!;
        g += w * src[p + 1]!;
        b += w * src[p + 2]!;
      }
      const o = tmpRow + j * 3;
      tmp[o] = r;
      tmp[o + 1] = g;
      tmp[o + 2] = b;
    }
  }
  // Vertical pass into the output.
  for (let i = 0; i < crop; i++) {
    const s0 = vy.start[i]! - y0;
    const m = vy.count[i]!;
    const wBase = i * vy.stride;
    const outRow = offset + i * rowLen;
    for (let q = 0; q < rowLen; q++) {
      let v = 0;
      for (let k = 0; k < m; k++) v += vy.weights[wBase + k]! * tmp[(s0 + k) * rowLen + q]!;
      out[outRow + q] = v;
    }
  }
  normalize(out, offset, crop * crop, t.normalization);
}

function normalize(out: Float32Array, offset: number, pixels: number, n: ImageNormalization): void {
  const end = offset + pixels * 3;
  switch (n.kind) {
    case 'unit':
      for (let i = offset; i < end; i++) out[i] = out[i]! / 255;
      return;
    case 'mean-std': {
      const scale = [1 / (255 * n.std[0]), 1 / (255 * n.std[1]), 1 / (255 * n.std[2])];
      const shift = [n.mean[0] / n.std[0], n.mean[1] / n.std[1], n.mean[2] / n.std[2]];
      for (let i = offset; i < end; i += 3) {
        for (let c = 0; c < 3; c++) out[i + c] = out[i + c]! * scale[c]! - shift[c]!;
      }
      return;
    }
    case 'per-image-standardization': {
      let sum = 0;
      let sumSq = 0;
      for (let i = offset; i < end; i++) {
        const v = out[i]!;
        sum += v;
        sumSq += v * v;
      }
      const N = pixels * 3;
      const mean = sum / N;
      const scale = 1 / Math.max(Math.sqrt(Math.max(sumSq / N - mean * mean, 0)), 1 / Math.sqrt(N));
      for (let i = offset; i < end; i++) out[i] = (out[i]! - mean) * scale;
      return;
    }
  }
}

/** Reads, decodes and transforms one image file (synchronously; used by the worker threads). */
function loadSync(file: string, t: ImageTransform, out: Float32Array, offset: number): void {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw fsError(file, err);
  }
  transformImage(decodeImage(bytes, file), t, out, offset);
}

// ---------------------------------------------------------------------------------------------------------------
// Worker threads

/** Worker threads start without the parent's module hooks: a small script registers tsx, then imports this file. */
function workerBootstrap(): string {
  const self = JSON.stringify(import.meta.url);
  if (!import.meta.url.endsWith('.ts')) return `import(${self})`;
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('tsx/package.json');
  const exported = (require(manifest) as { exports: Record<string, string | { import: string | { default: string } }> }).exports['./esm/api'];
  const target = typeof exported === 'string' ? exported : typeof exported?.import === 'string' ? exported.import : exported?.import.default;
  if (target === undefined) throw new Error('tsx does not export ./esm/api');
  const tsx = JSON.stringify(pathToFileURL(path.join(path.dirname(manifest), target)).href);
  return `import(${tsx}).then((tsx) => { tsx.register(); return import(${self}); })`;
}

interface WorkerTask {
  readonly id: number;
  readonly file: string;
  readonly transform: ImageTransform;
}

type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly pixels: Float32Array }
  | { readonly id: number; readonly ok: false; readonly name: string; readonly message: string; readonly file?: string; readonly problem?: string; readonly remedy?: string };

/** A pool of decoding threads; each worker has at most two tasks in flight, the rest wait in one queue. */
class DecodePool {
  private readonly workers: { worker: Worker; busy: number }[] = [];
  private readonly queue: { task: WorkerTask; resolve: (p: Float32Array) => void; reject: (e: Error) => void }[] = [];
  private readonly pending = new Map<number, { resolve: (p: Float32Array) => void; reject: (e: Error) => void; slot: number }>();
  private nextId = 0;
  private failure: Error | undefined;
  private closed = false;

  constructor(size: number) {
    const code = workerBootstrap();
    for (let i = 0; i < size; i++) {
      const worker = new Worker(code, { eval: true, workerData: { lrnetImageDecoder: true } });
      worker.unref();
      worker.on('message', (reply: WorkerReply) => this.onReply(reply));
      worker.on('error', (err) => this.fail(new Error(`an image decoding thread failed: ${err.message}`, { cause: err })));
      worker.on('exit', (code) => {
        if (!this.closed) this.fail(new Error(`an image decoding thread ended unexpectedly (exit code ${code})`));
      });
      this.workers.push({ worker, busy: 0 });
    }
  }

  run(file: string, transform: ImageTransform): Promise<Float32Array> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('the image folder was closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ task: { id: this.nextId++, file, transform }, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (;;) {
      if (this.queue.length === 0) return;
      let best = -1;
      for (let i = 0; i < this.workers.length; i++) {
        if (this.workers[i]!.busy < 2 && (best < 0 || this.workers[i]!.busy < this.workers[best]!.busy)) best = i;
      }
      if (best < 0) return;
      const { task, resolve, reject } = this.queue.shift()!;
      const slot = this.workers[best]!;
      if (slot.busy++ === 0) slot.worker.ref(); // keep the process alive while work is out
      this.pending.set(task.id, { resolve, reject, slot: best });
      slot.worker.postMessage(task);
    }
  }

  private onReply(reply: WorkerReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    const slot = this.workers[p.slot]!;
    if (--slot.busy === 0) slot.worker.unref();
    if (reply.ok) p.resolve(reply.pixels);
    else if (reply.name === 'DatasetError' && reply.file !== undefined) p.reject(new DatasetError(reply.file, reply.problem ?? reply.message, reply.remedy));
    else p.reject(Object.assign(new Error(reply.message), { name: reply.name }));
    this.dispatch();
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const q of this.queue.splice(0)) q.reject(err);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.fail(new Error('the image folder was closed'));
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}

function serveWorker(): void {
  const port = parentPort!;
  port.on('message', (task: WorkerTask) => {
    const crop = task.transform.cropSize;
    const pixels = new Float32Array(crop * crop * 3);
    try {
      loadSync(task.file, task.transform, pixels, 0);
      port.postMessage({ id: task.id, ok: true, pixels } satisfies WorkerReply, [pixels.buffer]);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      const d = err instanceof DatasetError ? { file: err.file, problem: err.problem, remedy: err.remedy } : {};
      port.postMessage({ id: task.id, ok: false, name: e.name, message: e.message, ...d } satisfies WorkerReply);
    }
  });
}

if (!isMainThread && (workerData as { lrnetImageDecoder?: boolean } | null)?.lrnetImageDecoder === true) serveWorker();

// ---------------------------------------------------------------------------------------------------------------
// Scanning

function hasImageExtension(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => lower.endsWith(e));
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

async function readDir(dir: string): Promise<fs.Dirent[]> {
  try {
    return await fs.promises.readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw fsError(dir, err);
  }
}

/** Resolves a directory entry to 'dir', 'file' or undefined (following symbolic links). */
async function kindOf(dir: string, e: fs.Dirent): Promise<'dir' | 'file' | undefined> {
  if (e.isDirectory()) return 'dir';
  if (e.isFile()) return 'file';
  if (e.isSymbolicLink()) {
    try {
      const st = await fs.promises.stat(path.join(dir, e.name));
      return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : undefined;
    } catch {
      return undefined; // a dangling link
    }
  }
  return undefined;
}

/** Sub-folders and image files of a folder (hidden entries skipped), each sorted. */
async function listEntries(dir: string): Promise<{ dirs: string[]; images: string[]; others: number }> {
  const dirs: string[] = [];
  const images: string[] = [];
  let others = 0;
  for (const e of await readDir(dir)) {
    if (e.name.startsWith('.')) continue;
    const kind = await kindOf(dir, e);
    if (kind === 'dir') dirs.push(e.name);
    else if (kind === 'file' && hasImageExtension(e.name)) images.push(e.name);
    else others++;
  }
  dirs.sort(byCodePoint);
  images.sort(byCodePoint);
  return { dirs, images, others };
}

/** Image files under `dir`, recursively, as sorted paths relative to it. */
async function imagesUnder(dir: string, prefix = '', depth = 0): Promise<string[]> {
  if (depth > 32) throw new DatasetError(dir, 'nests folders more than 32 levels deep (a symbolic link loop?)', 'Remove the loop');
  const { dirs, images } = await listEntries(dir);
  const out = images.map((f) => prefix + f);
  for (const d of dirs) out.push(...(await imagesUnder(path.join(dir, d), `${prefix}${d}/`, depth + 1)));
  return out.sort(byCodePoint);
}

const LAYOUT = 'An image folder holds train/<class>/*.jpg|png (one folder per class) and optionally val/<class>/...';

interface ScannedSplit {
  readonly dir: string;
  readonly files: string[];
  readonly relative: string[];
  readonly labels: Int32Array;
}

async function scanSplit(dir: string, split: 'train' | 'val', classes: readonly string[] | undefined): Promise<{ classes: string[]; scanned: ScannedSplit }> {
  const { dirs, images, others } = await listEntries(dir);
  if (dirs.length === 0) {
    if (images.length > 0) {
      const sortVal = split === 'val' ? " (ImageNet's validation images come in one folder: sort them into class folders with its ground-truth labels first)" : '';
      throw new DatasetError(dir, `holds ${images.length} images but no class subfolders${sortVal}`, `Put each class's images in a subfolder named after the class. ${LAYOUT}`);
    }
    throw new DatasetError(dir, others > 0 ? 'holds no class subfolders (and no images)' : 'is an empty folder', LAYOUT);
  }
  const classList = classes ?? dirs;
  const index = new Map(classList.map((c, i) => [c, i]));
  const files: string[] = [];
  const relative: string[] = [];
  const labels: number[] = [];
  for (const c of dirs) {
    const label = index.get(c);
    const classDir = path.join(dir, c);
    if (label === undefined) {
      throw new DatasetError(classDir, `is a class that train/ does not have (${split}/ may only hold classes of train/)`, 'Rename or remove this folder, or add the class to train/');
    }
    const found = await imagesUnder(classDir);
    if (found.length === 0) {
      throw new DatasetError(classDir, `holds no images (${IMAGE_EXTENSIONS.join(', ')})`, 'Add its images or remove the empty class folder');
    }
    for (const f of found) {
      files.push(path.join(classDir, f));
      relative.push(`${c}/${f}`);
      labels.push(label);
    }
  }
  return { classes: [...classList], scanned: { dir, files, relative, labels: Int32Array.from(labels) } };
}

// ---------------------------------------------------------------------------------------------------------------
// The folder and its splits

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
