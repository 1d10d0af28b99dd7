/**
 * Runs a hand-written WGSL compute shader on TensorFlow.js's WebGPU backend, inside the backend's own command
 * stream: the same device, buffer manager, command encoder, compute pass, pipeline cache and deferred submission as
 * the backend's kernels (`WebGPUBackend.runWebGPUProgram`), so fused kernels interleave with stock ones without a
 * flush. It differs from runWebGPUProgram in two ways the fused LR kernels need:
 *
 * - several outputs per dispatch (z and the backward factor of the LR forward, the two gradients of a filter);
 * - the shader is written whole (no generated prelude): shapes are compile-time constants, so the compiler folds
 *   the index arithmetic and unrolls the register tiles; only the seed travels as a uniform.
 *
 * Bindings: outputs first (`read_write`, 0 .. outputs-1), then inputs (`read`), then, if given, the uniform block.
 * Everything here uses members of the backend that TypeScript marks private; they are plain properties at run time
 * and stable within tfjs-backend-webgpu 4.x (checked against 4.22.0: `recordAndSubmit`).
 */
import { tf } from '../../tf.ts';

type DataType = 'float32' | 'int32';

/** The slice of the WebGPU API this file uses (the project compiles without @webgpu/types). */
interface GpuPipeline {
  getBindGroupLayout(index: number): unknown;
}
interface GpuComputePass {
  setPipeline(pipeline: GpuPipeline): void;
  setBindGroup(index: number, group: unknown): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
  end(): void;
}
interface GpuDevice {
  readonly features?: { has(name: string): boolean };
  createShaderModule(descriptor: { code: string; label?: string }): unknown;
  createComputePipeline(descriptor: { compute: { module: unknown; entryPoint: string }; layout: 'auto'; label?: string }): GpuPipeline;
  createBindGroup(descriptor: { layout: unknown; entries: { binding: number; resource: unknown }[] }): unknown;
  createQuerySet(descriptor: { type: 'timestamp'; count: number }): unknown;
  pushErrorScope(filter: 'validation'): void;
  popErrorScope(): Promise<{ message: string } | null>;
}

interface TensorData {
  dtype: DataType;
  shape: number[];
  resource?: unknown;
}

/** The members of tfjs-backend-webgpu's WebGPUBackend (4.22) that recordAndSubmit uses. */
export interface WebGPUBackendInternals {
  device: GpuDevice;
  tensorMap: { get(dataId: object): TensorData };
  commandEncoder: { beginComputePass(descriptor: object): GpuComputePass } | null;
  computePassEncoder: GpuComputePass | null;
  commandQueueOwnedIds: WeakSet<object>;
  dispatchCountInPass: number;
  pipelineCache: Record<string, GpuPipeline | Promise<GpuPipeline>>;
  activeTimers?: { name: string; query: Promise<number> }[] | null;
  supportTimestampQuery: boolean;
  querySet: unknown;
  querySetCount: number;
  makeTensorInfo(shape: number[], dtype: DataType): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  uploadToGPU(dataId: object): void;
  makeUniforms(uniforms: { type: string; data: number[] }[]): unknown;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  getQueryTime(): Promise<number>;
}

/** A whole WGSL shader and how to launch it. */
export interface FusedProgram {
  /** Names the program in profiles and error messages. */
  readonly name: string;
  /** Identifies the shader source: equal keys must mean equal code (shapes are baked into the code). */
  readonly key: string;
  /** Complete WGSL with entry point `main`. */
  readonly code: () => string;
  readonly dispatch: readonly [number, number, number];
}

export interface OutputSpec {
  readonly shape: readonly number[];
  readonly dtype?: DataType;
}

/** Unsigned 32-bit uniforms (the noise seed and the like), in declaration order. */
export type Uniforms = readonly { readonly type: 'uint32' | 'int32' | 'float32'; readonly data: readonly number[] }[];

const MAX_DISPATCH = 65535;

/** Shader compilation errors by program key; Dawn reports them asynchronously, the next run of the key throws. */
const compileErrors = new Map<string, string>();

/** Records one dispatch of `program` and returns its outputs as TensorInfos owned by the backend. */
export function runFusedProgram(
  backend: WebGPUBackendInternals,
  program: FusedProgram,
  inputs: readonly tf.TensorInfo[],
  outputs: readonly OutputSpec[],
  uniforms?: Uniforms,
): tf.TensorInfo[] {
  if (program.dispatch.some((d) => d > MAX_DISPATCH || d < 1 || !Number.isInteger(d))) {
    throw new Error(`${program.name}: dispatch ${program.dispatch.join('x')} exceeds the WebGPU limit of ${MAX_DISPATCH} per dimension`);
  }
  const results = outputs.map((o) => backend.makeTensorInfo([...o.shape], o.dtype ?? 'float32'));
  for (const r of results) backend.uploadToGPU(r.dataId);
  for (const input of inputs) backend.uploadToGPU(input.dataId);

  const key = `lrnet:${program.key}`;
  const error = compileErrors.get(key);
  if (error) throw new Error(`${program.name}: the shader failed to compile: ${error}`);
  let pipeline = backend.pipelineCache[key];
  if (!pipeline) {
    backend.device.pushErrorScope('validation');
    const module = backend.device.createShaderModule({ code: program.code(), label: program.name });
    pipeline = backend.device.createComputePipeline({ compute: { module, entryPoint: 'main' }, layout: 'auto', label: program.name });
    void backend.device.popErrorScope().then((e) => {
      if (e) compileErrors.set(key, e.message);
    });
    backend.pipelineCache[key] = pipeline;
  }
  if (pipeline instanceof Promise) throw new Error(`${program.name}: the pipeline is still compiling`);

  const binding = (t: tf.TensorInfo) => ({ buffer: backend.tensorMap.get(t.dataId).resource });
  const entries = [...results, ...inputs].map((t, i) => ({ binding: i, resource: binding(t) }));
  if (uniforms && uniforms.length > 0) {
    entries.push({ binding: entries.length, resource: backend.makeUniforms(uniforms.map((u) => ({ type: u.type, data: [...u.data] }))) as { buffer: unknown } });
  }
  for (const t of [...inputs, ...results]) backend.commandQueueOwnedIds.add(t.dataId);
  const bindGroup = backend.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });

  backend.ensureCommandEncoderReady();
  const timed = backend.activeTimers != null;
  if (timed && backend.supportTimestampQuery) {
    backend.endComputePassEncoder();
    backend.querySet ??= backend.device.createQuerySet({ type: 'timestamp', count: backend.querySetCount });
    backend.computePassEncoder = backend.commandEncoder!.beginComputePass({
      timestampWrites: { querySet: backend.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
    });
  } else if (!backend.computePassEncoder) {
    backend.computePassEncoder = backend.commandEncoder!.beginComputePass({});
  }
  const pass = backend.computePassEncoder!;
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(program.dispatch[0], program.dispatch[1], program.dispatch[2]);
  backend.dispatchCountInPass++;
  if (timed || backend.dispatchCountInPass >= Number(tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE'))) {
    backend.endComputePassEncoder();
    if (timed) backend.activeTimers!.push({ name: program.name, query: backend.getQueryTime() });
    else backend.submitQueue();
  }
  return results;
}

/** Splits `count` work items into workgroups of `size`, spreading over y when x would exceed the limit. */
export function dispatch1d(count: number, size: number): [number, number] {
  const groups = Math.ceil(count / size);
  if (groups <= MAX_DISPATCH) return [groups, 1];
  const y = Math.ceil(groups / MAX_DISPATCH);
  return [Math.ceil(groups / y), y];
}
