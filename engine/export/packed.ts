/**
 * The `packed` format (version 1): a JSON manifest plus one binary file holding the discrete weights at 1 bit
 * (binary) or 2 bits (ternary; optionally base-3, 5 weights per byte) per weight and everything else as float32.
 * docs/export-formats.md describes it for readers in other languages; `unpack` is the reference reader.
 */
import type { InputNormalization } from '../data/types.ts';
import {
  type ExportGraph,
  type GraphOp,
  type LinearOp,
  type NetIdentity,
  type WeightKind,
  isLinear,
} from './graph.ts';
import { type ExportFile, float32Bytes, float32FromBytes } from './files.ts';
import { SEQUENTIAL_ARCHITECTURES, type ExportFormatEntry } from './entry.ts';

export const PACKED_FORMAT = 'lrnet-packed';
export const PACKED_VERSION = 1;
export const PACKED_MANIFEST_FILE = 'model.json';
export const PACKED_BIN_FILE = 'model.bin';

/** How the values of one array are encoded in the binary file. */
export type PackedEncoding = 'binary-1bit' | 'ternary-2bit' | 'ternary-base3' | 'float32';

/** Where one array lives in the binary file. */
export interface PackedArrayV1 {
  readonly encoding: PackedEncoding;
  /** Byte offset from the start of the binary file (a multiple of 4). */
  readonly offset: number;
  readonly byteLength: number;
  /** Number of values. */
  readonly count: number;
}

export interface PackedWeightsV1 extends PackedArrayV1 {
  /** "HWIO" for conv kernels [k, k, in, out]; "IO" for dense [in, out]; row-major, last axis fastest. */
  readonly layout: 'HWIO' | 'IO';
  readonly shape: readonly number[];
}

interface PackedLinearCommonV1 {
  readonly name: string;
  /** binary, ternary or float32. */
  readonly kind: WeightKind;
  readonly weights: PackedWeightsV1;
  /** Folded batch norm, y = z * scale + shift per output channel (float32). */
  readonly scale?: PackedArrayV1;
  readonly shift?: PackedArrayV1;
  readonly bias?: PackedArrayV1;
}

export type PackedLayerV1 =
  | (PackedLinearCommonV1 & {
      readonly op: 'conv';
      readonly kernel: number;
      readonly stride: number;
      readonly padding: 'same';
      /** [top, left, bottom, right] */
      readonly pads: readonly [number, number, number, number];
      readonly inputShape: readonly [number, number, number];
      readonly outputShape: readonly [number, number, number];
    })
  | (PackedLinearCommonV1 & { readonly op: 'dense' })
  | { readonly op: 'relu' }
  | {
      readonly op: 'maxpool'; readonly size: number; readonly stride: number; readonly padding: 'same';
      readonly pads: readonly [number, number, number, number];
      readonly inputShape: readonly [number, number, number]; readonly outputShape: readonly [number, number, number];
    }
  | { readonly op: 'flatten'; readonly order: 'HWC'; readonly inputShape: readonly [number, number, number] }
  | { readonly op: 'globalavgpool'; readonly inputShape: readonly [number, number, number] }
  | { readonly op: 'scaleshift'; readonly name: string; readonly scale: PackedArrayV1; readonly shift: PackedArrayV1 };

/** The manifest as stored (model.json). */
export interface PackedManifestV1 {
  readonly format: typeof PACKED_FORMAT;
  readonly version: 1;
  readonly net: NetIdentity;
  readonly input: {
    readonly shape: readonly [number, number, number];
    readonly layout: 'NHWC';
    readonly dtype: 'float32';
    readonly normalization: InputNormalization;
  };
  readonly numClasses: number;
  readonly binFile: string;
  readonly binBytes: number;
  /** Human-readable statement of the encodings, repeated in every file so it can be read without the docs. */
  readonly conventions: {
    readonly byteOrder: 'little-endian';
    readonly bitOrder: 'lsb-first';
    readonly binary1bit: string;
    readonly ternary2bit: string;
    readonly ternaryBase3: string;
  };
  readonly layers: readonly PackedLayerV1[];
}

