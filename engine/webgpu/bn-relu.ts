/**
 * Batch norm with batch statistics followed by ReLU, fused: y = relu(gamma * (z - mean) / sqrt(var + eps) + beta)
 * in three WebGPU passes forward (per-channel partial sums, finalize, apply) and three backward, where the stock
 * composition (tf.moments, tf.batchNorm, tf.relu and their gradients) takes about forty dispatches per layer.
 *
 * Backward, with xhat = (z - mean) / sqrt(var + eps), dyr = dy * [y > 0] and M the number of rows (N*H*W):
 *     dbeta = sum(dyr),  dgamma = sum(dyr * xhat),
 *     dz = gamma / sqrt(var + eps) * (dyr - dbeta / M - xhat * dgamma / M)
 * (the gradient through the batch statistics included). The variance is the biased one, as tf.moments.
 * Channels must come in fours (the kernels read vec4s); otherwise the stock ops run.
 */
import { tf, type Tensor } from '../tf.ts';
import { runFusedProgram, type FusedProgram, type WebGPUBackendInternals } from './runner.ts';
import { lanesFor } from './lr-kernels.ts';

export const BN_STATS_KERNEL = 'LrnetBnReluStats';
export const BN_APPLY_KERNEL = 'LrnetBnReluApply';
export const BN_GRAD_KERNEL = 'LrnetBnReluGrad';

interface Layout {
  /** Rows (every axis but the last). */
  readonly m: number;
  /** Channels / 4. */
  readonly c4: number;
}

const layoutOf = (shape: readonly number[]): Layout => ({
  m: shape.slice(0, -1).reduce((a, b) => a * b, 1),
  c4: shape[shape.length - 1]! / 4,
});

/** Partial sums over rows: how many row ranges make a few hundred invocations, each at least 16 rows long. */
function splitsFor(l: Layout): number {
  return Math.max(1, Math.min(Math.ceil(256 / l.c4), Math.ceil(l.m / 16)));
}

const f32 = (v: number) => (Number.isInteger(v) ? `${v}.0` : `${v}`);

/** A pass over rows that sums per channel (vec4) two quantities into [splits, c] partials. */
function partialSumsProgram(name: string, l: Layout, inputs: string, pre: string, perRow: string): FusedProgram & { splits: number } {
  const splits = splitsFor(l);
  const rows = Math.ceil(l.m / splits);
  const items = splits * l.c4;
  const lanes = lanesFor(items);
  return {
    name,
    key: `${name}_${l.m}x${l.c4}_s${splits}`,
    splits,
    dispatch: [Math.ceil(items / lanes), 1, 1],
    code: () => `
@group(0) @binding(0) var<storage, read_write> s1 : array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> s2 : array<vec4<f32>>;
${inputs}

@compute @workgroup_size(${lanes})
fn main(@builtin(global_invocation_id) gid : vec3<u32>) {
  let item = i32(gid.x);
  let ic = min(item, ${items - 1});
  let c = ic % ${l.c4};
  let split = ic / ${l.c4};
  let r0 = split * ${rows};
  let r1 = min(r0 + ${rows}, ${l.m});
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  ${pre}
  for (var r = r0; r < r1; r++) {
    ${perRow}
  }
  if (item < ${items}) {
    s1[item] = a1;
    s2[item] = a2;
  }
}`,
  };
}

function statsProgram(l: Layout): FusedProgram & { splits: number } {
  // Sums of (z - k) and (z - k)^2 with k = the first row: exact enough when k is near the mean.
  return partialSumsProgram('BnStatsPartial', l, `@group(0) @binding(2) var<storage, read> z : array<vec4<f32>>;`, 'let k = z[c];', `
    let d = z[r * ${l.c4} + c] - k;
    a1 += d;
    a2 = fma(d, d, a2);`);
}

function statsFinalizeProgram(l: Layout, splits: number, epsilon: number): FusedProgram {
  const lanes = lanesFor(l.c4);
  return {
    name: 'BnStatsFinalize',
    key: `BnStatsFinalize_${l.m}x${l.c4}_s${splits}_e${epsilon}`,
    dispatch: [Math.ceil(l.c4 / lanes), 1, 1],
    code: () => `
@group(0) @binding(0) var<storage, read_write> mean : array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> variance : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> stats : array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> s1 : array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> s2 : array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> z : array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> gamma : array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> beta : array<vec4<f32>>;

@compute @workgroup_size(${lanes})
fn main(@builtin(global_invocation_id) gid : vec3<u32>) {
  let c = i32(gid.x);
  if (c >= ${l.c4}) { return; }
  var t1 = vec4<f32>(0.0);
  var t2 = vec4<f32>(0.0);
  for (var s = 0; s < ${splits}; s++) {
    t1 += s1[s * ${l.c4} + c];
    t2 += s2[s * ${l.c4} + c];
  }
  let d = t1 / ${f32(l.m)};
  let m = z[c] + d;
  let v = max(t2 / ${f32(l.m)} - d * d, vec4<f32>(0.0));
  let inv = inverseSqrt(v + ${f32(epsilon)});
  let scale = gamma[c] * inv;
  mean[c] = m;
  variance[c] = v;
  stats[c] = m;
  stats[${l.c4} + c] = inv;
  stats[${2 * l.c4} + c] = scale;
  stats[${3 * l.c4} + c] = beta[c] - m * scale;
}`,
  };
}

