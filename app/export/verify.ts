/**
 * Runs each written format with its real consumer and compares the logits with the app's own discrete net
 * (`discreteLogits`): the packed files through `unpack` and TensorFlow.js ops, the C sources through gcc with the
 * strict flags, the ONNX file through onnxruntime-node, the tfjs files through `tf.loadLayersModel`.
 *
 * A consumer that cannot run (no compiler, a file it rejects) yields a failed result with the reason, never an
 * exception: the export is then marked failed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tf } from '../../engine/tf.ts';
import {
  type ExportFormatName,
  type ExportGraph,
  type VerificationResultV1,
  graphLogits,
  tfjsFileHandler,
  unpack,
  C_FLAGS,
  C_MAIN_SOURCE,
  C_RUNTIME_SOURCE,
  PACKED_MANIFEST_FILE,
  PACKED_BIN_FILE,
  ONNX_FILE,
} from '../../engine/export/index.ts';

/** Images the formats are checked on, with the reference logits. */
export interface VerificationSet {
  readonly count: number;
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  /** count x h x w x c normalized float32 inputs. */
  readonly inputs: Float32Array;
  /** The same images' raw bytes. */
  readonly pixels: Uint8Array;
  readonly labels: Uint8Array;
  /** count x classes logits of discreteLogits. */
  readonly reference: Float32Array;
}

/** Pass bound for formats computed by float32 libraries (packed via tfjs ops, ONNX Runtime, TensorFlow.js). */
export const FLOAT_TOLERANCE = 1e-4;
/**
 * Pass bound for the C runtime: its discrete layers sum in another order than any library (per 32-weight word and
 * sign), so it gets 10x the float bound; the report gives the measured difference.
 */
export const C_TOLERANCE = 1e-3;

const BATCH = 256;

function argmax(values: Float32Array, offset: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (values[offset + j]! > values[offset + best]!) best = j;
  return best;
}

/** Compares a consumer's logits with the reference. */
export function compareLogits(
  set: VerificationSet,
  got: Float32Array,
  consumer: string,
  tolerance: number,
  seconds: number,
  details?: Record<string, unknown>,
): VerificationResultV1 {
  const k = set.numClasses;
  if (got.length !== set.count * k) {
    return failure(consumer, set, tolerance, seconds, `returned ${got.length} logits for ${set.count} images x ${k} classes`);
  }
  let maxAbsDiff = 0;
  let agree = 0;
  let correct = 0;
  for (let i = 0; i < set.count; i++) {
    for (let j = 0; j < k; j++) {
      const d = Math.abs(got[i * k + j]! - set.reference[i * k + j]!);
      if (!(d <= maxAbsDiff)) maxAbsDiff = d; // NaN sticks
    }
    const top = argmax(got, i * k, k);
    if (top === argmax(set.reference, i * k, k)) agree++;
    if (top === set.labels[i]) correct++;
  }
  const passed = agree === set.count && maxAbsDiff <= tolerance;
  return {
    consumer, passed, images: set.count, top1Agreement: set.count > 0 ? agree / set.count : 1, top1Disagreements: set.count - agree,
    maxAbsDiff, tolerance, accuracy: set.count > 0 ? correct / set.count : 0, seconds,
    ...(passed ? {} : { error: agree < set.count ? `${set.count - agree} of ${set.count} images changed their top-1 class` : `max |logit difference| ${maxAbsDiff.toExponential(3)} exceeds ${tolerance}` }),
    ...(details ? { details } : {}),
  };
}

