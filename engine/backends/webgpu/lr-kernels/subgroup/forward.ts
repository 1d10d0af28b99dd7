/** The fused LR forward pass with subgroup operations (see cooperative.ts for why they pay). */
import { type ConvGeometry, channelBlock, geometryKey, lanesFor, pixelsPerLaneWide, range } from '../geometry.ts';
import { accumulators, entryPoint, rowTileIndex } from '../wgsl.ts';
import type { FusedProgram } from '../../runner.ts';
import { type ForwardOptions, forwardBindings, forwardEpilogue, forwardLayout } from '../plain/forward.ts';
import { cooperative } from './cooperative.ts';

export interface SubgroupForwardOptions extends ForwardOptions {
  readonly subgroupSize: number;
}

export function lrForwardProgramSubgroup(g: ConvGeometry, options: SubgroupForwardOptions): FusedProgram {
  const sg = options.subgroupSize;
  const P = options.pixels ?? pixelsPerLaneWide(g.ow, g.n * g.oh);
  const V = channelBlock(g.co / 4, options.channelVecs ?? 2, 1);
  const { co4, items, vecX, xType, ciSteps, comps, rowTiling } = forwardLayout(g, P);
  const lanes = Math.max(options.lanes ?? lanesFor(items), sg);
  const write = options.writeFactor;
  const windowSize = (P - 1) * g.stride + g.k;
  const code = () => {
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
    return `enable subgroups;
${forwardBindings(xType, write)}

${entryPoint(lanes, true)}
${rowTileIndex(rowTiling)}
  let ix0 = oq * ${P * g.stride} - ${g.padLeft};
  let cb = i32(wid.y) * ${V};
  ${coop.setup.join('\n  ')}
  ${accumulators(P, V, 'vec4<f32>(0.0)').join('\n  ')}
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
  ${forwardEpilogue(g, P, V, write).join('\n  ')}
}`;
  };
  return {
    name: 'LrForwardSubgroup',
    key: `lrfwdsg${sg}_${geometryKey(g)}_p${P}v${V}_l${lanes}_${write ? 'g' : 'z'}`,
    code,
    dispatch: [Math.ceil(items / lanes), co4 / V, 1],
  };
}
