/**
 * LR noise generation: the project's ziggurat (engine/noise.ts) against TensorFlow.js's seeded tf.randomNormal,
 * in the same run, on 10 million values (about the noise of one MNIST LR training step at batch 256).
 *   node bin/run-ts.js bench/noise.ts
 */
import os from 'node:os';
import { tf } from '../engine/tf.ts';
import { fillStandardNormal } from '../engine/noise.ts';

await tf.setBackend('cpu');
const n = 10_000_000;
const out = new Float32Array(n);
const rounds = 3;
let ours = Infinity;
let stock = Infinity;
for (let k = 0; k < rounds; k++) {
  let t = performance.now();
  fillStandardNormal(out, k);
  ours = Math.min(ours, ((performance.now() - t) * 1e6) / n);
  t = performance.now();
  const x = tf.randomNormal([n], 0, 1, 'float32', k);
  await x.data();
  x.dispose();
  stock = Math.min(stock, ((performance.now() - t) * 1e6) / n);
}
const result = {
  date: new Date().toISOString(), cpu: os.cpus()[0]?.model, values: n,
  nsPerValue: { ziggurat: ours, tfRandomNormal: stock }, speedup: stock / ours,
};
console.log(JSON.stringify(result));
