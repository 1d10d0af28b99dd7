/** The input gradient of the fused LR layer with subgroup operations (see cooperative.ts). */
import { type ConvGeometry, channelBlock, geometryKey, lanesFor, pixelsPerLaneWide } from '../geometry.ts';
import { accumulators, entryPoint, rowTileIndex } from '../wgsl.ts';
import type { FusedProgram } from '../../runner.ts';
import { type BackpropInputOptions, inputGradientBindings, inputGradientEpilogue, inputGradientLayout, outputRowAt } from '../plain/backprop-input.ts';
import { cooperative } from './cooperative.ts';

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
  const { co4, items, xType, rowTiling } = inputGradientLayout(g, P);
  const lanes = Math.max(options.lanes ?? lanesFor(items), sg);
  // Window position j holds the output column of tx = ix0 + padLeft - (k - 1) + j; pixel p, tap kx uses j = p - kx + k - 1.
  const windowSize = P + g.k - 1;
  const code = () => {
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
    return `enable subgroups;
${inputGradientBindings(xType)}

${entryPoint(lanes, true)}
${rowTileIndex(rowTiling)}
  let tx0 = iq * ${P} + ${g.padLeft - (g.k - 1)};
  let cb = i32(wid.y) * ${C};
  ${coop.setup.join('\n  ')}
  ${accumulators(P, C, '0.0').join('\n  ')}
  for (var ky = 0; ky < ${g.k}; ky++) {
${outputRowAt(g)}
    for (var c = 0; c < ${co4}; c++) {
      ${windowLines.join('\n      ')}
      ${taps.join('\n      ')}
    }
  }
  ${inputGradientEpilogue(g, P, C).join('\n  ')}
}`;
  };
  return {
    name: 'LrBackpropInputSubgroup',
    key: `lrbpisg${sg}_${geometryKey(g)}_p${P}c${C}_l${lanes}`,
    code,
    dispatch: [Math.ceil(items / lanes), g.ci / C, 1],
  };
}
