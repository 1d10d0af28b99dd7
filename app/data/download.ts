/**
 * Downloads a data set's official files into `<dataFolder>/datasets/<name>/`, verifying every file's published md5.
 *
 * Why it is built this way:
 * - A file is written as `<name>.part` and renamed to its final name only once its checksum matches, so a file with
 *   the final name is always a verified one. A file whose checksum is wrong is deleted and reported.
 * - An interrupted transfer keeps its `.part` (plus a small `.part.json` naming the URL and the server's validators).
 *   The next attempt, automatic (`retries`) or a later call, asks for the rest with an HTTP Range request (with
 *   If-Range when the server gave an ETag or Last-Modified). A server that ignores Range answers 200 with the whole
 *   file: the part is then truncated and the transfer starts again from byte 0.
 * - Mirrors are tried in order; a 404, a failing server or a checksum mismatch moves on to the next one.
 * - Only node's http/https: no new dependencies, and it runs in the CLI, the headless host and Electron main alike.
 * - A lock file keeps two processes from writing the same folder at once.
 *
 * The transfer itself is http-transfer.ts, the checksums checksums.ts, the record of verified files manifest.ts.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  BASE_URL_ENV,
  DATASET_SOURCES,
  MANIFEST_FILE,
  PART_SUFFIX,
  datasetFolder,
  isDownloadableDataset,
  DOWNLOADABLE_DATASETS,
  type DownloadableDataset,
  type PublishedFile,
} from './catalog.ts';
import { DownloadError, HttpStatusError, discardPart, removeQuietly, sizeOf, sleep, transfer, type TransferOutcome } from './http-transfer.ts';
import { verifyFile, type VerifiedFile } from './checksums.ts';
import { recordInManifest } from './manifest.ts';

export { DownloadError, type DownloadErrorCode } from './http-transfer.ts';

export interface DownloadProgress {
  readonly dataset: DownloadableDataset;
  readonly file: string;
  /** 0-based index of the file and the number of files of the data set. */
  readonly fileIndex: number;
  readonly fileCount: number;
  /** 'checking': hashing a file already there; 'downloading'; 'verifying': hashing the finished download; 'done'. */
  readonly phase: 'checking' | 'downloading' | 'verifying' | 'done';
  readonly url: string | undefined;
  /** Bytes of this file on disk so far, including a resumed part. */
  readonly bytes: number;
  /** Size of the file, when the server (or the catalogue) says. */
  readonly total: number | undefined;
  /** Transfer rate in bytes per second over the last few seconds (0 when not transferring). */
  readonly rate: number;
  /** Where this transfer resumed (0 when it started from the beginning). */
  readonly resumedFrom: number;
}

export interface DownloadOptions {
  /** The folder holding lrnet's data; files go to `<dataFolder>/datasets/<name>/`. */
  readonly dataFolder: string;
  /**
   * Base URL(s) to use instead of the official mirrors: a file's URL is the base followed by its name. `{name}` in a
   * base is replaced by the data set's name, so one server can host several. Default: `$LRNET_DATA_BASE_URL`
   * (comma-separated), else the official mirrors.
   */
  readonly baseUrl?: string | readonly string[];
  readonly onProgress?: (progress: DownloadProgress) => void;
  /** Aborting stops the transfer and keeps the partial file, so a later call resumes it. */
  readonly signal?: AbortSignal;
  /** Further attempts per mirror after a network failure, each resuming the partial file (default 3). */
  readonly retries?: number;
  /** Wait before a retry, doubled each time (default 1000 ms). */
  readonly retryDelayMs?: number;
  /** A connection with no data for this long is dropped and retried (default 30,000 ms). */
  readonly idleTimeoutMs?: number;
  /** Environment to read LRNET_DATA_BASE_URL from (default process.env); for tests. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface DownloadedFile extends VerifiedFile {
  /** 'already-present': a verified file was there and nothing was transferred. */
  readonly status: 'downloaded' | 'already-present';
  readonly url?: string;
  /** Bytes that were already on disk when the successful transfer started (a resumed .part). */
  readonly resumedFrom: number;
  /** True when a server ignored a Range request and the file was transferred again from the start. */
  readonly restarted: boolean;
  /** HTTP requests made for this file (redirects not counted). */
  readonly requests: number;
}

export interface DownloadResult {
  readonly dataset: DownloadableDataset;
  readonly folder: string;
  readonly files: readonly DownloadedFile[];
}