export const PACKED_CONVENTIONS: PackedManifestV1['conventions'] = {
  byteOrder: 'little-endian',
  bitOrder: 'lsb-first',
  binary1bit: 'value i is bit (i % 8) of byte floor(i / 8); bit 1 = +1, bit 0 = -1; unused high bits of the last byte are 0',
  ternary2bit: 'value i is bits 2*(i % 4) and 2*(i % 4)+1 of byte floor(i / 4); code 00 = 0, 01 = +1, 11 = -1, 10 is invalid',
  ternaryBase3: 'values 5j..5j+4 share byte j = sum over k of (w[5j+k] + 1) * 3^k (k = 0..4; values past the end count as 0, digit 1); bytes above 242 are invalid',
};

export class PackedFormatError extends Error {
  override name = 'PackedFormatError';
}

/** Options of the packed writer. */
export interface PackedOptions {
  /** '2bit' (default: simple to decode, 4 weights per byte) or 'base3' (5 weights per byte, 20% smaller). */
  readonly ternaryEncoding?: '2bit' | 'base3';
}

/** Encodes binary values (+1/-1) at 1 bit each. */
export function packBinary(values: Int8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(values.length / 8));
  for (let i = 0; i < values.length; i++) if (values[i]! > 0) out[i >> 3]! |= 1 << (i & 7);
  return out;
}

export function unpackBinary(bytes: Uint8Array, count: number): Int8Array {
  const out = new Int8Array(count);
  for (let i = 0; i < count; i++) out[i] = (bytes[i >> 3]! >> (i & 7)) & 1 ? 1 : -1;
  return out;
}

/** Encodes ternary values at 2 bits each (00 = 0, 01 = +1, 11 = -1). */
export function packTernary2bit(values: Int8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(values.length / 4));
  for (let i = 0; i < values.length; i++) out[i >> 2]! |= (values[i]! & 3) << ((i & 3) * 2);
  return out;
}

export function unpackTernary2bit(bytes: Uint8Array, count: number): Int8Array {
  const out = new Int8Array(count);
  for (let i = 0; i < count; i++) {
    const code = (bytes[i >> 2]! >> ((i & 3) * 2)) & 3;
    if (code === 2) throw new PackedFormatError(`ternary value ${i} has the invalid 2-bit code 10`);
    out[i] = code === 3 ? -1 : code;
  }
  return out;
}

/** Encodes ternary values 5 per byte in base 3 (digit = value + 1, least significant first). */
export function packTernaryBase3(values: Int8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(values.length / 5));
  for (let j = 0; j < out.length; j++) {
    let byte = 0;
    for (let k = 4; k >= 0; k--) {
      const i = j * 5 + k;
      byte = byte * 3 + (i < values.length ? values[i]! + 1 : 1);
    }
    out[j] = byte;
  }
  return out;
}

export function unpackTernaryBase3(bytes: Uint8Array, count: number): Int8Array {
  const out = new Int8Array(count);
  for (let j = 0; j * 5 < count; j++) {
    let byte = bytes[j]!;
    if (byte > 242) throw new PackedFormatError(`base-3 byte ${j} is ${byte}, above the largest valid 242`);
    for (let k = 0; k < 5 && j * 5 + k < count; k++) {
      out[j * 5 + k] = (byte % 3) - 1;
      byte = Math.floor(byte / 3);
    }
  }
  return out;
}

function encodingOf(kind: WeightKind, options: PackedOptions): PackedEncoding {
  if (kind === 'binary') return 'binary-1bit';
  if (kind === 'ternary') return options.ternaryEncoding === 'base3' ? 'ternary-base3' : 'ternary-2bit';
  return 'float32';
}

/** Bits one stored weight takes in an encoding (base-3: 8/5). */
export function bitsPerValue(encoding: PackedEncoding): number {
  return { 'binary-1bit': 1, 'ternary-2bit': 2, 'ternary-base3': 1.6, float32: 32 }[encoding];
}

