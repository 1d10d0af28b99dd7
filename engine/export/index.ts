/**
 * Export of discrete LR-nets for target hardware: one graph description (graph.ts) and pure-TypeScript writers for
 * the packed, C, ONNX and TensorFlow.js formats (docs/export-formats.md). Verification against real consumers and
 * the staging of files on disk live in app/export.
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
export { writeC, C_FORMAT_VERSION, C_MODEL_HEADER, type COptions, type CMemoryBudget } from './c.ts';
export { writeOnnx, ONNX_FORMAT_VERSION, ONNX_FILE, ONNX_OPSET } from './onnx.ts';
export { writeTfjs, tfjsFileHandler, TFJS_FORMAT_VERSION, TFJS_MODEL_FILE, TFJS_WEIGHTS_FILE } from './tfjs.ts';
export { graphLogits } from './run-graph.ts';
export * from './report.ts';
