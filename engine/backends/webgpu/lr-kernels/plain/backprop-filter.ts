/** The weight-moment gradients of the fused LR layer without subgroup operations; see ../index.ts. */
import { type ConvGeometry, channelBlock, geometryKey, lanesFor } from '../geometry.ts';
import { accumulators, entryPoint } from '../wgsl.ts';
import type { FusedProgram } from '../../runner.ts';

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
 * The data layout of a filter-gradient kernel (plain or subgroup): each lane owns R input channels of one filter
 * tap (a row of the [k*k*ci, co] gradient) and V output vec4s; the images are split `splits` ways.
 */
export function filterGradientLayout(g: ConvGeometry, V: number, lanesOption: number | undefined, minLanes: number, splitsOption: number | undefined) {
  const vecC = g.ci % 4 === 0;
  const R = vecC ? 4 : 1;
  const ciSteps = g.ci / R;
  const rows = g.k * g.k * ciSteps;
  const lanes = Math.max(lanesOption ?? lanesFor(rows), minLanes);
  const co4 = g.co / 4;
  const splits = splitsOption ?? filterSplits(g, Math.ceil(rows / lanes) * (co4 / V));
  return { vecC, R, ciSteps, rows, lanes, co4, splits, perSplit: Math.ceil(g.n / splits), xType: vecC ? 'vec4<f32>' : 'f32' };
}

/** The filter-gradient kernels' bindings: dmu, dvar (partial sums), x, dz, dzg. */
export function filterGradientBindings(xType: string): string {
  return `@group(0) @binding(0) var<storage, read_write> dmu : array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dvr : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x : array<${xType}>;
@group(0) @binding(3) var<storage, read> dz : array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> dzg : array<vec4<f32>>;`;
}

/** Decodes `item` into the lane's filter tap (kx, ky), input channel step ci, output block cb and split. */
export function filterTapIndex(g: ConvGeometry, rows: number, ciSteps: number, V: number): string {
  return `  let rc = min(item, ${rows - 1});
  let ci = rc % ${ciSteps};
  let tap = rc / ${ciSteps};
  let kx = tap % ${g.k};
  let ky = tap / ${g.k};
  let cb = i32(wid.y) * ${V};
  let split = i32(wid.z);`;
}

/** Runs `inner` (WGSL indented by 6) for every output row oy of the split's images, with its input row xRow. */
export function forEachImageRow(g: ConvGeometry, perSplit: number, inner: string): string {
  return `  let n0 = split * ${perSplit};
  let n1 = min(n0 + ${perSplit}, ${g.n});
  for (var n = n0; n < n1; n++) {
    for (var oy = 0; oy < ${g.oh}; oy++) {
      let iy = oy * ${g.stride} + ky - ${g.padTop};
      let vy = iy >= 0 && iy < ${g.h};
      let xRow = (n * ${g.h} + iy) * ${g.w};
      ${inner}
    }
  }`;
}

/** Writes the lane's R x V accumulators to its split's partial sums (padding lanes write nothing). */
export function filterGradientEpilogue(g: ConvGeometry, rows: number, R: number, V: number): string {
  const co4 = g.co / 4;
  const epilogue: string[] = [];
  for (let r = 0; r < R; r++) {
    epilogue.push(`{ let o = (split * ${g.k * g.k * g.ci} + tap * ${g.ci} + ci * ${R} + ${r}) * ${co4} + cb;`);
    for (let c = 0; c < V; c++) epilogue.push(`  dmu[o + ${c}] = am${r}_${c}; dvr[o + ${c}] = av${r}_${c};`);
    epilogue.push('}');
  }
  return `  if (item < ${rows}) {
    ${epilogue.join('\n    ')}
  }`;
}

/**
 * dmu = corr(x, dz), dvar = corr(x^2, dzg). Bindings: dmu, dvar ([splits, k*k*ci, co] partial sums), x, dz, dzg.
 * Each invocation owns 4 consecutive input channels of one filter tap (one when ci % 4 != 0) x 4*`channelVecs`
 * output channels and walks the images of its split. Needs co % 4 == 0.
 */
export function lrBackpropFilterProgram(g: ConvGeometry, options: BackpropFilterOptions = {}): FusedProgram & { splits: number } {
  const V = channelBlock(g.co / 4, options.channelVecs ?? 2, 1);
  const { vecC, R, ciSteps, rows, lanes, co4, splits, perSplit, xType } = filterGradientLayout(g, V, options.lanes, 1, options.splits);
  const code = () => {
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
    return `
${filterGradientBindings(xType)}

${entryPoint(lanes, false)}
${filterTapIndex(g, rows, ciSteps, V)}
  ${accumulators(R, V, 'vec4<f32>(0.0)').join('\n  ')}
${forEachImageRow(g, perSplit, `var db = ((n * ${g.oh} + oy) * ${g.ow}) * ${co4} + cb;
      for (var ox = 0; ox < ${g.ow}; ox++) {
        let ix = ox * ${g.stride} + kx - ${g.padLeft};
        let ok = vy && ix >= 0 && ix < ${g.w};
        let xv = select(${xType}(0.0), x[select(0, (xRow + ix) * ${ciSteps} + ci, ok)], ok);
        let xq = xv * xv;
        ${body.join('\n        ')}
        db += ${co4};
      }`)}
${filterGradientEpilogue(g, rows, R, V)}
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
