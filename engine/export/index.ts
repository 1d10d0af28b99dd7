/**
 * Export of discrete LR-nets for target hardware: one graph description (graph.ts) and pure-TypeScript writers,
 * one file per format, listed in registry.ts (docs/export-formats.md). Verification against real consumers and the
 * staging of files on disk live in app/export.
 */
export {
  buildExportGraph, foldBatchNorm, samePadding, layerWork, isLinear, ExportGraphError,
  type ExportGraph, type GraphOp, type LinearOp, type ConvOp, type DenseOp, type NetIdentity, type WeightKind, type LayerWork,
} from './graph.ts';
export { type ExportFile, fileBytes } from './files.ts';
export {
  writePacked, unpack, PackedFormatError, PACKED_FORMAT, PACKED_VERSION, PACKED_MANIFEST_FILE, PACKED_BIN_FILE,
  type PackedManifestV1, type PackedOptions,
} from './packed.ts';
export {
  writeC, C_FORMAT_VERSION, C_MODEL_HEADER, C_RUNTIME_HEADER, C_RUNTIME_SOURCE, C_MAIN_SOURCE, type COptions, type CMemoryBudget,
} from './c.ts';
export { C_FLAGS } from './c-runtime.ts';
export { writeOnnx, ONNX_FORMAT_VERSION, ONNX_FILE, ONNX_OPSET } from './onnx.ts';
export { writeTfjs, tfjsFileHandler, TFJS_FORMAT_VERSION, TFJS_MODEL_FILE, TFJS_WEIGHTS_FILE } from './tfjs.ts';
export { graphLogits } from './run-graph.ts';
export * from './report.ts';
export { EXPORT_FORMATS, EXPORT_FORMAT_NAMES, exportFormatEntry, isExportFormatName, type ExportFormatName } from './registry.ts';
export { type ExportFormatEntry, type FormatDetails, type FormatWriteOptions, type WrittenFormat } from './entry.ts';
