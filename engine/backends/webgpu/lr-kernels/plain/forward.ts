/** The fused LR forward pass without subgroup operations (for devices without them); see ../index.ts. */
import { type ConvGeometry, type TileOptions, LR_VARIANCE_EPSILON, channelBlock, f32, geometryKey, lanesFor, pixelsPerLane, range } from '../geometry.ts';
import { accumulators, entryPoint, type RowTiling, rowTileIndex } from '../wgsl.ts';
import { PHILOX_WGSL } from '../../philox.ts';
import type { FusedProgram } from '../../runner.ts';

/** Output pixels and vec4s of output channels per invocation, and whether to write g. */
export interface ForwardOptions extends TileOptions {
  /** Also write g = 0.5 * eps / s (needed by the backward pass). */
  readonly writeFactor: boolean;
}

/** The data layout of a forward kernel (plain or subgroup) whose lanes take P output pixels each. */
export function forwardLayout(g: ConvGeometry, P: number) {
  const owq = Math.ceil(g.ow / P);
  const items = g.n * g.oh * owq;
  const vecX = g.ci % 4 === 0;
  const rowTiling: RowTiling = { items, tilesPerRow: owq, height: g.oh, width: g.ow, pixels: P, tile: 'oq', row: 'oy' };
  return {
    co4: g.co / 4,
    items,
    vecX,
    xType: vecX ? 'vec4<f32>' : 'f32',
    ciSteps: vecX ? g.ci / 4 : g.ci,
    comps: vecX ? 4 : 1,
    rowTiling,
  };
}

/** The forward kernels' bindings after the Philox functions: z (, g), x, mean, variance, uniform { seed }. */
export function forwardBindings(xType: string, write: boolean): string {
  const outBindings = write ? 2 : 1;
  return `${PHILOX_WGSL}
struct Uniforms { seed : u32 };
@group(0) @binding(0) var<storage, read_write> z : array<vec4<f32>>;
${write ? '@group(0) @binding(1) var<storage, read_write> gf : array<vec4<f32>>;' : ''}
@group(0) @binding(${outBindings}) var<storage, read> x : array<${xType}>;
@group(0) @binding(${outBindings + 1}) var<storage, read> mu : array<vec4<f32>>;
@group(0) @binding(${outBindings + 2}) var<storage, read> vr : array<vec4<f32>>;
@group(0) @binding(${outBindings + 3}) var<uniform> u : Uniforms;`;
}

/** z = m + s * eps (and g = 0.5 * eps / s) for the live pixels of the lane's tile of P pixels x V vec4s. */
export function forwardEpilogue(g: ConvGeometry, P: number, V: number, write: boolean): string[] {
  const co4 = g.co / 4;
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
  return epilogue;
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
  const { co4, items, vecX, xType, ciSteps, comps, rowTiling } = forwardLayout(g, P);
  const lanes = options.lanes ?? lanesFor(items);
  const write = options.writeFactor;
  const code = () => {
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
    return `
${forwardBindings(xType, write)}

${entryPoint(lanes, false)}
${rowTileIndex(rowTiling)}
  let cb = i32(wid.y) * ${V};
  ${accumulators(P, V, 'vec4<f32>(0.0)').join('\n  ')}
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
  ${forwardEpilogue(g, P, V, write).join('\n  ')}
}`;
  };
  return {
    name: 'LrForward',
    key: `lrfwd_${geometryKey(g)}_p${P}v${V}_l${lanes}_${write ? 'g' : 'z'}`,
    code,
    dispatch: [Math.ceil(items / lanes), co4 / V, 1],
  };
}
