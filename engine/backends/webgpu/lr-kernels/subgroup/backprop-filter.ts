/** The weight-moment gradients of the fused LR layer with subgroup operations (see cooperative.ts). */
import { type ConvGeometry, channelBlock, geometryKey, lanesFor, range } from '../geometry.ts';
import type { FusedProgram } from '../../runner.ts';
import { filterSplits, type BackpropFilterOptions } from '../plain/backprop-filter.ts';
import { cooperative } from './cooperative.ts';

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
