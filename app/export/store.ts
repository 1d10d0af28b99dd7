/**
 * Records exports as run artifacts: one artifact per format (kind "export-packed", "export-c", "export-onnx",
 * "export-tfjs"), 'running' while the export works, then 'done' or 'failed' with that format's report. The only place
 * the export code touches the store.
 */
import path from 'node:path';
import type { ArtifactRecord, WritableStore } from '../store/index.ts';
import { EXPORT_FORMATS, ExportError, exportRun, type ExportFormat, type ExportResult, type ExportRunOptions } from './index.ts';

export function artifactKind(format: ExportFormat): string {
  return `export-${format}`;
}

/** The part of an export report that belongs to one format's artifact. */
export function artifactReport(result: ExportResult, format: ExportFormat): object {
  const r = result.report;
  return {
    format: r.formats[format], status: r.status, createdAt: r.createdAt, net: r.net, source: r.source, input: r.input,
    totals: r.totals, layers: r.layers, verificationImages: r.verification.images, reference: r.verification.reference,
    reportFile: path.join(result.outDir, 'report.json'),
  };
}

/** Runs exportRun for a run of the store and records one artifact per format. Errors are recorded, then rethrown. */
export async function exportRunWithArtifacts(store: WritableStore, runId: string, options: ExportRunOptions): Promise<{ result: ExportResult; artifacts: ArtifactRecord[] }> {
  const formats = options.formats === 'all' ? [...EXPORT_FORMATS] : EXPORT_FORMATS.filter((f) => options.formats.includes(f));
  const outDir = path.resolve(options.outDir);
  const pending = formats.map((format) => store.addArtifact(runId, {
    kind: artifactKind(format), path: path.join(outDir, format), status: 'running', report: { net: options.net ?? 'argmax' },
  }));
  try {
    const result = await exportRun(options);
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
