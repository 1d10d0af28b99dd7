/**
 * Training kernels for the TensorFlow.js wasm backend (tfjs 4.22).
 *
 * As shipped, the wasm backend cannot train a conv net (`Conv2DBackpropFilter` is not registered for 'wasm'), and
 * several other kernels that training runs are 2-40x slower than they need to be. `registerWasmTrainingKernels()`
 * registers, for backendName 'wasm' (all float32, NHWC; NCHW is converted):
 *
 * - Conv2DBackpropFilter (missing): chunked GEMMs on the backend's own XNNPACK matmul path.
 *     dW[(kh,kw,ci), co] = sum_{oh,ow,b} x[b, oh*sh+kh-pt, ow*sw+kw-pl, ci] * dy[b,oh,ow,co]
 *   x is laid out once (JS) as x' [ci, Hp, Wp, B] with the padding built in; for each chunk of output pixels the
 *   transposed im2col rows are runs copied from x' and dy's rows are the GEMM "weights" (~2 MiB, so they stay in
 *   cache); partial results are summed. Tried first and dropped: ONE Conv2D of x' with dy as a dilated "filter"
 *   (1.6-2.9x the forward time: memory-bound, and the backend transposes such a huge filter with a slow generic
 *   loop), and im2col with the im2col chunk as weights (~1.5x).
 * - Conv2DBackpropInput (replaced; was 7-13x the forward Conv2D): wasm Conv2D of dy with the flipped, transposed
 *   filter. Stride s > 1 is split into s*s phases (sub-pixel decomposition): dx rows/cols congruent to r mod s are
 *   a stride-1 convolution of dy with the taps (r+pt) mod s + s*m, so no work is spent on inserted zeros.
 * - BatchMatMul and _FusedMatMul (replaced for transposed or batched operands): the wasm backend sends those to a
 *   naive C++ loop (`slow_batch_matmul`), 12-25x slower than its XNNPACK path, and the dense layers' backward pass
 *   is exactly that (dW = x^T dy, dx = dy W^T). Operands are transposed in JS and sent to the XNNPACK path. (That
 *   naive loop also adds a _FusedMatMul bias wrongly: rows i > 0 get bias[N-1]; the replacement fixes this.)
 * - Tile (the batch-norm gradient tiles a [1,1,1,C] tensor to the activation's shape: ~45 ns/element in wasm),
 *   Sum/Mean over leading axes (batch-norm statistics and bias/scale gradients; the wasm kernels transpose first),
 *   MaxPoolGrad (~20x MaxPool) and AvgPoolGrad (global pooling: ~1 s at [64,32,32,128]): JavaScript on the heap.
 *
 * Left alone after measuring: Conv2D, MaxPool, FusedBatchNorm and the element-wise ops (1-5 ns/element).
 * Not a kernel, so not fixable here: tf.randomNormal runs in JS at ~25 ns/element (210 ms for [64,32,32,128], as
 * much as that layer's conv) and tf.randomUniform (dropout) at ~9 ns/element.
 *
 * Timings, measured 2026-11-26 on the 2-core build machine (AMD EPYC, wasm SIMD, one thread), ms per call. The
 * machine was shared with other jobs (load average 2.8-6.3 on 2 cores), so single numbers vary by +-30%.
 * Conv shapes [B,H,H,ci] -> co, 'same' padding; "before" is the shipped wasm kernel (Conv2DBackpropFilter had
 * none: "not registered"; the cpu backend's takes ~90x a wasm Conv2D).
 *
 * | conv                         |   B | Conv2D | dW new | dx before -> after |
 * |------------------------------|-----|--------|--------|-------------------|
 * | MNIST conv1 28px 1->32 5x5   |  64 |    6.5 |     15 |     19 ->    16 |
 * | MNIST conv2 14px 32->64 5x5  |  64 |     30 |     39 |    271 ->    30 |
 * | VGG 32px 3->128 3x3          |  64 |     33 |     35 |    137 ->    28 |
 * | VGG 32px 128->128            |  64 |    473 |    511 |   4496 ->   444 |
 * | VGG 16px 128->256            |  64 |    222 |    245 |   2107 ->   206 |
 * | VGG 16px 256->256            |  64 |    439 |    482 |   5336 ->   434 |
 * | VGG 8px 256->512             |  64 |    386 |    334 |   2017 ->   309 |
 * | VGG 8px 512->512             |  64 |    422 |    479 |   5084 ->   456 |
 * | ResNet stem 32px 3->64 7x7/2 |  64 |     18 |     12 |     68 ->    25 |
 * | ResNet 16px 64->64 3x3       |  64 |     27 |     34 |    271 ->    28 |
 * | ResNet 16px 64->128 3x3/2    |  64 |     16 |     20 |    137 ->    15 |
 * | ResNet 16px 64->128 1x1/2    |  64 |    1.6 |    7.4 |     29 ->   1.9 |
 * | ResNet 4px 256->512 3x3/2    |  64 |     15 |     20 |    102 ->    26 |
 * | MNIST conv1 28px 1->32 5x5   | 256 |     35 |     82 |    161 ->   132 |
 * | MNIST conv2 14px 32->64 5x5  | 256 |    289 |    308 |      - ->   209 |
 * | VGG 32px 3->128 3x3          | 256 |    243 |    252 |   1055 ->   112 |
 * | VGG 32px 128->128            | 256 |   2548 |   1944 |      - ->  2317 |
 * | VGG 16px 128->256            | 256 |   1813 |   1870 |      - ->  1200 |
 * | VGG 16px 256->256            | 256 |   2468 |   2446 |      - ->  2051 |
 * | VGG 8px 256->512             | 256 |   1017 |    938 |      - ->  1009 |
 * | VGG 8px 512->512             | 256 |   1771 |   2512 |      - ->  1722 |
 * | ResNet stem 32px 3->64 7x7/2 | 256 |     34 |     52 |    272 ->    82 |
 * | ResNet 16px 64->64 3x3       | 256 |    111 |    160 |      - ->   114 |
 * | ResNet 16px 64->128 3x3/2    | 256 |     60 |     79 |    560 ->    78 |
 * | ResNet 16px 64->128 1x1/2    | 256 |     11 |     22 |     82 ->    23 |
 * | ResNet 4px 256->512 3x3/2    | 256 |     61 |     72 |    465 ->    72 |
 * ("-": the old kernel not timed, ~10x the forward time as at B=64. dx of a network's first conv is never needed.)
 *
 * | other kernels (before -> after)                | B=64          | B=256          |
 * |------------------------------------------------|---------------|----------------|
 * | Tile [1,1,1,C] -> [B,28,28,32]                 |    82 -> 2.6  |   476 -> 14    |
 * | Tile [1,1,1,C] -> [B,32,32,128]                |   548 -> 21   |  2206 -> 148   |
 * | Sum  [B,32,32,128] axes 0,1,2                  |    57 -> 20   |   310 -> 79    |
 * | Mean [B,32,32,128] axes 0,1,2                  |    66 -> 32   |   401 -> 109   |
 * | MaxPoolGrad [B,28,28,32] 2x2/2 (MaxPool 1-6)   |    28 -> 12   |   219 -> 92    |
 * | MaxPoolGrad [B,32,32,128] 2x2/2 (MaxPool 7-93) |   148 -> 61   |  1413 -> 870   |
 * | MaxPoolGrad [B,32,32,128] 3x3/2                |   201 -> 99   |  2083 -> 1079  |
 * | AvgPoolGrad [B,32,32,128] global               |   880 -> 38   |  4204 -> 187   |
 * | AvgPoolGrad [B,8,8,512] global                 |    65 -> 15   |   328 -> 57    |
 * | BatchMatMul [B,3136]^T x [B,512] (dense dW)    |   231 -> 8.8  |   635 -> 42    |
 * | BatchMatMul [B,512] x [3136,512]^T (dense dx)  |   118 -> 13   |   375 -> 37    |
 * | (BatchMatMul [B,3136] x [3136,512] forward)    |   4.8         |    21          |
 *
 * A whole training step of an MNIST LR-net-like model (two LR convs with BN/relu/maxpool, dense 3136->512->10,
 * dropout, Adam): 450-740 ms at B=64 and ~2.1 s at B=256 (load-dependent); it could not run before.
 *
 * One kernel per file, named as TensorFlow.js names it (heap.ts, originals.ts, install.ts and xnn-matmul.ts are
 * what they share). `registerWasmWorkerKernels()` adds Identity and Cast without copies, for the data-parallel
 * workers only (alias.ts).
 *
 * Call `registerWasmTrainingKernels()` once the wasm backend is loaded (importing '@tensorflow/tfjs-backend-wasm'
 * registers it), before or after `tf.setBackend('wasm')`. It is idempotent.
 */
