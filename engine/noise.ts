/**
 * Standard normal noise for the LR layers, drawn in JavaScript from a seed.
 *
 * TensorFlow.js's seeded tf.randomNormal draws one value at a time through seedrandom's Alea and a rejection loop;
 * the LR noise tensor is as large as every discrete layer's output, so that cost rivals the convolutions. This
 * generator is Marsaglia & Tsang's ziggurat (2000, 128 layers) over the sfc32 generator: about 99% of draws cost
 * one 32-bit integer, a table lookup and a multiplication. Same seed, same values, on every backend.
 */
import { tf, type Tensor } from './tf.ts';
import { mix32 } from './random.ts';

const LAYERS = 128;
/** Right edge of the base layer and the area of each layer (Marsaglia & Tsang's constants for 128 layers). */
const R = 3.442619855899;
const LAYER_AREA = 9.91256303526217e-3;
/**
 * Each draw is one 32-bit integer: its low 7 bits pick the layer and the other 25 bits, as a signed integer in
 * [-2^24, 2^24), give the sign and magnitude, so layer and magnitude are independent and one draw suffices.
 */
const M1 = 2 ** 24;

const kn = new Int32Array(LAYERS);
const wn = new Float64Array(LAYERS);
const fn = new Float64Array(LAYERS);
{
  let dn = R;
  let tn = dn;
  const q = LAYER_AREA / Math.exp(-0.5 * dn * dn);
  kn[0] = Math.floor((dn / q) * M1);
  kn[1] = 0;
  wn[0] = q / M1;
  wn[LAYERS - 1] = dn / M1;
  fn[0] = 1;
  fn[LAYERS - 1] = Math.exp(-0.5 * dn * dn);
  for (let i = LAYERS - 2; i >= 1; i--) {
    dn = Math.sqrt(-2 * Math.log(LAYER_AREA / dn + Math.exp(-0.5 * dn * dn)));
    kn[i + 1] = Math.floor((dn / tn) * M1);
    tn = dn;
    fn[i] = Math.exp(-0.5 * dn * dn);
    wn[i] = dn / M1;
  }
}

/** Fills `out` with independent N(0, 1) draws determined by `seed`. */
export function fillStandardNormal(out: Float32Array, seed: number): void {
  // sfc32, seeded as engine/random.ts does (12 rounds of warm-up).
  let a = 0x9e3779b9 | 0;
  let b = 0x243f6a88 | 0;
  let c = 0xb7e15162 | 0;
  let d = mix32(seed) | 0;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t;
  };
  for (let i = 0; i < 12; i++) next();
  /** Uniform in (0, 1). */
  const uniform = (): number => ((next() >>> 0) + 0.5) / 4294967296;
  const n = out.length;
  for (let i = 0; i < n; i++) {
    let bits = next();
    let iz = bits & (LAYERS - 1);
    let hz = bits >> 7;
    if (Math.abs(hz) < kn[iz]!) {
      out[i] = hz * wn[iz]!;
      continue;
    }
    for (;;) {
      if (iz === 0) {
        // The tail beyond R (Marsaglia's method).
        let x: number;
        let y: number;
        do {
          x = -Math.log(uniform()) / R;
          y = -Math.log(uniform());
        } while (y + y < x * x);
        out[i] = hz > 0 ? R + x : -R - x;
        break;
      }
      const x = hz * wn[iz]!;
      if (fn[iz]! + uniform() * (fn[iz - 1]! - fn[iz]!) < Math.exp(-0.5 * x * x)) {
        out[i] = x;
        break;
      }
      bits = next();
      iz = bits & (LAYERS - 1);
      hz = bits >> 7;
      if (Math.abs(hz) < kn[iz]!) {
        out[i] = hz * wn[iz]!;
        break;
      }
    }
  }
}

/** A tensor of N(0, 1) noise of the given shape, determined by `seed`. */
export function standardNormal(shape: readonly number[], seed: number): Tensor {
  const values = new Float32Array(shape.reduce((p, s) => p * s, 1));
  fillStandardNormal(values, seed);
  return tf.tensor(values, [...shape]);
}
