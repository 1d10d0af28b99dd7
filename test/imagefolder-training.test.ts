/**
 * Training on ImageNet-style image folders streamed from disk (JPEG and PNG files generated here): ResNet-18 end to
 * end through the real CLI, and how the trainer reads folders (the same crops whatever the decoding threads, resume
 * bit for bit, a broken image stops the run naming the file).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import Database from 'better-sqlite3';
import { initBackend, type BackendInfo } from '../engine/backends/index.ts';
import { PRESETS, parseConfig, ConfigError, type TrainingConfig } from '../engine/config.ts';
import { openImageFolderData, type TrainingData } from '../engine/data/source.ts';
import { DatasetError } from '../engine/data/errors.ts';
import { openTrainingData } from '../engine/run.ts';
import { train, type TrainingEvent, type TrainingResult } from '../engine/train.ts';
import { disposeParameters } from '../engine/models.ts';
import { Random } from '../engine/random.ts';

const repo = path.resolve(import.meta.dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-folder-training-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const COLORS = [[200, 40, 40], [40, 200, 40], [40, 40, 200]] as const;
const TRAIN_PER_CLASS = 40;
const VAL_PER_CLASS = 10;

/**
 * Three classes told apart by their colour, images of varying sizes with noise, half JPEG and half PNG. Returns the
 * folder.
 */
function writeFolder(root: string, options: { val?: boolean } = {}): string {
  const rng = new Random(7);
  const splits = options.val === false ? [['train', TRAIN_PER_CLASS]] as const : [['train', TRAIN_PER_CLASS], ['val', VAL_PER_CLASS]] as const;
  for (const [split, perClass] of splits) {
    COLORS.forEach((color, k) => {
      const dir = path.join(root, split, `class${k}`);
      fs.mkdirSync(dir, { recursive: true });
      for (let i = 0; i < perClass; i++) {
        const width = 40 + rng.nextInt(20);
        const height = 40 + rng.nextInt(20);
        const data = new Uint8Array(width * height * 4);
        for (let p = 0; p < width * height; p++) {
          for (let c = 0; c < 3; c++) data[p * 4 + c] = Math.max(0, Math.min(255, color[c]! + rng.nextInt(60) - 30));
          data[p * 4 + 3] = 255;
        }
        if (i % 2 === 1) {
          fs.writeFileSync(path.join(dir, `${i}.jpg`), jpeg.encode({ width, height, data }, 90).data);
        } else {
          const png = new pngjs.PNG({ width, height });
          png.data.set(data);
          fs.writeFileSync(path.join(dir, `${i}.png`), pngjs.PNG.sync.write(png));
        }
      }
    });
  }
  return root;
}

let folder: string;
let backend: BackendInfo;

beforeAll(async () => {
  folder = writeFolder(path.join(tmp, 'colours'));
  backend = await initBackend('wasm');
});

const small = { cropSize: 28, resizeShorter: 32 };

/** Reads images `indices` of a source into fresh arrays. */
async function read(data: TrainingData, indices: number[], augmentSeed?: number): Promise<{ images: Float32Array; labels: Int32Array }> {
  const images = new Float32Array(indices.length * 28 * 28 * 3);
  const labels = new Int32Array(indices.length);
  await data.train.read(Int32Array.from(indices), images, labels, augmentSeed);
  return { images, labels };
}

const sameBytes = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

