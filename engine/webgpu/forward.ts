/**
 * forward() of engine/models.ts in mode 'lr' with the fused kernels: the discrete layers through `fusedLrLayer`
 * and batch norm + ReLU (+ max pool) through `batchNormRelu` / `batchNormReluPool`; every other mode runs
 * models.ts's forward. It mirrors models.ts node by node; the benchmark and the tests run it, and it shows the
 * integration engine/models.ts needs (see index.ts for the steps).
 */
import { tf, type Tensor } from '../tf.ts';
import { deriveSeed } from '../random.ts';
import { moments } from '../distributions.ts';
import {
  type BatchNormStatistics,
  type ForwardOptions,
  type LayerNode,
  type ModelDefinition,
  type Parameters,
  BATCH_NORM_EPSILON,
  describeLayers,
  forward,
} from '../models.ts';
import { type LrLayerNode, fusedLrLayer } from './index.ts';
import { batchNormRelu, batchNormReluPool } from './bn-relu.ts';

export interface FusedForwardOptions extends ForwardOptions {
  /** Stock ops with the same noise instead of the fused kernels (the tests' reference). */
  readonly reference?: boolean;
  /** Fuse batch norm + ReLU pairs (default true; off in the reference). */
  readonly fuseBatchNormRelu?: boolean;
}

/** forward() of engine/models.ts with the fused kernels in mode 'lr'; every other mode runs models.ts's forward. */
export function forwardLr(model: ModelDefinition, params: Parameters, x: Tensor, options: FusedForwardOptions): Tensor {
  if (options.mode !== 'lr') return forward(model, params, x, options);
  const kind = options.kind;
  if (!kind) throw new Error('forward mode "lr" needs the discrete kind');
  const param = (name: string): Tensor => {
    const p = params.get(name);
    if (!p) throw new Error(`model parameter "${name}" is missing (mode lr)`);
    return p;
  };
  const layerIndex = new Map(describeLayers(model).map((l) => [l.name, l.discreteIndex]));
  const fuseBn = options.fuseBatchNormRelu ?? !options.reference;

  const linear = (node: LayerNode & { op: 'conv' | 'dense' }, input: Tensor): Tensor => {
    const apply = (inp: Tensor, w: Tensor) => node.op === 'conv'
      ? tf.conv2d(inp as tf.Tensor4D, w as tf.Tensor4D, node.stride, 'same')
      : tf.matMul(inp as tf.Tensor2D, w as tf.Tensor2D);
    if (!node.discrete) return apply(input, param(`${node.name}/kernel`));
    const c = params.get(`${node.name}/c`);
    const { mean, variance } = moments(kind, { a: param(`${node.name}/a`), ...(c ? { c } : {}) });
    const seed = deriveSeed(options.noiseSeed ?? 0, layerIndex.get(node.name) ?? 0);
    const layer: LrLayerNode = node.op === 'conv' ? { op: 'conv', stride: node.stride } : { op: 'dense' };
    return fusedLrLayer(layer, input, mean, variance, seed, { inputGradient: input !== x, reference: options.reference ?? false });
  };

  const batchStats = (name: string, h: Tensor): BatchNormStatistics => {
    if (options.batchStatistics) {
      const stats = tf.moments(h, h.rank === 4 ? [0, 1, 2] : [0]);
      options.onBatchStatistics?.(name, stats);
      return stats;
    }
    return options.statisticsOverride?.get(name) ?? { mean: param(`${name}/movingMean`), variance: param(`${name}/movingVariance`) };
  };

  let dropoutCount = 0;
  const run = (nodes: readonly LayerNode[], input: Tensor): Tensor => {
    let h = input;
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!;
      switch (node.op) {
        case 'conv':
          h = linear(node, h);
          break;
        case 'dense':
          h = linear(node, h);
          if (!node.discrete) h = tf.add(h, param(`${node.name}/bias`));
          break;
        case 'batchnorm': {
          if (fuseBn && options.batchStatistics && nodes[i + 1]?.op === 'relu') {
            const gamma = param(`${node.name}/gamma`);
            const beta = param(`${node.name}/beta`);
            const pool = nodes[i + 2];
            const out = pool?.op === 'maxpool'
              ? batchNormReluPool(h, gamma, beta, BATCH_NORM_EPSILON, pool.size, pool.stride)
              : batchNormRelu(h, gamma, beta, BATCH_NORM_EPSILON);
            options.onBatchStatistics?.(node.name, { mean: out.mean, variance: out.variance });
            h = out.y;
            i += pool?.op === 'maxpool' ? 2 : 1;
            break;
          }
          const stats = batchStats(node.name, h);
          h = tf.batchNorm(h, stats.mean, stats.variance, param(`${node.name}/beta`), param(`${node.name}/gamma`), BATCH_NORM_EPSILON);
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
  return run(model.nodes, x);
}
