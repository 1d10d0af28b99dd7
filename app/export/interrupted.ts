/**
 * Exports whose process died: an export artifact is 'running' while its process works, and records that process
 * and its staging folder. When the process is gone (killed, or its host killed) the artifact would stay 'running'
 * and the staging folder would stay on disk; markInterruptedExports marks such artifacts failed and removes what
 * they left. The CLI calls it when it opens the store, the host when it starts, an export job when its process ends
 * without an answer, and every export for its own run.
 *
 * No TensorFlow.js here, so the host and the CLI can call it cheaply.
 */
import path from 'node:path';
import type { ArtifactRecord, ReadableStore, WritableStore } from '../store/index.ts';
import { ownerState, type ProcessIdentity } from '../store/process-identity.ts';
import { clearStaleStaging } from './folders.ts';

/** The report of an export artifact while its export runs. */
export interface RunningExportReport {
  readonly net: string;
  readonly owner: ProcessIdentity;
  /** The destination folder (the artifact's path is one format folder in it). */
  readonly outDir: string;
}

/** A running artifact recorded before exports recorded their process is taken as dead after this long. */
const UNOWNED_STALE_MS = 60 * 60 * 1000;

export function isExportArtifact(artifact: Pick<ArtifactRecord, 'kind'>): boolean {
  return artifact.kind.startsWith('export-');
}

function ownerOf(artifact: ArtifactRecord): ProcessIdentity | undefined {
  const owner = (artifact.report as { owner?: Partial<ProcessIdentity> } | null)?.owner;
  if (typeof owner?.host !== 'string' || !Number.isInteger(owner.pid) || typeof owner.token !== 'string') return undefined;
  return owner as ProcessIdentity;
}

/**
 * Marks export artifacts whose process is gone as failed (code "interrupted") and clears the staging folders they
 * left next to their destination. Exports of live processes and of other hosts are left alone. Returns the ids
 * marked.
 */
export function markInterruptedExports(store: ReadableStore & WritableStore, runId?: string): number[] {
  const running = store.listArtifacts({ ...(runId !== undefined ? { runId } : {}), status: ['pending', 'running'] }).filter(isExportArtifact);
  const marked: number[] = [];
  for (const artifact of running) {
    const owner = ownerOf(artifact);
    const dead = owner ? ownerState(owner) === 'dead' : Date.now() - artifact.updatedAt > UNOWNED_STALE_MS;
    if (!dead) continue;
    const outDir = (artifact.report as Partial<RunningExportReport> | null)?.outDir ?? path.dirname(artifact.path);
    clearStaleStaging(outDir);
    const who = owner ? `the export process (pid ${owner.pid} on ${owner.host})` : 'the export process';
    store.updateArtifact(artifact.id, {
      status: 'failed',
      report: { code: 'interrupted', error: `interrupted: ${who} ended before the export finished: export again` },
    });
    marked.push(artifact.id);
  }
  return marked;
}
