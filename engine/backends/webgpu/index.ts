/**
 * Fused LR-net kernels for the WebGPU backend: what the trainer uses.
 *
 * - `requestWebgpuSubgroups()`: call before `initBackend` so the device gets 'subgroups' (2-4x faster kernels on
 *   lavapipe); harmless elsewhere.
 * - `enableFusedLrKernels()`: registers the kernels; true when the active backend is webgpu (use them then).
 * - `fusedLrLayer(node, input, mean, variance, seed)`: the contract of the LR branch of `linear()` in
 *   engine/models.ts. Given the layer's input and the weight moments from `moments()`, it returns
 *   z = apply(input, mean) + sqrt(apply(input^2, variance) + 1e-3) * eps for the layer's conv (SAME, `stride`) or
 *   dense `apply`, differentiable in input, mean and variance. eps is Philox keyed by `seed` (philox.ts), drawn on
 *   the GPU: same seed, same noise on every backend (off webgpu the same values come from the CPU), but not the
 *   ziggurat values of engine/noise.ts.
 * - `batchNormRelu` / `batchNormReluPool`: relu(batchNorm(h)) (then maxPool) with batch statistics, returning the
 *   statistics for the moving averages.
 *
 * Integration in engine/models.ts (this module imports nothing from models.ts, so no import cycle):
 *   1. ForwardOptions gets `readonly fusedKernels?: boolean`; the trainer sets it to `enableFusedLrKernels()` for
 *      the LR phase (and calls `await requestWebgpuSubgroups()` before `initBackend` in engine/run.ts).
 *   2. In `linear()`, right after `moments()`, for mode 'lr' with `options.fusedKernels`:
 *        return fusedLrLayer(layerNode, input, mean, variance,
 *          deriveSeed(options.noiseSeed ?? 0, layerIndex.get(name) ?? 0), { inputGradient: input !== x });
 *      where `layerNode` is `{ op: 'conv', stride: node.stride }` or `{ op: 'dense' }` (pass it from the two call
 *      sites; `x` is forward()'s input, whose gradient nobody needs).
 *   3. In `run()`, case 'batchnorm', when `options.fusedKernels && options.batchStatistics` and the next node is
 *      'relu': call batchNormReluPool (next-next node 'maxpool') or batchNormRelu, pass its mean/variance to
 *      `onBatchStatistics`, and skip the nodes it consumed. (Done: engine/models.ts `forward` with `fusedKernels`.)
 */
import { tf, type Tensor } from '../../tf.ts';
import { lrConv2d, lrDense, registerLrKernels } from './lr-ops.ts';
import { registerBatchNormReluKernels } from './bn-relu.ts';

export { requestWebgpuSubgroups } from './device.ts';
export { batchNormRelu, batchNormReluPool, type BatchNormReluResult } from './bn-relu.ts';
export { lrConv2d, lrDense } from './lr-ops.ts';
export { philoxNormal, fillPhiloxNormal, philox4x32 } from './philox.ts';

/** Registers the fused kernels; true when they will run (the active TensorFlow.js backend is webgpu). */
export function enableFusedLrKernels(): boolean {
  registerLrKernels();
  registerBatchNormReluKernels();
  return tf.getBackend() === 'webgpu';
}

export type LrLayerNode = { readonly op: 'conv'; readonly stride: number } | { readonly op: 'dense' };

export interface FusedLayerOptions {
  /** Compute the gradient with respect to the input (false for the network's first layer). Default true. */
  readonly inputGradient?: boolean;
  /** Run the stock-op reference with the same Philox noise instead of the fused kernels (tests). */
  readonly reference?: boolean;
}

/** The LR pre-activation z of one discrete layer (see the file comment). */
export function fusedLrLayer(node: LrLayerNode, input: Tensor, mean: Tensor, variance: Tensor, seed: number, options: FusedLayerOptions = {}): Tensor {
  const fused = options.reference !== true;
  return node.op === 'conv'
    ? lrConv2d(input, mean, variance, seed, { stride: node.stride, inputGradient: options.inputGradient ?? true, fused })
    : lrDense(input, mean, variance, seed, { inputGradient: options.inputGradient ?? true, fused });
}