describe('an image folder as training data', () => {
  it('describes the folder and reads the same crops with and without decoding threads', async () => {
    const inThread = await openImageFolderData(folder, { ...small, workers: 0 });
    const threaded = await openImageFolderData(folder, { ...small, workers: 2 });
    try {
      expect(inThread.inputShape).toEqual([28, 28, 3]);
      expect(inThread.numClasses).toBe(3);
      expect(inThread.identity).toMatchObject({ name: 'imagefolder', source: folder, trainCount: 120, testCount: 30 });
      expect(inThread.train.count).toBe(120);
      expect(inThread.test.count).toBe(30);
      expect(threaded.identity).toEqual(inThread.identity);

      const indices = [5, 0, 119, 64, 5];
      const centre = await read(inThread, indices);
      const augmented = await read(inThread, indices, 1234);
      expect(sameBytes((await read(threaded, indices)).images, centre.images)).toBe(true);
      expect(sameBytes((await read(threaded, indices, 1234)).images, augmented.images)).toBe(true);
      expect(sameBytes((await read(inThread, indices, 1234)).images, augmented.images)).toBe(true);
      expect(sameBytes((await read(inThread, indices, 1235)).images, augmented.images)).toBe(false);
      expect(sameBytes(augmented.images, centre.images)).toBe(false);
      // The same image twice in a batch gets its own crop each time when augmented, the same centre crop otherwise.
      const perImage = 28 * 28 * 3;
      expect(sameBytes(centre.images.subarray(0, perImage), centre.images.subarray(4 * perImage))).toBe(true);
      expect(Array.from(centre.labels)).toEqual(Array.from(augmented.labels));
      // Normalized with the ImageNet statistics: a red image is high in R and low in B.
      const red = Array.from(centre.labels).indexOf(0);
      if (red >= 0) {
        const px = centre.images.subarray(red * perImage, red * perImage + 3);
        expect(px[0]!).toBeGreaterThan(0.8);
        expect(px[2]!).toBeLessThan(-0.8);
      }
      await expect(inThread.train.read(Int32Array.of(120), new Float32Array(perImage), new Int32Array(1))).rejects.toThrow(/outside the 120 images/);
    } finally {
      await inThread.close();
      await threaded.close();
    }
  });

  it('takes a limited training set at random over all classes, and records it as other data', async () => {
    const all = await openImageFolderData(folder, { ...small, workers: 0 });
    const limited = await openImageFolderData(folder, { ...small, workers: 0, trainLimit: 30 });
    const otherCrop = await openImageFolderData(folder, { cropSize: 24, resizeShorter: 32, workers: 0 });
    try {
      expect(limited.train.count).toBe(30);
      expect(limited.identity.trainCount).toBe(30);
      const { labels } = await read(limited, Array.from({ length: 30 }, (_, i) => i));
      expect(new Set(labels).size).toBe(3);
      expect(new Set([all.identity.checksum, limited.identity.checksum, otherCrop.identity.checksum]).size).toBe(3);
    } finally {
      await Promise.all([all.close(), limited.close(), otherCrop.close()]);
    }
  });

  it('refuses a folder without val/ and names what to add', async () => {
    const noVal = writeFolder(path.join(tmp, 'no-val'), { val: false });
    const error = await openImageFolderData(noVal, small).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as Error).message).toContain(noVal);
    expect((error as Error).message).toMatch(/no val\/ subfolder.*val\/<class>/s);
  });

  it('validates the image-folder settings', () => {
    const base = PRESETS['imagenet-ternary-quick'];
    expect(() => parseConfig({ ...base, dataset: { ...base.dataset, path: folder } })).not.toThrow();
    const problems = (config: TrainingConfig) => {
      try {
        parseConfig(config);
        return [];
      } catch (error) {
        return (error as ConfigError).problems;
      }
    };
    expect(problems({ ...base, dataset: { ...base.dataset, path: folder, cropSize: 0 } })).toEqual([expect.stringMatching(/^dataset.cropSize: expected an integer >= 8/)]);
    expect(problems({ ...base, dataset: { ...base.dataset, path: folder, cropSize: 64, resizeShorter: 60 } })).toEqual([expect.stringMatching(/^dataset.resizeShorter: expected an integer >= 64/)]);
    expect(problems({ ...base, dataset: { name: 'imagefolder' } })).toEqual([expect.stringMatching(/^dataset.path: the imagefolder dataset needs a folder/)]);
    expect(problems({ ...PRESETS['mnist-ternary-quick'], dataset: { name: 'mnist-sample', cropSize: 32 } })).toEqual([expect.stringMatching(/^dataset.cropSize: only image folders/)]);
  });
});

/** A small net (the MNIST architecture on 28x28 colour crops) so checkpoints stay small. */
const folderRun = (): TrainingConfig => ({
  ...PRESETS['imagenet-ternary-quick'],
  architecture: 'mnist',
  dataset: { name: 'imagefolder', path: folder, ...small, decodeWorkers: 1 },
  batchSize: 20,
  validationSize: 30,
  pretrain: { ...PRESETS['imagenet-ternary-quick'].pretrain, epochs: 1 },
  evaluation: { samples: 1, every: 1, batchNormImages: 40 },
  checkpointEvery: 2,
  threads: 1,
  backend: 'wasm',
  seed: 3,
});

async function trainFolder(config: TrainingConfig, options: { checkpointDir?: string; resumeFrom?: string } = {}) {
  const data = await openTrainingData(config.dataset);
  const losses = new Map<number, number>();
  try {
    const result: TrainingResult = await train(config, data, backend, {
      ...options,
      keepParameters: true,
      onEvent: (e: TrainingEvent) => {
        if (e.type === 'step') losses.set(e.step, e.loss);
      },
    });
    const values = new Map<string, Float32Array>();
    for (const [name, v] of result.parameters!) values.set(name, (await v.data()) as Float32Array);
    disposeParameters(result.parameters!);
    return { result, losses, values };
  } finally {
    await data.close();
  }
}

