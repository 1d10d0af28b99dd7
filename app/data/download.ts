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
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { pipeline } from 'node:stream/promises';
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

/** What went wrong, for callers that react differently (the CLI exits 130 on 'aborted'). */
export type DownloadErrorCode = 'checksum' | 'http' | 'network' | 'aborted' | 'busy' | 'io' | 'bad-url';

/** A download that failed; `message` names the file and URL, says what happened and what to do. */
export class DownloadError extends Error {
  override name = 'DownloadError';
  constructor(
    readonly code: DownloadErrorCode,
    message: string,
    /** HTTP status for code 'http'. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

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

/** How a file's checksum was confirmed. */
export type VerifiedBy = 'md5' | 'inflated-md5';

export interface VerifiedFile {
  readonly name: string;
  readonly path: string;
  readonly bytes: number;
  /** md5 of the file as stored. */
  readonly md5: string;
  /** md5 of the gunzipped content, when the catalogue has a published one to compare with. */
  readonly inflatedMd5?: string;
  readonly verifiedBy: readonly VerifiedBy[];
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

/** The record a download leaves next to the files; listDatasets uses it to skip re-hashing unchanged files. */
export interface DatasetManifest {
  readonly format: 1;
  readonly name: DownloadableDataset;
  readonly files: readonly ManifestEntry[];
}

export interface ManifestEntry {
  readonly name: string;
  readonly bytes: number;
  readonly mtimeMs: number;
  readonly md5: string;
  readonly inflatedMd5?: string;
  readonly verifiedBy: readonly VerifiedBy[];
  readonly url?: string;
  readonly verifiedAt: string;
}

/** Sidecar of a .part file: resuming is only safe from the same URL and the same version of the file. */
interface PartInfo {
  readonly url: string;
  readonly etag?: string;
  readonly lastModified?: string;
  readonly total?: number;
}

const USER_AGENT = 'lrnet/0.1 (dataset downloader)';
const MAX_REDIRECTS = 5;
const PROGRESS_INTERVAL_MS = 100;
const RATE_WINDOW_MS = 3000;

// ---------------------------------------------------------------------------------------------------------------
// Checksums

/** md5 (hex) of a file, streamed. */
export async function md5OfFile(file: string): Promise<string> {
  const hash = crypto.createHash('md5');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

/** md5 (hex) of a gzip file's inflated content, streamed; throws when the data does not inflate. */
export async function md5OfInflated(file: string): Promise<string> {
  const hash = crypto.createHash('md5');
  await pipeline(fs.createReadStream(file), zlib.createGunzip(), hash);
  return hash.digest('hex');
}

export type Verification =
  | { readonly ok: true; readonly file: VerifiedFile }
  | { readonly ok: false; readonly md5: string; readonly inflatedMd5?: string; readonly problem: string };

/**
 * Checks a file against its published checksums. Accepted when its md5 is the published one, or, for files whose
 * uncompressed md5 is published (MNIST), when its content inflates to exactly the published data (a mirror may
 * re-compress). Where both are known both are checked, and a contradiction is refused.
 */
export async function verifyFile(file: string, spec: PublishedFile, onHashing?: () => void): Promise<Verification> {
  onHashing?.();
  const st = await fsp.stat(file);
  const md5 = await md5OfFile(file);
  let inflatedMd5: string | undefined;
  let inflateProblem: string | undefined;
  if (spec.inflatedMd5 !== undefined) {
    try {
      inflatedMd5 = await md5OfInflated(file);
    } catch (err) {
      inflateProblem = `it does not gunzip (${(err as Error).message})`;
    }
  }
  const md5Ok = md5 === spec.md5;
  const inflatedOk = inflatedMd5 !== undefined && inflatedMd5 === spec.inflatedMd5;
  const verifiedBy: VerifiedBy[] = [];
  if (md5Ok) verifiedBy.push('md5');
  if (inflatedOk) verifiedBy.push('inflated-md5');
  const contradiction = md5Ok && spec.inflatedMd5 !== undefined && !inflatedOk;
  if (verifiedBy.length > 0 && !contradiction) {
    return {
      ok: true,
      file: { name: spec.name, path: file, bytes: st.size, md5, ...(inflatedMd5 !== undefined ? { inflatedMd5 } : {}), verifiedBy },
    };
  }
  let problem = `its md5 is ${md5}, the published md5 is ${spec.md5}`;
  if (spec.inflatedMd5 !== undefined) {
    problem += inflateProblem !== undefined ? `, and ${inflateProblem}` : `, and its uncompressed content has md5 ${inflatedMd5}, not the published ${spec.inflatedMd5}`;
  }
  return { ok: false, md5, ...(inflatedMd5 !== undefined ? { inflatedMd5 } : {}), problem };
}

// ---------------------------------------------------------------------------------------------------------------
// Small file helpers

async function sizeOf(file: string): Promise<number | undefined> {
  try {
    const st = await fsp.stat(file);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

async function removeQuietly(file: string): Promise<void> {
  await fsp.rm(file, { force: true });
}

async function readPartInfo(part: string): Promise<PartInfo | undefined> {
  try {
    const info = JSON.parse(await fsp.readFile(part + '.json', 'utf8')) as Partial<PartInfo>;
    return typeof info.url === 'string' ? (info as PartInfo) : undefined;
  } catch {
    return undefined;
  }
}

async function discardPart(part: string): Promise<void> {
  await removeQuietly(part);
  await removeQuietly(part + '.json');
}

/** Reads a data set's manifest; undefined when missing or unreadable (it is only a cache of checksums). */
export function readManifest(folder: string): DatasetManifest | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(folder, MANIFEST_FILE), 'utf8')) as Partial<DatasetManifest>;
    if (m.format !== 1 || !Array.isArray(m.files) || !isDownloadableDataset(m.name)) return undefined;
    return m as DatasetManifest;
  } catch {
    return undefined;
  }
}

async function recordInManifest(folder: string, name: DownloadableDataset, entry: ManifestEntry): Promise<void> {
  const previous = readManifest(folder);
  const files = (previous?.files ?? []).filter((f) => f.name !== entry.name);
  files.push(entry);
  files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const manifest: DatasetManifest = { format: 1, name, files };
  const file = path.join(folder, MANIFEST_FILE);
  await fsp.writeFile(file + '.tmp', JSON.stringify(manifest, null, 2) + '\n');
  await fsp.rename(file + '.tmp', file);
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

// ---------------------------------------------------------------------------------------------------------------
// HTTP

/** A transfer failure worth retrying (the partial file is kept). */
class TransientError extends Error {
  override name = 'TransientError';
}

/** An HTTP status that makes this mirror useless for this file. */
class HttpStatusError extends Error {
  override name = 'HttpStatusError';
  constructor(
    readonly status: number,
    readonly url: string,
  ) {
    super(`${url} answered HTTP ${status} ${http.STATUS_CODES[status] ?? ''}`.trim());
  }
}

function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true || (err as { name?: string } | null)?.name === 'AbortError';
}

/** Opens a GET request and follows redirects; resolves with the final response (status not checked). */
function openResponse(
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal | undefined,
  idleTimeoutMs: number,
  redirectsLeft = MAX_REDIRECTS,
): Promise<{ res: http.IncomingMessage; url: string }> {
  return new Promise((resolve, reject) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      reject(new DownloadError('bad-url', `"${url}" is not a valid URL`));
      return;
    }
    const client = parsed.protocol === 'https:' ? https : parsed.protocol === 'http:' ? http : undefined;
    if (!client) {
      reject(new DownloadError('bad-url', `"${url}" is not an http or https URL`));
      return;
    }
    const req = client.get(parsed, { headers, ...(signal ? { signal } : {}) }, (res) => {
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if ([301, 302, 303, 307, 308].includes(status) && location) {
        res.resume();
        if (redirectsLeft <= 0) {
          reject(new TransientError(`${url}: too many redirects`));
          return;
        }
        const next = new URL(location, parsed).toString();
        openResponse(next, headers, signal, idleTimeoutMs, redirectsLeft - 1).then(resolve, reject);
        return;
      }
      resolve({ res, url });
    });
    req.setTimeout(idleTimeoutMs, () => req.destroy(new TransientError(`no data from ${parsed.host} for ${Math.round(idleTimeoutMs / 1000)} s`)));
    req.on('error', (err) => {
      if (isAbort(err, signal)) reject(new DownloadError('aborted', 'download stopped', undefined, { cause: err }));
      else reject(err instanceof TransientError || err instanceof DownloadError ? err : new TransientError(`${url}: ${describeNetworkError(err)}`));
    });
  });
}

