/**
 * Picks and initializes the TensorFlow.js backend a run trains on, and says which one and on what adapter.
 *
 * `auto` prefers, in order: native TensorFlow (tfjs-node-gpu / tfjs-node, when installed and loadable), WebGPU on
 * a hardware adapter, wasm, cpu. A software WebGPU adapter (lavapipe, SwiftShader) is skipped by `auto` because
 * it is slower than wasm on the same CPU; ask for `webgpu` explicitly to use it anyway.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../tf.ts';
import { enableFusedLrKernels, requestWebgpuSubgroups } from './webgpu/index.ts';

export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export type BackendChoice = BackendName | 'auto';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'];

/** What a run reports about where it computed. */
export interface BackendInfo {
  readonly name: BackendName;
  /** The TensorFlow.js backend name actually active (e.g. "tensorflow", "webgpu", "wasm", "cpu"). */
  readonly tfBackend: string;
  /** Human-readable device: GPU adapter description or CPU model. */
  readonly adapter: string;
  /** Whether the adapter is a real GPU (false for CPU backends and software GPU adapters). */
  readonly hardwareAccelerated: boolean;
  /** Why other backends were not used when `auto` chose. */
  readonly notes: readonly string[];
}

export class BackendError extends Error {
  override name = 'BackendError';
}

function cpuDescription(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model?.trim() ?? 'unknown CPU'} (${cpus.length} cores)`;
}

async function tryTensorflow(): Promise<BackendInfo> {
  const errors: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(pkg);
      if (!(await tf.setBackend('tensorflow'))) throw new Error('setBackend("tensorflow") returned false');
      await tf.ready();
      const gpu = pkg.endsWith('-gpu');
      return {
        name: 'tensorflow', tfBackend: 'tensorflow', adapter: gpu ? `CUDA via ${pkg}` : `${cpuDescription()} via ${pkg}`,
        hardwareAccelerated: gpu, notes: [],
      };
    } catch (error) {
      errors.push(`${pkg}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new BackendError(`native TensorFlow is not available (${errors.join('; ')}); install @tensorflow/tfjs-node or use --backend wasm`);
}

/** Matches adapters that run on the CPU: Mesa's lavapipe/llvmpipe, SwiftShader, Microsoft Basic Render. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|basic render|software/i;

let webgpuAdapterPromise: Promise<{ description: string; software: boolean } | undefined> | undefined;

/** Installs Dawn's WebGPU globals (from the `webgpu` package) once and asks for an adapter. */
async function probeWebgpu(): Promise<{ description: string; software: boolean } | undefined> {
  webgpuAdapterPromise ??= (async () => {
    let dawn: { create: (flags: string[]) => unknown; globals: Record<string, unknown> };
    try {
      dawn = (await import('webgpu')) as unknown as typeof dawn;
    } catch {
      return undefined;
    }
    const g = globalThis as Record<string, unknown>;
    if (!(g.navigator as { gpu?: unknown } | undefined)?.gpu) {
      Object.assign(globalThis, dawn.globals);
      const gpu = dawn.create([]);
      if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
      else g.navigator = { gpu };
    }
    type Adapter = { info?: { vendor?: string; architecture?: string; description?: string; device?: string }; isFallbackAdapter?: boolean };
    const gpu = (g.navigator as { gpu: { requestAdapter: (o?: object) => Promise<Adapter | null> } }).gpu;
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return undefined;
    const info = adapter.info ?? {};
    const description = [info.vendor, info.architecture, info.description || info.device].filter(Boolean).join(' ') || 'unknown adapter';
    return { description, software: Boolean(adapter.isFallbackAdapter) || SOFTWARE_ADAPTER.test(description) };
  })();
  return webgpuAdapterPromise;
}

/**
 * Whether this machine can have a hardware GPU adapter at all. On Linux a GPU driver shows up as a device node:
 * /dev/dri/renderD* (Mesa's drivers, nouveau, amdgpu, i915), /dev/nvidia0... (NVIDIA's driver), /dev/dxg (WSL2).
 * Without one, Dawn can only find a software renderer, which `auto` skips anyway, and asking for it costs time,
 * prints Dawn's "artificially reduced" limit warnings and may start a shader cache. Other systems are probed.
 */
function mayHaveHardwareGpu(): boolean {
  if (process.platform !== 'linux') return true;
  return hasEntry('/dev/dri', /^renderD\d+$/) || hasEntry('/dev', /^(nvidia\d+|dxg)$/);
}

/** Whether `folder` lists a name matching `pattern` (false when it cannot be read). */
function hasEntry(folder: string, pattern: RegExp): boolean {
  try {
    return readdirSync(folder).some((name) => pattern.test(name));
  } catch {
    return false;
  }
}