describe('training on an image folder', () => {
  it('resumes from a mid-epoch checkpoint to exactly the parameters of an uninterrupted run', async () => {
    const checkpoints = path.join(tmp, 'ckpt');
    const whole = await trainFolder(folderRun(), { checkpointDir: checkpoints });
    expect(whole.result.status).toBe('completed');
    expect(whole.result.steps).toBe(8); // 90 training images (30 validate) in batches of 20: 4 steps per epoch
    expect(whole.result.dataset.name).toBe('imagefolder');
    expect(whole.result.evaluation!.test.argmax).toBeGreaterThan(0.5); // three colours; chance is 1/3
    // Step 6 is the second step of the LR epoch (checkpointEvery 2).
    const resumed = await trainFolder(folderRun(), { resumeFrom: path.join(checkpoints, 'step-00000006.ckpt') });
    expect([...resumed.losses.keys()]).toEqual([7, 8]);
    for (const step of [7, 8]) expect(resumed.losses.get(step)).toBe(whole.losses.get(step));
    expect([...resumed.values.keys()].sort()).toEqual([...whole.values.keys()].sort());
    for (const [name, v] of whole.values) expect(sameBytes(resumed.values.get(name)!, v), name).toBe(true);
    expect(resumed.result.evaluation).toEqual(whole.result.evaluation);
  });

  it('refuses a damaged image in val/ before training starts, naming the file (not at the first evaluation)', async () => {
    const damaged = path.join(tmp, 'damaged-val');
    fs.cpSync(folder, damaged, { recursive: true });
    const bad = path.join(damaged, 'val', 'class2', '3.jpg');
    fs.writeFileSync(bad, fs.readFileSync(bad).subarray(0, 100)); // cut short inside its header
    const error = await openTrainingData({ ...folderRun().dataset, path: damaged }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as DatasetError).file).toBe(bad);
    expect((error as Error).message).toMatch(/ends \(after 100 bytes\) before its JPEG header/);
  });

  it('stops with an error naming an image that cannot be decoded', async () => {
    const broken = path.join(tmp, 'broken');
    fs.cpSync(folder, broken, { recursive: true });
    const bad = path.join(broken, 'train', 'class1', '3.jpg');
    fs.writeFileSync(bad, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])); // a JPEG signature, then nothing decodable
    const config = { ...folderRun(), dataset: { ...folderRun().dataset, path: broken } };
    const error = await trainFolder(config).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as Error).message).toContain(bad);
    expect((error as Error).message).toMatch(/cannot be decoded as a JPEG/);
  });
});

describe('lrnet train on an image folder', () => {
  it('trains the ResNet-18 recipe (imagenet-ternary-quick) end to end and records the folder as the run\'s data', () => {
    const db = path.join(tmp, 'cli', 'lrnet.db');
    const out = spawnSync(process.execPath, [
      path.join(repo, 'bin/lrnet.js'), 'train', '--preset', 'imagenet-ternary-quick', '--data', folder,
      '--crop-size', '32', '--resize', '36', '--batch', '16', '--validation', '30', '--eval-samples', '1',
      '--backend', 'wasm', '--db', db, '--json',
    ], { encoding: 'utf8', timeout: 240_000 });
    expect(out.status, out.stderr + out.stdout).toBe(0);
    const log = out.stderr + out.stdout;
    expect(log).toMatch(/dataset imagefolder: 90 train, 30 validation, 30 test images/);
    expect(log).toMatch(/model resnet18 ternary: 11,187,651 parameters/);
    const summary = JSON.parse(out.stdout.trim().split('\n').at(-1)!) as {
      runId: string; status: string; dataset: string; test: { argmax: number; expected: number };
    };
    expect(summary).toMatchObject({ status: 'completed', dataset: 'imagefolder' });
    // Three colours (chance 1/3) after one short epoch per phase.
    expect(summary.test.expected).toBeGreaterThanOrEqual(0.6);
    expect(summary.test.argmax).toBeGreaterThan(0.4);
    const store = new Database(db, { readonly: true });
    try {
      const row = store.prepare('SELECT config AS config_json, dataset_name, dataset_checksum FROM runs WHERE id = ?').get(summary.runId) as
        { config_json: string; dataset_name: string; dataset_checksum: string } | undefined;
      expect(row?.dataset_name).toBe('imagefolder');
      expect(row?.dataset_checksum).toMatch(/^[0-9a-f]{64}$/);
      const config = JSON.parse(row!.config_json) as TrainingConfig;
      expect(config.architecture).toBe('resnet18');
      expect(config.dataset).toMatchObject({ name: 'imagefolder', path: folder, cropSize: 32, resizeShorter: 36, trainLimit: 3000, testLimit: 500 });
    } finally {
      store.close();
    }
  }, 300_000);

  it('asks for --data, and explains a bad crop size through its flag', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [path.join(repo, 'bin/lrnet.js'), 'train', '--preset', 'imagenet-binary-quick', ...args], { encoding: 'utf8' });
    const noData = run();
    expect(noData.status).not.toBe(0);
    expect(noData.stderr).toMatch(/--data: imagefolder has no default place/);
    const badCrop = run('--data', folder, '--crop-size', '300');
    expect(badCrop.status).not.toBe(0);
    expect(badCrop.stderr).toMatch(/--resize \(dataset.resizeShorter: expected an integer >= 300/);
  });
});
