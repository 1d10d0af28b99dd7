/**
 * The fused LR layer as TensorFlow.js ops with gradients: `lrConv2d` and `lrDense` compute
 *
 *     z = conv(x, mean) + sqrt(conv(x^2, variance) + 1e-3) * eps        (dense: x @ mean, x^2 @ variance)
 *
 * with eps drawn on the GPU from Philox by (seed, output index) (see philox.ts), in one WebGPU pass; the backward
 * pass is two more (input gradient; both filter gradients) plus one multiply:
 *
 *     dL/dm = dz,  dL/dv = dz * g  with g = 0.5 * eps / s saved by the forward pass
 *     dx    = convT(dz, mean) + 2x * convT(dz * g, variance)
 *     dmean = corr(x, dz),  dvariance = corr(x^2, dz * g)
 *
 * The kernels are registered for the `webgpu` backend under the names below. On any other backend, or for shapes
 * the kernels do not cover (output channels not a multiple of 4), the same function runs as stock ops with the same
 * Philox noise drawn on the CPU, so results never depend on which path ran.
 */
import { tf, type Tensor } from '../../tf.ts';
import { philoxNormal } from './philox.ts';
import {
  type ConvGeometry,
  LR_VARIANCE_EPSILON,
  denseGeometry,
  lrBackpropFilterProgram,
  lrBackpropFilterProgramSubgroup,
  lrBackpropInputProgram,
  lrBackpropInputProgramSubgroup,
  lrForwardProgram,
  lrForwardProgramSubgroup,
  philoxNormalProgram,
  pixelsPerLaneWide,
  sameConvGeometry,
  sumPartialsProgram,
} from './lr-kernels/index.ts';
import { runFusedProgram, type WebGPUBackendInternals } from './runner.ts';
import { subgroupSizeOf } from './device.ts';

export const LR_FORWARD_KERNEL = 'LrnetLrForward';
export const LR_BACKPROP_INPUT_KERNEL = 'LrnetLrBackpropInput';
export const LR_BACKPROP_FILTER_KERNEL = 'LrnetLrBackpropFilter';
export const PHILOX_NORMAL_KERNEL = 'LrnetPhiloxNormal';

/** Attributes shared by the LR kernels: the layer's geometry is recomputed from the input shapes. */
interface LrAttrs {
  /** 0 for a dense layer, the convolution stride otherwise. */
  readonly stride: number;
  readonly seed: number;
  readonly writeFactor: boolean;
}

