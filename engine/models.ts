/**
 * The paper's architectures (LRNETS.md section 3) as plain layer graphs, their parameters, and one forward pass
 * that runs them as a full-precision net, as an LR net (local reparameterization), as the mean-weight net or as a
 * discrete net with a given weight set.
 */
import { tf, type Tensor } from './tf.ts';
import { deriveSeed } from './random.ts';
import { standardNormal } from './noise.ts';
import { batchNormRelu, batchNormReluPool, fusedLrLayer, type LrLayerNode } from './backends/webgpu/index.ts';
import {
  type DiscreteKind,
  moments,
  logitsFromFullPrecision,
  defaultLogits,
} from './distributions.ts';

export type Architecture = 'mnist' | 'cifar10-vgg' | 'resnet18';
export const ARCHITECTURES: readonly Architecture[] = ['mnist', 'cifar10-vgg', 'resnet18'];

/** How the discrete layers of a model are parameterized: full-precision weights, or binary/ternary logits. */
export type Precision = 'full' | DiscreteKind;

export type LayerNode =
  /** SAME-padded convolution without bias (batch norm follows), discrete or full precision. */
  | { readonly op: 'conv'; readonly name: string; readonly filters: number; readonly kernel: number; readonly stride: number; readonly discrete: boolean }
  /** Fully connected; discrete layers have no bias, full-precision ones (the classifier) do. */
  | { readonly op: 'dense'; readonly name: string; readonly units: number; readonly discrete: boolean }
  | { readonly op: 'batchnorm'; readonly name: string }
  | { readonly op: 'relu' }
  | { readonly op: 'maxpool'; readonly size: number; readonly stride: number }
  | { readonly op: 'flatten' }
  /** Dropout with the given drop rate (the paper's keep probability 0.5 is rate 0.5). */
  | { readonly op: 'dropout'; readonly rate: number }
  | { readonly op: 'globalavgpool' }
  /** relu(body(x) + shortcut(x)); an empty shortcut is the identity. */
  | { readonly op: 'residual'; readonly name: string; readonly body: readonly LayerNode[]; readonly shortcut: readonly LayerNode[] };

export interface ModelDefinition {
  readonly architecture: Architecture;
  /** [height, width, channels] */
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  readonly nodes: readonly LayerNode[];
}

const conv = (name: string, filters: number, kernel: number, stride = 1, discrete = true): LayerNode => ({
  op: 'conv', name, filters, kernel, stride, discrete,
});
const bn = (name: string): LayerNode => ({ op: 'batchnorm', name });
const relu: LayerNode = { op: 'relu' };

/**
 * Builds an architecture's layer graph. `kind` matters only for ResNet-18, whose binary variant keeps the first
 * convolution in full precision as the paper does.
 */
export function defineModel(
  architecture: Architecture,
  options: { inputShape?: readonly [number, number, number]; numClasses?: number; kind?: Precision } = {},
): ModelDefinition {
  const numClasses = options.numClasses ?? (architecture === 'resnet18' ? 1000 : 10);
  switch (architecture) {
    case 'mnist':
      return {
        architecture,
        inputShape: options.inputShape ?? [28, 28, 1],
        numClasses,
        nodes: [
          conv('conv1', 32, 5), bn('bn1'), relu, { op: 'maxpool', size: 2, stride: 2 },
          conv('conv2', 64, 5), bn('bn2'), relu, { op: 'maxpool', size: 2, stride: 2 },
          { op: 'flatten' },
          { op: 'dense', name: 'fc1', units: 512, discrete: true }, bn('bn3'), relu, { op: 'dropout', rate: 0.5 },
          { op: 'dense', name: 'fc2', units: numClasses, discrete: false },
        ],
      };
    case 'cifar10-vgg': {
      const nodes: LayerNode[] = [];
      let index = 1;
      for (const filters of [128, 256, 512]) {
        for (let i = 0; i < 2; i++, index++) nodes.push(conv(`conv${index}`, filters, 3), bn(`bn${index}`), relu);
        nodes.push({ op: 'maxpool', size: 2, stride: 2 });
      }
      nodes.push(
        { op: 'flatten' },
        { op: 'dense', name: 'fc1', units: 1024, discrete: true }, bn('bn7'), relu, { op: 'dropout', rate: 0.5 },
        { op: 'dense', name: 'fc2', units: numClasses, discrete: false },
      );
      return { architecture, inputShape: options.inputShape ?? [32, 32, 3], numClasses, nodes };
    }
    case 'resnet18': {
      const nodes: LayerNode[] = [
        conv('conv1', 64, 7, 2, options.kind !== 'binary'), bn('bn1'), relu, { op: 'maxpool', size: 3, stride: 2 },
      ];
      let inChannels = 64;
      [64, 128, 256, 512].forEach((filters, stage) => {
        for (let block = 0; block < 2; block++) {
          const name = `stage${stage + 1}.block${block + 1}`;
          const stride = stage > 0 && block === 0 ? 2 : 1;
          const project = stride !== 1 || inChannels !== filters;
          nodes.push({
            op: 'residual',
            name,
            body: [
              conv(`${name}.conv1`, filters, 3, stride), bn(`${name}.bn1`), relu,
              conv(`${name}.conv2`, filters, 3), bn(`${name}.bn2`),
            ],
            shortcut: project ? [conv(`${name}.shortcut`, filters, 1, stride), bn(`${name}.shortcut_bn`)] : [],
          });
          inChannels = filters;
        }
      });
      nodes.push({ op: 'globalavgpool' }, { op: 'dense', name: 'fc', units: numClasses, discrete: false });
      return { architecture, inputShape: options.inputShape ?? [224, 224, 3], numClasses, nodes };
    }
  }
}

