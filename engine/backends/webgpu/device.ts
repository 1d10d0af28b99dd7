/**
 * The WebGPU device features the fused kernels can use beyond what TensorFlow.js requests.
 *
 * tfjs-backend-webgpu 4.22 creates its device with 'timestamp-query' only. The fused convolutions run 2-4x faster
 * on lavapipe with 'subgroups' (see lr-kernels/), so `requestWebgpuSubgroups()` makes Dawn adapters add that
 * feature (when they offer it) to every device they create. It must run before the webgpu backend initializes
 * (before `initBackend('webgpu')` or `initBackend('auto')`); later it changes nothing, and the kernels then use
 * their variants without subgroups. It only adds a feature: tfjs and every other kernel behave as before.
 */
import type { WebGPUBackendInternals } from './runner.ts';

interface DawnAdapter {
  readonly features: { has(name: string): boolean };
  readonly info?: { subgroupMinSize?: number; subgroupMaxSize?: number };
  requestDevice(descriptor?: { requiredFeatures?: Iterable<string> }): Promise<unknown>;
}

const PATCHED = Symbol.for('lrnet.webgpu.subgroups');
/** Subgroup size of the adapters that got 'subgroups', when it is fixed (min == max). */
let fixedSubgroupSize: number | undefined;

/**
 * Makes Dawn's adapters request 'subgroups' for the devices they create. Returns false when the optional `webgpu`
 * package is missing. Idempotent.
 */
export async function requestWebgpuSubgroups(): Promise<boolean> {
  let dawn: { globals?: { GPUAdapter?: { prototype: DawnAdapter & { [PATCHED]?: boolean } } } };
  try {
    dawn = (await import('webgpu')) as unknown as typeof dawn;
  } catch {
    return false;
  }
  const proto = dawn.globals?.GPUAdapter?.prototype;
  if (!proto) return false;
  if (proto[PATCHED]) return true;
  const original = proto.requestDevice;
  proto.requestDevice = function requestDevice(this: DawnAdapter, descriptor = {}) {
    const features = [...(descriptor.requiredFeatures ?? [])];
    if (this.features.has('subgroups') && !features.includes('subgroups')) {
      features.push('subgroups');
      const { subgroupMinSize: min, subgroupMaxSize: max } = this.info ?? {};
      fixedSubgroupSize = min !== undefined && min === max ? min : undefined;
    }
    return original.call(this, { ...descriptor, requiredFeatures: features });
  };
  proto[PATCHED] = true;
  return true;
}

let subgroupsEnabled = true;

/** Lets the kernels use subgroups when the device has them (default), or not (tests compare both variants). */
export function useSubgroups(enabled: boolean): void {
  subgroupsEnabled = enabled;
}

/** The subgroup size the kernels may rely on for this backend's device, or undefined (no subgroup kernels). */
export function subgroupSizeOf(backend: WebGPUBackendInternals): number | undefined {
  if (!subgroupsEnabled || !backend.device.features?.has('subgroups')) return undefined;
  return fixedSubgroupSize !== undefined && fixedSubgroupSize >= 4 && fixedSubgroupSize <= 128 ? fixedSubgroupSize : undefined;
}
