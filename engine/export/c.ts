/**
 * The `c` format (version 1): a generated lrnet_model.h (weights as const bit masks, the layer table, the memory
 * budget) next to the fixed runtime lrnet.c / lrnet.h and a golden-vector runner main.c. See c-runtime.ts for how
 * discrete layers run on additions and subtractions only.
 *
 * Memory is static and known before anything runs: two ping-pong activation buffers sized to the largest tensors
 * they hold, plus one conv patch buffer (kernel * kernel * in_c floats); nothing is allocated at run time.
 */
import {
  type ExportGraph,
  type GraphOp,
  type LinearOp,
  isLinear,
} from './graph.ts';
import type { ExportFile } from './files.ts';
import { C_FLAGS, LRNET_C, LRNET_H, MAIN_C, MAKEFILE } from './c-runtime.ts';
import { SEQUENTIAL_ARCHITECTURES, type ExportFormatEntry } from './entry.ts';

export const C_FORMAT_VERSION = 1;
export const C_MODEL_HEADER = 'lrnet_model.h';
export const C_RUNTIME_HEADER = 'lrnet.h';
export const C_RUNTIME_SOURCE = 'lrnet.c';
/** The golden-vector runner (compiled with the runtime by the verifier and the Makefile). */
export const C_MAIN_SOURCE = 'main.c';

export interface COptions {
  /**
   * 'packed' (default): discrete layers as bit masks, computed with additions/subtractions.
   * 'float32': every weight as a float and multiply-accumulate, the baseline benchmarks compare against.
   */
  readonly weights?: 'packed' | 'float32';
}

/** The C target's fixed memory budget in bytes. */
export interface CMemoryBudget {
  readonly flashBytes: number;
  readonly ramBytes: number;
  readonly flash: {
    /** Weight masks (packed) or float weights. */
    readonly weights: number;
    /** Scales, shifts, biases. */
    readonly parameters: number;
    /** The layer table, at 80 bytes per entry with 32-bit pointers. */
    readonly layerTable: number;
  };
  /** Static buffers: two activation ping-pong buffers, the conv patch, per-word input totals (binary layers). */
  readonly ram: { readonly bufferA: number; readonly bufferB: number; readonly patch: number; readonly wordTotals: number };
  /** What the numbers leave out. */
  readonly note: string;
}

const BUF = { input: 'LRNET_BUF_INPUT', a: 'LRNET_BUF_A', b: 'LRNET_BUF_B', output: 'LRNET_BUF_OUTPUT' } as const;
type Slot = keyof typeof BUF;
const TABLE_ENTRY_BYTES_32BIT = 80;

interface Step {
  readonly kind: 'linear' | 'maxpool' | 'globalavgpool' | 'scaleshift' | 'relu';
  readonly op?: GraphOp;
  readonly inShape: [number, number, number];
  readonly outShape: [number, number, number];
  relu: boolean;
  src: Slot;
  dst: Slot;
}

export class CExportError extends Error {
  override name = 'CExportError';
}

/** A float32 value as a C literal that reads back to the same float (9 significant digits). */
function floatLiteral(v: number): string {
  if (!Number.isFinite(v)) throw new CExportError(`cannot write the non-finite value ${v} into C`);
  const f = Math.fround(v);
  if (f === 0) return Object.is(f, -0) ? '-0.0f' : '0.0f';
  const s = f.toPrecision(9);
  return `${s.includes('e') || s.includes('.') ? s : `${s}.0`}f`;
}

function cArray(type: string, name: string, values: ArrayLike<number>, format: (v: number) => string, perLine: number): string {
  const lines: string[] = [];
  for (let i = 0; i < values.length; i += perLine) {
    const parts: string[] = [];
    for (let j = i; j < Math.min(values.length, i + perLine); j++) parts.push(format(values[j]!));
    lines.push(`  ${parts.join(', ')},`);
  }
  return `static const ${type} ${name}[${Math.max(values.length, 1)}] = {\n${lines.length > 0 ? lines.join('\n') : '  0'}\n};\n`;
}

const hex32 = (v: number) => `0x${(v >>> 0).toString(16).padStart(8, '0')}u`;