/** One parameterized layer with its input/output shapes, in forward order. */
export interface LayerInfo {
  readonly name: string;
  readonly op: 'conv' | 'dense' | 'batchnorm';
  readonly discrete: boolean;
  /** Kernel shape for conv/dense ([k, k, in, out] or [in, out]); [channels] for batch norm. */
  readonly shape: readonly number[];
  /** Output feature map [h, w, c] or [units]. */
  readonly outputShape: readonly number[];
  /** Multiply-accumulates per image. */
  readonly macs: number;
  /** Index among the discrete layers (noise streams are derived from it), -1 for other layers. */
  readonly discreteIndex: number;
}

const layerCache = new WeakMap<ModelDefinition, LayerInfo[]>();

/** Every parameterized layer with resolved shapes, in forward order (computed once per definition). */
export function describeLayers(model: ModelDefinition): readonly LayerInfo[] {
  let layers = layerCache.get(model);
  if (!layers) {
    layers = resolveLayers(model);
    layerCache.set(model, layers);
  }
  return layers;
}

function resolveLayers(model: ModelDefinition): LayerInfo[] {
  const layers: LayerInfo[] = [];
  let discreteCount = 0;
  const walk = (nodes: readonly LayerNode[], input: number[]): number[] => {
    let shape = input;
    for (const node of nodes) {
      switch (node.op) {
        case 'conv': {
          const [h, w, c] = shape as [number, number, number];
          const out = [Math.ceil(h / node.stride), Math.ceil(w / node.stride), node.filters];
          layers.push({
            name: node.name, op: 'conv', discrete: node.discrete,
            shape: [node.kernel, node.kernel, c, node.filters], outputShape: out,
            macs: out[0]! * out[1]! * node.kernel * node.kernel * c * node.filters,
            discreteIndex: node.discrete ? discreteCount++ : -1,
          });
          shape = out;
          break;
        }
        case 'dense': {
          const inputs = shape.reduce((a, b) => a * b, 1);
          layers.push({
            name: node.name, op: 'dense', discrete: node.discrete, shape: [inputs, node.units],
            outputShape: [node.units], macs: inputs * node.units, discreteIndex: node.discrete ? discreteCount++ : -1,
          });
          shape = [node.units];
          break;
        }
        case 'batchnorm': {
          const channels = shape[shape.length - 1]!;
          layers.push({ name: node.name, op: 'batchnorm', discrete: false, shape: [channels], outputShape: shape, macs: 0, discreteIndex: -1 });
          break;
        }
        case 'maxpool':
          shape = [Math.ceil(shape[0]! / node.stride), Math.ceil(shape[1]! / node.stride), shape[2]!];
          break;
        case 'flatten':
          shape = [shape.reduce((a, b) => a * b, 1)];
          break;
        case 'globalavgpool':
          shape = [shape[2]!];
          break;
        case 'residual': {
          const out = walk(node.body, shape);
          walk(node.shortcut, shape);
          shape = out;
          break;
        }
        case 'relu':
        case 'dropout':
          break;
      }
    }
    return shape;
  };
  walk(model.nodes, [...model.inputShape]);
  return layers;
}

