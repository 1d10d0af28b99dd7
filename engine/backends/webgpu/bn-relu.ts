/**
 * Batch norm with batch statistics followed by ReLU (and, where it follows, a max pool), fused: y = relu(gamma * (z - mean) / sqrt(var + eps) + beta)
 * in three WebGPU passes forward (per-channel partial sums, finalize, apply) and three backward, where the stock
 * composition (tf.moments, tf.batchNorm, tf.relu and their gradients) takes about forty dispatches per layer.
 *
 * Backward, with xhat = (z - mean) / sqrt(var + eps), dyr = dy * [y > 0] and M the number of rows (N*H*W):
 *     dbeta = sum(dyr),  dgamma = sum(dyr * xhat),
 *     dz = gamma / sqrt(var + eps) * (dyr - dbeta / M - xhat * dgamma / M)
 * (the gradient through the batch statistics included). The variance is the biased one, as tf.moments.
 * Channels must come in fours (the kernels read vec4s); otherwise the stock ops run.
 */
import { tf, type Tensor } from '../../tf.ts';
import { runFusedProgram, type FusedProgram, type WebGPUBackendInternals } from './runner.ts';
import { lanesFor } from './lr-kernels/index.ts';

export const BN_STATS_KERNEL = 'LrnetBnReluStats';
export const BN_APPLY_KERNEL = 'LrnetBnReluApply';
export const BN_GRAD_KERNEL = 'LrnetBnReluGrad';
export const BN_POOL_APPLY_KERNEL = 'LrnetBnReluPoolApply';
export const BN_POOL_GRAD_KERNEL = 'LrnetBnReluPoolGrad';

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

/** Bindings of vec4<f32> arrays from `first` on: the `writes` read_write, then the `reads` read-only. */
function vec4Bindings(writes: readonly string[], reads: readonly string[], first = 0): string {
  const access = [...writes.map(() => 'read_write'), ...reads.map(() => 'read')];
  return [...writes, ...reads]
    .map((name, i) => `@group(0) @binding(${first + i}) var<storage, ${access[i]}> ${name} : array<vec4<f32>>;`)
    .join('\n');
}

/** The entry point of a pass with one lane per work item along x. */
const entryPoint = (lanes: number) => `@compute @workgroup_size(${lanes})
fn main(@builtin(global_invocation_id) gid : vec3<u32>) {`;

/** The entry of a pass over `items` (row block, channel vec4) pairs, channel `c` fastest; padding lanes return. */
const perItemEntry = (lanes: number, items: number, c4: number) => `${entryPoint(lanes)}
  let item = i32(gid.x);
  if (item >= ${items}) { return; }
  let c = item % ${c4};`;

/** Loads the per-channel scale and shift of the apply passes from `stats` = (mean, 1/sqrt(var+eps), scale, shift). */
const loadScaleShift = (c4: number) => `let scale = stats[${2 * c4} + c];
  let shift = stats[${3 * c4} + c];`;

/** Loads all four per-channel statistics (for the gradient passes). */
const loadStats = (c4: number) => `let m = stats[c];
  let inv = stats[${c4} + c];
  ${loadScaleShift(c4)}`;

/** The inputs of the gradient partial sums (the blank line first is in the generated shaders as they stand). */
const GRAD_PARTIAL_INPUTS = `\n${vec4Bindings([], ['z', 'dy', 'stats'], 2)}`;

/** A pass with one lane per channel vec4 that first adds the [splits, c] partial sums s1, s2 into t1, t2. */
function splitSumsProgram(name: string, key: string, l: Layout, splits: number, bindings: string, tail: string): FusedProgram {
  const lanes = lanesFor(l.c4);
  return {
    name,
    key,
    dispatch: [Math.ceil(l.c4 / lanes), 1, 1],
    code: () => `
${bindings}

${entryPoint(lanes)}
  let c = i32(gid.x);
  if (c >= ${l.c4}) { return; }
  var t1 = vec4<f32>(0.0);
  var t2 = vec4<f32>(0.0);
  for (var s = 0; s < ${splits}; s++) {
    t1 += s1[s * ${l.c4} + c];
    t2 += s2[s * ${l.c4} + c];
  }
  ${tail}
}`,
  };
}

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
${vec4Bindings(['s1', 's2'], [])}
${inputs}

