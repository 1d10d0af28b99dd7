/**
 * The `tfjs` format (version 1): a TensorFlow.js layers model (model.json + weights.bin) that
 * `tf.loadLayersModel` reads. Layers mirror the app's own net (Conv2D/Dense without bias, BatchNormalization with
 * the evaluated statistics, ReLU, MaxPooling2D, Flatten, the full-precision Dense classifier), so TensorFlow.js
 * computes exactly what `discreteLogits` computes. Discrete kernels are stored with TensorFlow.js's own uint8 weight
 * quantization (value = q * 1 + (-1), exact for {-1, 0, +1}): 1 byte per weight instead of 4.
 *
 * Node has no file:// loader without tfjs-node; `tfjsFileHandler` is the small IOHandler that reads the two files
 * from disk and hands them to tfjs-core's own decoder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../tf.ts';
import { type ExportGraph, type BatchNormParameters, isLinear } from './graph.ts';
import { type ExportFile, float32Bytes } from './files.ts';
import { concat } from './protobuf.ts';
import { SEQUENTIAL_ARCHITECTURES, type ExportFormatEntry } from './entry.ts';

export const TFJS_FORMAT_VERSION = 1;
export const TFJS_MODEL_FILE = 'model.json';
export const TFJS_WEIGHTS_FILE = 'weights.bin';

interface WeightEntry {
  readonly name: string;
  readonly shape: number[];
  readonly dtype: 'float32';
  readonly quantization?: { readonly dtype: 'uint8'; readonly scale: number; readonly min: number };
}

interface LayerConfig {
  readonly class_name: string;
  readonly config: Record<string, unknown>;
}

export class TfjsExportError extends Error {
  override name = 'TfjsExportError';
}

/** Writes model.json and weights.bin; `metadata` goes to model.json's userDefinedMetadata. */
export function writeTfjs(graph: ExportGraph, metadata: Readonly<Record<string, unknown>> = {}): { files: ExportFile[]; layers: number } {
  const layers: LayerConfig[] = [];
  const weights: WeightEntry[] = [];
  const chunks: Uint8Array[] = [];
  const addFloats = (name: string, shape: number[], values: Float32Array) => {
    weights.push({ name, shape, dtype: 'float32' });
    chunks.push(float32Bytes(values));
  };
  const addDiscrete = (name: string, shape: number[], values: Int8Array) => {
    weights.push({ name, shape, dtype: 'float32', quantization: { dtype: 'uint8', scale: 1, min: -1 } });
    chunks.push(Uint8Array.from(values, (v) => v + 1));
  };
  const layer = (className: string, config: Record<string, unknown>) => {
    const first = layers.length === 0 ? { batch_input_shape: [null, ...graph.inputShape], dtype: 'float32' } : {};
    layers.push({ class_name: className, config: { ...config, trainable: false, ...first } });
  };
  const batchNorm = (bn: BatchNormParameters) => {
    layer('BatchNormalization', { name: bn.name, axis: -1, momentum: 0.99, epsilon: bn.epsilon, center: true, scale: true });
    const c = bn.gamma.length;
    addFloats(`${bn.name}/gamma`, [c], bn.gamma);
    addFloats(`${bn.name}/beta`, [c], bn.beta);
    addFloats(`${bn.name}/moving_mean`, [c], bn.mean);
    addFloats(`${bn.name}/moving_variance`, [c], bn.variance);
  };
  let relus = 0;
  let pools = 0;
  graph.ops.forEach((op) => {
    if (isLinear(op)) {
      const common = { name: op.name, activation: 'linear', use_bias: Boolean(op.bias) };
      if (op.op === 'conv') {
        layer('Conv2D', {
          ...common, filters: op.shape[3], kernel_size: [op.kernel, op.kernel], strides: [op.stride, op.stride],
          padding: 'same', data_format: 'channels_last', dilation_rate: [1, 1],
        });
      } else {
        layer('Dense', { ...common, units: op.shape[1] });
      }
      if (op.kind === 'float32') addFloats(`${op.name}/kernel`, [...op.shape], op.weights as Float32Array);
      else addDiscrete(`${op.name}/kernel`, [...op.shape], op.weights as Int8Array);
      if (op.bias) addFloats(`${op.name}/bias`, [op.bias.length], op.bias);
      if (op.scale) {
        if (!op.batchNorm) throw new TfjsExportError(`layer "${op.name}": the tfjs writer needs the raw batch-norm parameters (not available from a packed file)`);
        batchNorm(op.batchNorm);
      }
      return;
    }
    switch (op.op) {
      case 'relu':
        layer('ReLU', { name: `relu_${++relus}` });
        break;
      case 'maxpool':
        layer('MaxPooling2D', { name: `pool_${++pools}`, pool_size: [op.size, op.size], strides: [op.stride, op.stride], padding: 'same', data_format: 'channels_last' });
        break;
      case 'flatten':
        layer('Flatten', { name: 'flatten' });
        break;
      case 'globalavgpool':
        layer('GlobalAveragePooling2D', { name: 'global_pool', data_format: 'channels_last' });
        break;
      case 'scaleshift':
        if (!op.batchNorm) throw new TfjsExportError(`"${op.name}": the tfjs writer needs the raw batch-norm parameters`);
        batchNorm(op.batchNorm);
        break;
    }
  });
  const modelJson = {
    format: 'layers-model',
    generatedBy: `lrnet export (tfjs format version ${TFJS_FORMAT_VERSION})`,
    convertedBy: null,
    modelTopology: {
      class_name: 'Sequential',
      config: { name: `lrnet_${graph.net.architecture}_${graph.net.kind}_${graph.net.choice}`, layers },
      keras_version: 'tfjs-layers 4.22.0',
      backend: 'tensor_flow.js',
    },
    weightsManifest: [{ paths: [TFJS_WEIGHTS_FILE], weights }],
    userDefinedMetadata: {
      lrnet: {
        format: 'lrnet-tfjs', version: TFJS_FORMAT_VERSION, net: graph.net,
        input: { shape: graph.inputShape, layout: 'NHWC', normalization: graph.normalization },
        ...metadata,
      },
    },
  };
  return {
    files: [
      { path: TFJS_MODEL_FILE, data: `${JSON.stringify(modelJson)}\n` },
      { path: TFJS_WEIGHTS_FILE, data: concat(chunks) },
    ],
    layers: layers.length,
  };
}

