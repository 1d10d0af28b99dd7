/**
 * The fused LR layer kernels without subgroups (devices that lack the feature) against the stock-op reference
 * with the same noise, on the cases of webgpu-lr.test.ts.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { useSubgroups } from '../engine/backends/webgpu/device.ts';
import { useWebgpu, checkLrLayerCase, LR_LAYER_CASES } from './helpers/webgpu.ts';

describe('fused LR layers without subgroups match the stock ops with the same noise', () => {
  const gpu = useWebgpu();
  beforeAll(() => useSubgroups(false));
  afterAll(() => useSubgroups(true));

  for (const c of LR_LAYER_CASES.filter((k) => !k.wide)) it(`${c.name}: forward and the gradients of x, mean and variance`, async (ctx) => {
    if (!gpu.available) return ctx.skip();
    const errors = await checkLrLayerCase(c);
    for (const [name, error] of Object.entries(errors)) expect(error, name).toBeLessThan(1e-4);
  }, 120_000);
});