import { tf } from '../../tf.ts';
import '@tensorflow/tfjs-backend-wasm';
import { captureOriginals } from './originals.ts';
import { install, required } from './install.ts';
import { conv2DBackpropFilter } from './Conv2DBackpropFilter.ts';
import { conv2DBackpropInput } from './Conv2DBackpropInput.ts';
import { batchMatMul } from './BatchMatMul.ts';
import { fusedMatMul } from './_FusedMatMul.ts';
import { tile } from './Tile.ts';
import { sumOverLeadingAxes } from './Sum.ts';
import { meanOverLeadingAxes } from './Mean.ts';
import { maxPoolGrad } from './MaxPoolGrad.ts';
import { avgPoolGrad } from './AvgPoolGrad.ts';
import { aliasingIdentity } from './Identity.ts';
import { aliasingCast } from './Cast.ts';

export { wasmKernelTuning } from './Conv2DBackpropFilter.ts';

/**
 * Registers on the 'wasm' backend: Conv2DBackpropFilter (missing there), and faster Conv2DBackpropInput,
 * BatchMatMul and _FusedMatMul. Idempotent; call after '@tensorflow/tfjs-backend-wasm' is imported, before or after
 * `tf.setBackend('wasm')`.
 */
export function registerWasmTrainingKernels(): void {
  // If another copy of this module registered first, these are its marked functions, which is fine.
  const o = captureOriginals(() => ({
    conv2d: required(tf.Conv2D).kernelFunc,
    batchMatMul: required(tf.BatchMatMul).kernelFunc,
    fusedMatMul: required(tf._FusedMatMul).kernelFunc,
    sum: required(tf.Sum).kernelFunc,
    mean: required(tf.Mean).kernelFunc,
  }));
  install(tf.Conv2DBackpropFilter, conv2DBackpropFilter);
  install(tf.Conv2DBackpropInput, conv2DBackpropInput);
  install(tf.BatchMatMul, batchMatMul);
  install(tf._FusedMatMul, fusedMatMul);
  install(tf.Tile, tile);
  install(tf.Sum, sumOverLeadingAxes(o.sum));
  install(tf.Mean, meanOverLeadingAxes(o.mean));
  install(tf.MaxPoolGrad, maxPoolGrad);
  install(tf.AvgPoolGrad, avgPoolGrad);
}

/**
 * Registers Identity and same-dtype Cast without copies (alias.ts) for a data-parallel worker's own wasm backend,
 * and nowhere else. Idempotent; call after the backend is loaded.
 */
export function registerWasmWorkerKernels(): void {
  install(tf.Identity, aliasingIdentity(required(tf.Identity).kernelFunc));
  install(tf.Cast, aliasingCast(required(tf.Cast).kernelFunc));
}