${entryPoint(lanes)}
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
  return partialSumsProgram('BnStatsPartial', l, vec4Bindings([], ['z'], 2), 'let k = z[c];', `
    let d = z[r * ${l.c4} + c] - k;
    a1 += d;
    a2 = fma(d, d, a2);`);
}

function statsFinalizeProgram(l: Layout, splits: number, epsilon: number): FusedProgram {
  const bindings = vec4Bindings(['mean', 'variance', 'stats'], ['s1', 's2', 'z', 'gamma', 'beta']);
  return splitSumsProgram('BnStatsFinalize', `BnStatsFinalize_${l.m}x${l.c4}_s${splits}_e${epsilon}`, l, splits, bindings, `let d = t1 / ${f32(l.m)};
  let m = z[c] + d;
  let v = max(t2 / ${f32(l.m)} - d * d, vec4<f32>(0.0));
  let inv = inverseSqrt(v + ${f32(epsilon)});
  let scale = gamma[c] * inv;
  mean[c] = m;
  variance[c] = v;
  stats[c] = m;
  stats[${l.c4} + c] = inv;
  stats[${2 * l.c4} + c] = scale;
  stats[${3 * l.c4} + c] = beta[c] - m * scale;`);
}

const APPLY_ROWS = 4;

/** A pass in which each lane runs `perRow` (with `o`, the row's offset) over APPLY_ROWS rows of one channel vec4. */
function rowBlocksProgram(name: string, l: Layout, bindings: string, pre: string, perRow: string): FusedProgram {
  const items = Math.ceil(l.m / APPLY_ROWS) * l.c4;
  const lanes = lanesFor(items);
  return {
    name,
    key: `${name}_${l.m}x${l.c4}`,
    dispatch: [Math.ceil(items / lanes), 1, 1],
    code: () => `
${bindings}

${perItemEntry(lanes, items, l.c4)}
  let r0 = (item / ${l.c4}) * ${APPLY_ROWS};
  ${pre}
  for (var r = r0; r < min(r0 + ${APPLY_ROWS}, ${l.m}); r++) {
    let o = r * ${l.c4} + c;
    ${perRow}
  }
}`,
  };
}

function applyProgram(l: Layout): FusedProgram {
  return rowBlocksProgram('BnReluApply', l, vec4Bindings(['y'], ['z', 'stats']), loadScaleShift(l.c4),
    'y[o] = max(fma(z[o], scale, shift), vec4<f32>(0.0));');
}

function gradPartialProgram(l: Layout): FusedProgram & { splits: number } {
  return partialSumsProgram('BnReluGradPartial', l, GRAD_PARTIAL_INPUTS, `
  ${loadStats(l.c4)}`, `
    let o = r * ${l.c4} + c;
    let zv = z[o];
    let g = select(vec4<f32>(0.0), dy[o], fma(zv, scale, shift) > vec4<f32>(0.0));
    a1 += g;
    a2 = fma(g, (zv - m) * inv, a2);`);
}

function gradFinalizeProgram(l: Layout, splits: number): FusedProgram {
  const bindings = vec4Bindings(['dgamma', 'dbeta'], ['s1', 's2']);
  return splitSumsProgram('BnReluGradFinalize', `BnReluGradFinalize_${l.m}x${l.c4}_s${splits}`, l, splits, bindings, `dbeta[c] = t1;
  dgamma[c] = t2;`);
}

const GRAD_APPLY_BINDINGS = vec4Bindings(['dz'], ['z', 'dy', 'stats', 'dgamma', 'dbeta']);

