/**
 * The training kernels supplied for the wasm backend (engine/backends/wasm/) against the cpu backend on
 * the same random inputs, kernel by kernel on the conv shapes of the MNIST, CIFAR-10 VGG and ResNet-18 nets (small
 * batch and channel counts so the cpu reference stays fast), plus the gradients of a small conv net end to end.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { tf } from '../engine/tf.ts';
import '@tensorflow/tfjs-backend-wasm';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels, wasmKernelTuning } from '../engine/backends/wasm/index.ts';
import { randomTensor } from './helpers/numeric.ts';

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

const TOL = 1e-4;

/** max |a - b| / max |a| (the cpu result a is the reference). */
function relError(ref: ArrayLike<number>, got: ArrayLike<number>): number {
  expect(got.length).toBe(ref.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num = Math.max(num, Math.abs(ref[i] - got[i]));
    den = Math.max(den, Math.abs(ref[i]));
  }
  return den === 0 ? num : num / den;
}

interface Result {
  shape: number[];
  values: Float32Array;
}

/** Runs f on the cpu and then on the wasm backend (f builds its inputs itself, so they live on that backend). */
async function onBoth(f: () => tf.Tensor | tf.Tensor[]): Promise<{ cpu: Result[]; wasm: Result[] }> {
  const run = (): Result[] => {
    const out = tf.tidy(f);
    const list = Array.isArray(out) ? out : [out];
    const res = list.map((t) => ({ shape: t.shape, values: Float32Array.from(t.dataSync()) }));
    tf.dispose(list);
    return res;
  };
  await tf.setBackend('cpu');
  const cpu = run();
  await tf.setBackend('wasm');
  const wasm = run();
  return { cpu, wasm };
}

async function expectSame(f: () => tf.Tensor | tf.Tensor[], tol = TOL): Promise<void> {
  const { cpu, wasm } = await onBoth(f);
  expect(wasm.length).toBe(cpu.length);
  cpu.forEach((c, i) => {
    expect(wasm[i].shape).toEqual(c.shape);
    expect(relError(c.values, wasm[i].values)).toBeLessThanOrEqual(tol);
  });
}