const APPLY_ROWS = 4;

function applyProgram(l: Layout): FusedProgram {
  const blocks = Math.ceil(l.m / APPLY_ROWS);
  const items = blocks * l.c4;
  const lanes = lanesFor(items);
  return {
    name: 'BnReluApply',
    key: `BnReluApply_${l.m}x${l.c4}`,
    dispatch: [Math.ceil(items / lanes), 1, 1],
    code: () => `
@group(0) @binding(0) var<storage, read_write> y : array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> z : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> stats : array<vec4<f32>>;

@compute @workgroup_size(${lanes})
fn main(@builtin(global_invocation_id) gid : vec3<u32>) {
  let item = i32(gid.x);
  if (item >= ${items}) { return; }
  let c = item % ${l.c4};
  let r0 = (item / ${l.c4}) * ${APPLY_ROWS};
  let scale = stats[${2 * l.c4} + c];
  let shift = stats[${3 * l.c4} + c];
  for (var r = r0; r < min(r0 + ${APPLY_ROWS}, ${l.m}); r++) {
    let o = r * ${l.c4} + c;
    y[o] = max(fma(z[o], scale, shift), vec4<f32>(0.0));
  }
}`,
  };
}

function gradPartialProgram(l: Layout): FusedProgram & { splits: number } {
  return partialSumsProgram('BnReluGradPartial', l, `
@group(0) @binding(2) var<storage, read> z : array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> dy : array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> stats : array<vec4<f32>>;`, `
  let m = stats[c];
  let inv = stats[${l.c4} + c];
  let scale = stats[${2 * l.c4} + c];
  let shift = stats[${3 * l.c4} + c];`, `
    let o = r * ${l.c4} + c;
    let zv = z[o];
    let g = select(vec4<f32>(0.0), dy[o], fma(zv, scale, shift) > vec4<f32>(0.0));
    a1 += g;
    a2 = fma(g, (zv - m) * inv, a2);`);
}

function gradFinalizeProgram(l: Layout, splits: number): FusedProgram {
  const lanes = lanesFor(l.c4);
  return {
    name: 'BnReluGradFinalize',
    key: `BnReluGradFinalize_${l.m}x${l.c4}_s${splits}`,
    dispatch: [Math.ceil(l.c4 / lanes), 1, 1],
    code: () => `
@group(0) @binding(0) var<storage, read_write> dgamma : array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dbeta : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> s1 : array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> s2 : array<vec4<f32>>;

@compute @workgroup_size(${lanes})
fn main(@builtin(global_invocation_id) gid : vec3<u32>) {
  let c = i32(gid.x);
  if (c >= ${l.c4}) { return; }
  var t1 = vec4<f32>(0.0);
  var t2 = vec4<f32>(0.0);
  for (var s = 0; s < ${splits}; s++) {
    t1 += s1[s * ${l.c4} + c];
    t2 += s2[s * ${l.c4} + c];
  }
  dbeta[c] = t1;
  dgamma[c] = t2;
}`,
  };
}

