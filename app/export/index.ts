/**
 * One-click export of a trained run's discrete net: rebuild the very net the run evaluated (argmax or the
 * validation-selected sample), write the requested formats, run each with its real consumer on the test set and
 * compare with the app's own `discreteLogits`, and store a report with the files.
 *
 * Everything is written into a hidden staging folder next to the destination and renamed into place at the end, so
 * the destination holds a complete export or nothing (see folders.ts: force replaces only an earlier export). Problems
 * found before any work (a run whose LR phase did not finish, an existing folder, an unwritable place) are
 * ExportErrors and write nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../../engine/tf.ts';
import { Random } from '../../engine/random.ts';
import { loadCheckpoint } from '../../engine/checkpoint.ts';
import { datasetEntry, loadInMemory } from '../../engine/data/registry.ts';
import { fillBatch } from '../../engine/data/batch.ts';
import type { Dataset, ImageSet } from '../../engine/data/types.ts';
import { loadTrainedRun, type CheckpointState, type TrainedRun } from '../../engine/train.ts';
import { disposeParameters, type Architecture } from '../../engine/models.ts';
import {
  buildDiscreteNetwork,
  discreteLogits,
  disposeDiscreteNetwork,
  type DiscreteNetChoice,
  type DiscreteNetwork,
} from '../../engine/discrete-net.ts';
import {
  type ExportFile,
  type ExportFormatEntry,
  type ExportFormatName,
  type ExportGraph,
  type ExportReportV1,
  type FormatReportV1,
  type GoldenVectorsV1,
  EXPORT_FORMAT_NAMES,
  EXPORT_REPORT_FORMAT,
  ExportGraphError,
  buildExportGraph,
  describeGraph,
  exportFormatEntry,
  fileBytes,
} from '../../engine/export/index.ts';
import { type VerificationSet, VERIFIERS } from './verify.ts';
import { ExportError } from './errors.ts';
import { REPORT_FILE, checkDestination, createStaging, discardStaging, publish } from './folders.ts';

export type { ExportFormatName, ExportReportV1 } from '../../engine/export/index.ts';
export { EXPORT_FORMATS, EXPORT_FORMAT_NAMES } from '../../engine/export/index.ts';
export { ExportError, type ExportErrorCode } from './errors.ts';

export interface ExportRunOptions {
  /** A checkpoint file of the run (its last one: the LR phase must have finished). */
  readonly checkpoint: string;
  /** The run's dataset, when the caller has it loaded; otherwise it is loaded from the run's configuration. */
  readonly dataset?: Dataset;
  readonly formats: readonly ExportFormatName[] | 'all';
  /** Destination folder; it receives one sub-folder per format, golden/ and report.json. */
  readonly outDir: string;
  /** Which discrete net (default 'argmax'). */
  readonly net?: DiscreteNetChoice;
  /** Replace an earlier export (an lrnet export folder holding nothing else) or an empty folder at outDir. */
  readonly force?: boolean;
  /** Verify on the first N test images (default: every test image the run evaluated on). */
  readonly testLimit?: number;
  /** Golden vectors shipped with the export (default 16; at most the verification images). */
  readonly goldenCount?: number;
  /** Ternary encoding of the packed format (default '2bit'). */
  readonly ternaryEncoding?: '2bit' | 'base3';
  /** Progress lines for a terminal or a log. */
  readonly onProgress?: (message: string) => void;
  /**
   * Called once the request has passed every check, as the export starts writing (into `staging`, a folder next
   * to outDir). A refused request (an ExportError before this) wrote nothing.
   */
  readonly onStart?: (staging: string) => void;
}

export interface ExportResult {
  /** The destination folder (absolute). */
  readonly outDir: string;
  readonly report: ExportReportV1;
}

/** What an export needs besides the net: where it came from, and the images it is verified on. */
export interface ExportNetworkOptions extends Omit<ExportRunOptions, 'checkpoint' | 'dataset' | 'net'> {
  /** Test images (the first testLimit are used), normalized with the net's normalization. */
  readonly testSet: ImageSet;
  readonly source?: ExportReportV1['source'];
  readonly evaluated?: { readonly test?: number; readonly validation?: number; readonly batchNormImages?: number };
}

