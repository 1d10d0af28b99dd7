/**
 * The export graph: a discrete network flattened into a plain list of operations over typed arrays, with batch
 * norm after a linear layer folded into a per-channel scale and shift. Every writer (packed, C, ONNX, TensorFlow.js)
 * consumes this one description, so the formats cannot disagree about shapes, paddings or folding.
 *
 * Folding (LRNETS.md section 7): BN(z) = (z - mean) / sqrt(var + eps) * gamma + beta = z * scale + shift with
 * scale = gamma / sqrt(var + eps) and shift = beta - mean * scale, computed in float64 and stored as float32.
 * The discrete weights themselves stay in {-1, 0, +1}.
 */
import type { DiscreteKind } from '../distributions.ts';
import type { InputNormalization } from '../data/types.ts';
import type { Architecture, LayerNode } from '../models.ts';
import type { DiscreteNetwork, DiscreteNetChoice } from '../discrete-net.ts';

/** How a linear layer's weights are stored: discrete values, or full-precision floats (the classifier). */
export type WeightKind = DiscreteKind | 'float32';

/** TensorFlow's SAME padding of one axis: output = ceil(input / stride), the odd pixel of padding goes after. */
export function samePadding(input: number, kernel: number, stride: number): { output: number; before: number; after: number } {
  const output = Math.ceil(input / stride);
  const total = Math.max((output - 1) * stride + kernel - input, 0);
  const before = Math.floor(total / 2);
  return { output, before, after: total - before };
}

/** Raw batch-norm parameters, kept next to the folded scale/shift for formats that prefer the unfolded op. */
export interface BatchNormParameters {
  readonly name: string;
  readonly mean: Float32Array;
  readonly variance: Float32Array;
  readonly gamma: Float32Array;
  readonly beta: Float32Array;
  readonly epsilon: number;
}

interface LinearCommon {
  readonly name: string;
  readonly kind: WeightKind;
  /** Discrete kinds: values in {-1, 0, +1} (binary: {-1, +1}); float32: full-precision weights. */
  readonly weights: Int8Array | Float32Array;
  /** Folded batch norm: y = z * scale + shift per output channel (absent when no batch norm follows). */
  readonly scale?: Float32Array;
  readonly shift?: Float32Array;
  /** The batch norm that scale/shift came from (absent in graphs read back from a packed file). */
  readonly batchNorm?: BatchNormParameters;
  /** Full-precision layers' bias. */
  readonly bias?: Float32Array;
}

/** Where a sliding-window op (convolution, pool) reads and writes: shapes [height, width, channels]. */
interface WindowGeometry {
  readonly stride: number;
  readonly inputShape: readonly [number, number, number];
  readonly outputShape: readonly [number, number, number];
  /** SAME padding made explicit: [top, left, bottom, right]; padded positions read 0 (and never win a max). */
  readonly pads: readonly [number, number, number, number];
}

export interface ConvOp extends LinearCommon, WindowGeometry {
  readonly op: 'conv';
  readonly kernel: number;
  /** Weight layout [kernel, kernel, in, out] (HWIO), row-major. */
  readonly shape: readonly [number, number, number, number];
}

export interface DenseOp extends LinearCommon {
  readonly op: 'dense';
  /** Weight layout [in, out], row-major. */
  readonly shape: readonly [number, number];
}

export interface MaxPoolOp extends WindowGeometry {
  readonly op: 'maxpool';
  readonly size: number;
}

export type GraphOp =
  | ConvOp
  | DenseOp
  | { readonly op: 'relu' }
  | MaxPoolOp
  /** [h, w, c] -> [h * w * c] in HWC (NHWC) order. */
  | { readonly op: 'flatten'; readonly inputShape: readonly [number, number, number] }
  /** [h, w, c] -> [c], the mean over positions. */
  | { readonly op: 'globalavgpool'; readonly inputShape: readonly [number, number, number] }
  /** Batch norm that does not follow a linear layer, as y = x * scale + shift per channel. */
  | { readonly op: 'scaleshift'; readonly name: string; readonly scale: Float32Array; readonly shift: Float32Array; readonly batchNorm?: BatchNormParameters };

export type LinearOp = ConvOp | DenseOp;

/** Which net was exported: recorded in every format. */
export interface NetIdentity {
  readonly architecture: Architecture;
  readonly kind: DiscreteKind;
  readonly choice: DiscreteNetChoice;
  /** For 'selected': the sample's index among the evaluated samples and the seed it was drawn from. */
  readonly sample?: { readonly index: number; readonly seed: number };
}

