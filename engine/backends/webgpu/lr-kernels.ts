/**
 * WGSL for the fused LR layer (LRNETS.md section 2) as direct convolutions; a dense layer is the 1x1 convolution
 * of a [1, 1, batch, inputs] (or [batch, 1, 1, inputs]) tensor. Shapes are baked into each shader (one pipeline
 * per layer shape), so index arithmetic folds and register tiles unroll.
 *
 * - forward: m = conv(x, mu), v = conv(x^2, var) from the same loads of x, eps from Philox by output index,
 *   z = m + sqrt(v + 1e-3) * eps, and g = 0.5 * eps / sqrt(v + 1e-3) for the backward pass (dL/dv = dL/dz * g).
 * - backprop input: dx = convT(dz, mu) + 2x * convT(dz * g, var) in one pass.
 * - backprop filter: dmu = corr(x, dz), dvar = corr(x^2, dz * g) from the same loads of x, split over images
 *   into partial sums (added by one more small pass) when one pass would not fill the machine.
 *
 * Layout: invocations (lanes) walk the large dimension (output pixels, input pixels, filter rows) with a register
 * tile of several pixels x channels each, for both the mean and the variance path; the workgroup's y index picks
 * a block of channels, so the weights (or output gradients) a lane needs next are the same for every lane.
 *
 * What the tuning found on lavapipe (Mesa 25.0 llvmpipe, which runs a workgroup on one CPU thread, 8 lanes per
 * SIMD vector): every storage-buffer load is issued lane by lane with its own bounds check, even when all lanes
 * read the same address, so loads cost ~10x an FMA and the kernels are load-bound. Hence (1) register tiles as wide
 * as the compile time allows, (2) the subgroup variants (second half of this file), where the 8 lanes load 8
 * different weight vec4s once and share them with subgroupBroadcast, and input rows are loaded once per window
 * rather than once per filter tap, (3) products summed in temporaries before the one update per accumulator and
 * iteration (an assignment inside a loop costs a masked blend per component), (4) workgroup sizes that leave no
 * idle padding lanes (they run at full cost). The plain variants stay for devices without subgroups.
 */
import { PHILOX_WGSL } from './philox.ts';
import type { FusedProgram } from './runner.ts';

/** The constant inside the square root of the LR standard deviation (LRNETS.md section 2). */
export const LR_VARIANCE_EPSILON = 1e-3;

/** A SAME-padded convolution, NHWC input [n, h, w, ci], HWIO filter [k, k, ci, co], output [n, oh, ow, co]. */
export interface ConvGeometry {
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly ci: number;
  readonly co: number;
  readonly k: number;
  readonly stride: number;
  readonly oh: number;
  readonly ow: number;
  readonly padTop: number;
  readonly padLeft: number;
}

/** Geometry of tf.conv2d(x, filter, stride, 'same'). */
export function sameConvGeometry(input: readonly number[], filter: readonly number[], stride: number): ConvGeometry {
  const [n, h, w, ci] = input as [number, number, number, number];
  const [k, k2, fci, co] = filter as [number, number, number, number];
  if (k !== k2) throw new Error(`fused LR conv: square kernels only, got ${k}x${k2}`);
  if (fci !== ci) throw new Error(`fused LR conv: input has ${ci} channels, filter expects ${fci}`);
  const oh = Math.ceil(h / stride);
  const ow = Math.ceil(w / stride);
  const padH = Math.max(0, (oh - 1) * stride + k - h);
  const padW = Math.max(0, (ow - 1) * stride + k - w);
  return { n, h, w, ci, co, k, stride, oh, ow, padTop: Math.floor(padH / 2), padLeft: Math.floor(padW / 2) };
}

/**
 * Geometry of x @ w for x [n, ci], w [ci, co] as a 1x1 convolution. The memory layout is the same either way;
 * `row` (one image whose width is the batch) lets the forward and input-gradient kernels tile along the batch,
 * `batch` (n images of 1x1) lets the filter-gradient kernel split its sum over the batch.
 */
export function denseGeometry(input: readonly number[], weights: readonly number[], layout: 'row' | 'batch' = 'row'): ConvGeometry {
  const [n, ci] = input as [number, number];
  const [wci, co] = weights as [number, number];
  if (wci !== ci) throw new Error(`fused LR dense: input has ${ci} features, weights expect ${wci}`);
  return layout === 'row'
    ? { n: 1, h: 1, w: n, ci, co, k: 1, stride: 1, oh: 1, ow: n, padTop: 0, padLeft: 0 }
    : { n, h: 1, w: 1, ci, co, k: 1, stride: 1, oh: 1, ow: 1, padTop: 0, padLeft: 0 };
}

const geometryKey = (g: ConvGeometry) =>
  `${g.n}x${g.h}x${g.w}x${g.ci}_${g.k}s${g.stride}p${g.padTop},${g.padLeft}_${g.co}`;

/**
 * Lanes per workgroup for `count` work items: the largest power of two from `max` down to 8 that wastes at most
 * 1/8 of the invocations on the padding past `count` (llvmpipe runs padding lanes at full cost), else 8.
 */
export function lanesFor(count: number, max = 64): number {
  for (let lanes = max; lanes > 8; lanes /= 2) {
    if (Math.ceil(count / lanes) * lanes - count <= count / 8) return lanes;
  }
  return 8;
}

/** Largest block of `total` channels (a multiple of `unit` dividing `total`) not above `max`. */
function channelBlock(total: number, max: number, unit: number): number {
  let best = unit;
  for (let b = unit; b <= Math.min(total, max); b += unit) if (total % b === 0) best = b;
  return best;
}

