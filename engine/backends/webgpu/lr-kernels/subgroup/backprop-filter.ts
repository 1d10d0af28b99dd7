/** The weight-moment gradients of the fused LR layer with subgroup operations (see cooperative.ts). */
import { type ConvGeometry, channelBlock, geometryKey, range } from '../geometry.ts';
import { accumulators, entryPoint } from '../wgsl.ts';
import type { FusedProgram } from '../../runner.ts';
import {
  type BackpropFilterOptions,
  filterGradientBindings,
  filterGradientEpilogue,
  filterGradientLayout,
  filterTapIndex,
  forEachImageRow,
} from '../plain/backprop-filter.ts';
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
  const V = channelBlock(g.co / 4, options.channelVecs ?? 4, 1);
  const U = Math.min(options.pixels ?? Math.max(1, Math.floor(sg / V)), g.ow);
  const { vecC, R, ciSteps, rows, lanes, co4, splits, perSplit, xType } = filterGradientLayout(g, V, options.lanes, sg, options.splits);
  const code = () => {
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
    return `enable subgroups;
${filterGradientBindings(xType)}

${entryPoint(lanes, true)}
${filterTapIndex(g, rows, ciSteps, V)}
  ${coop.setup.join('\n  ')}
  ${accumulators(R, V, 'vec4<f32>(0.0)').join('\n  ')}
${forEachImageRow(g, perSplit, `let rowStart = ((n * ${g.oh} + oy) * ${g.ow}) * ${co4} + cb;
      let lastPixel = rowStart + ${(g.ow - 1) * co4};
      for (var ox = 0; ox < ${g.ow}; ox += ${U}) {
        let db = rowStart + ox * ${co4};
        ${body.join('\n        ')}
      }`)}
${filterGradientEpilogue(g, rows, R, V)}
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
