/**
 * Input pipeline throughput: images/s of fillBatch (bytes -> float32 NHWC) at batch 256, single thread.
 *
 *   node bin/run-ts.js bench/input-pipeline.ts [seconds-per-case]
 *
 * Prints one JSON object. The headline case is CIFAR-sized images (32x32x3) with pad-crop-flip augmentation and
 * per-image standardization, the CIFAR-10 training recipe; MNIST-sized 'unit' and non-augmented cases are for scale.
 */
import { fillBatch, fillLabels } from '../engine/data/batch.ts';
import type { ImageSet, InputNormalization } from '../engine/data/types.ts';
import { Random } from '../engine/random.ts';

const seconds = Number(process.argv[2] ?? 1.5);
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

const cifar = syntheticSet(10_000, 32, 32, 3);
const mnist = syntheticSet(10_000, 28, 28, 1);
const cases = [
  measure(cifar, { kind: 'per-image-standardization' }, true),
  measure(cifar, { kind: 'per-image-standardization' }, false),
  measure(mnist, { kind: 'unit' }, false),
];
console.log(
  JSON.stringify(
    {
      bench: 'input-pipeline',
      node: process.version,
      headline: { case: 'cifar10 32x32x3, pad-crop-flip + per-image standardization, batch 256', imagesPerSecond: cases[0]!.imagesPerSecond, msPerBatch: cases[0]!.msPerBatch },
      cases,
    },
    null,
    2,
  ),
);