/**
 * Pixels per invocation along a row of `width` (at most `max`): measured on lavapipe, wider tiles spill registers
 * around llvmpipe's per-lane loads and lose what they save in loads. Keeps at least 8 invocations when it can.
 */
export function pixelsPerLane(width: number, rows: number, max = 4): number {
  let p = Math.min(max, width);
  while (p > 1 && rows * Math.ceil(width / p) < 8) p--;
  return p;
}

/**
 * Pixels per invocation for the subgroup kernels: the largest divisor of the width up to `max` that leaves 8
 * invocations. Wider tiles run a little faster on lavapipe (14 pixels: -25%) but the shader then takes 10-30 s to
 * compile, once per layer shape and process.
 */
export function pixelsPerLaneWide(width: number, rows: number, max = 7): number {
  let best = 1;
  for (let d = 1; d <= Math.min(max, width); d++) if (width % d === 0 && rows * (width / d) >= 8) best = d;
  return best;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const f32 = (v: number) => (Number.isInteger(v) ? `${v}.0` : `${v}`);

export interface ForwardOptions {
  /** Also write g = 0.5 * eps / s (needed by the backward pass). */
  readonly writeFactor: boolean;
  /** Output pixels per invocation, adjacent along the width. */
  readonly pixels?: number;
  /** vec4s of output channels per invocation. */
  readonly channelVecs?: number;
  readonly lanes?: number;
}

/**
 * Fused LR forward. Bindings: z [n, oh, ow, co] (, g), x, mean, variance, uniform { seed }.
 * Each invocation computes a tile of `pixels` adjacent output pixels x 4*`channelVecs` channels for both m and v:
 * per input vec4 it loads `pixels` input vec4s and 2*4*channelVecs weight vec4s for 32*pixels*channelVecs FMAs.
 * Needs co % 4 == 0 (checked by the caller).
 */
export function lrForwardProgram(g: ConvGeometry, options: ForwardOptions): FusedProgram {
  const P = options.pixels ?? pixelsPerLane(g.ow, g.n * g.oh);
  const V = channelBlock(g.co / 4, options.channelVecs ?? 1, 1);
  const co4 = g.co / 4;
  const owq = Math.ceil(g.ow / P);
  const items = g.n * g.oh * owq;
  const lanes = options.lanes ?? lanesFor(items);
  const vecX = g.ci % 4 === 0;
  const xType = vecX ? 'vec4<f32>' : 'f32';
  const ciSteps = vecX ? g.ci / 4 : g.ci;
  const comps = vecX ? 4 : 1;
  const write = options.writeFactor;
  const outBindings = write ? 2 : 1;
  const code = () => {
    const L: string[] = [];
    for (let p = 0; p < P; p++) for (let c = 0; c < V; c++) L.push(`var am${p}_${c} = vec4<f32>(0.0); var av${p}_${c} = vec4<f32>(0.0);`);
    const acc = L.join('\n  ');
    const pix = range(P).map((p) => `
      let ix${p} = (oq * ${P} + ${p}) * ${g.stride} + kx - ${g.padLeft};
      let ok${p} = vy && ix${p} >= 0 && ix${p} < ${g.w};
      let xb${p} = select(0, (rowBase + ix${p}) * ${ciSteps}, ok${p});`).join('');
    const body: string[] = [];
    for (let p = 0; p < P; p++) {
      body.push(`let xv${p} = select(${xType}(0.0), x[xb${p} + c], ok${p}); let xq${p} = xv${p} * xv${p};`);
    }
    // Weights of this step as values, then one update per accumulator: an assignment inside a loop costs a
    // masked blend per component on llvmpipe, so products are summed in temporaries first.
    for (let k = 0; k < comps; k++) {
      for (let c = 0; c < V; c++) body.push(`let wm${k}_${c} = mu[wi + ${k * co4 + c}]; let wv${k}_${c} = vr[wi + ${k * co4 + c}];`);
    }
    for (let p = 0; p < P; p++) {
      for (let c = 0; c < V; c++) {
        const xs = (k: number) => (vecX ? `xv${p}[${k}]` : `xv${p}`);
        const xq = (k: number) => (vecX ? `xq${p}[${k}]` : `xq${p}`);
        body.push(`am${p}_${c} += ${range(comps).map((k) => `${xs(k)} * wm${k}_${c}`).join(' + ')};`);
        body.push(`av${p}_${c} += ${range(comps).map((k) => `${xq(k)} * wv${k}_${c}`).join(' + ')};`);
      }
    }
    const epilogue: string[] = [];
    for (let p = 0; p < P; p++) {
      epilogue.push(`if (live && oq * ${P} + ${p} < ${g.ow}) {`);
      epilogue.push(`  let base = (pixelBase + ${p}) * ${co4} + cb;`);
      for (let c = 0; c < V; c++) {
        epilogue.push(`  { let o = base + ${c}; let s = sqrt(av${p}_${c} + ${f32(LR_VARIANCE_EPSILON)}); let eps = philoxNormal4(u.seed, u32(o));`);
        epilogue.push(`    z[o] = am${p}_${c} + s * eps;${write ? ' gf[o] = 0.5 * eps / s;' : ''} }`);
      }
      epilogue.push('}');
    }
    return `
${PHILOX_WGSL}
struct Uniforms { seed : u32 };
@group(0) @binding(0) var<storage, read_write> z : array<vec4<f32>>;
${write ? '@group(0) @binding(1) var<storage, read_write> gf : array<vec4<f32>>;' : ''}
@group(0) @binding(${outBindings}) var<storage, read> x : array<${xType}>;
@group(0) @binding(${outBindings + 1}) var<storage, read> mu : array<vec4<f32>>;
@group(0) @binding(${outBindings + 2}) var<storage, read> vr : array<vec4<f32>>;
@group(0) @binding(${outBindings + 3}) var<uniform> u : Uniforms;

@compute @workgroup_size(${lanes})
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>) {
  let item = i32(wid.x) * ${lanes} + i32(lid.x);
  let live = item < ${items};
  let ic = min(item, ${items - 1});
  let oq = ic % ${owq};
  let t = ic / ${owq};
  let oy = t % ${g.oh};
  let n = t / ${g.oh};
  let pixelBase = t * ${g.ow} + oq * ${P};
  let cb = i32(wid.y) * ${V};
  ${acc}
  for (var ky = 0; ky < ${g.k}; ky++) {
    let iy = oy * ${g.stride} + ky - ${g.padTop};
    let vy = iy >= 0 && iy < ${g.h};
    let rowBase = (n * ${g.h} + iy) * ${g.w};
    for (var kx = 0; kx < ${g.k}; kx++) {${pix}
      var wi = (ky * ${g.k} + kx) * ${g.ci * co4} + cb;
      for (var c = 0; c < ${ciSteps}; c++) {
        ${body.join('\n        ')}
        wi += ${comps * co4};
      }
    }
  }
  ${epilogue.join('\n  ')}
}`;
  };
  return {
    name: 'LrForward',
    key: `lrfwd_${geometryKey(g)}_p${P}v${V}_l${lanes}_${write ? 'g' : 'z'}`,
    code,
    dispatch: [Math.ceil(items / lanes), co4 / V, 1],
  };
}

export interface BackpropInputOptions {
  /** Input pixels per invocation, adjacent along the width. */
  readonly pixels?: number;
  /** vec4s of input channels per invocation (when ci % 4 == 0; otherwise one channel). */
  readonly channelVecs?: number;
  readonly lanes?: number;
}

/**
 * dx = convT(dz, mu) + 2x * convT(dzg, var) with dzg = dz * g. Bindings: dx [n, h, w, ci], dz, dzg, x, mean,
 * variance. Each invocation computes `pixels` adjacent input pixels x 4*`channelVecs` input channels (or one when
 * ci % 4 != 0). Needs co % 4 == 0.
 */
export function lrBackpropInputProgram(g: ConvGeometry, options: BackpropInputOptions = {}): FusedProgram {
  const vecC = g.ci % 4 === 0;
  const C = vecC ? 4 * channelBlock(g.ci / 4, options.channelVecs ?? 1, 1) : 1;
  const P = options.pixels ?? pixelsPerLane(g.w, g.n * g.h, 2);
  const wq = Math.ceil(g.w / P);
  const items = g.n * g.h * wq;
  const lanes = options.lanes ?? lanesFor(items);
  const co4 = g.co / 4;
  const code = () => {
    const acc: string[] = [];
    for (let p = 0; p < P; p++) for (let c = 0; c < C; c++) acc.push(`var am${p}_${c} = 0.0; var av${p}_${c} = 0.0;`);
    const pix = range(P).map((p) => `
      let tx${p} = (iq * ${P} + ${p}) + ${g.padLeft} - kx;
      let ox${p} = tx${p} / ${g.stride};
      let ok${p} = vy && tx${p} >= 0 && ox${p} * ${g.stride} == tx${p} && ox${p} < ${g.ow};
      let db${p} = select(0, (outRow + ox${p}) * ${co4}, ok${p});`).join('');
    const body: string[] = [];
    for (let p = 0; p < P; p++) {
      body.push(`let d${p} = select(vec4<f32>(0.0), dz[db${p} + c], ok${p}); let e${p} = select(vec4<f32>(0.0), dzg[db${p} + c], ok${p});`);
    }
    for (let c = 0; c < C; c++) {
      body.push(`{ let wm = mu[wi + ${c * co4}]; let wv = vr[wi + ${c * co4}];`);
      for (let p = 0; p < P; p++) body.push(`  am${p}_${c} += dot(d${p}, wm); av${p}_${c} += dot(e${p}, wv);`);
      body.push('}');
    }
    const epilogue: string[] = [];
    for (let p = 0; p < P; p++) {
      epilogue.push(`if (live && iq * ${P} + ${p} < ${g.w}) {`);
      if (vecC) {
        for (let j = 0; j < C / 4; j++) {
          const m = `vec4<f32>(${range(4).map((k) => `am${p}_${4 * j + k}`).join(', ')})`;
          const v = `vec4<f32>(${range(4).map((k) => `av${p}_${4 * j + k}`).join(', ')})`;
          epilogue.push(`  { let o = (pixelBase + ${p}) * ${g.ci / 4} + cb / 4 + ${j}; dx[o] = ${m} + 2.0 * x[o] * ${v}; }`);
        }
      } else {
        epilogue.push(`  { let o = (pixelBase + ${p}) * ${g.ci} + cb; dx[o] = am${p}_0 + 2.0 * x[o] * av${p}_0; }`);
      }
      epilogue.push('}');
    }
    const xType = vecC ? 'vec4<f32>' : 'f32';
    return `
@group(0) @binding(0) var<storage, read_write> dx : array<${xType}>;
@group(0) @binding(1) var<storage, read> dz : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dzg : array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> x : array<${xType}>;
@group(0) @binding(4) var<storage, read> mu : array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> vr : array<vec4<f32>>;

@compute @workgroup_size(${lanes})
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>) {
  let item = i32(wid.x) * ${lanes} + i32(lid.x);
  let live = item < ${items};
  let ic = min(item, ${items - 1});
  let iq = ic % ${wq};
  let t = ic / ${wq};
  let iy = t % ${g.h};
  let n = t / ${g.h};
  let pixelBase = t * ${g.w} + iq * ${P};
  let cb = i32(wid.y) * ${C};
  ${acc.join('\n  ')}
  for (var ky = 0; ky < ${g.k}; ky++) {
    let ty = iy + ${g.padTop} - ky;
    let oy = ty / ${g.stride};
    let vy = ty >= 0 && oy * ${g.stride} == ty && oy < ${g.oh};
    let outRow = (n * ${g.oh} + oy) * ${g.ow};
    for (var kx = 0; kx < ${g.k}; kx++) {${pix}
      var wi = ((ky * ${g.k} + kx) * ${g.ci} + cb) * ${co4};
      for (var c = 0; c < ${co4}; c++) {
        ${body.join('\n        ')}
        wi += 1;
      }
    }
  }
  ${epilogue.join('\n  ')}
}`;
  };
  return {
    name: 'LrBackpropInput',
    key: `lrbpi_${geometryKey(g)}_p${P}c${C}_l${lanes}`,
    code,
    dispatch: [Math.ceil(items / lanes), g.ci / C, 1],
  };
}

export interface BackpropFilterOptions {
  /** vec4s of output channels per invocation. */
  readonly channelVecs?: number;
  readonly lanes?: number;
  /** Number of partial sums over the batch (1 writes the gradients directly). */
  readonly splits?: number;
}

/** How many partial sums over images make at least `target` workgroups (never more than the images). */
export function filterSplits(g: ConvGeometry, workgroups: number, target = 32): number {
  let splits = 1;
  while (splits * 2 <= g.n && workgroups * splits < target) splits *= 2;
  return splits;
}

/**
 * dmu = corr(x, dz), dvar = corr(x^2, dzg). Bindings: dmu, dvar ([splits, k*k*ci, co] partial sums), x, dz, dzg.
 * Each invocation owns 4 consecutive input channels of one filter tap (one when ci % 4 != 0) x 4*`channelVecs`
 * output channels and walks the images of its split. Needs co % 4 == 0.
 */
export function lrBackpropFilterProgram(g: ConvGeometry, options: BackpropFilterOptions = {}): FusedProgram & { splits: number } {
  const vecC = g.ci % 4 === 0;
  const R = vecC ? 4 : 1;
  const ciSteps = g.ci / R;
  const V = channelBlock(g.co / 4, options.channelVecs ?? 2, 1);
  const rows = g.k * g.k * ciSteps;
  const lanes = options.lanes ?? lanesFor(rows);
  const co4 = g.co / 4;
  const baseGroups = Math.ceil(rows / lanes) * (co4 / V);
  const splits = options.splits ?? filterSplits(g, baseGroups);
  const perSplit = Math.ceil(g.n / splits);
  const xType = vecC ? 'vec4<f32>' : 'f32';
  const code = () => {
    const acc: string[] = [];
    for (let r = 0; r < R; r++) for (let c = 0; c < V; c++) acc.push(`var am${r}_${c} = vec4<f32>(0.0); var av${r}_${c} = vec4<f32>(0.0);`);
    const body: string[] = [];
    for (let c = 0; c < V; c++) {
      body.push(`{ let d = dz[db + ${c}]; let e = dzg[db + ${c}];`);
      for (let r = 0; r < R; r++) {
        const xs = vecC ? `xv[${r}]` : 'xv';
        const xq = vecC ? `xq[${r}]` : 'xq';
        body.push(`  am${r}_${c} = fma(vec4<f32>(${xs}), d, am${r}_${c}); av${r}_${c} = fma(vec4<f32>(${xq}), e, av${r}_${c});`);
      }
      body.push('}');
    }
    const epilogue: string[] = [];
    for (let r = 0; r < R; r++) {
      epilogue.push(`{ let o = (split * ${g.k * g.k * g.ci} + tap * ${g.ci} + ci * ${R} + ${r}) * ${co4} + cb;`);
      for (let c = 0; c < V; c++) epilogue.push(`  dmu[o + ${c}] = am${r}_${c}; dvr[o + ${c}] = av${r}_${c};`);
      epilogue.push('}');
    }
    return `
@group(0) @binding(0) var<storage, read_write> dmu : array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dvr : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x : array<${xType}>;
@group(0) @binding(3) var<storage, read> dz : array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> dzg : array<vec4<f32>>;

@compute @workgroup_size(${lanes})
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>) {
  let item = i32(wid.x) * ${lanes} + i32(lid.x);
  let rc = min(item, ${rows - 1});
  let ci = rc % ${ciSteps};
  let tap = rc / ${ciSteps};
  let kx = tap % ${g.k};
  let ky = tap / ${g.k};
  let cb = i32(wid.y) * ${V};
  let split = i32(wid.z);
  ${acc.join('\n  ')}
  let n0 = split * ${perSplit};
  let n1 = min(n0 + ${perSplit}, ${g.n});
  for (var n = n0; n < n1; n++) {
    for (var oy = 0; oy < ${g.oh}; oy++) {
      let iy = oy * ${g.stride} + ky - ${g.padTop};
      let vy = iy >= 0 && iy < ${g.h};
      let xRow = (n * ${g.h} + iy) * ${g.w};
      var db = ((n * ${g.oh} + oy) * ${g.ow}) * ${co4} + cb;
      for (var ox = 0; ox < ${g.ow}; ox++) {
        let ix = ox * ${g.stride} + kx - ${g.padLeft};
        let ok = vy && ix >= 0 && ix < ${g.w};
        let xv = select(${xType}(0.0), x[select(0, (xRow + ix) * ${ciSteps} + ci, ok)], ok);
        let xq = xv * xv;
        ${body.join('\n        ')}
        db += ${co4};
      }
    }
  }
  if (item < ${rows}) {
    ${epilogue.join('\n    ')}
  }
}`;
  };
  return {
    name: 'LrBackpropFilter',
    key: `lrbpf_${geometryKey(g)}_v${V}_l${lanes}_s${splits}`,
    code,
    dispatch: [Math.ceil(rows / lanes), co4 / V, splits],
    splits,
  };
}

/** Writes the LR noise of `size` elements (size % 4 == 0) for a seed: the GPU side of the generator's tests. */
export function philoxNormalProgram(size: number): FusedProgram {
  const groups = size / 4;
  const lanes = 64;
  return {
    name: 'PhiloxNormal',
    key: `philox_${size}`,
    code: () => `
${PHILOX_WGSL}
struct Uniforms { seed : u32 };
@group(0) @binding(0) var<storage, read_write> out : array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> bits : array<vec4<u32>>;
@group(0) @binding(2) var<uniform> u : Uniforms;

@compute @workgroup_size(${lanes})
fn main(@builtin(global_invocation_id) gid : vec3<u32>) {
  let i = gid.x + gid.y * ${lanes * 65535}u;
  if (i < ${groups}u) {
    out[i] = philoxNormal4(u.seed, i);
    bits[i] = philox4x32(vec4<u32>(i, 0u, 0u, 0u), vec2<u32>(u.seed, 0u));
  }
}`,
    dispatch: [Math.min(Math.ceil(groups / lanes), 65535), Math.ceil(Math.ceil(groups / lanes) / 65535), 1],
  };
}

/**
 * Subgroup variants. On llvmpipe (Mesa 25.0) every storage-buffer load is issued lane by lane, each with its own
 * bounds check, even when all lanes read the same address; the convolutions above spend most of their time there
 * loading weights that are the same for every lane. With subgroups, the lanes of a subgroup load *different*
 * weight vec4s and pass them around with subgroupBroadcast (a register shuffle), so one per-lane load brings in
 * `subgroupSize` useful values instead of one. The input rows are also loaded once per row window instead of once
 * per filter tap.
 */
export interface SubgroupForwardOptions extends ForwardOptions {
  readonly subgroupSize: number;
}

/** Loads `count` uniform vec4s cooperatively: returns the per-lane load lines and an accessor for item t. */
function cooperative(name: string, count: number, sg: number, index: (t: string) => string, buffers: readonly string[]): {
  setup: string[];
  load: string[];
  item: (buffer: string, t: number) => string;
} {
  const rounds = Math.ceil(count / sg);
  const setup: string[] = [];
  const load: string[] = [];
  for (let r = 0; r < rounds; r++) {
    setup.push(`let ${name}t${r} = min(i32(sid) + ${r * sg}, ${count - 1});`);
    for (const b of buffers) load.push(`let ${name}${b}${r} = ${b}[${index(`${name}t${r}`)}];`);
  }
  return { setup, load, item: (b, t) => `subgroupBroadcast(${name}${b}${Math.floor(t / sg)}, ${t % sg}u)` };
}

export function lrForwardProgramSubgroup(g: ConvGeometry, options: SubgroupForwardOptions): FusedProgram {
  const sg = options.subgroupSize;
  const P = options.pixels ?? pixelsPerLaneWide(g.ow, g.n * g.oh);
  const V = channelBlock(g.co / 4, options.channelVecs ?? 2, 1);
  const co4 = g.co / 4;
  const owq = Math.ceil(g.ow / P);
  const items = g.n * g.oh * owq;
  const lanes = Math.max(options.lanes ?? lanesFor(items), sg);
  const vecX = g.ci % 4 === 0;
  const xType = vecX ? 'vec4<f32>' : 'f32';
  const ciSteps = vecX ? g.ci / 4 : g.ci;
  const comps = vecX ? 4 : 1;
  const write = options.writeFactor;
  const outBindings = write ? 2 : 1;
  const windowSize = (P - 1) * g.stride + g.k;
  const code = () => {
    const acc: string[] = [];
    for (let p = 0; p < P; p++) for (let c = 0; c < V; c++) acc.push(`var am${p}_${c} = vec4<f32>(0.0); var av${p}_${c} = vec4<f32>(0.0);`);
    // Weight item t = k * V + c (input channel component k, output vec4 c) at offset k * co4 + c from the tap base.
    const coop = cooperative('w', comps * V, sg, (t) => `wb + (${t} / ${V}) * ${co4} + ${t} % ${V}`, ['mu', 'vr']);
    const windowLines: string[] = [];
    for (let j = 0; j < windowSize; j++) {
      windowLines.push(`let ok${j} = vy && ix0 + ${j} >= 0 && ix0 + ${j} < ${g.w};`);
      windowLines.push(`let xv${j} = select(${xType}(0.0), x[select(0, (rowBase + ix0 + ${j}) * ${ciSteps} + c, ok${j})], ok${j}); let xq${j} = xv${j} * xv${j};`);
    }
    const taps: string[] = [];
    for (let kx = 0; kx < g.k; kx++) {
      taps.push(`{ let wb = tap + ${kx * g.ci * co4};`);
      taps.push(...coop.load.map((l) => `  ${l}`));
      for (let k = 0; k < comps; k++) {
        for (let c = 0; c < V; c++) taps.push(`  let wm${k}_${c} = ${coop.item('mu', k * V + c)}; let wv${k}_${c} = ${coop.item('vr', k * V + c)};`);
      }
      for (let p = 0; p < P; p++) {
        const j = p * g.stride + kx;
        const xs = (k: number) => (vecX ? `xv${j}[${k}]` : `xv${j}`);
        const xq = (k: number) => (vecX ? `xq${j}[${k}]` : `xq${j}`);
        for (let c = 0; c < V; c++) {
          taps.push(`  am${p}_${c} += ${range(comps).map((k) => `${xs(k)} * wm${k}_${c}`).join(' + ')};`);
          taps.push(`  av${p}_${c} += ${range(comps).map((k) => `${xq(k)} * wv${k}_${c}`).join(' + ')};`);
        }
      }
      taps.push('}');
    }
    const epilogue: string[] = [];
    for (let p = 0; p < P; p++) {
      epilogue.push(`if (live && oq * ${P} + ${p} < ${g.ow}) {`);
      epilogue.push(`  let base = (pixelBase + ${p}) * ${co4} + cb;`);
      for (let c = 0; c < V; c++) {
        epilogue.push(`  { let o = base + ${c}; let s = sqrt(av${p}_${c} + ${f32(LR_VARIANCE_EPSILON)}); let eps = philoxNormal4(u.seed, u32(o));`);
        epilogue.push(`    z[o] = am${p}_${c} + s * eps;${write ? ' gf[o] = 0.5 * eps / s;' : ''} }`);
      }
      epilogue.push('}');
    }
    return `enable subgroups;
${PHILOX_WGSL}
struct Uniforms { seed : u32 };
@group(0) @binding(0) var<storage, read_write> z : array<vec4<f32>>;
${write ? '@group(0) @binding(1) var<storage, read_write> gf : array<vec4<f32>>;' : ''}
@group(0) @binding(${outBindings}) var<storage, read> x : array<${xType}>;
@group(0) @binding(${outBindings + 1}) var<storage, read> mu : array<vec4<f32>>;
@group(0) @binding(${outBindings + 2}) var<storage, read> vr : array<vec4<f32>>;
@group(0) @binding(${outBindings + 3}) var<uniform> u : Uniforms;

@compute @workgroup_size(${lanes})
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>,
        @builtin(subgroup_invocation_id) sid : u32) {
  let item = i32(wid.x) * ${lanes} + i32(lid.x);
  let live = item < ${items};
  let ic = min(item, ${items - 1});
  let oq = ic % ${owq};
  let t = ic / ${owq};
  let oy = t % ${g.oh};
  let n = t / ${g.oh};
  let pixelBase = t * ${g.ow} + oq * ${P};
  let ix0 = oq * ${P * g.stride} - ${g.padLeft};
  let cb = i32(wid.y) * ${V};
  ${coop.setup.join('\n  ')}
  ${acc.join('\n  ')}
  for (var ky = 0; ky < ${g.k}; ky++) {
    let iy = oy * ${g.stride} + ky - ${g.padTop};
    let vy = iy >= 0 && iy < ${g.h};
    let rowBase = (n * ${g.h} + iy) * ${g.w};
    for (var c = 0; c < ${ciSteps}; c++) {
      ${windowLines.join('\n      ')}
      let tap = (ky * ${g.k * g.ci} + c * ${comps}) * ${co4} + cb;
      ${taps.join('\n      ')}
    }
  }
  ${epilogue.join('\n  ')}
}`;
  };
  return {
    name: 'LrForwardSubgroup',
    key: `lrfwdsg${sg}_${geometryKey(g)}_p${P}v${V}_l${lanes}_${write ? 'g' : 'z'}`,
    code,
    dispatch: [Math.ceil(items / lanes), co4 / V, 1],
  };
}

export interface SubgroupBackpropInputOptions extends BackpropInputOptions {
  readonly subgroupSize: number;
}

/**
 * dx with subgroups: per output-gradient vec4 step, the weights of the lane's input channels are loaded
 * cooperatively; dz and dz * g are loaded once per row window (all filter taps along the width reuse them).
 */
export function lrBackpropInputProgramSubgroup(g: ConvGeometry, options: SubgroupBackpropInputOptions): FusedProgram {
  const sg = options.subgroupSize;
  const vecC = g.ci % 4 === 0;
  const C = vecC ? 4 * channelBlock(g.ci / 4, options.channelVecs ?? 2, 1) : 1;
  const P = options.pixels ?? pixelsPerLaneWide(g.w, g.n * g.h);
  const wq = Math.ceil(g.w / P);
  const items = g.n * g.h * wq;
  const lanes = Math.max(options.lanes ?? lanesFor(items), sg);
  const co4 = g.co / 4;
  // Window position j holds the output column of tx = ix0 + padLeft - (k - 1) + j; pixel p, tap kx uses j = p - kx + k - 1.
  const windowSize = P + g.k - 1;
  const code = () => {
    const acc: string[] = [];
    for (let p = 0; p < P; p++) for (let c = 0; c < C; c++) acc.push(`var am${p}_${c} = 0.0; var av${p}_${c} = 0.0;`);
    const coop = cooperative('w', C, sg, (t) => `wb + ${t} * ${co4}`, ['mu', 'vr']);
    const windowLines: string[] = [];
    for (let j = 0; j < windowSize; j++) {
      windowLines.push(`let tx${j} = tx0 + ${j}; let ox${j} = tx${j} / ${g.stride};`);
      windowLines.push(`let ok${j} = vy && tx${j} >= 0 && ox${j} * ${g.stride} == tx${j} && ox${j} < ${g.ow};`);
      windowLines.push(`let db${j} = select(0, (outRow + ox${j}) * ${co4} + c, ok${j});`);
      windowLines.push(`let d${j} = select(vec4<f32>(0.0), dz[db${j}], ok${j}); let e${j} = select(vec4<f32>(0.0), dzg[db${j}], ok${j});`);
    }
    const taps: string[] = [];
    for (let kx = 0; kx < g.k; kx++) {
      taps.push(`{ let wb = ((ky * ${g.k} + ${kx}) * ${g.ci} + cb) * ${co4} + c;`);
      taps.push(...coop.load.map((l) => `  ${l}`));
      for (let c = 0; c < C; c++) taps.push(`  let wm${c} = ${coop.item('mu', c)}; let wv${c} = ${coop.item('vr', c)};`);
      for (let p = 0; p < P; p++) {
        const j = p - kx + g.k - 1;
        for (let c = 0; c < C; c++) taps.push(`  am${p}_${c} += dot(d${j}, wm${c}); av${p}_${c} += dot(e${j}, wv${c});`);
      }
      taps.push('}');
    }
    const epilogue: string[] = [];
    for (let p = 0; p < P; p++) {
      epilogue.push(`if (live && iq * ${P} + ${p} < ${g.w}) {`);
      if (vecC) {
        for (let j = 0; j < C / 4; j++) {
          const m = `vec4<f32>(${range(4).map((k) => `am${p}_${4 * j + k}`).join(', ')})`;
          const v = `vec4<f32>(${range(4).map((k) => `av${p}_${4 * j + k}`).join(', ')})`;
          epilogue.push(`  { let o = (pixelBase + ${p}) * ${g.ci / 4} + cb / 4 + ${j}; dx[o] = ${m} + 2.0 * x[o] * ${v}; }`);
        }
      } else {
        epilogue.push(`  { let o = (pixelBase + ${p}) * ${g.ci} + cb; dx[o] = am${p}_0 + 2.0 * x[o] * av${p}_0; }`);
      }
      epilogue.push('}');
    }
    const xType = vecC ? 'vec4<f32>' : 'f32';
    return `enable subgroups;
@group(0) @binding(0) var<storage, read_write> dx : array<${xType}>;
@group(0) @binding(1) var<storage, read> dz : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dzg : array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> x : array<${xType}>;
@group(0) @binding(4) var<storage, read> mu : array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> vr : array<vec4<f32>>;

@compute @workgroup_size(${lanes})
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>,
        @builtin(subgroup_invocation_id) sid : u32) {
  let item = i32(wid.x) * ${lanes} + i32(lid.x);
  let live = item < ${items};
  let ic = min(item, ${items - 1});
  let iq = ic % ${wq};
  let t = ic / ${wq};
  let iy = t % ${g.h};
  let n = t / ${g.h};
  let pixelBase = t * ${g.w} + iq * ${P};
  let tx0 = iq * ${P} + ${g.padLeft - (g.k - 1)};
  let cb = i32(wid.y) * ${C};
  ${coop.setup.join('\n  ')}
  ${acc.join('\n  ')}
  for (var ky = 0; ky < ${g.k}; ky++) {
    let ty = iy + ${g.padTop} - ky;
    let oy = ty / ${g.stride};
    let vy = ty >= 0 && oy * ${g.stride} == ty && oy < ${g.oh};
    let outRow = (n * ${g.oh} + oy) * ${g.ow};
    for (var c = 0; c < ${co4}; c++) {
      ${windowLines.join('\n      ')}
      ${taps.join('\n      ')}
    }
  }
  ${epilogue.join('\n  ')}
}`;
  };
  return {
    name: 'LrBackpropInputSubgroup',
    key: `lrbpisg${sg}_${geometryKey(g)}_p${P}c${C}_l${lanes}`,
    code,
    dispatch: [Math.ceil(items / lanes), g.ci / C, 1],
  };
}

export interface SubgroupBackpropFilterOptions extends BackpropFilterOptions {
  readonly subgroupSize: number;
  /** Output pixels per iteration (default: as many as make one cooperative load). */
  readonly pixels?: number;
}

/**
 * Filter gradients with subgroups: each iteration takes sg / V output pixels along a row, whose dz and dz * g
 * vec4s (the same for every lane) are loaded cooperatively, one per lane.
 */
export function lrBackpropFilterProgramSubgroup(g: ConvGeometry, options: SubgroupBackpropFilterOptions): FusedProgram & { splits: number } {
  const sg = options.subgroupSize;
  const vecC = g.ci % 4 === 0;
  const R = vecC ? 4 : 1;
  const ciSteps = g.ci / R;
  const V = channelBlock(g.co / 4, options.channelVecs ?? 4, 1);
  const U = Math.min(options.pixels ?? Math.max(1, Math.floor(sg / V)), g.ow);
  const rows = g.k * g.k * ciSteps;
  const lanes = Math.max(options.lanes ?? lanesFor(rows), sg);
  const co4 = g.co / 4;
  const baseGroups = Math.ceil(rows / lanes) * (co4 / V);
  const splits = options.splits ?? filterSplits(g, baseGroups);
  const perSplit = Math.ceil(g.n / splits);
  const xType = vecC ? 'vec4<f32>' : 'f32';
  const code = () => {
    const acc: string[] = [];
    for (let r = 0; r < R; r++) for (let c = 0; c < V; c++) acc.push(`var am${r}_${c} = vec4<f32>(0.0); var av${r}_${c} = vec4<f32>(0.0);`);
    // Item t = u * V + c: pixel u of this group of U, output vec4 c.
    const coop = cooperative('d', U * V, sg, (t) => `min(db + (${t} / ${V}) * ${co4}, lastPixel) + ${t} % ${V}`, ['dz', 'dzg']);
    const body: string[] = [...coop.load];
    for (let u = 0; u < U; u++) {
      body.push(`let ix${u} = (ox + ${u}) * ${g.stride} + kx - ${g.padLeft};`);
      body.push(`let ok${u} = vy && ox + ${u} < ${g.ow} && ix${u} >= 0 && ix${u} < ${g.w};`);
      body.push(`let xv${u} = select(${xType}(0.0), x[select(0, (xRow + ix${u}) * ${ciSteps} + ci, ok${u})], ok${u}); let xq${u} = xv${u} * xv${u};`);
      for (let c = 0; c < V; c++) body.push(`let d${u}_${c} = ${coop.item('dz', u * V + c)}; let e${u}_${c} = ${coop.item('dzg', u * V + c)};`);
    }
    // One update per accumulator and iteration (see lrForwardProgram): the U pixels' products are summed first.
    for (let r = 0; r < R; r++) {
      const xs = (u: number) => (vecC ? `xv${u}[${r}]` : `xv${u}`);
      const xq = (u: number) => (vecC ? `xq${u}[${r}]` : `xq${u}`);
      for (let c = 0; c < V; c++) {
        body.push(`am${r}_${c} += ${range(U).map((u) => `${xs(u)} * d${u}_${c}`).join(' + ')};`);
        body.push(`av${r}_${c} += ${range(U).map((u) => `${xq(u)} * e${u}_${c}`).join(' + ')};`);
      }
    }
    const epilogue: string[] = [];
    for (let r = 0; r < R; r++) {
      epilogue.push(`{ let o = (split * ${g.k * g.k * g.ci} + tap * ${g.ci} + ci * ${R} + ${r}) * ${co4} + cb;`);
      for (let c = 0; c < V; c++) epilogue.push(`  dmu[o + ${c}] = am${r}_${c}; dvr[o + ${c}] = av${r}_${c};`);
      epilogue.push('}');
    }
    return `enable subgroups;
@group(0) @binding(0) var<storage, read_write> dmu : array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dvr : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x : array<${xType}>;
@group(0) @binding(3) var<storage, read> dz : array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> dzg : array<vec4<f32>>;

@compute @workgroup_size(${lanes})
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>,
        @builtin(subgroup_invocation_id) sid : u32) {
  let item = i32(wid.x) * ${lanes} + i32(lid.x);
  let rc = min(item, ${rows - 1});
  let ci = rc % ${ciSteps};
  let tap = rc / ${ciSteps};
  let kx = tap % ${g.k};
  let ky = tap / ${g.k};
  let cb = i32(wid.y) * ${V};
  let split = i32(wid.z);
  ${coop.setup.join('\n  ')}
  ${acc.join('\n  ')}
  let n0 = split * ${perSplit};
  let n1 = min(n0 + ${perSplit}, ${g.n});
  for (var n = n0; n < n1; n++) {
    for (var oy = 0; oy < ${g.oh}; oy++) {
      let iy = oy * ${g.stride} + ky - ${g.padTop};
      let vy = iy >= 0 && iy < ${g.h};
      let xRow = (n * ${g.h} + iy) * ${g.w};
      let rowStart = ((n * ${g.oh} + oy) * ${g.ow}) * ${co4} + cb;
      let lastPixel = rowStart + ${(g.ow - 1) * co4};
      for (var ox = 0; ox < ${g.ow}; ox += ${U}) {
        let db = rowStart + ox * ${co4};
        ${body.join('\n        ')}
      }
    }
  }
  if (item < ${rows}) {
    ${epilogue.join('\n    ')}
  }
}`;
  };
  return {
    name: 'LrBackpropFilterSubgroup',
    key: `lrbpfsg${sg}_${geometryKey(g)}_u${U}v${V}_l${lanes}_s${splits}`,
    code,
    dispatch: [Math.ceil(rows / lanes), co4 / V, splits],
    splits,
  };
}

/** Sums the partial filter gradients over their leading (split) axis, both tensors in one pass. */
export function sumPartialsProgram(splits: number, size: number): FusedProgram {
  const size4 = size / 4;
  const lanes = lanesFor(size4);
  return {
    name: 'LrSumPartials',
    key: `lrsum_${splits}x${size}`,
    dispatch: [Math.ceil(size4 / lanes), 1, 1],
    code: () => `
@group(0) @binding(0) var<storage, read_write> om : array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> ov : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> pm : array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> pv : array<vec4<f32>>;

@compute @workgroup_size(${lanes})
fn main(@builtin(global_invocation_id) gid : vec3<u32>) {
  let i = i32(gid.x);
  if (i >= ${size4}) { return; }
  var m = pm[i];
  var v = pv[i];
  for (var s = 1; s < ${splits}; s++) {
    m += pm[s * ${size4} + i];
    v += pv[s * ${size4} + i];
  }
  om[i] = m;
  ov[i] = v;
}`,
  };
}
