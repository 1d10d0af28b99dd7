/** The fused LR forward pass with subgroup operations (see cooperative.ts for why they pay). */
import { type ConvGeometry, LR_VARIANCE_EPSILON, channelBlock, f32, geometryKey, lanesFor, pixelsPerLaneWide, range } from '../geometry.ts';
import { PHILOX_WGSL } from '../../philox.ts';
import type { FusedProgram } from '../../runner.ts';
import type { ForwardOptions } from '../plain/forward.ts';
import { cooperative } from './cooperative.ts';

export interface SubgroupForwardOptions extends ForwardOptions {
  readonly subgroupSize: number;
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