/** Bit masks [out][words] of the fan-in positions f where weight (f, oc) equals `value` (layout f * out + oc). */
export function weightMasks(op: LinearOp, value: 1 | -1): { masks: Uint32Array; words: number } {
  const out = op.shape[op.shape.length - 1]!;
  const fanIn = op.weights.length / out;
  const words = Math.ceil(fanIn / 32);
  const masks = new Uint32Array(out * words);
  const w = op.weights;
  for (let f = 0; f < fanIn; f++) {
    const bit = (1 << (f & 31)) >>> 0;
    const word = f >> 5;
    for (let oc = 0; oc < out; oc++) if (w[f * out + oc] === value) masks[oc * words + word]! |= bit;
  }
  return { masks, words };
}

/** Float weights transposed to [out][fan_in] for the float32 encoding. */
function transposedWeights(op: LinearOp): Float32Array {
  const out = op.shape[op.shape.length - 1]!;
  const fanIn = op.weights.length / out;
  const t = new Float32Array(op.weights.length);
  for (let f = 0; f < fanIn; f++) for (let oc = 0; oc < out; oc++) t[oc * fanIn + f] = op.weights[f * out + oc]!;
  return t;
}

function planSteps(graph: ExportGraph): Step[] {
  const steps: Step[] = [];
  let shape: [number, number, number] = [...graph.inputShape];
  for (const op of graph.ops) {
    if (op.op === 'relu') {
      const last = steps[steps.length - 1];
      if (last && !last.relu) last.relu = true;
      else steps.push({ kind: 'relu', inShape: shape, outShape: shape, relu: true, src: 'input', dst: 'a' });
      continue;
    }
    if (op.op === 'flatten') {
      shape = [1, 1, op.inputShape[0] * op.inputShape[1] * op.inputShape[2]];
      continue;
    }
    let outShape: [number, number, number];
    let kind: Step['kind'];
    switch (op.op) {
      case 'conv': kind = 'linear'; outShape = [...op.outputShape]; break;
      case 'dense': kind = 'linear'; outShape = [1, 1, op.shape[1]]; break;
      case 'maxpool': kind = 'maxpool'; outShape = [...op.outputShape]; break;
      case 'globalavgpool': kind = 'globalavgpool'; outShape = [1, 1, op.inputShape[2]]; break;
      case 'scaleshift': kind = 'scaleshift'; outShape = shape; break;
    }
    steps.push({ kind, op, inShape: shape, outShape, relu: false, src: 'input', dst: 'a' });
    shape = outShape;
  }
  if (steps.length === 0) throw new CExportError('the graph has no operations to run');
  let current: Slot = 'input';
  steps.forEach((step, i) => {
    step.src = current;
    step.dst = i === steps.length - 1 ? 'output' : current === 'a' ? 'b' : 'a';
    current = step.dst;
  });
  return steps;
}