function runKernel(name: string, inputs: Record<string, tf.Tensor>, attrs: object): tf.Tensor {
  return tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

let previousBackend = 'cpu';

beforeAll(async () => {
  previousBackend = tf.getBackend() ?? 'cpu';
  registerWasmTrainingKernels();
  registerWasmTrainingKernels(); // idempotent
  expect(await tf.setBackend('wasm')).toBe(true);
  await tf.ready();
});

afterAll(async () => {
  await tf.setBackend(previousBackend);
});

interface ConvCase {
  name: string;
  x: Shape4;
  k: [number, number];
  co: number;
  strides: number | [number, number];
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  /** force a multi-chunk filter gradient (bytes of dy per chunk) */
  chunkBytes?: number;
}

// Shapes of the three nets (channels reduced, batch 2) plus padding/stride corner cases.
const convCases: ConvCase[] = [
  { name: 'MNIST conv1 5x5 1->32 28px same', x: [2, 28, 28, 1], k: [5, 5], co: 32, strides: 1, pad: 'same' },
  { name: 'MNIST conv2 5x5 32->64 14px same', x: [2, 14, 14, 32], k: [5, 5], co: 64, strides: 1, pad: 'same' },
  { name: 'MNIST conv2, multi-chunk filter grad', x: [2, 14, 14, 32], k: [5, 5], co: 64, strides: 1, pad: 'same', chunkBytes: 3000 },
  { name: 'CIFAR conv1 3x3 3->16 32px same', x: [2, 32, 32, 3], k: [3, 3], co: 16, strides: 1, pad: 'same' },
  { name: 'CIFAR 3x3 32->32 16px same', x: [2, 16, 16, 32], k: [3, 3], co: 32, strides: 1, pad: 'same' },
  { name: 'CIFAR 3x3 64->64 8px same, multi-chunk', x: [2, 8, 8, 64], k: [3, 3], co: 64, strides: 1, pad: 'same', chunkBytes: 5000 },
  { name: 'ResNet stem 7x7/2 3->16 32px same', x: [2, 32, 32, 3], k: [7, 7], co: 16, strides: 2, pad: 'same' },
  { name: 'ResNet 3x3/2 16->32 16px same', x: [2, 16, 16, 16], k: [3, 3], co: 32, strides: 2, pad: 'same' },
  { name: 'ResNet shortcut 1x1/2 16->32 16px same', x: [2, 16, 16, 16], k: [1, 1], co: 32, strides: 2, pad: 'same' },
  { name: 'ResNet 3x3/2 odd size 9px same, multi-chunk', x: [2, 9, 9, 8], k: [3, 3], co: 12, strides: 2, pad: 'same', chunkBytes: 200 },
  { name: '3x3/2 valid 9px', x: [2, 9, 9, 8], k: [3, 3], co: 12, strides: 2, pad: 'valid' },
  { name: '3x3/2 valid 10px (unused last row)', x: [2, 10, 10, 4], k: [3, 3], co: 6, strides: 2, pad: 'valid' },
  { name: '5x5/1 valid', x: [2, 10, 10, 4], k: [5, 5], co: 6, strides: 1, pad: 'valid' },
  { name: '7x7/1 same', x: [1, 9, 9, 3], k: [7, 7], co: 5, strides: 1, pad: 'same' },
  { name: '1x1/1', x: [2, 6, 6, 8], k: [1, 1], co: 4, strides: 1, pad: 'valid' },
  { name: 'non-square 3x2, strides [2,1]', x: [3, 12, 7, 5], k: [3, 2], co: 6, strides: [2, 1], pad: 'same' },
  { name: 'stride 3 valid, kernel 2 < stride', x: [2, 11, 11, 3], k: [2, 2], co: 4, strides: 3, pad: 'valid' },
  { name: 'numeric pad 1 with rounding', x: [2, 8, 8, 4], k: [3, 3], co: 5, strides: 2, pad: 1, dimRoundingMode: 'floor' },
  {
    name: 'explicit pad',
    x: [2, 7, 8, 3],
    k: [3, 3],
    co: 4,
    strides: 2,
    pad: [
      [0, 0],
      [1, 2],
      [2, 0],
      [0, 0],
    ],
  },
];

describe('wasm training kernels: registration', () => {
  it('registers Conv2DBackpropFilter for wasm and keeps the originals runnable', () => {
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    expect(tf.getBackend()).toBe('wasm');
  });

  it('leaves no wasm memory behind', () => {
    const backend = tf.backend() as BackendWasm;
    const before = backend.dataIdMap.numDataIds();
    tf.tidy(() => {
      const x = randomTensor([2, 9, 9, 8], 1) as tf.Tensor4D;
      const w = randomTensor([3, 3, 8, 6], 2) as tf.Tensor4D;
      const dy = randomTensor([2, 5, 5, 6], 3) as tf.Tensor4D;
      runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 2, pad: 'same', dataFormat: 'NHWC', filterShape: w.shape });
      runKernel('Conv2DBackpropInput', { dy, filter: w }, { strides: 2, pad: 'same', dataFormat: 'NHWC', inputShape: x.shape });
      tf.matMul(randomTensor([40, 30], 4), randomTensor([50, 30], 5), false, true);
      tf.matMul(randomTensor([3, 30, 40], 4), randomTensor([3, 30, 50], 5), true, false);
    });
    expect(backend.dataIdMap.numDataIds()).toBe(before);
  });
});