const DEFAULT_GOLDEN = 16;
const REFERENCE_BATCH = 256;

/** The requested formats' entries in the registry's order. */
function normalizeFormats(formats: ExportRunOptions['formats']): ExportFormatEntry<ExportFormatName>[] {
  const list = formats === 'all' ? [...EXPORT_FORMAT_NAMES] : [...new Set(formats)];
  const unknown = list.filter((f) => !EXPORT_FORMAT_NAMES.includes(f));
  if (unknown.length > 0) throw new ExportError('invalid-argument', `unknown format ${unknown.map((f) => JSON.stringify(f)).join(', ')}; choose from ${EXPORT_FORMAT_NAMES.join(', ')} or all`);
  if (list.length === 0) throw new ExportError('invalid-argument', `no format given; choose from ${EXPORT_FORMAT_NAMES.join(', ')} or all`);
  return EXPORT_FORMAT_NAMES.filter((f) => list.includes(f)).map(exportFormatEntry);
}

/** Refuses formats that do not take this net's architecture, before anything is written. */
function checkArchitecture(formats: readonly ExportFormatEntry[], architecture: Architecture): void {
  const refusing = formats.filter((f) => !f.architectures.includes(architecture));
  if (refusing.length === 0) return;
  throw new ExportError('unsupported', refusing.map((f) =>
    `the ${f.name} format (version ${f.version}) takes ${f.architectures.join(', ')} nets, not ${architecture}`).join('; '));
}

function checkCount(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) throw new ExportError('invalid-argument', `${name} must be an integer >= 1, got ${value}`);
}

/**
 * Exports a run from one of its checkpoints. Initialize a TensorFlow.js backend first (the reference logits are
 * computed there); returns the report, also written to `outDir/report.json`.
 */
export async function exportRun(options: ExportRunOptions): Promise<ExportResult> {
  const formats = normalizeFormats(options.formats);
  checkCount('testLimit', options.testLimit);
  checkCount('goldenCount', options.goldenCount);
  const choice = options.net ?? 'argmax';
  if (choice !== 'argmax' && choice !== 'selected') throw new ExportError('invalid-argument', `net must be "argmax" or "selected", got ${JSON.stringify(choice)}`);
  const outDir = path.resolve(options.outDir);
  checkDestination(outDir, options.force ?? false);

  let dataset = options.dataset;
  if (!dataset) {
    const state = loadCheckpoint<CheckpointState>(options.checkpoint).state;
    const { name, ...readOptions } = state.config.dataset;
    if (!datasetEntry(name).load) {
      throw new ExportError('unsupported', `${options.checkpoint} was trained on an image folder: export format version 1 covers the in-memory data sets ` +
        '(MNIST, Fashion-MNIST, CIFAR-10) and sequential nets only, not ResNet-18 on image folders');
    }
    options.onProgress?.(`loading dataset ${state.config.dataset.name}`);
    dataset = loadInMemory(name, readOptions);
  }
  const run: TrainedRun = loadTrainedRun(options.checkpoint, dataset);
  let net: DiscreteNetwork | undefined;
  try {
    const evaluation = run.evaluation;
    if (!run.lrFinished || !evaluation) {
      throw new ExportError('not-finished', `${options.checkpoint} is from the ${run.phase === 'pretrain' ? 'full-precision pretraining' : 'unfinished LR'} phase (step ${run.globalStep}): ` +
        'only a run whose LR phase finished (and was evaluated) has a discrete net to export; pass its last checkpoint');
    }
    options.onProgress?.(`rebuilding the ${choice} net`);
    net = await buildDiscreteNetwork(run.config, run.model, run.parameters, dataset, evaluation, choice);
    const accuracies = evaluation.test;
    return await exportDiscreteNetwork(net, {
      ...options,
      formats: formats.map((f) => f.name),
      outDir,
      testLimit: options.testLimit ?? run.config.dataset.testLimit,
      testSet: dataset.test,
      source: {
        checkpoint: path.resolve(options.checkpoint), preset: run.config.preset, globalStep: run.globalStep,
        dataset: { name: dataset.identity.name, checksum: dataset.identity.checksum },
      },
      evaluated: {
        test: choice === 'argmax' ? accuracies.argmax : accuracies.selected,
        validation: choice === 'argmax' ? evaluation.validation.argmax : evaluation.validation.selected,
        batchNormImages: evaluation.batchNormImages,
      },
    });
  } finally {
    if (net) disposeDiscreteNetwork(net);
    disposeParameters(run.parameters);
  }
}