/** Writes the packed manifest and binary file of a graph. */
export function writePacked(graph: ExportGraph, options: PackedOptions = {}): { manifest: PackedManifestV1; files: ExportFile[] } {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const put = (encoding: PackedEncoding, count: number, bytes: Uint8Array): PackedArrayV1 => {
    const ref = { encoding, offset, byteLength: bytes.byteLength, count };
    chunks.push(bytes);
    offset += bytes.byteLength;
    const pad = (4 - (offset % 4)) % 4;
    if (pad > 0) {
      chunks.push(new Uint8Array(pad));
      offset += pad;
    }
    return ref;
  };
  const putFloats = (values: Float32Array) => put('float32', values.length, float32Bytes(values));
  const putWeights = (op: LinearOp): PackedWeightsV1 => {
    const encoding = encodingOf(op.kind, options);
    const w = op.weights;
    const bytes = encoding === 'float32' ? float32Bytes(w as Float32Array)
      : encoding === 'binary-1bit' ? packBinary(w as Int8Array)
      : encoding === 'ternary-2bit' ? packTernary2bit(w as Int8Array)
      : packTernaryBase3(w as Int8Array);
    return { ...put(encoding, w.length, bytes), layout: op.op === 'conv' ? 'HWIO' : 'IO', shape: [...op.shape] };
  };
  const layers: PackedLayerV1[] = graph.ops.map((op): PackedLayerV1 => {
    if (isLinear(op)) {
      const common = {
        name: op.name, kind: op.kind, weights: putWeights(op),
        ...(op.scale ? { scale: putFloats(op.scale) } : {}),
        ...(op.shift ? { shift: putFloats(op.shift) } : {}),
        ...(op.bias ? { bias: putFloats(op.bias) } : {}),
      };
      if (op.op === 'dense') return { op: 'dense', ...common };
      return {
        op: 'conv', ...common, kernel: op.kernel, stride: op.stride, padding: 'same', pads: [...op.pads],
        inputShape: [...op.inputShape], outputShape: [...op.outputShape],
      } as PackedLayerV1;
    }
    switch (op.op) {
      case 'relu':
        return { op: 'relu' };
      case 'maxpool':
        return { op: 'maxpool', size: op.size, stride: op.stride, padding: 'same', pads: [...op.pads], inputShape: [...op.inputShape], outputShape: [...op.outputShape] };
      case 'flatten':
        return { op: 'flatten', order: 'HWC', inputShape: [...op.inputShape] };
      case 'globalavgpool':
        return { op: 'globalavgpool', inputShape: [...op.inputShape] };
      case 'scaleshift':
        return { op: 'scaleshift', name: op.name, scale: putFloats(op.scale), shift: putFloats(op.shift) };
    }
  });
  const bin = new Uint8Array(offset);
  let at = 0;
  for (const c of chunks) {
    bin.set(c, at);
    at += c.byteLength;
  }
  const manifest: PackedManifestV1 = {
    format: PACKED_FORMAT, version: PACKED_VERSION, net: graph.net,
    input: { shape: [...graph.inputShape], layout: 'NHWC', dtype: 'float32', normalization: graph.normalization },
    numClasses: graph.numClasses, binFile: PACKED_BIN_FILE, binBytes: bin.byteLength, conventions: PACKED_CONVENTIONS, layers,
  };
  return {
    manifest,
    files: [
      { path: PACKED_MANIFEST_FILE, data: `${JSON.stringify(manifest, null, 1)}\n` },
      { path: PACKED_BIN_FILE, data: bin },
    ],
  };
}

/**
 * Reads a packed manifest and its binary file back into an export graph (without the raw batch-norm parameters:
 * the file stores only the folded scale and shift). Checks the format, version, bounds and codes.
 */