/** Parameters by name: `<layer>/kernel`, `<layer>/bias`, `<layer>/a`, `<layer>/c`, `<bn>/gamma|beta|movingMean|movingVariance`. */
export type Parameters = Map<string, tf.Variable>;

/** Names of parameters that the optimizer does not update (batch-norm moving statistics). */
export function isTrainable(name: string): boolean {
  return !name.endsWith('/movingMean') && !name.endsWith('/movingVariance');
}

/**
 * Fresh parameters: He-normal kernels for full precision, the weak uniform start for discrete logits
 * (use `discreteFromFullPrecision` to start from a pretrained net instead), batch norm at identity.
 */
export function initParameters(model: ModelDefinition, precision: Precision, seed: number): Parameters {
  const params: Parameters = new Map();
  // Variables stay unnamed: TensorFlow.js names must be unique per process, and several models may coexist.
  const add = (name: string, value: Tensor) => params.set(name, tf.variable(value, true));
  // tidy disposes the initial values; the variables made from them survive it.
  tf.tidy(() => describeLayers(model).forEach((layer, index) => {
    if (layer.op === 'batchnorm') {
      const [c] = layer.shape as [number];
      add(`${layer.name}/gamma`, tf.ones([c]));
      add(`${layer.name}/beta`, tf.zeros([c]));
      add(`${layer.name}/movingMean`, tf.zeros([c]));
      add(`${layer.name}/movingVariance`, tf.ones([c]));
      return;
    }
    if (layer.discrete && precision !== 'full') {
      const logits = defaultLogits(precision, [...layer.shape]);
      add(`${layer.name}/a`, logits.a);
      if (logits.c) add(`${layer.name}/c`, logits.c);
      return;
    }
    const fanIn = layer.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const isClassifier = !layer.discrete;
    const std = Math.sqrt((isClassifier ? 1 : 2) / fanIn);
    add(`${layer.name}/kernel`, tf.randomNormal([...layer.shape], 0, std, 'float32', deriveSeed(seed, 1, index)));
    if (!layer.discrete) add(`${layer.name}/bias`, tf.zeros([layer.shape[layer.shape.length - 1]!]));
  }));
  return params;
}

/**
 * Parameters of an LR net initialized from a trained full-precision net of the same architecture: discrete layers
 * get logits from `logitsFromFullPrecision`, everything else (batch norm, the classifier) is copied.
 */
export function discreteFromFullPrecision(model: ModelDefinition, fullPrecision: Parameters, kind: DiscreteKind): Parameters {
  const params: Parameters = new Map();
  const discreteLayers = new Set(describeLayers(model).filter((l) => l.discrete).map((l) => l.name));
  for (const [name, value] of fullPrecision) {
    const layer = name.slice(0, name.lastIndexOf('/'));
    if (discreteLayers.has(layer) && name.endsWith('/kernel')) {
      const logits = logitsFromFullPrecision(kind, value);
      params.set(`${layer}/a`, tf.variable(logits.a, true));
      if (logits.c) params.set(`${layer}/c`, tf.variable(logits.c, true));
      tf.dispose([logits.a, logits.c ?? []].flat());
    } else {
      params.set(name, tf.variable(value, true));
    }
  }
  return params;
}

export function disposeParameters(params: Parameters): void {
  for (const v of params.values()) v.dispose();
  params.clear();
}

/** How to run the discrete layers. */
export type ForwardMode =
  /** Full-precision kernels (pretraining, or a full-precision model). */
  | 'full'
  /** Local reparameterization: z = conv(x, mu) + sqrt(conv(x^2, var) + 1e-3) * eps. */
  | 'lr'
  /** The mean-weight ("expected") net: z = conv(x, mu), no noise. */
  | 'mean'
  /** A given discrete weight set, e.g. argmax or sampled weights. */
  | 'discrete';

export interface BatchNormStatistics {
  mean: Tensor;
  variance: Tensor;
}

