/** The pass that adds up the filter-gradient partial sums of the backprop-filter kernels (plain and subgroup). */
import { lanesFor } from './geometry.ts';
import type { FusedProgram } from '../runner.ts';

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