describe('wasm training kernels vs cpu: Conv2DBackpropFilter and Conv2DBackpropInput', () => {
  for (const c of convCases) {
    it(c.name, async () => {
      const filterShape: Shape4 = [c.k[0], c.k[1], c.x[3], c.co];
      const info = tf.backend_util.computeConv2DInfo(c.x, filterShape, c.strides, 1, c.pad, c.dimRoundingMode);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: c.dimRoundingMode };
      const saved = wasmKernelTuning.filterGradChunkBytes;
      if (c.chunkBytes != null) wasmKernelTuning.filterGradChunkBytes = c.chunkBytes;
      try {
        await expectSame(() => {
          const x = randomTensor(c.x, 11);
          const dy = randomTensor(info.outShape, 12);
          const w = randomTensor(filterShape, 13);
          return [
            runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape }),
            runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: c.x }),
          ];
        });
      } finally {
        wasmKernelTuning.filterGradChunkBytes = saved;
      }
    });
  }

  it('NCHW data format', async () => {
    const x: Shape4 = [2, 3, 9, 9]; // NCHW
    const filterShape: Shape4 = [3, 3, 3, 5];
    const attrs = { strides: 2, pad: 'same', dataFormat: 'NCHW' };
    const info = tf.backend_util.computeConv2DInfo(x, filterShape, 2, 1, 'same', undefined, false, 'channelsFirst');
    await expectSame(() => {
      const xs = randomTensor(x, 21);
      const dy = randomTensor(info.outShape, 22);
      return [
        runKernel('Conv2DBackpropFilter', { x: xs, dy }, { ...attrs, filterShape }),
        runKernel('Conv2DBackpropInput', { dy, filter: randomTensor(filterShape, 23) }, { ...attrs, inputShape: x }),
      ];
    });
  });
});

describe('wasm training kernels vs cpu: matmul, tile, reductions, pooling gradients', () => {
  const matmuls: [number[], number[], boolean, boolean][] = [
    [[64, 300], [300, 50], false, false],
    [[300, 64], [300, 50], true, false], // dense dW = x^T dy
    [[64, 300], [50, 300], false, true], // dense dx = dy W^T
    [[300, 64], [50, 300], true, true],
    [[3, 40, 300], [3, 300, 50], false, false],
    [[3, 300, 40], [1, 50, 300], true, true],
    [[1, 40, 300], [3, 50, 300], false, true],
    [[4, 2, 3], [4, 3, 2], false, false], // tiny: original kernel
  ];
  for (const [a, b, ta, tb] of matmuls) {
    it(`BatchMatMul and _FusedMatMul ${JSON.stringify(a)} x ${JSON.stringify(b)} tA=${ta} tB=${tb}`, async () => {
      const n = tb ? b[b.length - 2] : b[b.length - 1];
      await expectSame(() => [
        tf.matMul(randomTensor(a, 1), randomTensor(b, 2), ta, tb),
        tf.fused.matMul({ a: randomTensor(a, 1), b: randomTensor(b, 2), transposeA: ta, transposeB: tb, bias: randomTensor([n], 3), activation: 'relu' }),
      ]);
    });
  }

  it('Tile', async () => {
    await expectSame(() => [
      tf.tile(randomTensor([1, 1, 1, 5], 1), [2, 3, 4, 1]),
      tf.tile(randomTensor([2, 1, 3], 2), [3, 4, 2]),
      tf.tile(randomTensor([3], 3), [4]),
      tf.tile(randomTensor([2, 3], 4), [0, 2]),
      tf.tile(tf.tensor2d([[1, 2], [3, 4]], undefined, 'int32'), [2, 3]).toFloat(),
      tf.tile(tf.tensor1d([1, 0, 1], 'bool'), [3]).toFloat(),
    ]);
  });

  it('Sum and Mean over leading axes (and the other reductions they fall back for)', async () => {
    await expectSame(() => {
      const x = randomTensor([4, 5, 6, 7], 1);
      return [
        tf.sum(x, [0, 1, 2]),
        tf.sum(x, [2, 0, 1], true),
        tf.sum(x, 0),
        tf.sum(x, -1),
        tf.sum(x, [1, 2]),
        tf.sum(x),
        tf.mean(x, [0, 1, 2]),
        tf.mean(x, [0, 1], true),
        tf.moments(x, [0, 1, 2]).variance,
        tf.sum(tf.tensor2d([[1, 2], [3, 4]], undefined, 'int32'), 0).toFloat(),
      ];
    });
  });

  const pools: [number, number, number, 'same' | 'valid'][] = [
    [28, 2, 2, 'same'], // MNIST
    [9, 2, 2, 'same'],
    [9, 3, 2, 'same'], // ResNet stem pool
    [9, 3, 2, 'valid'],
    [7, 3, 1, 'same'],
    [8, 8, 1, 'valid'], // global
  ];
  for (const [h, f, s, pad] of pools) {
    it(`MaxPoolGrad and AvgPoolGrad ${h}px window ${f} stride ${s} ${pad}`, async () => {
      await expectSame(() => {
        const x = randomTensor([2, h, h, 6], 1) as tf.Tensor4D;
        const yShape = tf.maxPool(x, f, s, pad).shape;
        const g = randomTensor(yShape, 2);
        const maxGrad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, f, s, pad), g)))(x);
        const avgGrad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.avgPool(t as tf.Tensor4D, f, s, pad), g)))(x);
        return [maxGrad, avgGrad];
      });
    });
  }

  it('MaxPoolGrad with ties picks the first maximum like the cpu backend', async () => {
    await expectSame(() => {
      const x = tf.round(tf.mul(randomTensor([2, 6, 6, 3], 1), 1.5)) as tf.Tensor4D; // many equal values
      const g = randomTensor([2, 6, 6, 3], 2);
      return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, 3, 1, 'same'), g)))(x);
    });
  });
});