/**
 * An IOHandler that loads a layers or graph model from a folder on disk (model.json and the weight files it names),
 * decoding the weights with tfjs-core's own code. Use: `tf.loadLayersModel(tfjsFileHandler(dir))`.
 */
export function tfjsFileHandler(dir: string, modelFile = TFJS_MODEL_FILE): tf.io.IOHandler {
  return {
    load: async () => {
      const modelJson = JSON.parse(await fs.promises.readFile(path.join(dir, modelFile), 'utf8')) as tf.io.ModelJSON;
      return tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: Uint8Array[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) buffers.push(await fs.promises.readFile(path.join(dir, p)));
        }
        const data = concat(buffers);
        return [specs, data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer];
      });
    },
  };
}

export const TFJS_EXPORT_FORMAT = {
  name: 'tfjs',
  title: 'TensorFlow.js',
  description: 'A TensorFlow.js layers model (model.json + weights) for the browser or Node.',
  version: TFJS_FORMAT_VERSION,
  files: [TFJS_MODEL_FILE, TFJS_WEIGHTS_FILE],
  architectures: SEQUENTIAL_ARCHITECTURES,
  verifier: 'tf.loadLayersModel on the files on disk',
  write: (graph, { source }) => {
    const written = writeTfjs(graph, { source });
    return { files: written.files, details: { layers: written.layers, weights: 'discrete kernels uint8-quantized (exact), the rest float32' } };
  },
} as const satisfies ExportFormatEntry<'tfjs'>;
