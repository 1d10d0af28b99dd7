/**
 * Records exports as run artifacts: one artifact per format (kind "export-" and the format's name, e.g.
 * "export-onnx"), 'running' while the export works, then 'done' or 'failed' with that format's report. With
 * interrupted.ts, the only place the export code touches the store.
 */
import path from 'node:path';
import type { ArtifactRecord, ReadableStore, WritableStore } from '../store/index.ts';
import { currentProcess } from '../store/process-identity.ts';
import { EXPORT_FORMAT_NAMES, ExportError, exportRun, type ExportFormatName, type ExportResult, type ExportRunOptions } from './index.ts';
import { markInterruptedExports, type RunningExportReport } from './interrupted.ts';

function artifactKind(format: ExportFormatName): string {
  return `export-${format}`;
}

/** The part of an export report that belongs to one format's artifact. */
function artifactReport(result: ExportResult, format: ExportFormatName): object {
  const r = result.report;
  return {
    format: r.formats[format], status: r.status, createdAt: r.createdAt, net: r.net, source: r.source, input: r.input,
    totals: r.totals, layers: r.layers, verificationImages: r.verification.images, reference: r.verification.reference,
    reportFile: path.join(result.outDir, 'report.json'),
  };
}

/**
 * Runs exportRun for a run of the store and records one artifact per format: 'running' (with this process, so a
 * killed export can be told from a live one) from the moment the export starts writing, then 'done' or 'failed'.
 * A refused request (an ExportError before any writing) records nothing: the artifacts name only what lrnet wrote.
 * Errors are rethrown.
 */
export async function exportRunWithArtifacts(store: WritableStore & ReadableStore, runId: string, options: ExportRunOptions): Promise<{ result: ExportResult; artifacts: ArtifactRecord[] }> {
  markInterruptedExports(store, runId);
  const formats = options.formats === 'all' ? [...EXPORT_FORMAT_NAMES] : EXPORT_FORMAT_NAMES.filter((f) => options.formats.includes(f));
  const outDir = path.resolve(options.outDir);
  let pending: ArtifactRecord[] = [];
  const started = (staging: string): void => {
    const report: RunningExportReport = { net: options.net ?? 'argmax', owner: currentProcess(), outDir };
    pending = formats.map((format) => store.addArtifact(runId, { kind: artifactKind(format), path: path.join(outDir, format), status: 'running', report }));
    options.onStart?.(staging);
  };
  try {
    const result = await exportRun({ ...options, onStart: started });
    const artifacts = formats.map((format, i) => store.updateArtifact(pending[i]!.id, {
      status: result.report.formats[format]?.verification.passed ? 'done' : 'failed',
      report: artifactReport(result, format),
    }));
    return { result, artifacts };
  } catch (error) {
    const report = { error: (error as Error).message, ...(error instanceof ExportError ? { code: error.code } : {}) };
    for (const a of pending) store.updateArtifact(a.id, { status: 'failed', report });
    throw error;
  }
}
