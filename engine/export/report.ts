/**
 * The export report (version 1): what was exported, how big each format is, how much work a discrete layer saves,
 * and how each format's real consumer agreed with the app's own discrete net. Stored as report.json in the export
 * folder and with the run's artifacts; the types below are the on-disk contract.
 */
import type { InputNormalization } from '../data/types.ts';
import { type ExportGraph, type NetIdentity, type WeightKind, isLinear, layerWork } from './graph.ts';
import { bitsPerValue } from './packed.ts';
import type { CMemoryBudget } from './c.ts';
import type { FormatDetails } from './entry.ts';
import type { ExportFormatName } from './registry.ts';

export const EXPORT_REPORT_FORMAT = 'lrnet-export-report';
export const EXPORT_REPORT_VERSION = 1;

/** One conv/dense layer: storage and per-image work. */
export interface LayerReportV1 {
  readonly name: string;
  readonly op: 'conv' | 'dense';
  readonly kind: WeightKind;
  readonly shape: readonly number[];
  readonly weights: number;
  /** Bits per weight in the packed format (1 binary, 2 ternary, 1.6 ternary base-3, 32 full precision). */
  readonly bitsPerWeight: number;
  /** Weight bits of the layer in the packed format. */
  readonly packedBits: number;
  readonly fractionZero: number;
  /** Per image: MACs, and what they become with discrete weights. */
  readonly macs: number;
  readonly additions: number;
  readonly subtractions: number;
  readonly skipped: number;
  /** Per image: multiply-accumulates that stay (full-precision layers). */
  readonly multiplications: number;
}

export interface LayerTotalsV1 {
  /** Every stored value: weights, folded scales/shifts, biases. */
  readonly parameters: number;
  /** The same values as float32 (the size a float model of this net would take, batch norm folded). */
  readonly float32Bytes: number;
  readonly macs: number;
  readonly additions: number;
  readonly subtractions: number;
  readonly skipped: number;
  readonly multiplications: number;
  /** Per-output-value multiplications of folded batch norm (scale), not weight multiplications. */
  readonly scaleMultiplications: number;
}

/** How one format's consumer agreed with `discreteLogits` on the verification images. */
export interface VerificationResultV1 {
  /** Who ran the exported files, e.g. "onnxruntime-node 1.30.0 (cpu)". */
  readonly consumer: string;
  readonly passed: boolean;
  readonly images: number;
  /** Fraction of images whose top-1 class equals the reference's (must be 1). */
  readonly top1Agreement: number;
  readonly top1Disagreements: number;
  readonly maxAbsDiff: number;
  /** Pass bound on maxAbsDiff. */
  readonly tolerance: number;
  /** Top-1 accuracy of the consumer's predictions on these images' labels. */
  readonly accuracy: number;
  readonly seconds: number;
  /** Why it failed, when it did. */
  readonly error?: string;
  /** Format-specific findings (C: measured section sizes, normalization check; packed: round trip). */
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface FormatReportV1 {
  readonly format: ExportFormatName;
  /** The format's own version (packed manifest, C header, ONNX metadata, tfjs metadata). */
  readonly version: number;
  /** Folder of the format inside the export folder. */
  readonly dir: string;
  readonly files: readonly { readonly path: string; readonly bytes: number }[];
  readonly totalBytes: number;
  /** float32 size of the net divided by this format's size (e.g. 14.2 = 14.2 times smaller). */
  readonly compressionVsFloat32: number;
  readonly verification: VerificationResultV1;
  /**
   * What the format's entry reports (C: the fixed memory budget; ONNX: opset and node count; packed: encodings;
   * tfjs: layer count), plus `compressionBasis` when the ratio is not on the files' size.
   */
  readonly details: FormatDetails & { readonly memory?: CMemoryBudget };
}

export interface GoldenVectorsV1 {
  readonly dir: string;
  readonly count: number;
  /** Indices into the test set. */
  readonly testIndices: readonly number[];
  readonly files: {
    /** count x h x w x c float32 LE, normalized inputs. */
    readonly inputs: string;
    /** count x classes float32 LE, reference logits (discreteLogits). */
    readonly logits: string;
    /** count x h x w x c uint8, raw pixels. */
    readonly pixels: string;
    /** count uint8 labels. */
    readonly labels: string;
  };
}

export interface ExportReportV1 {
  readonly format: typeof EXPORT_REPORT_FORMAT;
  readonly version: 1;
  readonly createdAt: string;
  /** 'failed' when any format failed verification. */
  readonly status: 'passed' | 'failed';
  readonly source: {
    readonly checkpoint?: string;
    readonly preset?: string;
    readonly globalStep?: number;
    readonly dataset?: { readonly name: string; readonly checksum: string };
  };
  readonly net: NetIdentity & {
    /** Test/validation accuracy of this very net as the run's last evaluation reported it. */
    readonly evaluatedTestAccuracy?: number;
    readonly evaluatedValidationAccuracy?: number;
    /** Training images the evaluation re-estimated batch norm on (0: moving statistics). */
    readonly batchNormImages?: number;
  };
  readonly input: { readonly shape: readonly number[]; readonly layout: 'NHWC'; readonly normalization: InputNormalization };
  readonly numClasses: number;
  readonly layers: readonly LayerReportV1[];
  readonly totals: LayerTotalsV1;
  readonly formats: Partial<Record<ExportFormatName, FormatReportV1>>;
  readonly golden: GoldenVectorsV1;
  readonly verification: {
    readonly images: number;
    readonly reference: { readonly implementation: 'discreteLogits'; readonly backend: string; readonly accuracy: number };
  };
}

/** Per-layer storage and work of a graph, and totals (packed sizes use the given ternary encoding). */
export function describeGraph(graph: ExportGraph, ternaryEncoding: '2bit' | 'base3' = '2bit'): { layers: LayerReportV1[]; totals: LayerTotalsV1 } {
  const layers: LayerReportV1[] = [];
  let parameters = 0;
  let scaleMultiplications = 0;
  for (const op of graph.ops) {
    if (op.op === 'scaleshift') {
      parameters += op.scale.length * 2;
      continue;
    }
    if (!isLinear(op)) continue;
    const work = layerWork(op);
    const bits = op.kind === 'binary' ? bitsPerValue('binary-1bit')
      : op.kind === 'ternary' ? bitsPerValue(ternaryEncoding === 'base3' ? 'ternary-base3' : 'ternary-2bit') : 32;
    parameters += op.weights.length + (op.scale?.length ?? 0) + (op.shift?.length ?? 0) + (op.bias?.length ?? 0);
    if (op.scale) scaleMultiplications += op.scale.length * (op.op === 'conv' ? op.outputShape[0] * op.outputShape[1] : 1);
    layers.push({
      name: op.name, op: op.op, kind: op.kind, shape: [...op.shape], weights: work.weights, bitsPerWeight: bits,
      packedBits: Math.round(work.weights * bits),
      fractionZero: op.kind === 'float32' ? 0 : work.values.zero / work.weights,
      macs: work.macs, additions: work.additions, subtractions: work.subtractions, skipped: work.skipped,
      multiplications: work.multiplications,
    });
  }
  const sum = (key: 'macs' | 'additions' | 'subtractions' | 'skipped' | 'multiplications') => layers.reduce((s, l) => s + l[key], 0);
  return {
    layers,
    totals: {
      parameters, float32Bytes: parameters * 4, macs: sum('macs'), additions: sum('additions'), subtractions: sum('subtractions'),
      skipped: sum('skipped'), multiplications: sum('multiplications'), scaleMultiplications,
    },
  };
}
