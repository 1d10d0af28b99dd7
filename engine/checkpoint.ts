/**
 * Checkpoint files: everything a run needs to continue exactly where it stopped (parameters, optimizer moments,
 * counters, the configuration it belongs to).
 *
 * Layout (version 1): the 16-byte magic "LRNET-CHECKPOINT", a uint32 LE header length, the UTF-8 JSON header,
 * then the float32 LE tensor data back to back in header order. Files are written to a temporary name and renamed,
 * so a crash never leaves a half-written checkpoint under the real name.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TrainingConfig } from './config.ts';
import { tf, type Tensor } from './tf.ts';

const MAGIC = 'LRNET-CHECKPOINT';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointTensorEntry {
  readonly name: string;
  readonly shape: readonly number[];
}

/** The JSON header as stored on disk. */
export interface CheckpointHeader<State> {
  readonly format: 'lrnet-checkpoint';
  readonly version: number;
  readonly state: State;
  readonly tensors: readonly CheckpointTensorEntry[];
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** Writes named tensors and a JSON-serializable state atomically; returns the file size in bytes. */
export async function saveCheckpoint<State>(file: string, state: State, tensors: ReadonlyMap<string, Tensor>): Promise<number> {
  const entries: CheckpointTensorEntry[] = [];
  const chunks: Buffer[] = [];
  for (const [name, tensor] of tensors) {
    entries.push({ name, shape: tensor.shape });
    const values = (await tensor.data()) as Float32Array;
    chunks.push(Buffer.from(values.buffer, values.byteOffset, values.byteLength));
  }
  const header: CheckpointHeader<State> = { format: 'lrnet-checkpoint', version: CHECKPOINT_VERSION, state, tensors: entries };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(headerBytes.length);
  const data = Buffer.concat([Buffer.from(MAGIC, 'ascii'), length, headerBytes, ...chunks]);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(temporary, 'w');
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, file);
  return data.length;
}

export interface LoadedCheckpoint<State> {
  readonly state: State;
  /** Tensor values by name (call `toTensor` to materialize one). */
  readonly values: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>;
}

/** The header of a checkpoint held in `bytes` (the whole file, or at least its start) and where the tensor data begins. */
function parseHeader<State>(file: string, bytes: Buffer, fileSize: number): { header: CheckpointHeader<State>; dataStart: number } {
  if (bytes.length < MAGIC.length + 4 || bytes.toString('ascii', 0, MAGIC.length) !== MAGIC) {
    throw new CheckpointError(`${file} is not an lrnet checkpoint (wrong magic bytes)`);
  }
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  const headerStart = MAGIC.length + 4;
  if (headerStart + headerLength > fileSize) throw new CheckpointError(`${file} is truncated (header runs past the end)`);
  let header: CheckpointHeader<State>;
  try {
    header = JSON.parse(bytes.toString('utf8', headerStart, headerStart + headerLength)) as CheckpointHeader<State>;
  } catch {
    throw new CheckpointError(`${file} has a corrupt header`);
  }
  if (header.format !== 'lrnet-checkpoint' || header.version !== CHECKPOINT_VERSION) {
    throw new CheckpointError(`${file} has format ${header.format} version ${header.version}; this lrnet reads version ${CHECKPOINT_VERSION}`);
  }
  return { header, dataStart: headerStart + headerLength };
}

/**
 * Reads only a checkpoint's state (the JSON header), not its tensors: enough to check that a checkpoint fits a run
 * before starting one, without reading a file of hundreds of megabytes.
 */
export function readCheckpointState<State>(file: string): State {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const prefix = Buffer.alloc(Math.min(size, MAGIC.length + 4));
    fs.readSync(fd, prefix, 0, prefix.length, 0);
    const headerLength = prefix.length === MAGIC.length + 4 ? prefix.readUInt32LE(MAGIC.length) : 0;
    const bytes = Buffer.alloc(Math.min(size, prefix.length + headerLength));
    fs.readSync(fd, bytes, 0, bytes.length, 0);
    return parseHeader<State>(file, bytes, size).header.state;
  } catch (error) {
    if (error instanceof CheckpointError) throw error;
    throw new CheckpointError(`cannot read checkpoint ${file}: ${(error as Error).message}`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Reads a checkpoint, checking the magic, version and that the data matches the header. */
export function loadCheckpoint<State>(file: string): LoadedCheckpoint<State> {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    throw new CheckpointError(`cannot read checkpoint ${file}: ${(error as Error).message}`);
  }
  const { header, dataStart } = parseHeader<State>(file, bytes, bytes.length);
  let offset = dataStart;
  const values = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const entry of header.tensors) {
    const count = entry.shape.reduce((a, b) => a * b, 1);
    if (offset + count * 4 > bytes.length) throw new CheckpointError(`${file} is truncated (tensor ${entry.name})`);
    // Copy into an aligned buffer: Float32Array views need 4-byte alignment and the header length is arbitrary.
    const data = new Float32Array(count);
    Buffer.from(data.buffer).set(bytes.subarray(offset, offset + count * 4));
    values.set(entry.name, { shape: entry.shape, data });
    offset += count * 4;
  }
  if (offset !== bytes.length) throw new CheckpointError(`${file} has ${bytes.length - offset} unexpected trailing bytes`);
  return { state: header.state, values };
}

/** Materializes a stored value as a tensor. */
export function toTensor(value: { shape: readonly number[]; data: Float32Array }): Tensor {
  return tf.tensor(value.data, [...value.shape]);
}

/** `step-00000042.ckpt`, or `PREFIX-step-00000042.ckpt`: zero-padded so a folder listing sorts by step. */
export function checkpointFileName(step: number, prefix?: string): string {
  return `${prefix ? `${prefix}-` : ''}step-${String(step).padStart(8, '0')}.ckpt`;
}

/**
 * Why a checkpoint written with configuration `saved` cannot continue as a run with configuration `wanted`, or
 * undefined when it can: binary and ternary weights (and different architectures) have different parameters, and a
 * run resumed across them would train a net it never meant to.
 */
export function resumeMismatch(saved: TrainingConfig, wanted: TrainingConfig): string | undefined {
  if (saved.kind !== wanted.kind) {
    return `the checkpoint holds ${saved.kind} weights (preset ${saved.preset}) but this run trains ${wanted.kind} weights; ` +
      `resume it with a ${saved.kind} preset, or start without the checkpoint`;
  }
  if (saved.architecture !== wanted.architecture) {
    return `the checkpoint holds a ${saved.architecture} net (preset ${saved.preset}) but this run trains a ${wanted.architecture} net; ` +
      'resume it with the same preset, or start without the checkpoint';
  }
  return undefined;
}
