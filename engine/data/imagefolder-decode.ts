/**
 * JPEG and PNG bytes to RGB pixels (jpeg-js and pngjs: pure JavaScript), and the cheap header check that finds a
 * damaged file without decoding it. Every failure is a DatasetError naming the file.
 */
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { DatasetError } from './errors.ts';

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
