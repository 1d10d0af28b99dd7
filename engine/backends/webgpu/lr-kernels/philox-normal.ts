/** The GPU side of the LR noise generator (philox.ts), as a program of its own for the generator's tests. */
import { PHILOX_WGSL } from '../philox.ts';
import type { FusedProgram } from '../runner.ts';

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