function failure(consumer: string, set: VerificationSet, tolerance: number, seconds: number, error: string): VerificationResultV1 {
  return {
    consumer, passed: false, images: set.count, top1Agreement: 0, top1Disagreements: set.count, maxAbsDiff: Number.POSITIVE_INFINITY,
    tolerance, accuracy: 0, seconds, error,
  };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs `run` on batches of the verification inputs (NHWC tensors) and concatenates the logits. */
async function batched(set: VerificationSet, run: (x: tf.Tensor4D) => tf.Tensor): Promise<Float32Array> {
  const [h, w, c] = set.inputShape;
  const per = h * w * c;
  const out = new Float32Array(set.count * set.numClasses);
  for (let start = 0; start < set.count; start += BATCH) {
    const n = Math.min(BATCH, set.count - start);
    const x = tf.tensor4d(set.inputs.subarray(start * per, (start + n) * per), [n, h, w, c]);
    try {
      const y = run(x);
      out.set(await y.data() as Float32Array, start * set.numClasses);
      y.dispose();
    } finally {
      x.dispose();
    }
  }
  return out;
}

/** Whether two graphs hold the same weights, scales, shifts and biases (bit for bit). */
function sameGraphData(a: ExportGraph, b: ExportGraph): string | undefined {
  if (a.ops.length !== b.ops.length) return `${b.ops.length} layers read back, ${a.ops.length} written`;
  for (let i = 0; i < a.ops.length; i++) {
    const x = a.ops[i]! as unknown as Record<string, unknown>;
    const y = b.ops[i]! as unknown as Record<string, unknown>;
    if (x.op !== y.op) return `layer ${i} is ${String(y.op)}, written as ${String(x.op)}`;
    for (const key of ['weights', 'scale', 'shift', 'bias']) {
      const u = x[key] as ArrayLike<number> | undefined;
      const v = y[key] as ArrayLike<number> | undefined;
      if (!u && !v) continue;
      if (!u || !v || u.length !== v.length) return `layer ${i} ${key}: lengths differ`;
      for (let j = 0; j < u.length; j++) if (!Object.is(u[j], v[j])) return `layer ${i} ${key}[${j}] reads back as ${v[j]}, written ${u[j]}`;
    }
  }
  return undefined;
}

/** packed: unpack the files from disk, check the round trip, run the unpacked graph with TensorFlow.js ops. */
export async function verifyPacked(dir: string, graph: ExportGraph, set: VerificationSet): Promise<VerificationResultV1> {
  const started = performance.now();
  const consumer = `unpack + TensorFlow.js ${tf.version.tfjs} ops (${tf.getBackend()})`;
  try {
    const manifest: unknown = JSON.parse(fs.readFileSync(path.join(dir, PACKED_MANIFEST_FILE), 'utf8'));
    const read = unpack(manifest, new Uint8Array(fs.readFileSync(path.join(dir, PACKED_BIN_FILE))));
    const mismatch = sameGraphData(graph, read);
    if (mismatch) return failure(consumer, set, FLOAT_TOLERANCE, (performance.now() - started) / 1000, `round trip: ${mismatch}`);
    const got = await batched(set, (x) => graphLogits(read, x));
    return compareLogits(set, got, consumer, FLOAT_TOLERANCE, (performance.now() - started) / 1000, { roundTrip: 'identical' });
  } catch (error) {
    return failure(consumer, set, FLOAT_TOLERANCE, (performance.now() - started) / 1000, message(error));
  }
}

/** tfjs: tf.loadLayersModel on the written files, predict. */
export async function verifyTfjs(dir: string, set: VerificationSet): Promise<VerificationResultV1> {
  const started = performance.now();
  const consumer = `tf.loadLayersModel, TensorFlow.js ${tf.version.tfjs} (${tf.getBackend()})`;
  let model: tf.LayersModel | undefined;
  try {
    model = await tf.loadLayersModel(tfjsFileHandler(dir));
    const m = model;
    const got = await batched(set, (x) => m.predict(x) as tf.Tensor);
    return compareLogits(set, got, consumer, FLOAT_TOLERANCE, (performance.now() - started) / 1000);
  } catch (error) {
    return failure(consumer, set, FLOAT_TOLERANCE, (performance.now() - started) / 1000, message(error));
  } finally {
    model?.dispose();
  }
}

type Ort = typeof import('onnxruntime-node');

/** onnx: an onnxruntime-node session on the written file (CPU execution provider). */
export async function verifyOnnx(dir: string, set: VerificationSet): Promise<VerificationResultV1> {
  const started = performance.now();
  let consumer = 'onnxruntime-node';
  try {
    const ort = (await import('onnxruntime-node')) as Ort & { default?: Ort };
    const api: Ort = ort.InferenceSession ? ort : ort.default!;
    consumer = `onnxruntime-node ${api.env.versions.node ?? ''} (cpu)`.replace('  ', ' ');
    const session = await api.InferenceSession.create(path.join(dir, ONNX_FILE), { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    try {
      const [h, w, c] = set.inputShape;
      const per = h * w * c;
      const got = new Float32Array(set.count * set.numClasses);
      for (let start = 0; start < set.count; start += BATCH) {
        const n = Math.min(BATCH, set.count - start);
        const input = new api.Tensor('float32', set.inputs.slice(start * per, (start + n) * per), [n, h, w, c]);
        const result = await session.run({ input });
        got.set(result.logits!.data as Float32Array, start * set.numClasses);
      }
      return compareLogits(set, got, consumer, FLOAT_TOLERANCE, (performance.now() - started) / 1000);
    } finally {
      await session.release();
    }
  } catch (error) {
    return failure(consumer, set, FLOAT_TOLERANCE, (performance.now() - started) / 1000, message(error));
  }
}

function firstLine(text: string): string {
  return text.split('\n').find((l) => l.trim() !== '')?.trim() ?? '';
}

/** Section sizes of an object file from binutils `size` (Berkeley format), if the tool exists. */
function sectionSizes(objectFile: string): { text: number; data: number; bss: number } | undefined {
  const r = spawnSync('size', [objectFile], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const fields = r.stdout.trim().split('\n')[1]?.trim().split(/\s+/).map(Number);
  if (!fields || fields.length < 3 || fields.slice(0, 3).some((v) => !Number.isFinite(v))) return undefined;
  return { text: fields[0]!, data: fields[1]!, bss: fields[2]! };
}

/**
 * c: compile main.c + lrnet.c with the strict flags into a scratch folder, run the golden-vector program on the
 * verification images (inputs, reference logits, raw pixels for the normalization check) and read its JSON line.
 */
export async function verifyC(dir: string, set: VerificationSet, compiler = process.env.CC ?? 'gcc'): Promise<VerificationResultV1> {
  const started = performance.now();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-c-verify-'));
  let consumer = `${compiler} ${C_FLAGS.join(' ')}`;
  const elapsed = () => (performance.now() - started) / 1000;
  try {
    const version = spawnSync(compiler, ['--version'], { encoding: 'utf8' });
    if (version.error || version.status !== 0) {
      return failure(consumer, set, C_TOLERANCE, elapsed(), `C compiler "${compiler}" not found (${version.error?.message ?? version.stderr}); set CC or install gcc`);
    }
    consumer = `${firstLine(version.stdout)}, ${C_FLAGS.join(' ')}`;
    const binary = path.join(scratch, 'lrnet_main');
    const compile = spawnSync(compiler, [...C_FLAGS, '-o', binary, path.join(dir, C_MAIN_SOURCE), path.join(dir, C_RUNTIME_SOURCE)], { encoding: 'utf8', timeout: 300_000 });
    if (compile.status !== 0) return failure(consumer, set, C_TOLERANCE, elapsed(), `compilation failed:\n${compile.stderr}${compile.error?.message ?? ''}`);
    const object = path.join(scratch, 'lrnet.o');
    const objectCompile = spawnSync(compiler, [...C_FLAGS, '-c', '-o', object, path.join(dir, C_RUNTIME_SOURCE)], { encoding: 'utf8', timeout: 300_000 });
    const measured = objectCompile.status === 0 ? sectionSizes(object) : undefined;
    const files = {
      inputs: path.join(scratch, 'inputs.f32'), logits: path.join(scratch, 'logits.f32'), pixels: path.join(scratch, 'pixels.u8'),
      output: path.join(scratch, 'output.f32'),
    };
    fs.writeFileSync(files.inputs, new Uint8Array(set.inputs.buffer, set.inputs.byteOffset, set.inputs.byteLength));
    fs.writeFileSync(files.logits, new Uint8Array(set.reference.buffer, set.reference.byteOffset, set.reference.byteLength));
    fs.writeFileSync(files.pixels, set.pixels);
    const run = spawnSync(binary, [files.inputs, files.logits, files.pixels, '--tolerance', String(C_TOLERANCE), '--write-logits', files.output], {
      encoding: 'utf8', timeout: 600_000,
    });
    let summary: { images: number; top1Agree: number; maxAbsDiff: number; normalizationMaxAbsDiff: number; flashBytes: number; ramBytes: number };
    try {
      summary = JSON.parse(run.stdout?.trim().split('\n').pop() ?? '') as typeof summary;
    } catch {
      return failure(consumer, set, C_TOLERANCE, elapsed(), `the golden-vector program printed no result (exit ${run.status}): ${run.stderr}${run.error?.message ?? ''}`);
    }
    const bytes = fs.readFileSync(files.output);
    const got = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(got.buffer).set(bytes);
    const result = compareLogits(set, got, consumer, C_TOLERANCE, elapsed(), {
      normalizationMaxAbsDiff: summary.normalizationMaxAbsDiff,
      withinFloatTolerance: summary.maxAbsDiff <= FLOAT_TOLERANCE,
      programExitCode: run.status,
      ...(measured ? { measuredObjectBytes: { ...measured, note: 'binutils size of lrnet.o: text includes the const weights (flash), bss the static buffers (RAM)' } } : {}),
    });
    // The program's own verdict (exit code 0) must agree with the comparison made here.
    if (result.passed && run.status !== 0) return { ...result, passed: false, error: `the golden-vector program exited with ${run.status}` };
    if (summary.normalizationMaxAbsDiff > 1e-6) {
      return { ...result, passed: false, error: `lrnet_normalize_u8 differs from the training pipeline by ${summary.normalizationMaxAbsDiff}` };
    }
    return result;
  } catch (error) {
    return failure(consumer, set, C_TOLERANCE, elapsed(), message(error));
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** Checks one format's files in `dir` (written from `graph`) on the verification images; never throws. */
export type Verifier = (dir: string, graph: ExportGraph, set: VerificationSet) => Promise<VerificationResultV1>;

/** The consumer of each format of the registry (its entry's `verifier` says which): a new format needs one here. */
export const VERIFIERS: Readonly<Record<ExportFormatName, Verifier>> = {
  packed: verifyPacked,
  c: (dir, _graph, set) => verifyC(dir, set),
  onnx: (dir, _graph, set) => verifyOnnx(dir, set),
  tfjs: (dir, _graph, set) => verifyTfjs(dir, set),
};
