/**
 * The `onnx` format (version 1): one ONNX model (IR version 7, default opset 13) written with the small protobuf
 * encoder in protobuf.ts. Discrete weights are int8 initializers holding exactly -1, 0, +1; a per-output-channel
 * DequantizeLinear turns them into floats, with the folded batch-norm scale as the dequantization scale and the
 * folded shift as the Conv/Gemm bias. The graph takes NHWC input (as the app does) and transposes to NCHW inside.
 */
import { type ExportGraph, type LinearOp, isLinear } from './graph.ts';
import type { ExportFile } from './files.ts';
import { ProtoWriter } from './protobuf.ts';
import { SEQUENTIAL_ARCHITECTURES, type ExportFormatEntry } from './entry.ts';

export const ONNX_FORMAT_VERSION = 1;
export const ONNX_FILE = 'model.onnx';
export const ONNX_OPSET = 13;
const IR_VERSION = 7;

/** TensorProto.DataType values used here. */
const DataType = { FLOAT: 1, INT8: 3, INT64: 7 } as const;
/** AttributeProto.AttributeType values used here. */
const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;

type Attribute = { name: string } & ({ int: number } | { ints: readonly number[] } | { float: number } | { string: string });

function attribute(a: Attribute): ProtoWriter {
  const w = new ProtoWriter().string(1, a.name);
  if ('int' in a) w.int(3, a.int).int(20, AttributeType.INT);
  else if ('ints' in a) w.packedInts(8, a.ints).int(20, AttributeType.INTS);
  else if ('float' in a) w.float(2, a.float).int(20, AttributeType.FLOAT);
  else w.bytes(4, new TextEncoder().encode(a.string)).int(20, AttributeType.STRING);
  return w;
}

function node(opType: string, inputs: readonly string[], outputs: readonly string[], name: string, attributes: readonly Attribute[] = []): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of inputs) w.string(1, i);
  for (const o of outputs) w.string(2, o);
  w.string(3, name).string(4, opType);
  for (const a of attributes) w.message(5, attribute(a));
  return w;
}

function tensor(name: string, dims: readonly number[], dataType: number, raw: Uint8Array): ProtoWriter {
  return new ProtoWriter().packedInts(1, dims).int(2, dataType).string(8, name).bytes(9, raw);
}

function floatRaw(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return out;
}

function valueInfo(name: string, dims: readonly (number | string)[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) shape.message(1, typeof d === 'number' ? new ProtoWriter().int(1, d) : new ProtoWriter().string(2, d));
  const tensorType = new ProtoWriter().int(1, DataType.FLOAT).message(2, shape);
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));
}

