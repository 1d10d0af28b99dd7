/**
 * The counter-based noise of the fused LR kernels: Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random
 * numbers: as easy as 1, 2, 3", SC 2011) with Box-Muller, written once in TypeScript (this file, the reference the
 * tests reproduce the GPU noise with) and once in WGSL (`PHILOX_WGSL`, pasted into the kernels). The two share every
 * integer step, so the raw 32-bit words agree exactly and the normals agree to float32 rounding of log/sqrt/cos/sin.
 *
 * The LR noise of one layer is a function of (seed, output element index) only:
 *
 *     element i of the layer's output (row-major, NHWC or [batch, units]) belongs to the group j = floor(i / 4)
 *     (a, b, c, d) = Philox4x32-10(counter = (j, 0, 0, 0), key = (seed, 0))
 *     eps[4j]     = R(a) cos T(b),  eps[4j + 1] = R(a) sin T(b)
 *     eps[4j + 2] = R(c) cos T(d),  eps[4j + 3] = R(c) sin T(d)
 *     R(u) = sqrt(-2 ln(((u >>> 9) + 0.5) * 2^-23))     (the uniform lies in (0, 1), never 0, and is exact in float32)
 *     T(u) = pi * ((u >>> 8) * 2^-23 - 1)               (in [-pi, pi), where GPU sin/cos are specified)
 *
 * On the GPU, ln of a uniform within 1/8 of 1 comes from the series of ln(1 - t) (t = 1 - u is exact): GPU log()
 * is only specified to an absolute error there (2^-21 in Vulkan), which the small radius would turn into large
 * relative errors. The normals then agree with this file's float64 values to a few float32 ulps.
 *
 * so any thread can draw any element's noise without state, the backward pass could redraw it, and a test can
 * compute it on the CPU. One Philox call yields four normals: the kernels draw a group per four output channels.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two unsigned 32-bit integers (16-bit limbs, as the WGSL version does). */
function mulhi(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox4x32-10: four 32-bit words from a 128-bit counter and a 64-bit key (Random123's reference algorithm). */
export function philox4x32(
  counter: readonly [number, number, number, number],
  key: readonly [number, number],
): [number, number, number, number] {
  let c0 = counter[0] >>> 0;
  let c1 = counter[1] >>> 0;
  let c2 = counter[2] >>> 0;
  let c3 = counter[3] >>> 0;
  let k0 = key[0] >>> 0;
  let k1 = key[1] >>> 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulhi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

const TWO_POW_M23 = 2 ** -23;

/** Box-Muller radius from one 32-bit word. */
function radius(u: number): number {
  return Math.sqrt(-2 * Math.log(((u >>> 9) + 0.5) * TWO_POW_M23));
}

/** Box-Muller angle from one 32-bit word, in [-pi, pi). */
function angle(u: number): number {
  return Math.PI * ((u >>> 8) * TWO_POW_M23 - 1);
}

/** The four normals of group `group` (elements 4*group .. 4*group+3) for `seed`. */
export function philoxNormalGroup(seed: number, group: number): [number, number, number, number] {
  const [a, b, c, d] = philox4x32([group >>> 0, 0, 0, 0], [seed >>> 0, 0]);
  const ra = radius(a);
  const ta = angle(b);
  const rc = radius(c);
  const tc = angle(d);
  return [ra * Math.cos(ta), ra * Math.sin(ta), rc * Math.cos(tc), rc * Math.sin(tc)];
}

/** Fills `out` with the LR noise of elements offset .. offset + out.length - 1 for `seed` (the GPU's values). */
export function fillPhiloxNormal(out: Float32Array, seed: number, offset = 0): void {
  let i = 0;
  while (i < out.length) {
    const element = offset + i;
    const group = Math.floor(element / 4);
    const values = philoxNormalGroup(seed, group);
    for (let lane = element - group * 4; lane < 4 && i < out.length; lane++, i++) out[i] = values[lane]!;
  }
}

/** The LR noise of a whole tensor with `size` elements, as a Float32Array. */
export function philoxNormal(size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  fillPhiloxNormal(out, seed);
  return out;
}

/**
 * The same generator in WGSL: `philox4x32(counter, key)` and `philoxNormal4(seed, group) -> vec4<f32>`.
 * Pasted into every kernel that draws noise.
 */
export const PHILOX_WGSL = /* wgsl */ `
fn philoxMulhi(a : u32, b : u32) -> u32 {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p00 = a0 * b0;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}

fn philox4x32(counter : vec4<u32>, key : vec2<u32>) -> vec4<u32> {
  var c = counter;
  var k = key;
  for (var round = 0; round < 10; round++) {
    let hi0 = philoxMulhi(${M0}u, c.x);
    let lo0 = ${M0}u * c.x;
    let hi1 = philoxMulhi(${M1}u, c.z);
    let lo1 = ${M1}u * c.z;
    c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k = k + vec2<u32>(${W0}u, ${W1}u);
  }
  return c;
}

fn philoxNormal4(seed : u32, group : u32) -> vec4<f32> {
  let r = philox4x32(vec4<u32>(group, 0u, 0u, 0u), vec2<u32>(seed, 0u));
  let u = (vec2<f32>(vec2<u32>(r.x, r.z) >> vec2<u32>(9u)) + 0.5) * ${TWO_POW_M23};
  // -ln(u) = q + q^2/2 + q^3/3 + ... with q = 1 - u (exact); ten terms reach float32 precision for q < 1/8.
  let q = 1.0 - u;
  var series = vec2<f32>(0.1);
  ${Array.from({ length: 9 }, (_, i) => `series = fma(series, q, vec2<f32>(${1 / (9 - i)}));`).join('\n  ')}
  let minusLog = select(-log(u), series * q, q < vec2<f32>(0.125));
  let rad = sqrt(2.0 * minusLog);
  let t = 3.14159265358979 * (vec2<f32>(vec2<u32>(r.y, r.w) >> vec2<u32>(8u)) * ${TWO_POW_M23} - 1.0);
  return vec4<f32>(rad.x * cos(t.x), rad.x * sin(t.x), rad.y * cos(t.y), rad.y * sin(t.y));
}
`;