function gradApplyProgram(l: Layout): FusedProgram {
  return rowBlocksProgram('BnReluGradApply', l, GRAD_APPLY_BINDINGS, `${loadStats(l.c4)}
  let b = dbeta[c] / ${f32(l.m)};
  let k = dgamma[c] / ${f32(l.m)};`, `let zv = z[o];
    let g = select(vec4<f32>(0.0), dy[o], fma(zv, scale, shift) > vec4<f32>(0.0));
    dz[o] = scale * (g - b - (zv - m) * inv * k);`);
}

/** A non-overlapping max pool (window = stride = `size`) over [n, h, w, c] with h and w multiples of `size`. */
interface PoolLayout extends Layout {
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly size: number;
}

const windowsOf = (p: PoolLayout) => p.n * (p.h / p.size) * (p.w / p.size);

/** WGSL that loads the window `r` of channel vec4 `c`: pre-activations pre0.. (BN applied) and, with `withZ`, z0... */
function windowLoads(p: PoolLayout, withZ: boolean): string {
  const ph = p.h / p.size;
  const pw = p.w / p.size;
  const lines = [
    `let wn = r / ${ph * pw}; let wr = r % ${ph * pw};`,
    `let wbase = ((wn * ${p.h} + (wr / ${pw}) * ${p.size}) * ${p.w} + (wr % ${pw}) * ${p.size}) * ${p.c4} + c;`,
  ];
  for (let dy = 0, k = 0; dy < p.size; dy++) {
    for (let dx = 0; dx < p.size; dx++, k++) {
      lines.push(`let z${k} = z[wbase + ${(dy * p.w + dx) * p.c4}]; let pre${k} = fma(z${k}, scale, shift);`);
    }
  }
  if (!withZ) return lines.join('\n    ');
  // The first maximum of the window gets the gradient (ReLU is monotone: the max of the pre-activations is the
  // max of the outputs; where it is not positive, the ReLU mask zeroes the gradient anyway).
  lines.push('var best = pre0; var arg = vec4<i32>(0);');
  for (let k = 1; k < p.size * p.size; k++) lines.push(`{ let gt = pre${k} > best; best = select(best, pre${k}, gt); arg = select(arg, vec4<i32>(${k}), gt); }`);
  lines.push(`let dyw = dy[r * ${p.c4} + c];`);
  for (let k = 0; k < p.size * p.size; k++) {
    lines.push(`let g${k} = select(vec4<f32>(0.0), dyw, (arg == vec4<i32>(${k})) & (pre${k} > vec4<f32>(0.0)));`);
  }
  return lines.join('\n    ');
}

function poolApplyProgram(p: PoolLayout): FusedProgram {
  const items = windowsOf(p) * p.c4;
  const lanes = lanesFor(items);
  const k2 = p.size * p.size;
  return {
    name: 'BnReluPoolApply',
    key: `BnReluPoolApply_${p.n}x${p.h}x${p.w}x${p.c4}_p${p.size}`,
    dispatch: [Math.ceil(items / lanes), 1, 1],
    code: () => `
${vec4Bindings(['y'], ['z', 'stats'])}

${perItemEntry(lanes, items, p.c4)}
  let r = item / ${p.c4};
  ${loadScaleShift(p.c4)}
  ${windowLoads(p, false)}
  y[item] = max(${Array.from({ length: k2 }, (_, k) => `pre${k}`).reduce((a, b) => `max(${a}, ${b})`)}, vec4<f32>(0.0));
}`,
  };
}

function poolGradPartialProgram(p: PoolLayout): FusedProgram & { splits: number } {
  const windows = windowsOf(p);
  const k2 = p.size * p.size;
  const l: Layout = { m: windows, c4: p.c4 };
  const sums = Array.from({ length: k2 }, (_, k) => `a1 += g${k}; a2 = fma(g${k}, (z${k} - m) * inv, a2);`).join('\n    ');
  const program = partialSumsProgram('BnReluPoolGradPartial', l, GRAD_PARTIAL_INPUTS, `
  ${loadStats(p.c4)}`, `
    ${windowLoads(p, true)}
    ${sums}`);
  return { ...program, key: `${program.key}_${p.n}x${p.h}x${p.w}_p${p.size}` };
}