/** Builds the ONNX model of a graph; `metadata` lands in ModelProto.metadata_props. */
export function writeOnnx(graph: ExportGraph, metadata: Readonly<Record<string, string>> = {}): { files: ExportFile[]; nodes: number } {
  const nodes: ProtoWriter[] = [];
  const initializers: ProtoWriter[] = [];
  let counter = 0;
  const fresh = (base: string) => `${base}:${counter++}`;
  const add = (opType: string, inputs: string[], attributes: Attribute[] = [], output?: string): string => {
    const out = output ?? fresh(opType.toLowerCase());
    nodes.push(node(opType, inputs, [out], `${opType}_${nodes.length}`, attributes));
    return out;
  };
  const floats = (name: string, values: Float32Array, dims: readonly number[] = [values.length]) => {
    initializers.push(tensor(name, dims, DataType.FLOAT, floatRaw(values)));
    return name;
  };

  /** Weights as a float tensor: int8 {-1, 0, 1} + DequantizeLinear (scale per output channel), or float32. */
  const weightsFor = (op: LinearOp, dims: readonly number[], axis: number, reorder: (i: number) => number): string => {
    const count = op.weights.length;
    if (op.kind === 'float32') {
      const values = new Float32Array(count);
      for (let i = 0; i < count; i++) values[i] = op.weights[reorder(i)]!;
      return floats(`${op.name}.weight`, values, dims);
    }
    const q = new Int8Array(count);
    for (let i = 0; i < count; i++) q[i] = op.weights[reorder(i)]!;
    const channels = dims[axis]!;
    initializers.push(tensor(`${op.name}.weight_q`, dims, DataType.INT8, new Uint8Array(q.buffer)));
    floats(`${op.name}.weight_scale`, op.scale ?? new Float32Array(channels).fill(1));
    initializers.push(tensor(`${op.name}.weight_zero_point`, [channels], DataType.INT8, new Uint8Array(channels)));
    return add('DequantizeLinear', [`${op.name}.weight_q`, `${op.name}.weight_scale`, `${op.name}.weight_zero_point`], [{ name: 'axis', int: axis }]);
  };
  /** Bias of a linear op: the folded shift (discrete layers, whose scale went into the weights) or the bias. */
  const biasFor = (op: LinearOp): string | undefined => {
    if (op.kind !== 'float32' && op.scale) {
      if (op.bias) throw new Error(`layer "${op.name}" has both batch norm and a bias; version 1 does not write that`);
      return floats(`${op.name}.shift`, op.shift!);
    }
    if (op.bias) {
      if (op.scale) throw new Error(`full-precision layer "${op.name}" followed by batch norm is not supported by version 1`);
      return floats(`${op.name}.bias`, op.bias);
    }
    return undefined;
  };

  let x = add('Transpose', ['input'], [{ name: 'perm', ints: [0, 3, 1, 2] }]);
  let layout: 'nchw' | 'flat' = 'nchw';
  graph.ops.forEach((op, index) => {
    const last = index === graph.ops.length - 1;
    const output = last ? 'logits' : undefined;
    if (isLinear(op)) {
      const bias = biasFor(op);
      if (op.op === 'conv') {
        const [k, , inC, outC] = op.shape;
        // HWIO [k, k, in, out] -> OIHW [out, in, k, k]
        const w = weightsFor(op, [outC, inC, k, k], 0, (i) => {
          const kx = i % k;
          const ky = Math.floor(i / k) % k;
          const ic = Math.floor(i / (k * k)) % inC;
          const oc = Math.floor(i / (k * k * inC));
          return ((ky * k + kx) * inC + ic) * outC + oc;
        });
        x = add('Conv', [x, w, ...(bias ? [bias] : [])], [
          { name: 'kernel_shape', ints: [k, k] }, { name: 'strides', ints: [op.stride, op.stride] },
          { name: 'pads', ints: [op.pads[0], op.pads[1], op.pads[2], op.pads[3]] },
        ], output);
      } else {
        const w = weightsFor(op, op.shape, 1, (i) => i);
        const inputs = [x, w, ...(bias ? [bias] : [])];
        x = add('Gemm', inputs, [], output);
      }
      return;
    }
    switch (op.op) {
      case 'relu':
        x = add('Relu', [x], [], output);
        break;
      case 'maxpool':
        x = add('MaxPool', [x], [
          { name: 'kernel_shape', ints: [op.size, op.size] }, { name: 'strides', ints: [op.stride, op.stride] },
          { name: 'pads', ints: [op.pads[0], op.pads[1], op.pads[2], op.pads[3]] },
        ], output);
        break;
      case 'flatten':
        // Back to NHWC first: the app's flatten (and the dense weights after it) use HWC order.
        x = add('Transpose', [x], [{ name: 'perm', ints: [0, 2, 3, 1] }]);
        x = add('Flatten', [x], [{ name: 'axis', int: 1 }], output);
        layout = 'flat';
        break;
      case 'globalavgpool':
        x = add('GlobalAveragePool', [x]);
        x = add('Flatten', [x], [{ name: 'axis', int: 1 }], output);
        layout = 'flat';
        break;
      case 'scaleshift': {
        const c = op.scale.length;
        const dims = layout === 'nchw' ? [1, c, 1, 1] : [c];
        x = add('Mul', [x, floats(`${op.name}.scale`, op.scale, dims)]);
        x = add('Add', [x, floats(`${op.name}.shift`, op.shift, dims)], [], output);
        break;
      }
    }
  });
  if (x !== 'logits') x = add('Identity', [x], [], 'logits');

  const [h, w, c] = graph.inputShape;
  const g = new ProtoWriter();
  for (const n of nodes) g.message(1, n);
  g.string(2, `lrnet_${graph.net.architecture}_${graph.net.kind}_${graph.net.choice}`);
  for (const i of initializers) g.message(5, i);
  g.string(10, 'LR-net exported by lrnet: input NHWC float32 normalized as recorded in metadata_props; output logits.');
  g.message(11, valueInfo('input', ['N', h, w, c]));
  g.message(12, valueInfo('logits', ['N', graph.numClasses]));

  const model = new ProtoWriter()
    .int(1, IR_VERSION)
    .string(2, 'lrnet')
    .string(3, String(ONNX_FORMAT_VERSION))
    .string(4, 'lrnet')
    .int(5, ONNX_FORMAT_VERSION)
    .message(7, g)
    .message(8, new ProtoWriter().string(1, '').int(2, ONNX_OPSET));
  const props: Record<string, string> = {
    'lrnet.format': 'lrnet-onnx',
    'lrnet.version': String(ONNX_FORMAT_VERSION),
    'lrnet.net': JSON.stringify(graph.net),
    'lrnet.input': JSON.stringify({ shape: graph.inputShape, layout: 'NHWC', normalization: graph.normalization }),
    ...metadata,
  };
  for (const [key, value] of Object.entries(props)) model.message(14, new ProtoWriter().string(1, key).string(2, value));
  return { files: [{ path: ONNX_FILE, data: model.finish() }], nodes: nodes.length };
}

export const ONNX_EXPORT_FORMAT = {
  name: 'onnx',
  title: 'ONNX',
  description: 'The discrete net as an ONNX graph, checked with ONNX Runtime.',
  version: ONNX_FORMAT_VERSION,
  files: [ONNX_FILE],
  architectures: SEQUENTIAL_ARCHITECTURES,
  verifier: 'onnxruntime-node, CPU execution provider',
  write: (graph, { source }) => {
    const written = writeOnnx(graph, { 'lrnet.source': JSON.stringify(source) });
    return { files: written.files, details: { opset: ONNX_OPSET, nodes: written.nodes, weights: 'int8 {-1,0,1} + DequantizeLinear (per-channel scale = folded batch norm)' } };
  },
} as const satisfies ExportFormatEntry<'onnx'>;
