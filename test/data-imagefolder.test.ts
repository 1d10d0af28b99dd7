/**
 * ImageNet-style image folders: folders of JPEG and PNG files generated here (encoded with jpeg-js and pngjs).
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { DatasetError } from '../engine/data/errors.ts';
import {
  IMAGENET_NORMALIZATION,
  decodeImage,
  openImageFolder,
  resizedSize,
  transformImage,
  type ImageBatch,
  type ImageFolder,
  type RgbImage,
} from '../engine/data/imagefolder.ts';
import { readImageHeader } from '../engine/data/imagefolder-decode.ts';
import { Random } from '../engine/random.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-imagefolder-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** RGBA pixels: red follows x, green follows y, blue is the class's own value; seeded noise on top. */
function pattern(width: number, height: number, blue: number, seed: number): Uint8Array {
  const rng = new Random(seed);
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      data[o] = Math.min(255, Math.round((x * 255) / width) + rng.nextInt(8));
      data[o + 1] = Math.min(255, Math.round((y * 255) / height) + rng.nextInt(8));
      data[o + 2] = blue;
      data[o + 3] = 255;
    }
  }
  return data;
}

function writeJpeg(file: string, width: number, height: number, rgba: Uint8Array, quality = 90): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, jpeg.encode({ width, height, data: rgba }, quality).data);
}

function writePng(file: string, width: number, height: number, rgba: Uint8Array, colorType: 0 | 2 | 6 = 6): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const png = new pngjs.PNG({ width, height });
  png.data.set(rgba);
  fs.writeFileSync(file, pngjs.PNG.sync.write(png, { colorType }));
}

const CLASSES = ['n01440764', 'n01443537', 'n01484850']; // ImageNet-style names; listed here in sorted order
const BLUE = [20, 120, 220];
const PER_CLASS = 7;
let root: string;
const small = { resizeShorter: 40, cropSize: 32, normalization: { kind: 'unit' } as const };

beforeAll(() => {
  root = path.join(tmp, 'imagenet');
  // Written in an unsorted order, with mixed formats, sizes (landscape and portrait) and extensions.
  for (const c of [2, 0, 1]) {
    for (let i = 0; i < PER_CLASS; i++) {
      const w = 48 + 4 * i;
      const h = i % 2 === 0 ? 44 : 70;
      const rgba = pattern(w, h, BLUE[c]!, c * 100 + i);
      const base = path.join(root, 'train', CLASSES[c]!, `img_${String(i).padStart(2, '0')}`);
      if (i % 3 === 0) writePng(base + '.png', w, h, rgba);
      else writeJpeg(base + (i % 3 === 1 ? '.JPEG' : '.jpg'), w, h, rgba);
    }
    for (let i = 0; i < 2; i++) writeJpeg(path.join(root, 'val', CLASSES[c]!, `v${i}.jpg`), 60, 50, pattern(60, 50, BLUE[c]!, 1000 + c * 10 + i));
  }
  // Things that are not images are ignored.
  fs.writeFileSync(path.join(root, 'train', CLASSES[0]!, 'notes.txt'), 'not an image');
  fs.writeFileSync(path.join(root, 'train', CLASSES[0]!, '.DS_Store'), 'hidden');
  fs.writeFileSync(path.join(root, 'LICENSE'), 'x');
});