export interface ExportGraph {
  readonly net: NetIdentity;
  /** [height, width, channels], NHWC with a batch dimension in front. */
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  readonly normalization: InputNormalization;
  readonly ops: readonly GraphOp[];
}

export class ExportGraphError extends Error {
  override name = 'ExportGraphError';
}

/** Values of a tensor as float32, read asynchronously (the WebGPU backend cannot read synchronously in Node). */
async function valuesOf(t: { data(): Promise<ArrayLike<number>> }): Promise<Float32Array> {
  return Float32Array.from(await t.data());
}

function discreteValues(name: string, kind: DiscreteKind, values: Float32Array): Int8Array {
  const out = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v !== 1 && v !== -1 && !(v === 0 && kind === 'ternary')) {
      throw new ExportGraphError(`layer "${name}": weight ${i} is ${v}, not a ${kind} value`);
    }
    out[i] = v;
  }
  return out;
}

/** Folds batch norm into float32 scale and shift (float64 arithmetic, one rounding at the end). */
export function foldBatchNorm(bn: BatchNormParameters): { scale: Float32Array; shift: Float32Array } {
  const n = bn.gamma.length;
  const scale = new Float32Array(n);
  const shift = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = bn.gamma[i]! / Math.sqrt(bn.variance[i]! + bn.epsilon);
    scale[i] = s;
    shift[i] = bn.beta[i]! - bn.mean[i]! * s;
  }
  return { scale, shift };
}

/**
 * Flattens a discrete network into an export graph. Dropout disappears (inference), batch norm directly after a
 * conv/dense layer is folded into it. Residual blocks are refused: no format version 1 describes them.
 */
export async function buildExportGraph(net: DiscreteNetwork): Promise<ExportGraph> {
  const values = new Map<unknown, Float32Array>();
  const tensors = [...net.weights.values(), ...net.fullPrecision.values(), ...[...net.batchNorm.values()].flatMap((b) => [b.mean, b.variance, b.gamma, b.beta])];
  for (const t of tensors) values.set(t, await valuesOf(t));
  const read = (t: object): Float32Array => values.get(t)!;
  const ops: GraphOp[] = [];
  let shape: number[] = [...net.model.inputShape];
  const spatial = (what: string): [number, number, number] => {
    if (shape.length !== 3) throw new ExportGraphError(`${what} needs a [h, w, c] input, got [${shape.join(', ')}]`);
    return shape as [number, number, number];
  };
  const walk = (nodes: readonly LayerNode[]) => {
    for (const node of nodes) {
      switch (node.op) {
        case 'conv': {
          const inputShape = spatial(`conv "${node.name}"`);
          const [h, w, c] = inputShape;
          const py = samePadding(h, node.kernel, node.stride);
          const px = samePadding(w, node.kernel, node.stride);
          const outputShape: [number, number, number] = [py.output, px.output, node.filters];
          ops.push({
            op: 'conv', name: node.name, kernel: node.kernel, stride: node.stride, inputShape, outputShape,
            pads: [py.before, px.before, py.after, px.after], shape: [node.kernel, node.kernel, c, node.filters],
            ...linearWeights(node.name, node.discrete),
          });
          shape = outputShape;
          break;
        }
        case 'dense': {
          const inputs = shape.reduce((a, b) => a * b, 1);
          if (shape.length !== 1) throw new ExportGraphError(`dense "${node.name}" needs a flat input, got [${shape.join(', ')}]`);
          ops.push({ op: 'dense', name: node.name, shape: [inputs, node.units], ...linearWeights(node.name, node.discrete) });
          shape = [node.units];
          break;
        }
        case 'batchnorm': {
          const stats = net.batchNorm.get(node.name);
          if (!stats) throw new ExportGraphError(`batch norm "${node.name}" has no parameters in the discrete network`);
          const bn: BatchNormParameters = {
            name: node.name, mean: read(stats.mean), variance: read(stats.variance), gamma: read(stats.gamma),
            beta: read(stats.beta), epsilon: net.batchNormEpsilon,
          };
          const folded = foldBatchNorm(bn);
          const last = ops[ops.length - 1];
          if (last && (last.op === 'conv' || last.op === 'dense') && !last.scale && !last.bias) {
            ops[ops.length - 1] = { ...last, ...folded, batchNorm: bn };
          } else {
            ops.push({ op: 'scaleshift', name: node.name, ...folded, batchNorm: bn });
          }
          break;
        }
        case 'relu':
          ops.push({ op: 'relu' });
          break;
        case 'maxpool': {
          const inputShape = spatial('maxpool');
          const py = samePadding(inputShape[0], node.size, node.stride);
          const px = samePadding(inputShape[1], node.size, node.stride);
          const outputShape: [number, number, number] = [py.output, px.output, inputShape[2]];
          ops.push({ op: 'maxpool', size: node.size, stride: node.stride, inputShape, outputShape, pads: [py.before, px.before, py.after, px.after] });
          shape = outputShape;
          break;
        }
        case 'flatten': {
          const inputShape = spatial('flatten');
          ops.push({ op: 'flatten', inputShape });
          shape = [inputShape[0] * inputShape[1] * inputShape[2]];
          break;
        }
        case 'globalavgpool': {
          const inputShape = spatial('globalavgpool');
          ops.push({ op: 'globalavgpool', inputShape });
          shape = [inputShape[2]];
          break;
        }
        case 'dropout':
          break;
        case 'residual':
          throw new ExportGraphError(
            `residual block "${node.name}": export format version 1 describes sequential nets (MNIST, CIFAR-10 VGG) only, not ResNet-18`,
          );
      }
    }
  };
  const linearWeights = (name: string, discrete: boolean): Pick<LinearCommon, 'kind' | 'weights' | 'bias'> => {
    if (discrete) {
      const w = net.weights.get(name);
      if (!w) throw new ExportGraphError(`discrete layer "${name}" has no weights in the discrete network`);
      return { kind: net.kind, weights: discreteValues(name, net.kind, read(w)) };
    }
    const kernel = net.fullPrecision.get(`${name}/kernel`);
    if (!kernel) throw new ExportGraphError(`full-precision layer "${name}" has no kernel in the discrete network`);
    const bias = net.fullPrecision.get(`${name}/bias`);
    return { kind: 'float32', weights: read(kernel), ...(bias ? { bias: read(bias) } : {}) };
  };
  walk(net.model.nodes);
  if (shape.length !== 1 || shape[0] !== net.model.numClasses) {
    throw new ExportGraphError(`the net ends in shape [${shape.join(', ')}], expected [${net.model.numClasses}] logits`);
  }
  return {
    net: {
      architecture: net.model.architecture, kind: net.kind, choice: net.choice, ...(net.sample ? { sample: { ...net.sample } } : {}),
    },
    inputShape: [...net.model.inputShape],
    numClasses: net.model.numClasses,
    normalization: net.normalization,
    ops,
  };
}