function poolGradApplyProgram(p: PoolLayout): FusedProgram {
  const items = windowsOf(p) * p.c4;
  const lanes = lanesFor(items);
  const m = p.n * p.h * p.w;
  const writes: string[] = [];
  for (let dy = 0, k = 0; dy < p.size; dy++) {
    for (let dx = 0; dx < p.size; dx++, k++) {
      writes.push(`dz[wbase + ${(dy * p.w + dx) * p.c4}] = scale * (g${k} - b - (z${k} - m) * inv * kk);`);
    }
  }
  return {
    name: 'BnReluPoolGradApply',
    key: `BnReluPoolGradApply_${p.n}x${p.h}x${p.w}x${p.c4}_p${p.size}`,
    dispatch: [Math.ceil(items / lanes), 1, 1],
    code: () => `
${GRAD_APPLY_BINDINGS}

${perItemEntry(lanes, items, p.c4)}
  let r = item / ${p.c4};
  ${loadStats(p.c4)}
  let b = dbeta[c] / ${f32(m)};
  let kk = dgamma[c] / ${f32(m)};
  ${windowLoads(p, true)}
  ${writes.join('\n  ')}
}`,
  };
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

let registered = false;

/** Runs a partial-sums pass into two [splits, c] tensors (for the caller to free). */
function runPartialSums(b: WebGPUBackendInternals, partial: FusedProgram & { splits: number }, inputs: tf.TensorInfo[], c: number): tf.TensorInfo[] {
  return runFusedProgram(b, partial, inputs, [{ shape: [partial.splits, c] }, { shape: [partial.splits, c] }]);
}

/** The backward passes: partial sums, then dgamma and dbeta, then dz (`apply`); returns [dz, dgamma, dbeta]. */
function runGradPasses(b: WebGPUBackendInternals, inputs: Record<string, tf.TensorInfo>, l: Layout,
  partial: FusedProgram & { splits: number }, apply: FusedProgram): tf.TensorInfo[] {
  const { z, dy, stats } = inputs;
  const c = l.c4 * 4;
  const [s1, s2] = runPartialSums(b, partial, [z!, dy!, stats!], c);
  const [dgamma, dbeta] = runFusedProgram(b, gradFinalizeProgram(l, partial.splits), [s1!, s2!], [{ shape: [c] }, { shape: [c] }]);
  const [dz] = runFusedProgram(b, apply, [z!, dy!, stats!, dgamma!, dbeta!], [{ shape: z!.shape }]);
  b.disposeData(s1!.dataId);
  b.disposeData(s2!.dataId);
  return [dz!, dgamma!, dbeta!];
}

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
    const [s1, s2] = runPartialSums(b, partial, [z!], c);
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
    const l = layoutOf(inputs.z!.shape);
    return runGradPasses(backend as WebGPUBackendInternals, inputs as Record<string, tf.TensorInfo>, l, gradPartialProgram(l), gradApplyProgram(l));
  });

  const poolLayout = (z: tf.TensorInfo, attrs?: tf.NamedAttrMap): PoolLayout => {
    const [n, h, w, c] = z.shape as [number, number, number, number];
    return { n, h, w, c4: c / 4, m: n * h * w, size: (attrs as { size: number }).size };
  };

  // z, stats -> maxPool(relu(batchNorm(z))).
  kernel(BN_POOL_APPLY_KERNEL, ({ inputs, backend, attrs }) => {
    const { z, stats } = inputs as Record<string, tf.TensorInfo>;
    const p = poolLayout(z!, attrs);
    return runFusedProgram(backend as WebGPUBackendInternals, poolApplyProgram(p), [z!, stats!],
      [{ shape: [p.n, p.h / p.size, p.w / p.size, p.c4 * 4] }])[0]!;
  });

  // z, dy (pooled), stats -> dz, dgamma, dbeta.
  kernel(BN_POOL_GRAD_KERNEL, ({ inputs, backend, attrs }) => {
    const p = poolLayout(inputs.z!, attrs);
    return runGradPasses(backend as WebGPUBackendInternals, inputs as Record<string, tf.TensorInfo>, { m: p.m, c4: p.c4 },
      poolGradPartialProgram(p), poolGradApplyProgram(p));
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

/**
 * The fused path: batch statistics, then `applyKernel` as a differentiable op in h, gamma and beta whose gradient
 * is `gradKernel` (both take `attrs`).
 */
function fusedBatchNormRelu(h: Tensor, gamma: Tensor, beta: Tensor, epsilon: number, applyKernel: string, gradKernel: string,
  attrs?: tf.NamedAttrMap): BatchNormReluResult {
  registerBatchNormReluKernels();
  // The statistics are computed outside customGrad: they reach the loss only through `stats`, a closed-over
  // tensor the tape does not follow, and the gradient function below accounts for them analytically.
  const [mean, variance, stats] = tf.engine().runKernel(BN_STATS_KERNEL, { z: h, gamma, beta },
    { epsilon } as unknown as tf.NamedAttrMap) as Tensor[];
  const op = tf.customGrad(((...args: (Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [z] = args as [Tensor, Tensor, Tensor];
    const y = tf.engine().runKernel(applyKernel, { z, stats: stats! }, attrs) as Tensor;
    save([z, stats!]);
    return {
      value: y,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [sz, sstats] = saved as [Tensor, Tensor];
        return tf.engine().runKernel(gradKernel, { z: sz, dy, stats: sstats }, attrs) as Tensor[];
      },
    };
  }) as Parameters<typeof tf.customGrad>[0]);
  return { y: op(h, gamma, beta), mean: mean!, variance: variance! };
}

/** relu(batchNorm(h)) with h's batch statistics over every axis but the last; differentiable in h, gamma, beta. */
export function batchNormRelu(h: Tensor, gamma: Tensor, beta: Tensor, epsilon: number): BatchNormReluResult {
  const channels = h.shape[h.rank - 1]!;
  if (tf.getBackend() !== 'webgpu' || channels % 4 !== 0) return batchNormReluReference(h, gamma, beta, epsilon);
  return fusedBatchNormRelu(h, gamma, beta, epsilon, BN_APPLY_KERNEL, BN_GRAD_KERNEL);
}

/** Whether batchNormReluPool fuses the pool: rank 4, channels in fours, a window that tiles the input exactly. */
function poolFuses(h: Tensor, size: number, stride: number): boolean {
  return tf.getBackend() === 'webgpu' && h.rank === 4 && h.shape[3]! % 4 === 0 && size === stride &&
    h.shape[1]! % size === 0 && h.shape[2]! % size === 0;
}

/** Stock ops: maxPool(relu(batchNorm(h))) with h's batch statistics. */
export function batchNormReluPoolReference(h: Tensor, gamma: Tensor, beta: Tensor, epsilon: number, size: number, stride: number): BatchNormReluResult {
  const r = batchNormReluReference(h, gamma, beta, epsilon);
  return { ...r, y: tf.maxPool(r.y as tf.Tensor4D, size, stride, 'same') };
}

/**
 * maxPool(relu(batchNorm(h)), size, stride, 'same') with h's batch statistics, fused where the pool windows tile
 * the input (size == stride, sides multiples of size: the MNIST and VGG pools); otherwise batchNormRelu and the
 * stock pool. The pooling gradient goes to the first maximum of each window (tfjs may pick another one among
 * exactly equal positive values).
 */
export function batchNormReluPool(h: Tensor, gamma: Tensor, beta: Tensor, epsilon: number, size: number, stride: number): BatchNormReluResult {
  if (!poolFuses(h, size, stride)) {
    const r = batchNormRelu(h, gamma, beta, epsilon);
    return { ...r, y: tf.maxPool(r.y as tf.Tensor4D, size, stride, 'same') };
  }
  return fusedBatchNormRelu(h, gamma, beta, epsilon, BN_POOL_APPLY_KERNEL, BN_POOL_GRAD_KERNEL, { size } as unknown as tf.NamedAttrMap);
}
