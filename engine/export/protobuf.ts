/**
 * A minimal protocol-buffers encoder: just what writing an ONNX model needs (varints, length-delimited fields,
 * fixed32 floats, packed repeated scalars). Messages are built bottom-up as byte arrays, so nested sizes are known
 * when a parent writes them.
 */

const enum WireType {
  Varint = 0,
  Fixed32 = 5,
  LengthDelimited = 2,
}

/** Accumulates one message's fields. */
export class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.byteLength;
  }

  private tag(field: number, wire: WireType): void {
    this.push(encodeVarint(field * 8 + wire));
  }

  /** int32/int64/uint64/enum/bool field (negative values as 10-byte two's complement, like protoc). */
  int(field: number, value: number | bigint): this {
    this.tag(field, WireType.Varint);
    this.push(encodeVarint(value));
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WireType.Fixed32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WireType.LengthDelimited);
    this.push(encodeVarint(value.byteLength));
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, value: ProtoWriter): this {
    return this.bytes(field, value.finish());
  }

  /** Packed repeated int64 (readers must accept packed encoding for any repeated scalar, proto2 included). */
  packedInts(field: number, values: readonly (number | bigint)[]): this {
    return this.bytes(field, concat(values.map((v) => encodeVarint(v))));
  }

  finish(): Uint8Array {
    return concat(this.chunks, this.length);
  }
}

export function concat(chunks: readonly Uint8Array[], total = chunks.reduce((s, c) => s + c.byteLength, 0)): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Base-128 varint; negative numbers are written as their 64-bit two's complement (10 bytes). */
export function encodeVarint(input: number | bigint): Uint8Array {
  if (typeof input === 'number' && !Number.isSafeInteger(input)) throw new RangeError(`varint value ${input} is not a safe integer`);
  let v = BigInt.asUintN(64, BigInt(input));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return Uint8Array.from(out);
}
