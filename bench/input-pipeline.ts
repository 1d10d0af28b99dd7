/**
 * Input pipeline throughput: images/s of fillBatch (bytes -> float32 NHWC) at batch 256, single thread, and of the
 * image-folder pipeline (read JPEG from disk, decode, resize shorter side to 256, crop 224, normalize).
 *
 *   node bin/run-ts.js bench/input-pipeline.ts [seconds-per-case] [image-folder worker counts, e.g. 0,2,4]
 *
 * Prints one JSON object. The headline case is CIFAR-sized images (32x32x3) with pad-crop-flip augmentation and
 * per-image standardization, the CIFAR-10 training recipe; MNIST-sized 'unit' and non-augmented cases are for scale.
 * The image-folder cases use 500x375 JPEGs (quality 90, about ImageNet's average size) written to a temporary
 * folder; they report the whole pipeline per worker count (0: on the calling thread), and decode and
 * resize-and-crop alone on one thread.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { fillBatch, fillLabels } from '../engine/data/batch.ts';
import { decodeImage, openImageFolder, transformImage, IMAGENET_NORMALIZATION } from '../engine/data/imagefolder.ts';
import type { ImageSet, InputNormalization } from '../engine/data/types.ts';
import { Random } from '../engine/random.ts';

const seconds = Number(process.argv[2] ?? 1.5);
const imageWorkers = (process.argv[3] ?? '0,2').split(',').map(Number);
const BATCH = 256;

function syntheticSet(count: number, height: number, width: number, channels: number): ImageSet {
  const rng = new Random(1);
  const pixels = new Uint8Array(count * height * width * channels);
  for (let i = 0; i < pixels.length; i++) pixels[i] = rng.nextUint32() & 255;
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) labels[i] = i % 10;
  return { count, height, width, channels, pixels, labels };
}

function measure(set: ImageSet, normalization: InputNormalization, augment: boolean) {
  const rng = new Random(42);
  const size = set.height * set.width * set.channels;
  const out = new Float32Array(BATCH * size);
  const labelsOut = new Int32Array(BATCH);
  const order = new Int32Array(set.count);
  for (let i = 0; i < set.count; i++) order[i] = i;
  rng.shuffle(order);
  let cursor = 0;
  const step = () => {
    if (cursor + BATCH > set.count) cursor = 0;
    const idx = order.subarray(cursor, cursor + BATCH);
    cursor += BATCH;
    fillBatch(set, idx, normalization, augment, rng, out);
    fillLabels(set, idx, labelsOut);
  };
  for (let i = 0; i < 20; i++) step(); // warm-up (JIT)
  let batches = 0;
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  let now = t0;
  while (now < deadline) {
    step();
    batches++;
    now = process.hrtime.bigint();
  }
  const elapsed = Number(now - t0) / 1e9;
  return {
    shape: [set.height, set.width, set.channels],
    normalization: normalization.kind,
    augment,
    batch: BATCH,
    batches,
    msPerBatch: +((elapsed / batches) * 1000).toFixed(3),
    imagesPerSecond: Math.round((batches * BATCH) / elapsed),
  };
}

/** A photo-like RGBA image: smooth gradients and blobs plus a little noise (pure noise would not compress like a photo). */
function photoLike(width: number, height: number, seed: number): Uint8Array {
  const rng = new Random(seed);
  const data = new Uint8Array(width * height * 4);
  const fx = 2 + rng.nextInt(6);
  const fy = 2 + rng.nextInt(6);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      const s = Math.sin((x / width) * fx * Math.PI) * Math.cos((y / height) * fy * Math.PI);
      data[o] = Math.max(0, Math.min(255, 128 + 100 * s + rng.nextInt(12)));
      data[o + 1] = Math.max(0, Math.min(255, (x * 255) / width + rng.nextInt(12)));
      data[o + 2] = Math.max(0, Math.min(255, (y * 255) / height + rng.nextInt(12)));
      data[o + 3] = 255;
    }
  }
  return data;
}

const IMAGE_BATCH = 32;

/** images/s of the image-folder pipeline: 128 JPEGs (16 distinct) in 4 classes, training batches of 32. */
async function measureImageFolder() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-bench-images-'));
  try {
    const W = 500;
    const H = 375;
    const encoded = Array.from({ length: 16 }, (_, i) => jpeg.encode({ width: W, height: H, data: photoLike(W, H, i) }, 90).data);
    for (let i = 0; i < 128; i++) {
      const dir = path.join(root, 'train', `class${i % 4}`);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `img${i}.jpg`), encoded[i % 16]!);
    }
    const meanJpegBytes = Math.round(encoded.reduce((s, b) => s + b.length, 0) / encoded.length);
    // Decode alone, then resize + crop + normalize alone, on this thread.
    const timeEach = (fn: (i: number) => void) => {
      for (let i = 0; i < 8; i++) fn(i); // warm-up
      let n = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < seconds * 1000) fn(n++);
      return (performance.now() - t0) / n;
    };
    const decodeMs = timeEach((i) => decodeImage(encoded[i % 16]!, 'bench.jpg'));
    const decoded = encoded.map((b) => decodeImage(b, 'bench.jpg'));
    const out = new Float32Array(224 * 224 * 3);
    const transformMs = timeEach((i) =>
      transformImage(decoded[i % 16]!, { resizeShorter: 256, cropSize: 224, normalization: IMAGENET_NORMALIZATION, augment: true, seed: i }, out),
    );
    const pipeline = [];
    for (const workers of imageWorkers) {
      const folder = await openImageFolder(root, { workers });
      try {
        let epoch = 0;
        const run = async () => {
          let images = 0;
          for await (const b of folder.train.batches({ batchSize: IMAGE_BATCH, augment: true, seed: 1, epoch: epoch++ })) images += b.count;
          return images;
        };
        await run(); // warm-up: JIT, and starting the worker threads
        let images = 0;
        const t0 = performance.now();
        while (performance.now() - t0 < seconds * 1000) images += await run();
        const elapsed = (performance.now() - t0) / 1000;
        pipeline.push({ workers, batch: IMAGE_BATCH, images, imagesPerSecond: Math.round(images / elapsed) });
      } finally {
        await folder.close();
      }
    }
    return {
      source: `${W}x${H} JPEG, quality 90, ${meanJpegBytes} bytes on average`,
      recipe: 'shorter side 256, random 224x224 crop + flip, ImageNet mean/std',
      decodeMsPerImage: +decodeMs.toFixed(2),
      resizeCropMsPerImage: +transformMs.toFixed(2),
      pipeline,
    };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

const cifar = syntheticSet(10_000, 32, 32, 3);
const mnist = syntheticSet(10_000, 28, 28, 1);
const cases = [
  measure(cifar, { kind: 'per-image-standardization' }, true),
  measure(cifar, { kind: 'per-image-standardization' }, false),
  measure(mnist, { kind: 'unit' }, false),
];
const imageFolder = await measureImageFolder();
console.log(
  JSON.stringify(
    {
      bench: 'input-pipeline',
      node: process.version,
      headline: { case: 'cifar10 32x32x3, pad-crop-flip + per-image standardization, batch 256', imagesPerSecond: cases[0]!.imagesPerSecond, msPerBatch: cases[0]!.msPerBatch },
      cases,
      cpus: os.availableParallelism(),
      imageFolder,
    },
    null,
    2,
  ),
);
