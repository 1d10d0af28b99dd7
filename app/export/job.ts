/**
 * Exports in a child process. An export loads the dataset, rebuilds the discrete net and runs every consumer
 * (ONNX Runtime, the compiled C, TensorFlow.js) over the test set: seconds of CPU that would otherwise freeze the
 * process serving the UI and its live events. The child records its artifacts in the store itself (its own
 * connection; SQLite's WAL lets both write) and answers with the report.
 *
 * runExportJob() is the parent's side; the bottom of this file is the child's.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { forkTypeScript } from '../../engine/typescript-entry.ts';
import type { BackendChoice } from '../../engine/backends/index.ts';
import type { ExportFormatName, ExportReportV1 } from './index.ts';
import { clearStaleStaging } from './folders.ts';
import { markInterruptedExports } from './interrupted.ts';
import { openStore } from '../store/index.ts';

export interface ExportJob {
  readonly databasePath: string;
  readonly runId: string;
  readonly checkpoint: string;
  readonly format: ExportFormatName;
  readonly outDir: string;
  readonly force: boolean;
  readonly backend: BackendChoice;
}

export type ExportJobReply =
  | { readonly type: 'done'; readonly outDir: string; readonly artifactId: number | null; readonly report: ExportReportV1 }
  | { readonly type: 'failed'; readonly name: string; readonly code?: string; readonly message: string };

const SELF = fileURLToPath(import.meta.url);

/** Runs one export in a child process; resolves with its reply (a failure is a reply too, never a rejection). */
export function runExportJob(job: ExportJob): Promise<ExportJobReply> {
  return new Promise((resolve) => {
    let stderr = '';
    let reply: ExportJobReply | undefined;
    const child = forkTypeScript(SELF, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced' });
    child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    child.on('message', (message: unknown) => {
      const m = message as { type?: string };
      if (m.type === 'ready') child.send(job);
      else if (m.type === 'done' || m.type === 'failed') reply = message as ExportJobReply;
    });
    child.on('exit', (code, signal) => {
      if (reply) return resolve(reply);
      // Killed (or crashed) before answering: its artifacts are still 'running' and its staging folder is on disk.
      let cleanup = '';
      try {
        releaseExports(job);
      } catch (error) {
        cleanup = `; marking its artifacts failed also failed: ${(error as Error).message}`;
      }
      resolve({ type: 'failed', name: 'Error', message: `the export process ended (${signal ?? `code ${code}`}) without a result${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' ')}` : ''}${cleanup}` });
    });
  });
}

/** Marks the artifacts of a dead export job failed and removes its staging folder (this process's own connection). */
function releaseExports(job: ExportJob): void {
  const store = openStore(job.databasePath);
  try {
    markInterruptedExports(store, job.runId);
  } finally {
    store.close();
  }
  clearStaleStaging(path.resolve(job.outDir)); // also one it made before recording its artifacts
}

async function child(job: ExportJob): Promise<ExportJobReply> {
  const [{ initBackend }, { exportRunWithArtifacts }] = await Promise.all([
    import('../../engine/backends/index.ts'),
    import('./store.ts'),
  ]);
  await initBackend(job.backend);
  const store = openStore(job.databasePath);
  try {
    const { result, artifacts } = await exportRunWithArtifacts(store, job.runId, {
      checkpoint: job.checkpoint,
      formats: [job.format],
      outDir: job.outDir,
      force: job.force,
    });
    return { type: 'done', outDir: result.outDir, artifactId: artifacts[0]?.id ?? null, report: result.report };
  } finally {
    store.close();
  }
}

if (process.argv[1] === SELF && process.send) {
  process.on('disconnect', () => process.exit(0));
  process.once('message', (job: ExportJob) => {
    child(job).then(
      (reply) => process.send!(reply, () => process.exit(0)),
      (error: Error & { code?: unknown }) => {
        const reply: ExportJobReply = { type: 'failed', name: error.name, message: error.message, ...(typeof error.code === 'string' ? { code: error.code } : {}) };
        process.send!(reply, () => process.exit(1));
      },
    );
  });
  process.send({ type: 'ready' });
}