/** True when process `pid` is alive (signal 0 checks without sending anything). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `<folder>/.lrnet-download.lock`; a lock left by a dead process is taken over. Returns its release. */
async function takeLock(folder: string, name: string): Promise<() => Promise<void>> {
  const lock = path.join(folder, '.lrnet-download.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fsp.writeFile(lock, String(process.pid), { flag: 'wx' });
      return () => removeQuietly(lock);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await fsp.readFile(lock, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
        const who = pid === process.pid ? 'this process' : `another lrnet process (pid ${pid})`;
        throw new DownloadError('busy', `${who} is already downloading ${name} into ${folder}; wait for it to finish (or, if no download is running, delete ${lock})`);
      }
      await removeQuietly(lock); // stale: its process is gone
    }
  }
  throw new DownloadError('busy', `could not take the download lock ${lock}; delete it if no download is running`);
}


/** The base URLs a download uses: the option, else $LRNET_DATA_BASE_URL, else the official mirrors. */
export function mirrorsFor(name: DownloadableDataset, baseUrl?: string | readonly string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const given = typeof baseUrl === 'string' ? [baseUrl] : baseUrl !== undefined && baseUrl.length > 0 ? [...baseUrl] : (env[BASE_URL_ENV] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const bases = given.length > 0 ? given : [...DATASET_SOURCES[name].mirrors];
  return bases.map((b) => {
    const withName = b.replaceAll('{name}', name);
    let parsed: URL;
    try {
      parsed = new URL(withName);
    } catch {
      throw new DownloadError('bad-url', `base URL "${b}" is not a valid URL (expected http://... or https://...)`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new DownloadError('bad-url', `base URL "${b}" is not an http or https URL`);
    }
    return withName.endsWith('/') ? withName : withName + '/';
  });
}

/**
 * Downloads a data set (MNIST, Fashion-MNIST or CIFAR-10) into `<dataFolder>/datasets/<name>/` and verifies every
 * file's published md5. Files already there and verified are kept; a wrong one is replaced. Rejects with a
 * DownloadError: 'checksum' (the file was deleted), 'http' (e.g. 404 on every mirror), 'network', 'aborted' (the
 * partial file is kept for resuming), 'busy', 'io' or 'bad-url'.
 */
export async function downloadDataset(name: DownloadableDataset, options: DownloadOptions): Promise<DownloadResult> {
  if (!isDownloadableDataset(name)) {
    throw new TypeError(`unknown data set ${JSON.stringify(name)}; lrnet can download ${DOWNLOADABLE_DATASETS.join(', ')}`);
  }
  const source = DATASET_SOURCES[name];
  const mirrors = mirrorsFor(name, options.baseUrl, options.env);
  const folder = datasetFolder(options.dataFolder, name);
  const retries = options.retries ?? 3;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  const signal = options.signal;
  try {
    await fsp.mkdir(folder, { recursive: true });
  } catch (err) {
    throw new DownloadError('io', `cannot create ${folder}: ${(err as Error).message}`, undefined, { cause: err });
  }
  const release = await takeLock(folder, source.title);
  try {
    const files: DownloadedFile[] = [];
    for (const [fileIndex, spec] of source.files.entries()) {
      if (signal?.aborted) throw new DownloadError('aborted', 'download stopped');
      const progress = (p: Omit<DownloadProgress, 'dataset' | 'file' | 'fileIndex' | 'fileCount'>) =>
        options.onProgress?.({ dataset: name, file: spec.name, fileIndex, fileCount: source.files.length, ...p });
      files.push(await fetchOne(name, folder, spec, mirrors, { retries, retryDelayMs, idleTimeoutMs, signal, progress }));
    }
    return { dataset: name, folder, files };
  } finally {
    await release();
  }
}

interface FetchContext {
  retries: number;
  retryDelayMs: number;
  idleTimeoutMs: number;
  signal: AbortSignal | undefined;
  progress: (p: Omit<DownloadProgress, 'dataset' | 'file' | 'fileIndex' | 'fileCount'>) => void;
}

async function fetchOne(name: DownloadableDataset, folder: string, spec: PublishedFile, mirrors: readonly string[], ctx: FetchContext): Promise<DownloadedFile> {
  const final = path.join(folder, spec.name);
  const part = final + PART_SUFFIX;
  const existing = await sizeOf(final);
  if (existing !== undefined) {
    ctx.progress({ phase: 'checking', url: undefined, bytes: existing, total: existing, rate: 0, resumedFrom: 0 });
    const check = await verifyFile(final, spec);
    if (check.ok) {
      await record(name, folder, check.file, undefined);
      ctx.progress({ phase: 'done', url: undefined, bytes: existing, total: existing, rate: 0, resumedFrom: 0 });
      return { ...check.file, status: 'already-present', resumedFrom: 0, restarted: false, requests: 0 };
    }
    await removeQuietly(final); // a wrong file under the final name: replace it
  }
  const failures: string[] = [];
  let checksumFailure: string | undefined;
  let lastStatus: number | undefined;
  for (const base of mirrors) {
    const url = base + spec.name;
    let requests = 0;
    let freshRetryLeft = true;
    for (let attempt = 0; attempt <= ctx.retries; attempt++) {
      if (attempt > 0) await sleep(ctx.retryDelayMs * 2 ** (attempt - 1), ctx.signal);
      let outcome: TransferOutcome;
      const partBefore = (await sizeOf(part)) ?? 0;
      try {
        outcome = await transfer(url, part, spec, {
          ...(ctx.signal ? { signal: ctx.signal } : {}),
          idleTimeoutMs: ctx.idleTimeoutMs,
          report: (bytes, total, rate, resumedFrom) => ctx.progress({ phase: 'downloading', url, bytes, total, rate, resumedFrom }),
        });
      } catch (err) {
        if (err instanceof DownloadError) throw err; // aborted, io, bad-url: no point in other mirrors
        if (err instanceof HttpStatusError) {
          requests++;
          lastStatus = err.status;
          failures.push(err.message);
          // 408/429/5xx may pass; anything else (404, 403, 410...) will not.
          if (err.status === 408 || err.status === 429 || err.status >= 500) continue;
          break;
        }
        requests++;
        failures.push((err as Error).message);
        continue;
      }
      requests += outcome.requests;
      const size = (await sizeOf(part)) ?? 0;
      ctx.progress({ phase: 'verifying', url, bytes: size, total: size, rate: 0, resumedFrom: outcome.resumedFrom });
      const check = await verifyFile(part, spec);
      if (check.ok) {
        try {
          await fsp.rename(part, final);
        } catch (err) {
          throw new DownloadError('io', `cannot rename ${part} to ${final}: ${(err as Error).message}`, undefined, { cause: err });
        }
        await removeQuietly(part + '.json');
        const file: VerifiedFile = { ...check.file, path: final };
        await record(name, folder, file, url);
        ctx.progress({ phase: 'done', url, bytes: size, total: size, rate: 0, resumedFrom: outcome.resumedFrom });
        return { ...file, status: 'downloaded', url, resumedFrom: outcome.resumedFrom, restarted: outcome.restarted, requests };
      }
      await discardPart(part);
      checksumFailure = `${spec.name} from ${url} has the wrong checksum: ${check.problem}. The file was deleted`;
      failures.push(checksumFailure);
      // A resumed file may have been spliced from two versions: one fresh transfer from the same URL settles it.
      if (partBefore > 0 && freshRetryLeft) {
        freshRetryLeft = false;
        attempt--;
        continue;
      }
      break;
    }
  }
  const tried = mirrors.length > 1 ? ` (tried ${mirrors.length} mirrors)` : '';
  if (checksumFailure !== undefined) {
    throw new DownloadError(
      'checksum',
      `${checksumFailure}${tried}. The server sent damaged or different data: try again later, or another mirror with --base-url / ${BASE_URL_ENV}`,
    );
  }
  const detail = failures.map((f) => `  - ${f}`).join('\n');
  if (lastStatus !== undefined && failures.every((f) => /answered HTTP/.test(f))) {
    throw new DownloadError(
      'http',
      `could not download ${spec.name}${tried}:\n${detail}\nCheck the base URL (the file must be at BASE/${spec.name}); the official source is ${DATASET_SOURCES[name].homepage}`,
      lastStatus,
    );
  }
  // Only a transfer that got some bytes leaves a partial file (a refused connection leaves none).
  const partial = (await sizeOf(part)) ?? 0;
  const next =
    partial > 0
      ? `The partial file ${path.basename(part)} (${partial} bytes) is kept: run the download again to resume it`
      : 'Nothing was downloaded: check the network (or --base-url) and run the download again';
  throw new DownloadError('network', `could not download ${spec.name}${tried}:\n${detail}\n${next}`);
}

async function record(name: DownloadableDataset, folder: string, file: VerifiedFile, url: string | undefined): Promise<void> {
  const st = await fsp.stat(file.path);
  try {
    await recordInManifest(folder, name, {
      name: file.name,
      bytes: st.size,
      mtimeMs: st.mtimeMs,
      md5: file.md5,
      ...(file.inflatedMd5 !== undefined ? { inflatedMd5: file.inflatedMd5 } : {}),
      verifiedBy: file.verifiedBy,
      ...(url !== undefined ? { url } : {}),
      verifiedAt: new Date().toISOString(),
    });
  } catch (err) {
    throw new DownloadError('io', `cannot write ${path.join(folder, MANIFEST_FILE)}: ${(err as Error).message}`, undefined, { cause: err });
  }
}
