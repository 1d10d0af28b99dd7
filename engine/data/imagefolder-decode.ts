/**
 * JPEG and PNG bytes to RGB pixels (jpeg-js and pngjs: pure JavaScript), and the cheap header check that finds a
 * damaged file without decoding it. Every failure is a DatasetError naming the file.
 */
import fs from 'node:fs';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { DatasetError } from './errors.ts';
import { fsError } from './io.ts';

/** A decoded image: width * height RGB pixels, row-major. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

const REPLACE = 'Replace or remove this file (every image must be a readable JPEG or PNG)';

function isJpeg(b: Uint8Array): boolean {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

function isPng(b: Uint8Array): boolean {
  return b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a;
}

/** The error for bytes that are neither a JPEG nor a PNG (by their signature). */
function notAnImage(bytes: Uint8Array, file: string): DatasetError {
  const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return new DatasetError(file, bytes.length === 0 ? 'is empty (0 bytes), not an image' : `is neither a JPEG nor a PNG image (it starts with bytes ${head})`, REPLACE);
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
    throw notAnImage(bytes, file);
  }
  if (image.width < 1 || image.height < 1 || image.data.length < image.width * image.height * 3) {
    throw new DatasetError(file, `decodes to an image of ${image.width}x${image.height} pixels`, REPLACE);
  }
  return image;
}

/** Width and height from an image header. */
export interface ImageSize {
  readonly width: number;
  readonly height: number;
}

/** JPEG markers that carry a frame header (SOF0-SOF15 but DHT, JPG and DAC, which share the range). */
const isFrameMarker = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

/**
 * The image size from the first bytes of a JPEG (its frame header) or PNG (its IHDR chunk); undefined when `head`
 * ends before the header does and more of the file could still hold it (`complete`: head is the whole file).
 */
export function imageHeader(head: Uint8Array, file: string, complete: boolean): ImageSize | undefined {
  const truncated = (what: string) => new DatasetError(file, `ends (after ${head.length} bytes) before its ${what} header: the file is cut short or damaged`, REPLACE);
  const sized = (format: string, width: number, height: number) => {
    if (width < 1 || height < 1) throw new DatasetError(file, `is a ${format} image of ${width}x${height} pixels, according to its header`, REPLACE);
    return { width, height };
  };
  if (isPng(head)) {
    // signature (8), chunk length (4), "IHDR" (4), width (4), height (4)
    if (head.length < 24) {
      if (complete) throw truncated('PNG');
      return undefined;
    }
    const type = String.fromCharCode(head[12]!, head[13]!, head[14]!, head[15]!);
    if (type !== 'IHDR') throw new DatasetError(file, `is a PNG whose first chunk is "${type}", not its IHDR header: the file is damaged`, REPLACE);
    const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
    return sized('PNG', view.getUint32(16), view.getUint32(20));
  }
  if (!isJpeg(head)) throw notAnImage(head, file);
  let i = 2;
  for (;;) {
    while (i < head.length && head[i] === 0xff && head[i + 1] === 0xff) i++; // fill bytes
    if (i + 4 > head.length) break;
    if (head[i] !== 0xff) throw new DatasetError(file, `is a JPEG with no marker at byte ${i} of its header: the file is damaged`, REPLACE);
    const marker = head[i + 1]!;
    if (marker === 0xd9 || marker === 0xda) throw new DatasetError(file, 'is a JPEG without a frame header (no image size before its data): the file is damaged', REPLACE);
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      i += 2; // markers without a length
      continue;
    }
    if (isFrameMarker(marker)) {
      if (i + 9 > head.length) break;
      return sized('JPEG', (head[i + 7]! << 8) | head[i + 8]!, (head[i + 5]! << 8) | head[i + 6]!);
    }
    i += 2 + ((head[i + 2]! << 8) | head[i + 3]!);
  }
  if (complete) throw truncated('JPEG');
  return undefined;
}

/** Bytes read first for a header: JPEG metadata before the frame header (EXIF, ICC profiles) rarely exceeds this. */
const HEADER_BYTES = 256 * 1024;

/**
 * Reads the header of an image file (its first bytes, the whole file only when those do not hold it) and returns
 * the image's size: a cheap check, without decoding, that a file is a JPEG or PNG that is not cut short in its
 * header. Anything else is a DatasetError naming the file.
 */
export async function readImageHeader(file: string): Promise<ImageSize> {
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await fs.promises.open(file, 'r');
    const size = (await handle.stat()).size;
    const head = new Uint8Array(Math.min(size, HEADER_BYTES));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const first = imageHeader(head.subarray(0, bytesRead), file, bytesRead >= size);
    if (first) return first;
    const whole = new Uint8Array(size);
    const rest = await handle.read(whole, 0, size, 0);
    return imageHeader(whole.subarray(0, rest.bytesRead), file, true)!; // complete: a size or a DatasetError
  } catch (err) {
    throw err instanceof DatasetError ? err : fsError(file, err);
  } finally {
    await handle?.close();
  }
}
