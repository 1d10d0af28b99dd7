/** The input gradient of the fused LR layer without subgroup operations; see ../index.ts. */
import { type ConvGeometry, type TileOptions, channelBlock, geometryKey, lanesFor, pixelsPerLane, range } from '../geometry.ts';
import { accumulators, entryPoint, type RowTiling, rowTileIndex } from '../wgsl.ts';
import type { FusedProgram } from '../../runner.ts';

/** Input pixels per invocation and vec4s of input channels per invocation (when ci % 4 == 0; otherwise one channel). */
export type BackpropInputOptions = TileOptions;

/** The data layout of an input-gradient kernel (plain or subgroup) whose lanes take P input pixels each. */
export function inputGradientLayout(g: ConvGeometry, P: number) {
  const wq = Math.ceil(g.w / P);
  const items = g.n * g.h * wq;
  const rowTiling: RowTiling = { items, tilesPerRow: wq, height: g.h, width: g.w, pixels: P, tile: 'iq', row: 'iy' };
  return { co4: g.co / 4, items, xType: g.ci % 4 === 0 ? 'vec4<f32>' : 'f32', rowTiling };
}

/** The input-gradient kernels' bindings: dx, dz, dzg, x, mean, variance. */
export function inputGradientBindings(xType: string): string {
  return `@group(0) @binding(0) var<storage, read_write> dx : array<${xType}>;
@group(0) @binding(1) var<storage, read> dz : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dzg : array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> x : array<${xType}>;
@group(0) @binding(4) var<storage, read> mu : array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> vr : array<vec4<f32>>;`;
}

/** The output row oy that input row iy meets through filter row ky (vy: whether it does), and its first pixel. */
export function outputRowAt(g: ConvGeometry): string {
  return `    let ty = iy + ${g.padTop} - ky;
    let oy = ty / ${g.stride};
    let vy = ty >= 0 && oy * ${g.stride} == ty && oy < ${g.oh};
    let outRow = (n * ${g.oh} + oy) * ${g.ow};`;
}

/** dx = m + 2x * v for the live pixels of the lane's tile of P pixels x C input channels. */
export function inputGradientEpilogue(g: ConvGeometry, P: number, C: number): string[] {
  const epilogue: string[] = [];
  for (let p = 0; p < P; p++) {
    epilogue.push(`if (live && iq * ${P} + ${p} < ${g.w}) {`);
    if (g.ci % 4 === 0) {
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
  return epilogue;
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
  const { co4, items, xType, rowTiling } = inputGradientLayout(g, P);
  const lanes = options.lanes ?? lanesFor(items);
  const code = () => {
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
    return `
${inputGradientBindings(xType)}

${entryPoint(lanes, false)}
${rowTileIndex(rowTiling)}
  let cb = i32(wid.y) * ${C};
  ${accumulators(P, C, '0.0').join('\n  ')}
  for (var ky = 0; ky < ${g.k}; ky++) {
${outputRowAt(g)}
    for (var kx = 0; kx < ${g.k}; kx++) {${pix}
      var wi = ((ky * ${g.k} + kx) * ${g.ci} + cb) * ${co4};
      for (var c = 0; c < ${co4}; c++) {
        ${body.join('\n        ')}
        wi += 1;
      }
    }
  }
  ${inputGradientEpilogue(g, P, C).join('\n  ')}
}`;
  };
  return {
    name: 'LrBackpropInput',
    key: `lrbpi_${geometryKey(g)}_p${P}c${C}_l${lanes}`,
    code,
    dispatch: [Math.ceil(items / lanes), g.ci / C, 1],
  };
}
