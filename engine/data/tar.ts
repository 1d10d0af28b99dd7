/**
 * A minimal tar reader (ustar / POSIX pax / GNU / v7) over bytes already in memory, enough to read the official
 * cifar-10-binary.tar.gz without unpacking it.
 *
 * Format: a sequence of 512-byte headers, each followed by the entry's data padded with zeros to a multiple of 512;
 * the archive ends with zero blocks (or, tolerated, simply ends after an entry). Numbers are octal ASCII (or GNU
 * base-256 for very large values). Every header's checksum is verified. Supported extensions: GNU long names
 * ('L'), pax extended headers ('x': path and size; 'g' is skipped). Entries are returned as views of the input,
 * without copying.
 */
import { TextDecoder } from 'node:util';
import { DatasetError } from './errors.ts';

export interface TarEntry {
  /** Path inside the archive, as stored (no leading './' stripping beyond what the archive holds). */
  readonly name: string;
  readonly type: 'file' | 'directory' | 'other';
  /** The entry's bytes (a view of the archive). Empty for directories and links. */
  readonly data: Uint8Array;
}

const BLOCK = 512;
const REMEDY = 'The archive is damaged or incomplete: download it again (check it with `tar tzf`)';

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

function cString(b: Uint8Array, start: number, len: number, decoder: TextDecoder = utf8): string {
  let end = start;
  const stop = start + len;
  while (end < stop && b[end] !== 0) end++;
  return decoder.decode(b.subarray(start, end));
}

/** Parses a numeric header field: octal ASCII (leading spaces, ending with NUL or space) or GNU base-256. */
function parseNumber(b: Uint8Array, start: number, len: number, what: string, file: string, at: number): number {
  const first = b[start]!;
  if (first & 0x80) {
    if (first !== 0x80) throw new DatasetError(file, `tar header at byte ${at} has a negative or invalid ${what}`, REMEDY);
    let v = 0;
    for (let i = start + 1; i < start + len; i++) {
      v = v * 256 + b[i]!;
      if (v > Number.MAX_SAFE_INTEGER) throw new DatasetError(file, `tar header at byte ${at} has a ${what} too large to handle`, REMEDY);
    }
    return v;
  }
  let i = start;
  const stop = start + len;
  while (i < stop && b[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < stop; i++) {
    const c = b[i]!;
    if (c >= 0x30 && c <= 0x37) {
      v = v * 8 + (c - 0x30);
      digits++;
    } else break;
  }
  // The rest of the field must be terminators (NUL or space).
  for (; i < stop; i++) {
    const c = b[i]!;
    if (c !== 0 && c !== 0x20) {
      throw new DatasetError(file, `tar header at byte ${at} has a malformed ${what} field (not an octal number)`, REMEDY);
    }
  }
  if (digits === 0 && what === 'checksum') {
    throw new DatasetError(file, `tar header at byte ${at} has an empty checksum`, REMEDY);
  }
  return v;
}

function isZeroBlock(b: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i] !== 0) return false;
  return true;
}

/** Parses pax extended header records ("<len> <key>=<value>\n"). */
function parsePax(data: Uint8Array, file: string, at: number): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // padding some writers leave
    let len = 0;
    let p = pos;
    while (p < data.length && data[p]! >= 0x30 && data[p]! <= 0x39 && p - pos < 16) len = len * 10 + (data[p++]! - 0x30);
    if (p === pos || data[p] !== 0x20 || len <= p - pos + 1 || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw new DatasetError(file, `pax extended header at byte ${at} is malformed`, REMEDY);
    }
    const record = utf8.decode(data.subarray(p + 1, pos + len - 1));
    const eq = record.indexOf('=');
    if (eq <= 0) throw new DatasetError(file, `pax extended header at byte ${at} has a record without a key`, REMEDY);
    out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

/**
 * Lists the entries of a tar archive held in memory. A header with a bad checksum, a malformed field, or an entry
 * whose data runs past the end is a DatasetError naming `file`.
 */