function geometryOf(xShape: readonly number[], wShape: readonly number[], stride: number, denseLayout: 'row' | 'batch' = 'row'): ConvGeometry {
  return stride === 0 ? denseGeometry(xShape, wShape, denseLayout) : sameConvGeometry(xShape, wShape, stride);
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

/**
 * Layers with at least this many multiply-accumulates per pass get the widest tiles (up to 16 pixels per
 * invocation): about 30% faster on lavapipe, but their shaders take 10-30 s to compile (once per shape; Mesa's
 * disk cache keeps them across runs), which only pays for big layers (the MNIST conv2 from batch 50 on).
 */
export const WIDE_TILE_MACS = 5e8;
let wideTileMacs = WIDE_TILE_MACS;

/** Changes the size from which layers get the widest tiles (tests use 0 to exercise them on small layers). */
export function setWideTileThreshold(macs: number): void {
  wideTileMacs = macs;
}

function wideTiles(g: ConvGeometry, width: number, rows: number, channelVecs: number): { pixels?: number; channelVecs?: number } {
  const macs = g.n * g.oh * g.ow * g.k * g.k * g.ci * g.co;
  return macs >= wideTileMacs ? { pixels: pixelsPerLaneWide(width, rows, 16), channelVecs } : {};
}

function attrsOf(args: KernelArgs): LrAttrs {
  return args.attrs as unknown as LrAttrs;
}

let registered = false;

/** Registers the fused kernels with the webgpu backend (once; harmless when that backend is absent). */
export function registerLrKernels(): void {
  if (registered) return;
  registered = true;
  const kernel = (kernelName: string, kernelFunc: (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]) =>
    tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as tf.KernelFunc });

  kernel(LR_FORWARD_KERNEL, (args) => {
    const { x, mean, variance } = args.inputs as Record<string, tf.TensorInfo>;
    const { stride, seed, writeFactor } = attrsOf(args);
    const g = geometryOf(x!.shape, mean!.shape, stride);
    const outShape = stride === 0 ? [g.ow, g.co] : [g.n, g.oh, g.ow, g.co];
    const backend = args.backend as WebGPUBackendInternals;
    const subgroupSize = subgroupSizeOf(backend);
    const program = subgroupSize
      ? lrForwardProgramSubgroup(g, { writeFactor, subgroupSize, ...wideTiles(g, g.ow, g.n * g.oh, 4) })
      : lrForwardProgram(g, { writeFactor });
    return runFusedProgram(backend, program, [x!, mean!, variance!],
      writeFactor ? [{ shape: outShape }, { shape: outShape }] : [{ shape: outShape }],
      [{ type: 'uint32', data: [seed >>> 0] }]);
  });

  kernel(LR_BACKPROP_INPUT_KERNEL, (args) => {
    const { dz, dzg, x, mean, variance } = args.inputs as Record<string, tf.TensorInfo>;
    const g = geometryOf(x!.shape, mean!.shape, attrsOf(args).stride);
    const backend = args.backend as WebGPUBackendInternals;
    const subgroupSize = subgroupSizeOf(backend);
    const program = subgroupSize
      ? lrBackpropInputProgramSubgroup(g, { subgroupSize, ...wideTiles(g, g.w, g.n * g.h, 2) })
      : lrBackpropInputProgram(g);
    const [dx] = runFusedProgram(backend, program, [dz!, dzg!, x!, mean!, variance!], [{ shape: x!.shape }]);
    return dx!;
  });

  kernel(LR_BACKPROP_FILTER_KERNEL, (args) => {
    const { x, dz, dzg, mean } = args.inputs as Record<string, tf.TensorInfo>;
    const g = geometryOf(x!.shape, mean!.shape, attrsOf(args).stride, 'batch');
    const backend = args.backend as WebGPUBackendInternals;
    const subgroupSize = subgroupSizeOf(backend);
    const program = subgroupSize ? lrBackpropFilterProgramSubgroup(g, { subgroupSize }) : lrBackpropFilterProgram(g);
    const partial = [program.splits, g.k * g.k * g.ci, g.co];
    // `mean` only carries the filter shape; the program does not read it.
    const [pm, pv] = runFusedProgram(backend, program, [x!, dz!, dzg!], [{ shape: partial }, { shape: partial }]);
    if (program.splits === 1) return [pm!, pv!];
    const size = g.k * g.k * g.ci * g.co;
    const sums = runFusedProgram(backend, sumPartialsProgram(program.splits, size), [pm!, pv!], [{ shape: [1, ...partial.slice(1)] }, { shape: [1, ...partial.slice(1)] }]);
    backend.disposeData(pm!.dataId);
    backend.disposeData(pv!.dataId);
    return sums;
  });

  kernel(PHILOX_NORMAL_KERNEL, (args) => {
    const { shape, seed } = args.attrs as unknown as { shape: number[]; seed: number };
    const size = shape.reduce((a, b) => a * b, 1);
    const program = philoxNormalProgram(size);
    return runFusedProgram(args.backend as WebGPUBackendInternals, program, [],
      [{ shape }, { shape, dtype: 'int32' }], [{ type: 'uint32', data: [seed >>> 0] }]);
  });
}

/** Whether the fused kernels can run this layer: the webgpu backend and output channels in fours. */
function fusedApplies(outputChannels: number): boolean {
  return tf.getBackend() === 'webgpu' && outputChannels % 4 === 0;
}

/**
 * The LR noise tensor of a layer output for `seed` (the values the fused forward draws). On webgpu it is drawn on
 * the GPU (`bits` are the raw Philox words as int32); elsewhere on the CPU.
 */
export function philoxNormalTensor(shape: readonly number[], seed: number): { normal: Tensor; bits?: Tensor } {
  const size = shape.reduce((a, b) => a * b, 1);
  if (tf.getBackend() === 'webgpu' && size % 4 === 0) {
    registerLrKernels();
    const [normal, bits] = tf.engine().runKernel(PHILOX_NORMAL_KERNEL, {}, { shape: [...shape], seed } as unknown as tf.NamedAttrMap) as Tensor[];
    return { normal: normal!, bits: bits! };
  }
  return { normal: tf.tensor(philoxNormal(size, seed), [...shape]) };
}

/** The reference composition of stock ops (used off webgpu and as the tests' reference). */
export function lrReference(
  x: Tensor,
  mean: Tensor,
  variance: Tensor,
  eps: Tensor,
  apply: (input: Tensor, w: Tensor) => Tensor,
): Tensor {
  return tf.tidy(() => {
    const m = apply(x, mean);
    const s = tf.sqrt(tf.add(apply(tf.square(x), variance), LR_VARIANCE_EPSILON));
    return tf.add(m, tf.mul(s, eps));
  });
}

export interface LrConvOptions {
  readonly stride?: number;
  readonly pad?: 'same';
  /**
   * Compute dL/dx (default true). The first layer's input is data: pass false to skip that pass; the input then
   * receives no gradient.
   */
  readonly inputGradient?: boolean;
  /** Use the fused kernels when they apply (default true); false runs the stock-op reference with the same noise. */
  readonly fused?: boolean;
}

