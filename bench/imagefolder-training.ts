/**
 * ResNet-18 LR training on an image folder streamed from disk, against the same crops held in memory (the baseline:
 * no reading or decoding at all), in one run: how much of a training step the image-folder pipeline costs.
 *
 *   node bin/run-ts.js bench/imagefolder-training.ts [--steps N] [--batch N] [--crop N] [--workers 0,1,2] [--backend wasm]
 *
 * The folder holds 500x375 JPEGs (quality 90, about ImageNet's average size) written to a temporary folder; the
 * recipe is the imagenet-ternary-quick preset's (resize 72, crop 64). Each variant trains the LR phase for one epoch
 * of N steps through engine/train.ts; images/s is the trainer's own figure (wall time from asking for a batch to the
 * end of its step, so waiting for images counts). Prints one JSON object.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import jpeg from 'jpeg-js';
import { initBackend, type BackendChoice } from '../engine/backends/index.ts';
import { PRESETS, type TrainingConfig } from '../engine/config.ts';
import { openImageFolderData, type ImageSource, type TrainingData } from '../engine/data/source.ts';
import { train } from '../engine/train.ts';
import { Random } from '../engine/random.ts';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '6' },
    batch: { type: 'string', default: '32' },
    crop: { type: 'string', default: '64' },
    workers: { type: 'string', default: '0,1,2' },
    backend: { type: 'string', default: 'wasm' },
  },
});
const steps = Number(values.steps);
const batch = Number(values.batch);
const crop = Number(values.crop);
const resize = Math.round(crop * 1.125);
const workerCounts = values.workers.split(',').map(Number);
const CLASSES = 8;
const validation = 16;
const trainImages = steps * batch + validation;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-bench-folder-'));
const rng = new Random(3);
const writeImage = (file: string, shade: number) => {
  const width = 500;
  const height = 375;
  const data = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    const x = p % width;
    data[p * 4] = (x * 255) / width;
    data[p * 4 + 1] = shade;
    data[p * 4 + 2] = rng.nextInt(256);
    data[p * 4 + 3] = 255;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, jpeg.encode({ width, height, data }, 90).data);
};
for (let i = 0; i < trainImages; i++) writeImage(path.join(root, 'train', `c${i % CLASSES}`, `${i}.jpg`), (i % CLASSES) * 30);
for (let i = 0; i < CLASSES * 2; i++) writeImage(path.join(root, 'val', `c${i % CLASSES}`, `${i}.jpg`), (i % CLASSES) * 30);

const config: TrainingConfig = {
  ...PRESETS['imagenet-ternary-quick'],
  dataset: { name: 'imagefolder', path: root, cropSize: crop, resizeShorter: resize },
  batchSize: batch,
  validationSize: validation,
  pretrain: { ...PRESETS['imagenet-ternary-quick'].pretrain, epochs: 0 },
  lr: { ...PRESETS['imagenet-ternary-quick'].lr, epochs: 1 },
  evaluation: { samples: 1, every: 0, batchNormImages: 0 },
  backend: values.backend as BackendChoice,
  threads: 'auto',
};

/** The folder's training crops read once into memory: the baseline reads nothing during training. */
async function inMemoryCopy(data: TrainingData): Promise<TrainingData> {
  const perImage = crop * crop * 3;
  const all = Int32Array.from({ length: data.train.count }, (_, i) => i);
  const pixels = new Float32Array(all.length * perImage);
  const labels = new Int32Array(all.length);
  await data.train.read(all, pixels, labels);
  const train: ImageSource = {
    count: data.train.count,
    shape: data.train.shape,
    read(indices, out, outLabels) {
      indices.forEach((index, k) => {
        out.set(pixels.subarray(index * perImage, (index + 1) * perImage), k * perImage);
        outLabels[k] = labels[index]!;
      });
      return Promise.resolve();
    },
  };
  return { ...data, train };
}

const backend = await initBackend(config.backend);
const results: Record<string, unknown>[] = [];
try {
  const variants: { name: string; open: () => Promise<TrainingData> }[] = [
    { name: 'in memory (baseline)', open: async () => inMemoryCopy(await openImageFolderData(root, { cropSize: crop, resizeShorter: resize, workers: 2 })) },
    ...workerCounts.map((workers) => ({
      name: `image folder, ${workers} decoding thread${workers === 1 ? '' : 's'}`,
      open: () => openImageFolderData(root, { cropSize: crop, resizeShorter: resize, workers }),
    })),
  ];
  let baseline = 0;
  for (const variant of variants) {
    const data = await variant.open();
    try {
      const result = await train(config, data, backend, {});
      if (baseline === 0) baseline = result.imagesPerSecond;
      const row = { variant: variant.name, steps: result.steps, threads: result.threads, imagesPerSecond: Number(result.imagesPerSecond.toFixed(2)), ratioToBaseline: Number((result.imagesPerSecond / baseline).toFixed(3)) };
      results.push(row);
      console.error(JSON.stringify(row));
    } finally {
      await data.close();
    }
  }
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
console.log(JSON.stringify({
  benchmark: 'resnet18 LR training, image folder vs in memory',
  date: new Date().toISOString(),
  machine: `${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.availableParallelism()} cores), load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  backend: `${backend.name} (${backend.adapter})`,
  batch, crop, resize, steps,
  results,
}, null, 1));