function describeNetworkError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name does not resolve (${e.code}; offline?)`;
    case 'ECONNREFUSED':
      return 'the connection was refused';
    case 'ECONNRESET':
      return 'the connection was reset';
    case 'ETIMEDOUT':
      return 'the connection timed out';
    default:
      return e.message || String(err);
  }
}

/** Parses `bytes START-END/TOTAL` (TOTAL may be `*`). */
function parseContentRange(value: string | undefined): { start: number; end: number; total: number | undefined } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

/** Rate over a sliding window of (time, bytes) samples. */
class RateMeter {
  private samples: [number, number][] = [];
  add(now: number, bytes: number): number {
    this.samples.push([now, bytes]);
    while (this.samples.length > 2 && now - this.samples[1]![0] > RATE_WINDOW_MS) this.samples.shift();
    const [t0, b0] = this.samples[0]!;
    return now > t0 ? ((bytes - b0) * 1000) / (now - t0) : 0;
  }
}

interface TransferOutcome {
  readonly resumedFrom: number;
  readonly restarted: boolean;
  readonly requests: number;
}

/**
 * Transfers `url` into `part`, resuming what is there. Throws TransientError (retry), HttpStatusError (next mirror)
 * or DownloadError ('aborted', 'io').
 */
async function transfer(
  url: string,
  part: string,
  spec: PublishedFile,
  options: { signal?: AbortSignal; idleTimeoutMs: number; report: (bytes: number, total: number | undefined, rate: number, resumedFrom: number) => void },
): Promise<TransferOutcome> {
  let start = (await sizeOf(part)) ?? 0;
  const info = start > 0 ? await readPartInfo(part) : undefined;
  if (start > 0 && info?.url !== url) {
    // A part from another URL (another mirror may serve different bytes) is not safe to continue.
    await discardPart(part);
    start = 0;
  }
  let requests = 0;
  let restarted = false;
  for (;;) {
    const headers: Record<string, string> = { 'User-Agent': USER_AGENT, 'Accept-Encoding': 'identity' };
    if (start > 0) {
      headers['Range'] = `bytes=${start}-`;
      const validator = info?.etag && !info.etag.startsWith('W/') ? info.etag : info?.lastModified;
      if (validator) headers['If-Range'] = validator;
    }
    requests++;
    const { res } = await openResponse(url, headers, options.signal, options.idleTimeoutMs);
    const status = res.statusCode ?? 0;
    let append = false;
    let total: number | undefined;
    if (status === 206 && start > 0) {
      const range = parseContentRange(res.headers['content-range']);
      if (!range || range.start !== start) {
        // Not the range asked for: start over rather than guess.
        res.resume();
        await discardPart(part);
        start = 0;
        restarted = true;
        continue;
      }
      append = true;
      total = range.total;
    } else if (status === 200 || (status === 206 && start === 0)) {
      if (start > 0) restarted = true; // the server ignored Range (or the file changed): the body is the whole file
      const length = Number(res.headers['content-length']);
      total = status === 200 && Number.isFinite(length) && res.headers['content-length'] !== undefined ? length : parseContentRange(res.headers['content-range'])?.total;
      start = 0;
    } else if (status === 416 && start > 0) {
      res.resume();
      const total416 = parseContentRange(res.headers['content-range']?.replace('*', '0-0'))?.total;
      if (total416 === start) return { resumedFrom: start, restarted, requests }; // the part is already complete
      await discardPart(part);
      start = 0;
      restarted = true;
      continue;
    } else {
      res.resume();
      throw new HttpStatusError(status, url);
    }
    total ??= spec.bytes;
    const partInfo: PartInfo = {
      url,
      ...(typeof res.headers.etag === 'string' ? { etag: res.headers.etag } : {}),
      ...(typeof res.headers['last-modified'] === 'string' ? { lastModified: res.headers['last-modified'] } : {}),
      ...(total !== undefined ? { total } : {}),
    };
    try {
      await fsp.writeFile(part + '.json', JSON.stringify(partInfo));
    } catch (err) {
      res.destroy();
      throw new DownloadError('io', `cannot write ${part}.json: ${(err as Error).message}`, undefined, { cause: err });
    }
    const resumedFrom = start;
    let bytes = start;
    const meter = new RateMeter();
    let lastReport = 0;
    options.report(bytes, total, 0, resumedFrom);
    const counter = async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        bytes += chunk.length;
        const now = Date.now();
        const rate = meter.add(now, bytes);
        if (now - lastReport >= PROGRESS_INTERVAL_MS) {
          lastReport = now;
          options.report(bytes, total, rate, resumedFrom);
        }
        yield chunk;
      }
    };
    try {
      const out = fs.createWriteStream(part, { flags: append ? 'a' : 'w' });
      if (options.signal) await pipeline(res, counter, out, { signal: options.signal });
      else await pipeline(res, counter, out);
    } catch (err) {
      if (isAbort(err, options.signal)) throw new DownloadError('aborted', 'download stopped', undefined, { cause: err });
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
        throw new DownloadError('io', `cannot write ${part}: ${(err as Error).message}`, undefined, { cause: err });
      }
      throw new TransientError(`${url}: the transfer broke off after ${bytes} bytes (${describeNetworkError(err)})`);
    }
    const onDisk = (await sizeOf(part)) ?? 0;
    if (total !== undefined && onDisk < total && res.headers['content-length'] !== undefined) {
      throw new TransientError(`${url}: the transfer ended after ${onDisk} of ${total} bytes`);
    }
    options.report(onDisk, total ?? onDisk, meter.add(Date.now(), onDisk), resumedFrom);
    return { resumedFrom, restarted, requests };
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new DownloadError('aborted', 'download stopped'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new DownloadError('aborted', 'download stopped'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The entry point

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