async function collect(it: AsyncIterable<ImageBatch>): Promise<ImageBatch[]> {
  const out: ImageBatch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

describe('openImageFolder', () => {
  it('maps sorted class folders to labels and lists every image of train/ and val/', async () => {
    const folder = await openImageFolder(root, small);
    expect(folder.classes).toEqual(CLASSES);
    expect(folder.numClasses).toBe(3);
    expect(folder.inputShape).toEqual([32, 32, 3]);
    expect(folder.train.count).toBe(3 * PER_CLASS);
    expect(folder.val!.count).toBe(6);
    // Class then file order; labels follow the class folder.
    expect(folder.train.files.slice(0, 3).map((f) => path.relative(root, f))).toEqual([
      `train/${CLASSES[0]}/img_00.png`,
      `train/${CLASSES[0]}/img_01.JPEG`,
      `train/${CLASSES[0]}/img_02.jpg`,
    ]);
    expect(Array.from(folder.train.labels)).toEqual([...Array(PER_CLASS).fill(0), ...Array(PER_CLASS).fill(1), ...Array(PER_CLASS).fill(2)]);
    expect(Array.from(folder.val!.labels)).toEqual([0, 0, 1, 1, 2, 2]);
    expect(folder.identity).toMatchObject({ name: 'imagefolder', source: root, trainCount: 21, testCount: 6 });
    expect(folder.identity.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect((await openImageFolder(root, small)).identity.checksum).toBe(folder.identity.checksum);
  });

  it('gives batches of the configured shape, labels matching the images, centre crops in order for evaluation', async () => {
    const folder = await openImageFolder(root, small);
    const batches = await collect(folder.train.batches({ batchSize: 8, augment: false }));
    expect(batches.map((b) => b.count)).toEqual([8, 8, 5]);
    expect(batches.map((b) => b.index)).toEqual([0, 1, 2]);
    for (const b of batches) {
      expect(b.shape).toEqual([b.count, 32, 32, 3]);
      expect(b.images).toBeInstanceOf(Float32Array);
      expect(b.images.length).toBe(b.count * 32 * 32 * 3);
      expect(b.labels).toBeInstanceOf(Int32Array);
      expect(Array.from(b.labels)).toEqual(Array.from(b.indices, (i) => folder.train.labels[i]!));
      expect(b.images.every((v) => v >= 0 && v <= 1)).toBe(true);
    }
    expect(Array.from(batches.flatMap((b) => Array.from(b.indices)))).toEqual(Array.from({ length: 21 }, (_, i) => i));
    // The blue channel carries the class: every pixel of an image of class c is close to BLUE[c] / 255.
    for (const b of batches) {
      for (let k = 0; k < b.count; k++) {
        const blue = b.images[k * 32 * 32 * 3 + (16 * 32 + 16) * 3 + 2]!;
        expect(Math.abs(blue * 255 - BLUE[b.labels[k]!]!)).toBeLessThan(6);
      }
    }
    expect((await collect(folder.train.batches({ batchSize: 8, augment: false, dropLast: true }))).map((b) => b.count)).toEqual([8, 8]);
    expect((await collect(folder.train.batches({ batchSize: 4, augment: false, limit: 10 }))).map((b) => b.count)).toEqual([4, 4, 2]);
    expect(folder.train.batchCount(8)).toBe(3);
  });

  it('uses the ResNet defaults: shorter side 256, 224x224 crops, ImageNet mean/std', async () => {
    const folder = await openImageFolder(root);
    expect(folder.inputShape).toEqual([224, 224, 3]);
    const [b] = await collect(folder.val!.batches({ batchSize: 2, augment: false, limit: 2 }));
    expect(b!.shape).toEqual([2, 224, 224, 3]);
    // Blue is constant in these images: (blue / 255 - mean) / std exactly, up to JPEG error.
    const expected = (BLUE[0]! / 255 - 0.406) / 0.225;
    expect(Math.abs(b!.images[(100 * 224 + 100) * 3 + 2]! - expected)).toBeLessThan(0.1);
    expect(IMAGENET_NORMALIZATION).toEqual({ kind: 'mean-std', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  });

  it('shuffles and augments from (seed, epoch, position) only: reproducible, different per epoch, resumable', async () => {
    const folder = await openImageFolder(root, small);
    const opts = { batchSize: 5, augment: true, seed: 7 };
    const a = await collect(folder.train.batches({ ...opts, epoch: 1 }));
    const b = await collect(folder.train.batches({ ...opts, epoch: 1, prefetch: 0, concurrency: 1 }));
    expect(a.length).toBe(5);
    a.forEach((x, i) => {
      expect(Array.from(x.indices)).toEqual(Array.from(b[i]!.indices));
      expect(same(x.images, b[i]!.images)).toBe(true);
    });
    const order = a.flatMap((x) => Array.from(x.indices));
    expect([...order].sort((p, q) => p - q)).toEqual(Array.from({ length: 21 }, (_, i) => i));
    expect(order).not.toEqual(Array.from({ length: 21 }, (_, i) => i));
    const other = await collect(folder.train.batches({ ...opts, epoch: 2 }));
    expect(other.flatMap((x) => Array.from(x.indices))).not.toEqual(order);
    const otherSeed = await collect(folder.train.batches({ ...opts, seed: 8, epoch: 1 }));
    expect(otherSeed.flatMap((x) => Array.from(x.indices))).not.toEqual(order);
    // Resuming at batch 3 gives exactly the tail of the full epoch.
    const tail = await collect(folder.train.batches({ ...opts, epoch: 1, startBatch: 3 }));
    expect(tail.map((x) => x.index)).toEqual([3, 4]);
    tail.forEach((x, i) => expect(same(x.images, a[3 + i]!.images)).toBe(true));
    // Augmented crops differ from the centre crop of the same image.
    const centre = await folder.train.loadImage(a[0]!.indices[0]!);
    const crops = await Promise.all([1, 2, 3, 4].map((seed) => folder.train.loadImage(a[0]!.indices[0]!, { augment: true, seed })));
    expect(crops.some((c) => !same(c, centre))).toBe(true);
  });

  it('places the random crop where the seed says and mirrors it', () => {
    // A 40x40 image with resizeShorter 40 is not resampled: a crop is a window of the source, exactly.
    const W = 40;
    const data = new Uint8Array(W * W * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 37) % 251;
    const image: RgbImage = { width: W, height: W, data };
    const seen = new Set<boolean>();
    for (let seed = 1; seed <= 8; seed++) {
      const rng = new Random(seed);
      const dy = rng.nextInt(W - 32 + 1);
      const dx = rng.nextInt(W - 32 + 1);
      const flip = rng.next() < 0.5;
      seen.add(flip);
      const out = new Float32Array(32 * 32 * 3);
      transformImage(image, { ...small, augment: true, seed }, out);
      for (const [y, x, c] of [[0, 0, 0], [5, 31, 1], [31, 7, 2], [17, 12, 0]] as const) {
        const sx = dx + (flip ? 31 - x : x);
        expect(out[(y * 32 + x) * 3 + c]! * 255).toBeCloseTo(data[((dy + y) * W + sx) * 3 + c]!, 3);
      }
    }
    expect(seen).toEqual(new Set([true, false])); // both cases were exercised
  });

  it('resizes the shorter side with an antialiased bilinear filter (a ramp stays a ramp)', () => {
    expect(resizedSize(500, 375, 256)).toEqual({ width: 341, height: 256 });
    expect(resizedSize(375, 500, 256)).toEqual({ width: 256, height: 341 });
    expect(resizedSize(100, 100, 256)).toEqual({ width: 256, height: 256 });
    // 160x80 halves to 80x40 (scale 2): PIL's bilinear filter then weighs source columns 2u-1 .. 2u+2 by 1, 3, 3, 1 (/8).
    const w = 160;
    const h = 80;
    const ramp = (x: number) => Math.floor(x * 1.5);
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[(y * w + x) * 3] = ramp(x);
    const out = new Float32Array(40 * 40 * 3);
    transformImage({ width: w, height: h, data }, { resizeShorter: 40, cropSize: 40, normalization: { kind: 'unit' }, augment: false, seed: 0 }, out);
    // The centre crop of the 80x40 resized image starts at resized column 20; interior columns only (no border).
    for (const j of [3, 10, 20, 35]) {
      const u = 20 + j;
      const exact = (ramp(2 * u - 1) + 3 * ramp(2 * u) + 3 * ramp(2 * u + 1) + ramp(2 * u + 2)) / 8;
      expect(out[(20 * 40 + j) * 3]! * 255).toBeCloseTo(exact, 3);
    }
    // A constant image stays constant whatever the scale, up or down.
    for (const [cw, ch] of [[17, 23], [300, 210]] as const) {
      const c = new Uint8Array(cw * ch * 3).fill(77);
      const o = new Float32Array(32 * 32 * 3);
      transformImage({ width: cw, height: ch, data: c }, { ...small, augment: true, seed: 3 }, o);
      expect(o.every((v) => Math.abs(v * 255 - 77) < 1e-3)).toBe(true);
    }
  });

  it('decodes grayscale and alpha PNGs and grayscale JPEGs as RGB', () => {
    const rgba = pattern(16, 12, 99, 5);
    const gray = path.join(tmp, 'gray.png');
    writePng(gray, 16, 12, rgba, 0);
    const g = decodeImage(fs.readFileSync(gray), gray);
    expect([g.width, g.height, g.data.length]).toEqual([16, 12, 16 * 12 * 3]);
    for (let i = 0; i < 16 * 12; i++) expect(g.data[i * 3]).toBe(g.data[i * 3 + 2]);
    const alpha = new Uint8Array(rgba);
    for (let i = 3; i < alpha.length; i += 4) alpha[i] = 0; // fully transparent: the colour is kept
    const a = path.join(tmp, 'alpha.png');
    writePng(a, 16, 12, alpha);
    expect(Array.from(decodeImage(fs.readFileSync(a), a).data.subarray(0, 3))).toEqual(Array.from(rgba.subarray(0, 3)));
    // A PNG named .jpg decodes by its signature.
    const disguised = path.join(tmp, 'really-a-png.jpg');
    fs.copyFileSync(a, disguised);
    expect(decodeImage(fs.readFileSync(disguised), disguised).width).toBe(16);
  });

  it('streams: reads only the batches asked for plus the prefetch, and stops reading when the loop ends', async () => {
    const folder = await openImageFolder(root, small);
    const spy = vi.spyOn(fs.promises, 'readFile');
    try {
      const it = folder.train.batches({ batchSize: 2, augment: false, prefetch: 1, concurrency: 2 });
      const first = await it.next();
      expect(first.done).toBe(false);
      await new Promise((r) => setTimeout(r, 100));
      // Batch 0 consumed; batches 1 and 2 may be in flight: at most 6 of the 21 files were read.
      expect(spy.mock.calls.length).toBeGreaterThanOrEqual(2);
      expect(spy.mock.calls.length).toBeLessThanOrEqual(6);
      await it.return(undefined);
      const after = spy.mock.calls.length;
      await new Promise((r) => setTimeout(r, 100));
      expect(spy.mock.calls.length).toBe(after);
      expect(after).toBeLessThan(21);
    } finally {
      spy.mockRestore();
    }
  });

  it('gives the same batches with worker threads, and their errors name the file', async () => {
    const main = await openImageFolder(root, small);
    const threaded = await openImageFolder(root, { ...small, workers: 2 });
    try {
      const opts = { batchSize: 6, augment: true, seed: 11, epoch: 3 };
      const a = await collect(main.train.batches(opts));
      const b = await collect(threaded.train.batches(opts));
      expect(b.length).toBe(a.length);
      a.forEach((x, i) => expect(same(x.images, b[i]!.images)).toBe(true));

      const broken = path.join(tmp, 'broken-threads');
      writeJpeg(path.join(broken, 'train', 'a', 'ok.jpg'), 50, 50, pattern(50, 50, 1, 1));
      fs.mkdirSync(path.join(broken, 'train', 'b'), { recursive: true });
      fs.writeFileSync(path.join(broken, 'train', 'b', 'bad.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0, 1, 2, 3]));
      const f = await openImageFolder(broken, { ...small, workers: 1 });
      const error = await collect(f.train.batches({ batchSize: 2, augment: false })).catch((e: unknown) => e);
      await f.close();
      expect(error).toBeInstanceOf(DatasetError);
      expect((error as DatasetError).file).toBe(path.join(broken, 'train', 'b', 'bad.jpg'));
      expect((error as Error).message).toMatch(/cannot be decoded as a JPEG image/);
    } finally {
      await threaded.close();
    }
  });
});

describe('image folder errors', () => {
  const make = (name: string, files: Record<string, string | Buffer | null>) => {
    const dir = path.join(tmp, 'err', name);
    fs.mkdirSync(dir, { recursive: true });
    for (const [rel, content] of Object.entries(files)) {
      const p = path.join(dir, rel);
      if (content === null) fs.mkdirSync(p, { recursive: true });
      else {
        fs.mkdirSync(path.dirname(p), { recursive: true });
        fs.writeFileSync(p, content);
      }
    }
    return dir;
  };
  const jpg = () => Buffer.from(jpeg.encode({ width: 8, height: 8, data: pattern(8, 8, 0, 1) }, 80).data);
  const expectError = async (p: Promise<unknown>, file: string, problem: RegExp) => {
    const e = await p.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DatasetError);
    expect((e as DatasetError).file).toBe(file);
    expect((e as DatasetError).message).toMatch(problem);
  };

  it('an empty folder, a missing one, a file', async () => {
    const empty = make('empty', {});
    await expectError(openImageFolder(empty), empty, /is an empty folder.*train\/<class>/);
    await expectError(openImageFolder(path.join(tmp, 'nope')), path.join(tmp, 'nope'), /does not exist/);
    const file = path.join(make('file', { 'x.txt': 'x' }), 'x.txt');
    await expectError(openImageFolder(file), file, /is not a folder/);
  });

  it('class folders without train/ around them', async () => {
    const dir = make('no-train', { 'cat/1.jpg': jpg(), 'dog/1.jpg': jpg() });
    await expectError(openImageFolder(dir), dir, /has no train\/ subfolder \(it holds cat, dog; if those are the classes, put them in train\/\)/);
  });

  it('a split without class subfolders', async () => {
    const dir = make('flat', { 'train/1.jpg': jpg(), 'train/2.png': jpg() });
    await expectError(openImageFolder(dir), path.join(dir, 'train'), /holds 2 images but no class subfolders/);
    const val = make('flat-val', { 'train/a/1.jpg': jpg(), 'val/ILSVRC2012_val_00000001.JPEG': jpg() });
    await expectError(openImageFolder(val), path.join(val, 'val'), /holds 1 images but no class subfolders \(ImageNet's validation images/);
    const emptyTrain = make('empty-train', { train: null });
    await expectError(openImageFolder(emptyTrain), path.join(emptyTrain, 'train'), /is an empty folder/);
  });

  it('an empty class folder, and a val/ class train/ lacks', async () => {
    const dir = make('empty-class', { 'train/a/1.jpg': jpg(), 'train/b/readme.txt': 'x' });
    await expectError(openImageFolder(dir), path.join(dir, 'train', 'b'), /holds no images \(\.jpg, \.jpeg, \.png\)/);
    const extra = make('extra-val', { 'train/a/1.jpg': jpg(), 'val/a/1.jpg': jpg(), 'val/zebra/1.jpg': jpg() });
    await expectError(openImageFolder(extra), path.join(extra, 'val', 'zebra'), /is a class that train\/ does not have/);
  });

  it('an undecodable image fails its batch with a DatasetError naming the file', async () => {
    const dir = make('undecodable', {
      'train/a/good.jpg': jpg(),
      'train/a/truncated.jpg': jpg().subarray(0, 60),
      'train/b/text.png': 'hello, not a png',
      'train/c/empty.jpg': Buffer.alloc(0),
    });
    const folder = await openImageFolder(dir, small);
    expect(folder.train.count).toBe(4);
    await expect(folder.train.loadImage(0)).resolves.toHaveLength(32 * 32 * 3);
    await expectError(folder.train.loadImage(1), path.join(dir, 'train/a/truncated.jpg'), /cannot be decoded as a JPEG image/);
    await expectError(folder.train.loadImage(2), path.join(dir, 'train/b/text.png'), /is neither a JPEG nor a PNG image \(it starts with bytes 68 65 6c 6c\)/);
    await expectError(folder.train.loadImage(3), path.join(dir, 'train/c/empty.jpg'), /is empty \(0 bytes\)/);
    await expectError(collect(folder.train.batches({ batchSize: 4, augment: false })), path.join(dir, 'train/a/truncated.jpg'), /cannot be decoded/);
    // An image deleted after the folder was opened.
    fs.rmSync(path.join(dir, 'train/a/good.jpg'));
    await expectError(folder.train.loadImage(0), path.join(dir, 'train/a/good.jpg'), /does not exist/);
  });

  it('reads image headers without decoding: sizes of good files, a DatasetError naming each damaged one', async () => {
    const png = (w: number, h: number) => pngjs.PNG.sync.write(Object.assign(new pngjs.PNG({ width: w, height: h }), { data: Buffer.from(pattern(w, h, 0, 2)) }));
    const good = jpeg.encode({ width: 30, height: 20, data: pattern(30, 20, 0, 3) }, 80).data;
    // 300 KB of metadata (five APP2 segments) before the frame header: more than the first read takes.
    const segment = Buffer.concat([Buffer.from([0xff, 0xe2, 0xff, 0xff]), Buffer.alloc(0xfffd, 7)]);
    const bigMetadata = Buffer.concat([good.subarray(0, 2), segment, segment, segment, segment, segment, good.subarray(2)]);
    const dir = make('headers', {
      'val/a/good.jpg': good,
      'val/a/big-metadata.jpg': bigMetadata,
      'val/b/good.png': png(9, 13),
      'val/b/cut.png': png(9, 13).subarray(0, 20),
      'val/b/cut.jpg': good.subarray(0, 60),
      'val/b/text.jpg': 'hello, not a jpeg',
      'val/b/empty.png': Buffer.alloc(0),
    });
    const at = (rel: string) => path.join(dir, 'val', rel);
    await expect(readImageHeader(at('a/good.jpg'))).resolves.toEqual({ width: 30, height: 20 });
    await expect(readImageHeader(at('a/big-metadata.jpg'))).resolves.toEqual({ width: 30, height: 20 });
    expect(decodeImage(bigMetadata, 'big-metadata.jpg').width).toBe(30); // still a valid JPEG
    await expect(readImageHeader(at('b/good.png'))).resolves.toEqual({ width: 9, height: 13 });
    await expectError(readImageHeader(at('b/cut.png')), at('b/cut.png'), /ends \(after 20 bytes\) before its PNG header/);
    await expectError(readImageHeader(at('b/cut.jpg')), at('b/cut.jpg'), /ends \(after 60 bytes\) before its JPEG header/);
    await expectError(readImageHeader(at('b/text.jpg')), at('b/text.jpg'), /is neither a JPEG nor a PNG image/);
    await expectError(readImageHeader(at('b/empty.png')), at('b/empty.png'), /is empty \(0 bytes\)/);
    await expectError(readImageHeader(at('b/missing.jpg')), at('b/missing.jpg'), /does not exist/);
    // A split reports its first damaged file in file order (b/cut.jpg sorts before b/cut.png).
    const folder = await openImageFolder(make('headers-split', { 'train/a/1.jpg': good, 'train/b/1.jpg': good, 'val/a/1.jpg': good, 'val/b/1.jpg': good.subarray(0, 60), 'val/b/2.png': 'x' }), small);
    await expect(folder.train.checkImageHeaders()).resolves.toBeUndefined();
    await expectError(folder.val!.checkImageHeaders(), path.join(folder.root, 'val/b/1.jpg'), /before its JPEG header/);
  });

  it('rejects bad options', async () => {
    await expect(openImageFolder(root, { resizeShorter: 100, cropSize: 224 })).rejects.toThrow(/resizeShorter must be an integer >= 224/);
    await expect(openImageFolder(root, { workers: -1 })).rejects.toThrow(RangeError);
    await expect(openImageFolder(root, { normalization: { kind: 'mean-std', mean: [0, 0, 0], std: [1, 0, 1] } })).rejects.toThrow(/positive standard deviations/);
    const folder: ImageFolder = await openImageFolder(root, small);
    await expect(collect(folder.train.batches({ batchSize: 0, augment: false }))).rejects.toThrow(/batchSize/);
  });
});
