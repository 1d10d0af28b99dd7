/**
 * Every format an export can write, one entry each (see entry.ts), in the order exports write and list them. The
 * `--format` choices, the API's format names, the Export page's cards, the writer dispatch and the artifact kinds
 * derive from this list.
 */
import { PACKED_EXPORT_FORMAT } from './packed.ts';
import { C_EXPORT_FORMAT } from './c.ts';
import { ONNX_EXPORT_FORMAT } from './onnx.ts';
import { TFJS_EXPORT_FORMAT } from './tfjs.ts';
import type { ExportFormatEntry } from './entry.ts';

export const EXPORT_FORMATS = [PACKED_EXPORT_FORMAT, C_EXPORT_FORMAT, ONNX_EXPORT_FORMAT, TFJS_EXPORT_FORMAT] as const;

export type ExportFormatName = (typeof EXPORT_FORMATS)[number]['name'];

export const EXPORT_FORMAT_NAMES: readonly ExportFormatName[] = EXPORT_FORMATS.map((f) => f.name);

export function isExportFormatName(name: unknown): name is ExportFormatName {
  return typeof name === 'string' && (EXPORT_FORMAT_NAMES as readonly string[]).includes(name);
}

/** The entry of a format by name; a TypeError listing the valid names for any other value. */
export function exportFormatEntry(name: unknown): ExportFormatEntry<ExportFormatName> {
  const entry = EXPORT_FORMATS.find((f) => f.name === name);
  if (!entry) throw new TypeError(`unknown export format ${JSON.stringify(name)}; valid names: ${EXPORT_FORMAT_NAMES.join(', ')}`);
  return entry;
}