/** Normalized inputs, raw pixels, labels and reference logits of the first `count` test images. */
async function verificationSet(net: DiscreteNetwork, set: ImageSet, count: number): Promise<VerificationSet> {
  const [h, w, c] = net.model.inputShape;
  if (set.height !== h || set.width !== w || set.channels !== c) {
    throw new ExportError('invalid-argument', `test images are ${set.height}x${set.width}x${set.channels}, the net takes ${h}x${w}x${c}`);
  }
  const per = h * w * c;
  const indices = Int32Array.from({ length: count }, (_, i) => i);
  const inputs = new Float32Array(count * per);
  fillBatch(set, indices, net.normalization, false, new Random(0), inputs);
  const k = net.model.numClasses;
  const reference = new Float32Array(count * k);
  for (let start = 0; start < count; start += REFERENCE_BATCH) {
    const n = Math.min(REFERENCE_BATCH, count - start);
    const x = tf.tensor4d(inputs.subarray(start * per, (start + n) * per), [n, h, w, c]);
    const logits = discreteLogits(net, x);
    reference.set(await logits.data() as Float32Array, start * k);
    tf.dispose([x, logits]);
  }
  return {
    count, inputShape: [h, w, c], numClasses: k, inputs, reference,
    pixels: set.pixels.slice(0, count * per), labels: set.labels.slice(0, count),
  };
}

function writeFiles(dir: string, files: readonly ExportFile[]): { path: string; bytes: number }[] {
  fs.mkdirSync(dir, { recursive: true });
  return files.map((f) => {
    const target = path.join(dir, f.path);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, f.data);
    return { path: f.path, bytes: fileBytes(f) };
  });
}