export function unpack(manifestInput: unknown, bin: Uint8Array): ExportGraph {
  const manifest = manifestInput as PackedManifestV1;
  if (typeof manifest !== 'object' || manifest === null || manifest.format !== PACKED_FORMAT) {
    throw new PackedFormatError(`not an ${PACKED_FORMAT} manifest (format ${JSON.stringify((manifest as { format?: unknown } | null)?.format)})`);
  }
  if (manifest.version !== PACKED_VERSION) {
    throw new PackedFormatError(`${PACKED_FORMAT} version ${manifest.version} is not readable by this lrnet (reads version ${PACKED_VERSION})`);
  }
  if (bin.byteLength !== manifest.binBytes) {
    throw new PackedFormatError(`the binary file holds ${bin.byteLength} bytes, the manifest says ${manifest.binBytes}`);
  }
  const slice = (ref: PackedArrayV1, what: string): Uint8Array => {
    if (!Number.isInteger(ref.offset) || ref.offset < 0 || ref.offset + ref.byteLength > bin.byteLength) {
      throw new PackedFormatError(`${what}: bytes ${ref.offset}..${ref.offset + ref.byteLength} lie outside the ${bin.byteLength}-byte file`);
    }
    return bin.subarray(ref.offset, ref.offset + ref.byteLength);
  };
  const floats = (ref: PackedArrayV1, what: string): Float32Array => {
    if (ref.encoding !== 'float32' || ref.byteLength !== ref.count * 4) throw new PackedFormatError(`${what}: expected ${ref.count} float32 values`);
    slice(ref, what);
    return float32FromBytes(bin, ref.offset, ref.count);
  };
  const weights = (ref: PackedWeightsV1, what: string): Int8Array | Float32Array => {
    const expected = ref.shape.reduce((a, b) => a * b, 1);
    if (expected !== ref.count) throw new PackedFormatError(`${what}: shape [${ref.shape.join(', ')}] holds ${expected} values, count says ${ref.count}`);
    const bytes = slice(ref, what);
    const need = { 'binary-1bit': Math.ceil(ref.count / 8), 'ternary-2bit': Math.ceil(ref.count / 4), 'ternary-base3': Math.ceil(ref.count / 5), float32: ref.count * 4 }[ref.encoding];
    if (need === undefined) throw new PackedFormatError(`${what}: unknown encoding ${JSON.stringify(ref.encoding)}`);
    if (bytes.byteLength !== need) throw new PackedFormatError(`${what}: ${ref.encoding} of ${ref.count} values takes ${need} bytes, not ${bytes.byteLength}`);
    switch (ref.encoding) {
      case 'binary-1bit': return unpackBinary(bytes, ref.count);
      case 'ternary-2bit': return unpackTernary2bit(bytes, ref.count);
      case 'ternary-base3': return unpackTernaryBase3(bytes, ref.count);
      case 'float32': return floats(ref, what);
    }
  };
  const ops: GraphOp[] = manifest.layers.map((layer, index): GraphOp => {
    const what = `layer ${index} (${layer.op}${'name' in layer ? ` "${layer.name}"` : ''})`;
    switch (layer.op) {
      case 'conv':
      case 'dense': {
        const common = {
          name: layer.name, kind: layer.kind, weights: weights(layer.weights, what),
          ...(layer.scale ? { scale: floats(layer.scale, `${what} scale`) } : {}),
          ...(layer.shift ? { shift: floats(layer.shift, `${what} shift`) } : {}),
          ...(layer.bias ? { bias: floats(layer.bias, `${what} bias`) } : {}),
        };
        if (layer.op === 'dense') return { op: 'dense', ...common, shape: [layer.weights.shape[0]!, layer.weights.shape[1]!] };
        const [k0, k1, i, o] = layer.weights.shape as [number, number, number, number];
        return {
          op: 'conv', ...common, kernel: layer.kernel, stride: layer.stride, pads: [...layer.pads] as [number, number, number, number],
          inputShape: [...layer.inputShape] as [number, number, number], outputShape: [...layer.outputShape] as [number, number, number],
          shape: [k0, k1, i, o],
        };
      }
      case 'relu':
        return { op: 'relu' };
      case 'maxpool':
        return {
          op: 'maxpool', size: layer.size, stride: layer.stride, pads: [...layer.pads] as [number, number, number, number],
          inputShape: [...layer.inputShape] as [number, number, number], outputShape: [...layer.outputShape] as [number, number, number],
        };
      case 'flatten':
        return { op: 'flatten', inputShape: [...layer.inputShape] as [number, number, number] };
      case 'globalavgpool':
        return { op: 'globalavgpool', inputShape: [...layer.inputShape] as [number, number, number] };
      case 'scaleshift':
        return { op: 'scaleshift', name: layer.name, scale: floats(layer.scale, `${what} scale`), shift: floats(layer.shift, `${what} shift`) };
      default:
        throw new PackedFormatError(`${what}: unknown op ${JSON.stringify((layer as { op: unknown }).op)}`);
    }
  });
  return {
    net: manifest.net, inputShape: [...manifest.input.shape] as [number, number, number], numClasses: manifest.numClasses,
    normalization: manifest.input.normalization, ops,
  };
}

export const PACKED_EXPORT_FORMAT = {
  name: 'packed',
  title: 'Packed weights',
  description: 'Binary weights at 1 bit, ternary at 2 bits, with a JSON manifest: the smallest file.',
  version: PACKED_VERSION,
  files: [PACKED_MANIFEST_FILE, PACKED_BIN_FILE],
  architectures: SEQUENTIAL_ARCHITECTURES,
  verifier: 'unpack of the files (bit for bit what was written), run with TensorFlow.js ops',
  write: (graph, { ternaryEncoding }) => ({ files: writePacked(graph, { ternaryEncoding }).files, details: { ternaryEncoding } }),
} as const satisfies ExportFormatEntry<'packed'>;