/** Generates the C sources of a graph and reports their fixed memory budget. */
export function writeC(graph: ExportGraph, options: COptions = {}): { files: ExportFile[]; budget: CMemoryBudget } {
  const encodingMode = options.weights ?? 'packed';
  const steps = planSteps(graph);
  const data: string[] = [];
  const table: string[] = [];
  let weightBytes = 0;
  let parameterBytes = 0;
  let bufA = 1;
  let bufB = 1;
  let patch = 1;
  let totals = 1;
  const floats = (name: string, values: Float32Array) => {
    parameterBytes += values.length * 4;
    data.push(cArray('float', name, values, floatLiteral, 8));
    return name;
  };
  steps.forEach((step, index) => {
    const size = step.outShape[0] * step.outShape[1] * step.outShape[2];
    if (step.dst === 'a') bufA = Math.max(bufA, size);
    if (step.dst === 'b') bufB = Math.max(bufB, size);
    const fields: Record<string, string | number> = {
      op: { linear: '', maxpool: 'LRNET_OP_MAXPOOL', globalavgpool: 'LRNET_OP_GLOBALAVGPOOL', scaleshift: 'LRNET_OP_SCALESHIFT', relu: 'LRNET_OP_RELU' }[step.kind],
      encoding: 'LRNET_W_NONE', src: BUF[step.src], dst: BUF[step.dst], relu: step.relu ? 1 : 0,
      kernel: 1, stride: 1, pad_top: 0, pad_left: 0,
      in_h: step.inShape[0], in_w: step.inShape[1], in_c: step.inShape[2],
      out_h: step.outShape[0], out_w: step.outShape[1], out_c: step.outShape[2],
      fan_in: 0, words: 0, plus: 0, minus: 0, weights: 0, scale: 0, shift: 0, bias: 0,
    };
    const op = step.op;
    const prefix = `lrnet_l${index}`;
    if (op && isLinear(op)) {
      const out = op.shape[op.shape.length - 1]!;
      const fanIn = op.weights.length / out;
      fields.op = op.op === 'conv' ? 'LRNET_OP_CONV' : 'LRNET_OP_DENSE';
      fields.fan_in = fanIn;
      if (op.op === 'conv') {
        Object.assign(fields, { kernel: op.kernel, stride: op.stride, pad_top: op.pads[0], pad_left: op.pads[1] });
        patch = Math.max(patch, fanIn);
      } else {
        Object.assign(fields, { in_h: 1, in_w: 1, in_c: fanIn });
      }
      if (op.kind === 'float32' || encodingMode === 'float32') {
        const t = transposedWeights(op);
        weightBytes += t.length * 4;
        data.push(cArray('float', `${prefix}_weights`, t, floatLiteral, 8));
        fields.encoding = 'LRNET_W_FLOAT32';
        fields.weights = `${prefix}_weights`;
      } else {
        const plus = weightMasks(op, 1);
        fields.words = plus.words;
        if (op.kind === 'binary') totals = Math.max(totals, plus.words);
        fields.encoding = op.kind === 'binary' ? 'LRNET_W_BINARY' : 'LRNET_W_TERNARY';
        weightBytes += plus.masks.length * 4;
        data.push(cArray('uint32_t', `${prefix}_plus`, plus.masks, hex32, 8));
        fields.plus = `${prefix}_plus`;
        if (op.kind === 'ternary') {
          const minus = weightMasks(op, -1);
          weightBytes += minus.masks.length * 4;
          data.push(cArray('uint32_t', `${prefix}_minus`, minus.masks, hex32, 8));
          fields.minus = `${prefix}_minus`;
        }
      }
      if (op.scale && op.shift) {
        fields.scale = floats(`${prefix}_scale`, op.scale);
        fields.shift = floats(`${prefix}_shift`, op.shift);
      }
      if (op.bias) fields.bias = floats(`${prefix}_bias`, op.bias);
    } else if (op?.op === 'maxpool') {
      Object.assign(fields, { kernel: op.size, stride: op.stride, pad_top: op.pads[0], pad_left: op.pads[1] });
    } else if (op?.op === 'scaleshift') {
      fields.scale = floats(`${prefix}_scale`, op.scale);
      fields.shift = floats(`${prefix}_shift`, op.shift);
    }
    const comment = op && 'name' in op ? op.name : step.kind;
    table.push(`  { /* ${index}: ${comment} */\n    ${Object.entries(fields).map(([k, v]) => `.${k} = ${v}`).join(', ')} },`);
  });

  const ram = { bufferA: bufA * 4, bufferB: bufB * 4, patch: patch * 4, wordTotals: totals * 4 };
  const layerTable = steps.length * TABLE_ENTRY_BYTES_32BIT;
  const budget: CMemoryBudget = {
    flashBytes: weightBytes + parameterBytes + layerTable,
    ramBytes: ram.bufferA + ram.bufferB + ram.patch + ram.wordTotals,
    flash: { weights: weightBytes, parameters: parameterBytes, layerTable },
    ram,
    note: 'static data only: add the code (a few kB) to flash and the stack (under 200 bytes) plus the caller\'s input and logits arrays to RAM',
  };
  const [h, w, c] = graph.inputShape;
  const net = graph.net;
  const normalization = graph.normalization.kind === 'unit' ? 'LRNET_NORM_UNIT' : 'LRNET_NORM_PER_IMAGE_STANDARDIZATION';
  const header = `/*
 * Generated by lrnet export (format "c", version ${C_FORMAT_VERSION}). Do not edit: export the run again instead.
 *
 * Net: ${net.architecture}, ${net.kind} weights, ${net.choice === 'argmax' ? 'the argmax (most probable) net' : `sampled net ${net.sample?.index} (seed ${net.sample?.seed}), selected on validation`}.
 * Weights: ${encodingMode === 'packed' ? 'discrete layers as bit masks (additions/subtractions only)' : 'float32 everywhere (baseline build)'}.
 * Input: ${h}x${w}x${c} float32, NHWC, normalized ${graph.normalization.kind === 'unit' ? 'as x / 255' : 'per image: (x - mean) / max(std, 1/sqrt(N))'} (lrnet_normalize_u8).
 * Fixed memory budget: flash ${budget.flashBytes} bytes (weights ${weightBytes}, scales/shifts/biases ${parameterBytes}, layer table ~${layerTable}),
 * RAM ${budget.ramBytes} bytes (buffer A ${ram.bufferA}, buffer B ${ram.bufferB}, conv patch ${ram.patch}, word totals ${ram.wordTotals});
 * ${budget.note}.
 */
#ifndef LRNET_MODEL_H
#define LRNET_MODEL_H

#define LRNET_FORMAT_VERSION ${C_FORMAT_VERSION}
#define LRNET_NET_ARCHITECTURE "${net.architecture}"
#define LRNET_NET_KIND "${net.kind}"
#define LRNET_NET_CHOICE "${net.choice}"
#define LRNET_NET_SAMPLE_INDEX ${net.sample?.index ?? -1}
#define LRNET_WEIGHT_ENCODING "${encodingMode}"
#define LRNET_INPUT_H ${h}
#define LRNET_INPUT_W ${w}
#define LRNET_INPUT_C ${c}
#define LRNET_INPUT_SIZE ${h * w * c}u
#define LRNET_NUM_CLASSES ${graph.numClasses}
#define LRNET_NORMALIZATION ${normalization}
#define LRNET_MIN_STD ${(1 / Math.sqrt(h * w * c)).toPrecision(17)}
#define LRNET_NUM_LAYERS ${steps.length}u
#define LRNET_BUF_A_FLOATS ${bufA}u
#define LRNET_BUF_B_FLOATS ${bufB}u
#define LRNET_PATCH_FLOATS ${patch}u
#define LRNET_TOTALS_FLOATS ${totals}u
#define LRNET_FLASH_BYTES ${budget.flashBytes}u
#define LRNET_RAM_BYTES ${budget.ramBytes}u

#ifdef LRNET_MODEL_DEFINE_DATA
${data.join('\n')}
static const lrnet_layer lrnet_layers[LRNET_NUM_LAYERS] = {
${table.join('\n')}
};
#endif /* LRNET_MODEL_DEFINE_DATA */

#endif /* LRNET_MODEL_H */
`;
  return {
    files: [
      { path: C_MODEL_HEADER, data: header },
      { path: C_RUNTIME_HEADER, data: LRNET_H },
      { path: C_RUNTIME_SOURCE, data: LRNET_C },
      { path: C_MAIN_SOURCE, data: MAIN_C },
      { path: 'Makefile', data: MAKEFILE },
    ],
    budget,
  };
}

export const C_EXPORT_FORMAT = {
  name: 'c',
  title: 'C source',
  description: 'A dependency-free C99 inference function with the packed weights inlined, for microcontrollers.',
  version: C_FORMAT_VERSION,
  files: [C_MODEL_HEADER, C_RUNTIME_HEADER, C_RUNTIME_SOURCE, C_MAIN_SOURCE, 'Makefile'],
  architectures: SEQUENTIAL_ARCHITECTURES,
  verifier: `gcc (or $CC) ${C_FLAGS.join(' ')}, the golden-vector program on the images`,
  write: (graph) => {
    const { files, budget } = writeC(graph);
    const details: { memory: CMemoryBudget; flags: string } = { memory: budget, flags: C_FLAGS.join(' ') };
    return { files, details, deployed: { bytes: budget.flashBytes, basis: 'flash bytes (the source text is larger)' } };
  },
} as const satisfies ExportFormatEntry<'c'>;