function bytesOf(values: Float32Array | Uint8Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

function writeGolden(dir: string, set: VerificationSet, count: number): GoldenVectorsV1 {
  const per = set.inputShape[0] * set.inputShape[1] * set.inputShape[2];
  const files = { inputs: 'inputs.f32', logits: 'logits.f32', pixels: 'pixels.u8', labels: 'labels.u8' };
  const golden: GoldenVectorsV1 = { dir: 'golden', count, testIndices: Array.from({ length: count }, (_, i) => i), files };
  writeFiles(dir, [
    { path: files.inputs, data: bytesOf(set.inputs.subarray(0, count * per)) },
    { path: files.logits, data: bytesOf(set.reference.subarray(0, count * set.numClasses)) },
    { path: files.pixels, data: set.pixels.subarray(0, count * per) },
    { path: files.labels, data: set.labels.subarray(0, count) },
    {
      path: 'golden.json',
      data: `${JSON.stringify({
        ...golden, inputShape: set.inputShape, numClasses: set.numClasses, byteOrder: 'little-endian',
        layout: { inputs: 'count x h x w x c float32 (normalized)', logits: 'count x classes float32', pixels: 'count x h x w x c uint8', labels: 'count uint8' },
      }, null, 1)}\n`,
    },
  ]);
  return golden;
}

/** Writes, verifies and reports one format inside the staging folder. */
async function exportFormat(
  format: ExportFormatEntry<ExportFormatName>,
  graph: ExportGraph,
  staging: string,
  set: VerificationSet,
  float32Bytes: number,
  options: ExportNetworkOptions,
): Promise<FormatReportV1> {
  const dir = path.join(staging, format.name);
  const { files, details, deployed } = format.write(graph, { source: options.source ?? {}, ternaryEncoding: options.ternaryEncoding ?? '2bit' });
  const written = writeFiles(dir, files);
  const totalBytes = written.reduce((s, f) => s + f.bytes, 0);
  options.onProgress?.(`verifying ${format.name}`);
  const verification = await VERIFIERS[format.name](dir, graph, set);
  return {
    format: format.name, version: format.version, dir: format.name, files: written, totalBytes,
    compressionVsFloat32: Math.round((float32Bytes / (deployed?.bytes ?? totalBytes)) * 100) / 100,
    verification, details: deployed ? { ...details, compressionBasis: deployed.basis } : details,
  };
}

/**
 * Exports a discrete network that is already built (exportRun's second half; tests and benchmarks use it with nets
 * made without a checkpoint). The caller keeps ownership of the net.
 */
export async function exportDiscreteNetwork(net: DiscreteNetwork, options: ExportNetworkOptions): Promise<ExportResult> {
  const formats = normalizeFormats(options.formats);
  checkCount('testLimit', options.testLimit);
  checkCount('goldenCount', options.goldenCount);
  const outDir = path.resolve(options.outDir);
  checkDestination(outDir, options.force ?? false);
  checkArchitecture(formats, net.model.architecture);
  let graph: ExportGraph;
  try {
    graph = await buildExportGraph(net);
  } catch (error) {
    if (error instanceof ExportGraphError) throw new ExportError('unsupported', error.message);
    throw error;
  }
  const count = Math.min(options.testLimit ?? options.testSet.count, options.testSet.count);
  if (count < 1) throw new ExportError('invalid-argument', 'the test set is empty: nothing to verify the export on');
  options.onProgress?.(`computing reference logits of ${count} test images`);
  const set = await verificationSet(net, options.testSet, count);

  const staging = createStaging(outDir);
  try {
    options.onStart?.(staging);
    const golden = writeGolden(path.join(staging, 'golden'), set, Math.min(options.goldenCount ?? DEFAULT_GOLDEN, count));
    const { layers, totals } = describeGraph(graph, options.ternaryEncoding ?? '2bit');
    const formatReports: ExportReportV1['formats'] = {};
    for (const format of formats) {
      options.onProgress?.(`writing ${format.name}`);
      formatReports[format.name] = await exportFormat(format, graph, staging, set, totals.float32Bytes, options);
    }
    let referenceCorrect = 0;
    for (let i = 0; i < count; i++) {
      let best = 0;
      for (let j = 1; j < set.numClasses; j++) if (set.reference[i * set.numClasses + j]! > set.reference[i * set.numClasses + best]!) best = j;
      if (best === set.labels[i]) referenceCorrect++;
    }
    const passed = Object.values(formatReports).every((f) => f.verification.passed);
    const report: ExportReportV1 = {
      format: EXPORT_REPORT_FORMAT, version: 1, createdAt: new Date().toISOString(), status: passed ? 'passed' : 'failed',
      source: options.source ?? {},
      net: {
        ...graph.net,
        ...(options.evaluated?.test !== undefined ? { evaluatedTestAccuracy: options.evaluated.test } : {}),
        ...(options.evaluated?.validation !== undefined ? { evaluatedValidationAccuracy: options.evaluated.validation } : {}),
        ...(options.evaluated?.batchNormImages !== undefined ? { batchNormImages: options.evaluated.batchNormImages } : {}),
      },
      input: { shape: [...graph.inputShape], layout: 'NHWC', normalization: graph.normalization },
      numClasses: graph.numClasses,
      layers, totals, formats: formatReports, golden,
      verification: { images: count, reference: { implementation: 'discreteLogits', backend: tf.getBackend(), accuracy: referenceCorrect / count } },
    };
    fs.writeFileSync(path.join(staging, REPORT_FILE), `${JSON.stringify(report, null, 1)}\n`);
    publish(staging, outDir, options.force ?? false);
    options.onProgress?.(`export ${report.status}: ${outDir}`);
    return { outDir, report };
  } catch (error) {
    discardStaging(staging);
    throw error;
  }
}
