/**
 * Resumable HTTP(S) transfers with node's http/https only: a file is fetched into `<file>.part` (with a small
 * `.part.json` naming the URL and the server's validators), redirects are followed, and an interrupted transfer
 * continues with a Range request (If-Range when the server gave an ETag or Last-Modified); a server that ignores
 * Range sends the whole file again, and the part starts over. What the bytes are is download.ts's business.
 */
import fsp from 'node:fs/promises';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { pipeline } from 'node:stream/promises';
import type { PublishedFile } from './catalog.ts';

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

/** Sidecar of a .part file: resuming is only safe from the same URL and the same version of the file. */
export interface PartInfo {
  readonly url: string;
  readonly etag?: string;
  readonly lastModified?: string;
  readonly total?: number;
}

const USER_AGENT = 'lrnet/0.1 (dataset downloader)';
const MAX_REDIRECTS = 5;
const PROGRESS_INTERVAL_MS = 100;
const RATE_WINDOW_MS = 3000;

export async function sizeOf(file: string): Promise<number | undefined> {
  try {
    const st = await fsp.stat(file);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

export async function removeQuietly(file: string): Promise<void> {
  await fsp.rm(file, { force: true });
}

export async function readPartInfo(part: string): Promise<PartInfo | undefined> {
  try {
    const info = JSON.parse(await fsp.readFile(part + '.json', 'utf8')) as Partial<PartInfo>;
    return typeof info.url === 'string' ? (info as PartInfo) : undefined;
  } catch {
    return undefined;
  }
}

export async function discardPart(part: string): Promise<void> {
  await removeQuietly(part);
  await removeQuietly(part + '.json');
}

/** A transfer failure worth retrying (the partial file is kept). */
export class TransientError extends Error {
  override name = 'TransientError';
}

/** An HTTP status that makes this mirror useless for this file. */
export class HttpStatusError extends Error {
  override name = 'HttpStatusError';
  constructor(
    readonly status: number,
    readonly url: string,
  ) {
    super(`${url} answered HTTP ${status} ${http.STATUS_CODES[status] ?? ''}`.trim());
  }
}

export function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true || (err as { name?: string } | null)?.name === 'AbortError';
}

/** Opens a GET request and follows redirects; resolves with the final response (status not checked). */
export function openResponse(
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

export function describeNetworkError(err: unknown): string {
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
export function parseContentRange(value: string | undefined): { start: number; end: number; total: number | undefined } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

/** Rate over a sliding window of (time, bytes) samples. */
export class RateMeter {
  private samples: [number, number][] = [];
  add(now: number, bytes: number): number {
    this.samples.push([now, bytes]);
    while (this.samples.length > 2 && now - this.samples[1]![0] > RATE_WINDOW_MS) this.samples.shift();
    const [t0, b0] = this.samples[0]!;
    return now > t0 ? ((bytes - b0) * 1000) / (now - t0) : 0;
  }
}

export interface TransferOutcome {
  readonly resumedFrom: number;
  readonly restarted: boolean;
  readonly requests: number;
}

/**
 * Transfers `url` into `part`, resuming what is there. Throws TransientError (retry), HttpStatusError (next mirror)
 * or DownloadError ('aborted', 'io').
 */
export async function transfer(
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

export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
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
