/**
 * The LR noise generator (engine/backends/webgpu/philox.ts): Philox4x32-10 against Random123's published known-answer
 * vectors, the element-to-counter mapping, the normal distribution, and the WGSL copy on the GPU against the
 * TypeScript one (raw words bit for bit, normals to float32 rounding).
 */
import { describe, it, expect } from 'vitest';
import { tf } from '../engine/tf.ts';
import { philox4x32, philoxNormal, philoxNormalGroup, fillPhiloxNormal } from '../engine/backends/webgpu/philox.ts';
import { philoxNormalTensor } from '../engine/backends/webgpu/lr-ops.ts';
import { useWebgpu } from './helpers/webgpu.ts';

describe('Philox4x32-10 on the CPU', () => {
  it('matches the Random123 known-answer vectors', () => {
    expect(philox4x32([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]))
      .toEqual([0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    expect(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))
      .toEqual([0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
  });

  it('gives element i the value of its group i/4 and lane i%4, from any offset', () => {
    const all = philoxNormal(37, 99);
    const group = philoxNormalGroup(99, 5);
    for (let lane = 0; lane < 4; lane++) expect(all[20 + lane]).toBe(Math.fround(group[lane]!));
    const tail = new Float32Array(30);
    fillPhiloxNormal(tail, 99, 7);
    expect(Array.from(tail)).toEqual(Array.from(all.subarray(7)));
    expect(philoxNormal(8, 100)).not.toEqual(philoxNormal(8, 99));
  });

  it('draws standard normals', () => {
    const n = 200_000;
    const v = philoxNormal(n, 12345);
    let sum = 0;
    let sq = 0;
    let tail = 0;
    for (const x of v) {
      sum += x;
      sq += x * x;
      if (Math.abs(x) > 1.96) tail++;
    }
    const mean = sum / n;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(sq / n - mean * mean - 1)).toBeLessThan(0.015);
    expect(Math.abs(tail / n - 0.05)).toBeLessThan(0.003);
    expect(v.every(Number.isFinite)).toBe(true);
  });
});

describe('Philox4x32-10 on WebGPU', () => {
  const gpu = useWebgpu();

  it('reproduces the CPU words exactly and the normals to float32 rounding', async (ctx) => {
    if (!gpu.available) return ctx.skip();
    for (const [shape, seed] of [[[4, 7, 7, 32], 1], [[3, 512], 0xdeadbeef], [[2, 28, 28, 32], 7]] as const) {
      const size = shape.reduce((a, b) => a * b, 1);
      const { normal, bits } = philoxNormalTensor(shape, seed);
      const gpu = (await normal.data()) as Float32Array;
      const words = (await bits!.data()) as Int32Array;
      tf.dispose([normal, bits!]);
      const cpu = philoxNormal(size, seed);
      let worst = 0;
      for (let i = 0; i < size; i++) worst = Math.max(worst, Math.abs(gpu[i]! - cpu[i]!) / Math.max(1, Math.abs(cpu[i]!)));
      expect(worst).toBeLessThan(2e-6);
      for (let group = 0; group < size / 4; group += 97) {
        const expected = philox4x32([group, 0, 0, 0], [seed, 0]);
        expect(Array.from(words.subarray(4 * group, 4 * group + 4), (w) => w >>> 0)).toEqual(expected);
      }
    }
  }, 60_000);
});