function runForward(x: Tensor, mean: Tensor, variance: Tensor, seed: number, stride: number): [Tensor, Tensor] {
  const [z, factor] = tf.engine().runKernel(LR_FORWARD_KERNEL, { x, mean, variance },
    { stride, seed, writeFactor: true } as unknown as tf.NamedAttrMap) as Tensor[];
  return [z!, factor!];
}

function runBackward(dz: Tensor, factor: Tensor, x: Tensor, mean: Tensor, variance: Tensor, stride: number, inputGradient: boolean): Tensor[] {
  const attrs = { stride } as unknown as tf.NamedAttrMap;
  const dzg = tf.mul(dz, factor);
  const [dmP, dvP] = tf.engine().runKernel(LR_BACKPROP_FILTER_KERNEL, { x, dz, dzg, mean }, attrs) as Tensor[];
  // The kernel returns the gradients as [1, k*k*ci, co] (partial sums already added).
  const reduce = (partial: Tensor) => tf.reshape(partial, mean.shape);
  const grads = [reduce(dmP!), reduce(dvP!)];
  if (inputGradient) {
    grads.unshift(tf.engine().runKernel(LR_BACKPROP_INPUT_KERNEL, { dz, dzg, x, mean, variance }, attrs) as Tensor);
  }
  return grads;
}

/**
 * The fused LR op. `stride` 0 means dense (x [n, in], weights [in, out]); otherwise a SAME convolution (x NHWC,
 * weights HWIO).
 */
function fusedLr(x: Tensor, mean: Tensor, variance: Tensor, seed: number, stride: number, inputGradient: boolean): Tensor {
  registerLrKernels();
  // customGrad's function receives the differentiable inputs then the save function. The input is always saved
  // (not closed over): the forward pass's tensors are disposed before the backward pass runs.
  const op = tf.customGrad(((...args: (Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [xi, mi, vi] = (inputGradient ? args : [x, ...args]) as [Tensor, Tensor, Tensor];
    const [z, factor] = runForward(xi, mi, vi, seed, stride);
    save([xi, mi, vi, factor]);
    return {
      value: z,
      gradFunc: (dz: Tensor, saved: Tensor[]) => {
        const [sx, sm, sv, sf] = saved as [Tensor, Tensor, Tensor, Tensor];
        return runBackward(dz, sf, sx, sm, sv, stride, inputGradient);
      },
    };
  }) as Parameters<typeof tf.customGrad>[0]);
  return inputGradient ? op(x, mean, variance) : op(mean, variance);
}

/**
 * LR convolution: z = conv(x, mean) + sqrt(conv(x^2, variance) + 1e-3) * eps, eps = Philox noise of `seed`.
 * x [n, h, w, ci], mean/variance [k, k, ci, co], SAME padding. Differentiable in x, mean and variance.
 */
export function lrConv2d(x: Tensor, mean: Tensor, variance: Tensor, seed: number, options: LrConvOptions = {}): Tensor {
  const stride = options.stride ?? 1;
  if ((options.pad ?? 'same') !== 'same') throw new Error('lrConv2d: only SAME padding is supported');
  if (x.rank !== 4 || mean.rank !== 4) throw new Error(`lrConv2d: expected x of rank 4 and a 4-d filter, got ${x.shape} and ${mean.shape}`);
  const co = mean.shape[3]!;
  if (options.fused !== false && fusedApplies(co)) return fusedLr(x, mean, variance, seed, stride, options.inputGradient ?? true);
  return tf.tidy(() => {
    const apply = (input: Tensor, w: Tensor) => tf.conv2d(input as tf.Tensor4D, w as tf.Tensor4D, stride, 'same');
    const g = sameConvGeometry(x.shape, mean.shape, stride);
    const eps = philoxNormalTensor([g.n, g.oh, g.ow, g.co], seed).normal;
    return lrReference(x, mean, variance, eps, apply);
  });
}

/** LR dense layer: z = x @ mean + sqrt(x^2 @ variance + 1e-3) * eps. x [n, in], mean/variance [in, out]. */
export function lrDense(x: Tensor, mean: Tensor, variance: Tensor, seed: number, options: Omit<LrConvOptions, 'stride' | 'pad'> = {}): Tensor {
  if (x.rank !== 2 || mean.rank !== 2) throw new Error(`lrDense: expected 2-d input and weights, got ${x.shape} and ${mean.shape}`);
  const co = mean.shape[1]!;
  if (options.fused !== false && fusedApplies(co)) return fusedLr(x, mean, variance, seed, 0, options.inputGradient ?? true);
  return tf.tidy(() => {
    const eps = philoxNormalTensor([x.shape[0]!, co], seed).normal;
    return lrReference(x, mean, variance, eps, (input, w) => tf.matMul(input as tf.Tensor2D, w as tf.Tensor2D));
  });
}