export function isLinear(op: GraphOp): op is LinearOp {
  return op.op === 'conv' || op.op === 'dense';
}

/** Output positions a linear layer's weights are applied at (1 for dense). */
export function outputPositions(op: LinearOp): number {
  return op.op === 'conv' ? op.outputShape[0] * op.outputShape[1] : 1;
}

/** Per-layer work of one image: MACs split by what a discrete weight turns them into. */
export interface LayerWork {
  readonly name: string;
  readonly op: 'conv' | 'dense';
  readonly kind: WeightKind;
  readonly weights: number;
  readonly macs: number;
  /** Discrete layers: MACs with weight +1 (an addition), -1 (a subtraction), 0 (skipped). */
  readonly additions: number;
  readonly subtractions: number;
  readonly skipped: number;
  /** Full-precision layers' multiply-accumulates. */
  readonly multiplications: number;
  /** Counts of -1 / 0 / +1 among the weights (discrete layers). */
  readonly values: { readonly minus: number; readonly zero: number; readonly plus: number };
}

/** Counts additions, subtractions and skipped MACs per layer (padding positions are counted like describeLayers). */
export function layerWork(op: LinearOp): LayerWork {
  const positions = outputPositions(op);
  const macs = positions * op.weights.length;
  const values = { minus: 0, zero: 0, plus: 0 };
  if (op.kind !== 'float32') {
    for (const v of op.weights) {
      if (v > 0) values.plus++;
      else if (v < 0) values.minus++;
      else values.zero++;
    }
  }
  const discrete = op.kind !== 'float32';
  return {
    name: op.name, op: op.op, kind: op.kind, weights: op.weights.length, macs,
    additions: discrete ? positions * values.plus : 0,
    subtractions: discrete ? positions * values.minus : 0,
    skipped: discrete ? positions * values.zero : 0,
    multiplications: discrete ? 0 : macs,
    values,
  };
}