export function readTar(bytes: Uint8Array, file = '<buffer>'): TarEntry[] {
  const entries: TarEntry[] = [];
  let offset = 0;
  let longName: string | undefined;
  let pax: Map<string, string> | undefined;
  while (offset < bytes.length) {
    if (bytes.length - offset < BLOCK) {
      if (isZeroBlock(bytes, offset, bytes.length)) break;
      throw new DatasetError(file, `is truncated: ${bytes.length - offset} bytes at byte ${offset} are too short for a tar header`, REMEDY);
    }
    if (isZeroBlock(bytes, offset, offset + BLOCK)) break; // end-of-archive marker
    const at = offset;
    const isFirst = entries.length === 0 && longName === undefined && pax === undefined;
    let stored: number;
    try {
      stored = parseNumber(bytes, offset + 148, 8, 'checksum', file, at);
    } catch (err) {
      if (isFirst) throw new DatasetError(file, 'is not a tar archive (the first 512 bytes are not a tar header)', REMEDY);
      throw err;
    }
    let unsignedSum = 0;
    let signedSum = 0;
    for (let i = 0; i < BLOCK; i++) {
      const c = i >= 148 && i < 156 ? 0x20 : bytes[offset + i]!;
      unsignedSum += c;
      signedSum += c > 127 ? c - 256 : c;
    }
    if (stored !== unsignedSum && stored !== signedSum) {
      throw new DatasetError(
        file,
        isFirst
          ? `is not a tar archive (the first 512-byte header's checksum does not match)`
          : `has a corrupt tar header at byte ${at} (checksum mismatch)`,
        REMEDY,
      );
    }
    const typeflag = bytes[offset + 156]!;
    let size = parseNumber(bytes, offset + 124, 12, 'size', file, at);
    const magic = cString(bytes, offset + 257, 6, latin1);
    const version = cString(bytes, offset + 263, 2, latin1);
    let name = cString(bytes, offset + 0, 100);
    if (magic === 'ustar' && version !== ' ') {
      // POSIX ustar (GNU tar writes 'ustar  ' and uses the prefix area for other fields).
      const prefix = cString(bytes, offset + 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    // Pax and GNU extension headers apply to the next header only.
    const isExtension = typeflag === 0x4c /* L */ || typeflag === 0x4b /* K */ || typeflag === 0x78 /* x */ || typeflag === 0x67; /* g */
    if (!isExtension) {
      if (pax?.has('size')) {
        const s = pax.get('size')!;
        if (!/^[0-9]{1,15}$/.test(s)) throw new DatasetError(file, `pax header before byte ${at} has an invalid size "${s}"`, REMEDY);
        size = Number(s);
      }
      if (pax?.has('path')) name = pax.get('path')!;
      else if (longName !== undefined) name = longName;
    }
    const dataStart = offset + BLOCK;
    const hasData = typeflag !== 0x35 /* 5: directory */ && typeflag !== 0x31 /* 1: hard link */ && typeflag !== 0x32; /* 2: symlink */
    const dataLen = hasData ? size : 0;
    if (dataLen > bytes.length - dataStart) {
      throw new DatasetError(
        file,
        `is truncated: tar entry "${name}" at byte ${at} announces ${dataLen} bytes but only ${bytes.length - dataStart} follow`,
        REMEDY,
      );
    }
    const data = bytes.subarray(dataStart, dataStart + dataLen);
    offset = dataStart + Math.ceil(dataLen / BLOCK) * BLOCK;
    switch (typeflag) {
      case 0x4c: // GNU long name for the next entry
        longName = cString(data, 0, data.length);
        continue;
      case 0x78: // pax extended header for the next entry
        pax = parsePax(data, file, at);
        continue;
      case 0x4b: // GNU long link name
      case 0x67: // pax global header
        continue;
      default:
        break;
    }
    longName = undefined;
    pax = undefined;
    const type = typeflag === 0 || typeflag === 0x30 || typeflag === 0x37 ? 'file' : typeflag === 0x35 ? 'directory' : 'other';
    entries.push({ name, type, data: type === 'file' ? data : data.subarray(0, 0) });
  }
  return entries;
}