describe('wasm vs cpu: gradients of a small LR-style conv net', () => {
  it('tf.grads w.r.t. input and filters agree', async () => {
    const B = 3;
    const shapes = {
      m1: [5, 5, 1, 8],
      v1: [5, 5, 1, 8],
      m2: [3, 3, 8, 12],
      v2: [3, 3, 8, 12],
      sc: [1, 1, 8, 12],
      w3: [4 * 4 * 12, 10],
    };
    await expectSame(() => {
      const x = randomTensor([B, 14, 14, 1], 1);
      const params = Object.values(shapes).map((s, i) => tf.mul(randomTensor(s, 100 + i), 0.3));
      const noise1 = randomTensor([B, 14, 14, 8], 7);
      const noise2 = randomTensor([B, 4, 4, 12], 8);
      const labels = tf.oneHot(tf.tensor1d([1, 4, 7], 'int32'), 10);
      const lrConv = (t: tf.Tensor4D, m: tf.Tensor, v: tf.Tensor, stride: number, noise: tf.Tensor) => {
        const mean = tf.conv2d(t, m as tf.Tensor4D, stride, 'same');
        const variance = tf.conv2d(tf.square(t), tf.abs(v) as tf.Tensor4D, stride, 'same');
        return tf.add(mean, tf.mul(tf.sqrt(tf.add(variance, 1e-4)), noise));
      };
      const bn = (t: tf.Tensor, seed: number) => {
        const c = t.shape[3] as number;
        const { mean, variance } = tf.moments(t, [0, 1, 2]);
        // (offset and scale given: tfjs 4.22's batchNorm gradient fails on an undefined one)
        return tf.batchNorm(t, mean, variance, tf.mul(randomTensor([c], seed), 0.1), tf.add(tf.mul(randomTensor([c], seed + 1), 0.2), 1), 1e-3);
      };
      const loss = (input: tf.Tensor, m1: tf.Tensor, v1: tf.Tensor, m2: tf.Tensor, v2: tf.Tensor, sc: tf.Tensor, w3: tf.Tensor) => {
        let h = tf.relu(bn(lrConv(input as tf.Tensor4D, m1, v1, 1, noise1), 30)) as tf.Tensor4D; // [B,14,14,8]
        h = tf.maxPool(h, 2, 2, 'same'); // [B,7,7,8]
        const main = lrConv(h, m2, v2, 2, noise2); // [B,4,4,12], stride 2
        const shortcut = tf.conv2d(h, sc as tf.Tensor4D, 2, 'same');
        const r = tf.relu(bn(tf.add(main, shortcut), 40));
        const logits = tf.matMul(tf.reshape(r, [B, 4 * 4 * 12]), w3);
        return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
      };
      const grads = tf.grads(loss)([x, ...params]);
      return [loss(x, ...(params as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor])), ...grads];
    });
  });
});
