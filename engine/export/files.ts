/**
 * What a format writer produces: named files in memory. Writers stay pure (no file system); the app layer writes
 * them into a staging folder, so an export is complete or absent.
 */
export interface ExportFile {
  /** Relative path inside the format's folder, with forward slashes. */
  readonly path: string;
  readonly data: Uint8Array | string;
}

export function fileBytes(file: ExportFile): number {
  return typeof file.data === 'string' ? Buffer.byteLength(file.data, 'utf8') : file.data.byteLength;
}

/** Little-endian bytes of float32 values (copied, so the result owns its buffer). */
export function float32Bytes(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return out;
}

/** float32 values from little-endian bytes. */
export function float32FromBytes(bytes: Uint8Array, offset: number, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 4);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}