function gradApplyProgram(l: Layout): FusedProgram {
  const blocks = Math.ceil(l.m / APPLY_ROWS);
  const items = blocks * l.c4;
  const lanes = lanesFor(items);
  return {
    name: 'BnReluGradApply',
    key: `BnReluGradApply_${l.m}x${l.c4}`,
    dispatch: [Math.ceil(items / lanes), 1, 1],
    code: () => `
@group(0) @binding(0) var<storage, read_write> dz : array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> z : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dy : array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> stats : array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> dgamma : array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> dbeta : array<vec4<f32>>;

@compute @workgroup_size(${lanes})
fn main(@builtin(global_invocation_id) gid : vec3<u32>) {
  let item = i32(gid.x);
  if (item >= ${items}) { return; }
  let c = item % ${l.c4};
  let r0 = (item / ${l.c4}) * ${APPLY_ROWS};
  let m = stats[c];
  let inv = stats[${l.c4} + c];
  let scale = stats[${2 * l.c4} + c];
  let shift = stats[${3 * l.c4} + c];
  let b = dbeta[c] / ${f32(l.m)};
  let k = dgamma[c] / ${f32(l.m)};
  for (var r = r0; r < min(r0 + ${APPLY_ROWS}, ${l.m}); r++) {
    let o = r * ${l.c4} + c;
    let zv = z[o];
    let g = select(vec4<f32>(0.0), dy[o], fma(zv, scale, shift) > vec4<f32>(0.0));
    dz[o] = scale * (g - b - (zv - m) * inv * k);
  }
}`,
  };
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

let registered = false;

/** Registers the fused batch norm + ReLU kernels with the webgpu backend (once). */
export function registerBatchNormReluKernels(): void {
  if (registered) return;
  registered = true;
  const kernel = (kernelName: string, kernelFunc: (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]) =>
    tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as tf.KernelFunc });

  // z, gamma, beta -> mean [c], variance [c], stats [4, c] = (mean, 1/sqrt(var+eps), scale, shift).
  kernel(BN_STATS_KERNEL, ({ inputs, backend, attrs }) => {
    const { z, gamma, beta } = inputs as Record<string, tf.TensorInfo>;
    const b = backend as WebGPUBackendInternals;
    const l = layoutOf(z!.shape);
    const c = l.c4 * 4;
    const partial = statsProgram(l);
    const [s1, s2] = runFusedProgram(b, partial, [z!], [{ shape: [partial.splits, c] }, { shape: [partial.splits, c] }]);
    const out = runFusedProgram(b, statsFinalizeProgram(l, partial.splits, (attrs as { epsilon: number }).epsilon),
      [s1!, s2!, z!, gamma!, beta!], [{ shape: [c] }, { shape: [c] }, { shape: [4, c] }]);
    b.disposeData(s1!.dataId);
    b.disposeData(s2!.dataId);
    return out;
  });

  kernel(BN_APPLY_KERNEL, ({ inputs, backend }) => {
    const { z, stats } = inputs as Record<string, tf.TensorInfo>;
    return runFusedProgram(backend as WebGPUBackendInternals, applyProgram(layoutOf(z!.shape)), [z!, stats!], [{ shape: z!.shape }])[0]!;
  });

  // z, dy, stats -> dz, dgamma [c], dbeta [c].
  kernel(BN_GRAD_KERNEL, ({ inputs, backend }) => {
    const { z, dy, stats } = inputs as Record<string, tf.TensorInfo>;
    const b = backend as WebGPUBackendInternals;
    const l = layoutOf(z!.shape);
    const c = l.c4 * 4;
    const partial = gradPartialProgram(l);
    const [s1, s2] = runFusedProgram(b, partial, [z!, dy!, stats!], [{ shape: [partial.splits, c] }, { shape: [partial.splits, c] }]);
    const [dgamma, dbeta] = runFusedProgram(b, gradFinalizeProgram(l, partial.splits), [s1!, s2!], [{ shape: [c] }, { shape: [c] }]);
    const [dz] = runFusedProgram(b, gradApplyProgram(l), [z!, dy!, stats!, dgamma!, dbeta!], [{ shape: z!.shape }]);
    b.disposeData(s1!.dataId);
    b.disposeData(s2!.dataId);
    return [dz!, dgamma!, dbeta!];
  });
}

export interface BatchNormReluResult {
  readonly y: Tensor;
  /** The batch statistics (for the moving averages); not differentiated. */
  readonly mean: Tensor;
  readonly variance: Tensor;
}

/** Stock ops: the reference, and the path off webgpu or for channels not in fours. */
export function batchNormReluReference(h: Tensor, gamma: Tensor, beta: Tensor, epsilon: number): BatchNormReluResult {
  const { mean, variance } = tf.moments(h, h.rank === 4 ? [0, 1, 2] : [0]);
  return { y: tf.relu(tf.batchNorm(h, mean, variance, beta, gamma, epsilon)), mean, variance };
}

/** relu(batchNorm(h)) with h's batch statistics over every axis but the last; differentiable in h, gamma, beta. */
export function batchNormRelu(h: Tensor, gamma: Tensor, beta: Tensor, epsilon: number): BatchNormReluResult {
  const channels = h.shape[h.rank - 1]!;
  if (tf.getBackend() !== 'webgpu' || channels % 4 !== 0) return batchNormReluReference(h, gamma, beta, epsilon);
  registerBatchNormReluKernels();
  // The statistics are computed outside customGrad: they reach the loss only through `stats`, a closed-over
  // tensor the tape does not follow, and the gradient function below accounts for them analytically.
  const [mean, variance, stats] = tf.engine().runKernel(BN_STATS_KERNEL, { z: h, gamma, beta },
    { epsilon } as unknown as tf.NamedAttrMap) as Tensor[];
  const op = tf.customGrad(((...args: (Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [z] = args as [Tensor, Tensor, Tensor];
    const y = tf.engine().runKernel(BN_APPLY_KERNEL, { z, stats: stats! }) as Tensor;
    save([z, stats!]);
    return {
      value: y,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [sz, sstats] = saved as [Tensor, Tensor];
        return tf.engine().runKernel(BN_GRAD_KERNEL, { z: sz, dy, stats: sstats }) as Tensor[];
      },
    };
  }) as Parameters<typeof tf.customGrad>[0]);
  return { y: op(h, gamma, beta), mean: mean!, variance: variance! };
}