export interface ForwardOptions {
  readonly mode: ForwardMode;
  /** Apply dropout. */
  readonly training: boolean;
  /** Normalize with the batch's statistics (training, BN re-estimation) or the moving statistics. */
  readonly batchStatistics: boolean;
  /** Discrete layers' kind in 'lr'/'mean'/'discrete' modes. */
  readonly kind?: DiscreteKind;
  /** Seed of this step's LR noise; each discrete layer draws from its own derived stream. */
  readonly noiseSeed?: number;
  readonly dropoutSeed?: number;
  /** Layer name -> weights in {-1, 0, +1} for 'discrete' mode. */
  readonly discreteWeights?: ReadonlyMap<string, Tensor>;
  /** Statistics that replace the moving statistics (re-estimated batch norm), by batch-norm layer name. */
  readonly statisticsOverride?: ReadonlyMap<string, BatchNormStatistics>;
  /** Receives the batch statistics of every batch-norm layer when `batchStatistics` is on (moving averages). */
  readonly onBatchStatistics?: (layer: string, stats: BatchNormStatistics) => void;
  /**
   * Run 'lr' layers and batch norm + ReLU (+ max pool) through the fused WebGPU kernels (engine/backends/webgpu: one pass for
   * both convolutions and the noise, drawn on the GPU by Philox). Only on the webgpu backend; the noise values then
   * differ from the ziggurat's. 'reference' runs the same net on stock ops with the same Philox noise (for tests).
   */
  readonly fusedKernels?: boolean | 'reference';
}

/** Batch-norm epsilon (TensorFlow's default, as in the authors' code). */
export const BATCH_NORM_EPSILON = 1e-3;
/** The constant inside the square root of the LR standard deviation (LRNETS.md section 2). */
export const LR_VARIANCE_EPSILON = 1e-3;

/** Logits for `x` of shape [batch, h, w, c]. Call inside tf.tidy or a gradient function. */
export function forward(model: ModelDefinition, params: Parameters, x: Tensor, options: ForwardOptions): Tensor {
  const param = (name: string): Tensor => {
    const p = params.get(name);
    if (!p) throw new Error(`model parameter "${name}" is missing (mode ${options.mode})`);
    return p;
  };
  const layerIndex = new Map(describeLayers(model).map((l) => [l.name, l.discreteIndex]));

  const linear = (
    name: string, input: Tensor, discrete: boolean, layer: LrLayerNode, apply: (inp: Tensor, w: Tensor) => Tensor,
  ): Tensor => {
    if (!discrete || options.mode === 'full') return apply(input, param(`${name}/kernel`));
    if (options.mode === 'discrete') {
      const w = options.discreteWeights?.get(name);
      if (!w) throw new Error(`no discrete weights given for layer "${name}"`);
      return apply(input, w);
    }
    const kind = options.kind;
    if (!kind) throw new Error(`forward mode "${options.mode}" needs the discrete kind`);
    const c = params.get(`${name}/c`);
    const { mean, variance } = moments(kind, { a: param(`${name}/a`), ...(c ? { c } : {}) });
    const seed = deriveSeed(options.noiseSeed ?? 0, layerIndex.get(name) ?? 0);
    if (options.mode === 'lr' && options.fusedKernels) {
      // The network input needs no gradient: the fused backward pass then skips it.
      return fusedLrLayer(layer, input, mean, variance, seed, { inputGradient: input !== x, reference: options.fusedKernels === 'reference' });
    }
    const m = apply(input, mean);
    if (options.mode === 'mean') return m;
    const s = tf.sqrt(tf.add(apply(tf.square(input), variance), LR_VARIANCE_EPSILON));
    return tf.add(m, tf.mul(s, standardNormal(m.shape, seed)));
  };

  let dropoutCount = 0;
  const run = (nodes: readonly LayerNode[], input: Tensor): Tensor => {
    let h = input;
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!;
      switch (node.op) {
        case 'conv':
          h = linear(node.name, h, node.discrete, { op: 'conv', stride: node.stride }, (inp, w) =>
            tf.conv2d(inp as tf.Tensor4D, w as tf.Tensor4D, node.stride, 'same'));
          break;
        case 'dense':
          h = linear(node.name, h, node.discrete, { op: 'dense' }, (inp, w) => tf.matMul(inp as tf.Tensor2D, w as tf.Tensor2D));
          if (!node.discrete) h = tf.add(h, param(`${node.name}/bias`));
          break;
        case 'batchnorm': {
          const next = nodes[i + 1];
          if (options.fusedKernels === true && options.batchStatistics && next?.op === 'relu') {
            // One fused WebGPU pass for batch norm + ReLU (+ the max pool after them), batch statistics included.
            const pool = nodes[i + 2]?.op === 'maxpool' ? (nodes[i + 2] as Extract<LayerNode, { op: 'maxpool' }>) : undefined;
            const gamma = param(`${node.name}/gamma`);
            const beta = param(`${node.name}/beta`);
            const fused = pool
              ? batchNormReluPool(h, gamma, beta, BATCH_NORM_EPSILON, pool.size, pool.stride)
              : batchNormRelu(h, gamma, beta, BATCH_NORM_EPSILON);
            options.onBatchStatistics?.(node.name, { mean: fused.mean, variance: fused.variance });
            h = fused.y;
            i += pool ? 2 : 1;
            break;
          }
          h = batchNorm(node.name, h);
          break;
        }
        case 'relu':
          h = tf.relu(h);
          break;
        case 'maxpool':
          h = tf.maxPool(h as tf.Tensor4D, node.size, node.stride, 'same');
          break;
        case 'flatten':
          h = tf.reshape(h, [h.shape[0]!, -1]);
          break;
        case 'dropout':
          if (options.training) h = tf.dropout(h, node.rate, undefined, deriveSeed(options.dropoutSeed ?? 0, dropoutCount++));
          break;
        case 'globalavgpool':
          h = tf.mean(h, [1, 2]);
          break;
        case 'residual': {
          const body = run(node.body, h);
          const shortcut = node.shortcut.length > 0 ? run(node.shortcut, h) : h;
          h = tf.relu(tf.add(body, shortcut));
          break;
        }
      }
    }
    return h;
  };

  const batchNorm = (name: string, h: Tensor): Tensor => {
    const axes = h.rank === 4 ? [0, 1, 2] : [0];
    let stats: BatchNormStatistics;
    if (options.batchStatistics) {
      stats = tf.moments(h, axes);
      options.onBatchStatistics?.(name, stats);
    } else {
      stats = options.statisticsOverride?.get(name) ?? {
        mean: param(`${name}/movingMean`),
        variance: param(`${name}/movingVariance`),
      };
    }
    return tf.batchNorm(h, stats.mean, stats.variance, param(`${name}/beta`), param(`${name}/gamma`), BATCH_NORM_EPSILON);
  };

  return run(model.nodes, x);
}