/**
 * Points the GPU drivers' shader caches into `folder` (lrnet's data folder, say) instead of ~/.cache, unless the
 * user chose a place: Mesa (lavapipe, radv, anv) reads MESA_SHADER_CACHE_DIR and creates the folder itself, NVIDIA's
 * driver reads __GL_SHADER_DISK_CACHE_PATH. Call it on the main thread before any backend starts: the drivers read
 * the process environment, which only the main thread's process.env writes through to (workers get a copy).
 */
export function keepGpuShaderCachesIn(folder: string): void {
  const env = process.env;
  if (env['MESA_SHADER_CACHE_DIR'] === undefined && env['MESA_SHADER_CACHE_DISABLE'] === undefined) {
    env['MESA_SHADER_CACHE_DIR'] = path.join(folder, 'mesa');
  }
  if (env['__GL_SHADER_DISK_CACHE_PATH'] === undefined && env['__GL_SHADER_DISK_CACHE'] === undefined) {
    env['__GL_SHADER_DISK_CACHE_PATH'] = path.join(folder, 'nvidia');
  }
}

/** Creates the NVIDIA shader cache folder, which (unlike Mesa) the driver expects to exist; quietly, at worst no cache. */
function createNvidiaCacheFolder(): void {
  const folder = process.env['__GL_SHADER_DISK_CACHE_PATH'];
  if (folder === undefined || process.platform !== 'linux' || !hasEntry('/dev', /^nvidia\d+$/)) return;
  try {
    mkdirSync(folder, { recursive: true });
  } catch {
    // The driver falls back to no disk cache.
  }
}

let fusedKernels = false;

/**
 * Whether LR layers run through the fused WebGPU kernels (engine/backends/webgpu): on when the webgpu backend is active,
 * unless LRNET_FUSED_KERNELS=0 or `useFusedKernels(false)` asked for the stock TensorFlow.js ops.
 */
export function fusedKernelsActive(): boolean {
  return fusedKernels && tf.getBackend() === 'webgpu';
}

/** Turns the fused WebGPU kernels off (stock ops, e.g. to compare backends op for op) or back on. */
export function useFusedKernels(enabled: boolean): void {
  fusedKernels = enabled && tf.getBackend() === 'webgpu' && enableFusedLrKernels();
}

async function tryWebgpu(requireHardware: boolean): Promise<BackendInfo> {
  if (requireHardware && !mayHaveHardwareGpu()) {
    throw new BackendError('no GPU device (/dev/dri/renderD*, /dev/nvidia*): WebGPU not tried');
  }
  createNvidiaCacheFolder();
  // Subgroup operations make the fused kernels several times faster where the adapter has them.
  await requestWebgpuSubgroups();
  const adapter = await probeWebgpu();
  if (!adapter) {
    throw new BackendError('no WebGPU adapter: the optional `webgpu` package is missing or found no Vulkan/Metal/D3D12 device');
  }
  if (requireHardware && adapter.software) {
    throw new BackendError(`WebGPU adapter "${adapter.description}" is a software renderer, slower than wasm`);
  }
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new BackendError('the WebGPU backend failed to initialize');
  await tf.ready();
  useFusedKernels(process.env['LRNET_FUSED_KERNELS'] !== '0');
  return { name: 'webgpu', tfBackend: 'webgpu', adapter: adapter.description, hardwareAccelerated: !adapter.software, notes: [] };
}

async function tryWasm(): Promise<BackendInfo> {
  await import('@tensorflow/tfjs-backend-wasm');
  const { registerWasmTrainingKernels } = await import('./wasm/index.ts');
  registerWasmTrainingKernels();
  if (!(await tf.setBackend('wasm'))) throw new BackendError('the wasm backend failed to initialize');
  await tf.ready();
  return { name: 'wasm', tfBackend: 'wasm', adapter: `${cpuDescription()}, WebAssembly SIMD`, hardwareAccelerated: false, notes: [] };
}

async function tryCpu(): Promise<BackendInfo> {
  if (!(await tf.setBackend('cpu'))) throw new BackendError('the cpu backend failed to initialize');
  await tf.ready();
  return { name: 'cpu', tfBackend: 'cpu', adapter: `${cpuDescription()}, pure JavaScript`, hardwareAccelerated: false, notes: [] };
}

/** Initializes the chosen backend (or the fastest that works for `auto`) and makes it TensorFlow.js's active one. */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  switch (choice) {
    case 'tensorflow':
      return tryTensorflow();
    case 'webgpu':
      return tryWebgpu(false);
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return tryCpu();
    case 'auto': {
      const notes: string[] = [];
      for (const attempt of [tryTensorflow, () => tryWebgpu(true), tryWasm, tryCpu]) {
        try {
          const info = await attempt();
          return { ...info, notes };
        } catch (error) {
          notes.push((error as Error).message);
        }
      }
      throw new BackendError(`no backend could be initialized: ${notes.join('; ')}`);
    }
    default:
      throw new BackendError(`unknown backend "${String(choice)}"; choose one of ${BACKEND_CHOICES.join(', ')}`);
  }
}