/** Precision of a layer's stored parameters in bits. */
function bitsPerWeight(precision: Precision): number {
  return precision === 'binary' ? 1 : precision === 'ternary' ? 2 : 32;
}

export interface LayerSummary {
  readonly name: string;
  readonly op: string;
  readonly shape: readonly number[];
  readonly outputShape: readonly number[];
  /** 1, 2 or 32. */
  readonly bits: number;
  readonly parameters: number;
  readonly bytes: number;
  readonly macs: number;
}

export interface ModelSummary {
  readonly architecture: Architecture;
  readonly precision: Precision;
  readonly layers: readonly LayerSummary[];
  /** Parameter counts by bit width: { "1": n, "2": n, "32": n }. */
  readonly parametersByBits: Readonly<Record<string, number>>;
  readonly totalParameters: number;
  /** Deployed size: packed discrete weights plus float32 for the rest (batch norm counted as 4 values/channel). */
  readonly totalBytes: number;
  readonly totalMacs: number;
}

/** Per-layer parameter counts by precision, bytes and MACs of a model built at a given precision. */
export function summarizeModel(model: ModelDefinition, precision: Precision): ModelSummary {
  const layers: LayerSummary[] = describeLayers(model).map((layer) => {
    const weights = layer.shape.reduce((a, b) => a * b, 1);
    const bits = layer.op !== 'batchnorm' && layer.discrete ? bitsPerWeight(precision) : 32;
    // Full-precision dense layers carry a bias; batch norm carries gamma, beta and the two moving statistics.
    const parameters = layer.op === 'batchnorm' ? 4 * weights : layer.discrete ? weights : weights + layer.shape[layer.shape.length - 1]!;
    return {
      name: layer.name, op: layer.op, shape: layer.shape, outputShape: layer.outputShape, bits, parameters,
      bytes: Math.ceil((parameters * bits) / 8), macs: layer.macs,
    };
  });
  const parametersByBits: Record<string, number> = {};
  for (const l of layers) parametersByBits[l.bits] = (parametersByBits[l.bits] ?? 0) + l.parameters;
  return {
    architecture: model.architecture,
    precision,
    layers,
    parametersByBits,
    totalParameters: layers.reduce((s, l) => s + l.parameters, 0),
    totalBytes: layers.reduce((s, l) => s + l.bytes, 0),
    totalMacs: layers.reduce((s, l) => s + l.macs, 0),
  };
}
