/**
 * Data set downloads against a loopback HTTP server (127.0.0.1, random port) that serves the real MNIST files of
 * ../shared/data/mnist and can misbehave on demand: flip a byte, cut the connection, ignore Range, answer 404.
 */
import { describe, it, expect, beforeAll, afterAll, beforeEach } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { DownloadError, downloadDataset, mirrorsFor, type DownloadProgress } from '../app/data/download.ts';
import { DATASET_SOURCES, MANIFEST_FILE } from '../app/data/catalog.ts';
import { datasetSpecByName, listDatasets, resolveDatasetPath } from '../app/data/registry.ts';
import { dataCommand, type DataCommandIo } from '../app/cli/data.ts';
import { DatasetError } from '../engine/data/errors.ts';
import { loadDataset } from '../engine/data/index.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MNIST_DIR = path.resolve(repoRoot, '../shared/data/mnist');
const FILES = DATASET_SOURCES.mnist.files.map((f) => f.name);
const md5 = (b: Uint8Array) => crypto.createHash('md5').update(b).digest('hex');

interface Served {
  url: string;
  range: string | undefined;
  status: number;
}

/** What the server does; reset before each test. */
interface Behaviour {
  /** File name -> byte offset to flip (XOR 0xff) in every response. */
  corrupt: Map<string, number>;
  /** File name -> bytes after which the next response for it is cut (once). */
  cutAfter: Map<string, number>;
  /** File name -> bytes after which the next response for it stalls (once): the connection stays open, silent. */
  stallAfter: Map<string, number>;
  /** Called once a stalled response's bytes have been handed to the socket. */
  onStall: (() => void) | undefined;
  ignoreRange: boolean;
  /** Path prefixes answered with 404. */
  notFoundPrefix: string;
}

const bodies = new Map<string, Buffer>();
let server: http.Server;
let base: string;
let served: Served[] = [];
let behaviour: Behaviour;
let tmp: string;

function reset(): void {
  served = [];
  behaviour = { corrupt: new Map(), cutAfter: new Map(), stallAfter: new Map(), onStall: undefined, ignoreRange: false, notFoundPrefix: '/missing/' };
}

beforeAll(async () => {
  for (const f of FILES) bodies.set(f, fs.readFileSync(path.join(MNIST_DIR, f)));
  server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const range = req.headers.range;
    const name = path.posix.basename(url);
    const original = bodies.get(name);
    const answer = (status: number) => served.push({ url, range, status });
    if (url.startsWith(behaviour.notFoundPrefix) || !original) {
      answer(404);
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    let body = original;
    const flip = behaviour.corrupt.get(name);
    if (flip !== undefined) {
      body = Buffer.from(original);
      body[flip] = body[flip]! ^ 0xff;
    }
    const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/octet-stream', ETag: `"${md5(body)}"`, 'Accept-Ranges': 'bytes' };
    let status = 200;
    let slice = body;
    const m = /^bytes=(\d+)-$/.exec(range ?? '');
    if (m && !behaviour.ignoreRange) {
      const start = Number(m[1]);
      if (start >= body.length) {
        answer(416);
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      status = 206;
      slice = body.subarray(start);
      headers['Content-Range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
    }
    headers['Content-Length'] = slice.length;
    answer(status);
    res.writeHead(status, headers);
    const cut = behaviour.cutAfter.get(name);
    if (cut !== undefined && cut < slice.length) {
      behaviour.cutAfter.delete(name);
      // Send `cut` bytes, and once they have left, drop the connection mid-body.
      res.write(slice.subarray(0, cut), () => setTimeout(() => req.socket.destroy(), 200));
      return;
    }
    const stall = behaviour.stallAfter.get(name);
    if (stall !== undefined && stall < slice.length) {
      behaviour.stallAfter.delete(name);
      res.write(slice.subarray(0, stall), () => behaviour.onStall?.());
      return;
    }
    res.end(slice);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  if (!server?.listening) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  reset();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-download-'));
  return () => fs.rmSync(tmp, { recursive: true, force: true });
});

/** Options every download in these tests uses: the loopback server, short timeouts, no waiting between retries. */
const opts = (extra: Partial<Parameters<typeof downloadDataset>[1]> = {}) => ({ dataFolder: tmp, baseUrl: base, retryDelayMs: 10, idleTimeoutMs: 5000, ...extra });
const folder = () => path.join(tmp, 'datasets', 'mnist');
const rangesFor = (name: string) => served.filter((s) => s.url.endsWith(name)).map((s) => s.range);

function captureIo(): DataCommandIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => ((out += s), true) } as unknown as NodeJS.WritableStream,
    stderr: { write: (s: string) => ((err += s), true), isTTY: false } as unknown as NodeJS.WriteStream,
    out: () => out,
    err: () => err,
  };
}

describe('downloadDataset over loopback HTTP', () => {
  it('downloads MNIST through the CLI command, verifies every file, and `data list` shows them', async () => {
    const io = captureIo();
    const code = await dataCommand(['download', 'mnist', '--base-url', base, '--data-folder', tmp], io);
    expect(code).toBe(0);
    for (const f of FILES) {
      const stored = fs.readFileSync(path.join(folder(), f));
      expect(md5(stored)).toBe(md5(bodies.get(f)!));
      expect(fs.existsSync(path.join(folder(), f + '.part'))).toBe(false);
      // The shared copies are re-compressed: their .gz md5 is not the published one, their content is.
      expect(io.out()).toContain(`${f}: `);
    }
    expect(io.out()).toContain('uncompressed content matches the published md5');
    expect(io.out()).toContain(`mnist is ready in ${folder()}`);
    expect(served.map((s) => s.status)).toEqual([200, 200, 200, 200]);

    const listed = captureIo();
    expect(await dataCommand(['list', '--json', '--data-folder', tmp], listed)).toBe(0);
    const json = JSON.parse(listed.out()) as { dataFolder: string; datasets: Awaited<ReturnType<typeof listDatasets>> };
    const mnist = json.datasets.find((d) => d.name === 'mnist')!;
    expect(mnist).toMatchObject({ status: 'verified', complete: true, verified: true, path: folder() });
    expect(mnist.bytes).toBe(FILES.reduce((s, f) => s + bodies.get(f)!.length, 0));
    for (const f of mnist.files) {
      expect(f.md5).toBe(md5(bodies.get(f.name)!));
      expect(f.verifiedBy).toEqual(['inflated-md5']);
    }
    expect(json.datasets.find((d) => d.name === 'cifar10')!.status).toBe('missing');

    const table = captureIo();
    expect(await dataCommand(['list', '--data-folder', tmp, '--verify'], table)).toBe(0);
    expect(table.out()).toMatch(/mnist\s+verified\s+11\.4 MB/);
    expect(table.out()).toContain(`md5 ${md5(bodies.get(FILES[0]!)!)} verified (by its uncompressed content)`);

    // A run that names only "mnist" finds the folder, and the engine loads it.
    expect(resolveDatasetPath('mnist', tmp)).toBe(folder());
    const spec = datasetSpecByName('mnist', tmp, { trainLimit: 100 });
    expect(spec).toEqual({ name: 'mnist', path: folder(), trainLimit: 100 });
    const data = loadDataset(spec);
    expect([data.train.count, data.test.count]).toEqual([100, 10_000]);
  });

  it('keeps verified files on a second run without transferring them, and replaces a damaged one', async () => {
    const progress: DownloadProgress[] = [];
    const first = await downloadDataset('mnist', opts({ onProgress: (p) => progress.push(p) }));
    expect(first.files.map((f) => f.status)).toEqual(['downloaded', 'downloaded', 'downloaded', 'downloaded']);
    const images = progress.filter((p) => p.file === FILES[0] && p.phase === 'downloading');
    expect(images.at(-1)).toMatchObject({ bytes: bodies.get(FILES[0]!)!.length, total: bodies.get(FILES[0]!)!.length, fileIndex: 0, fileCount: 4 });
    expect(images.every((p) => p.rate >= 0 && Number.isFinite(p.rate))).toBe(true);
    expect(progress.filter((p) => p.phase === 'done')).toHaveLength(4);
    expect(fs.existsSync(path.join(folder(), MANIFEST_FILE))).toBe(true);

    // Damage one stored file: the next run notices, deletes it and fetches it again; the others are not transferred.
    fs.writeFileSync(path.join(folder(), FILES[3]!), 'damaged');
    served = [];
    const second = await downloadDataset('mnist', opts());
    expect(second.files.map((f) => f.status)).toEqual(['already-present', 'already-present', 'already-present', 'downloaded']);
    expect(served.map((s) => s.url)).toEqual([`/${FILES[3]}`]);
    expect(md5(fs.readFileSync(path.join(folder(), FILES[3]!)))).toBe(md5(bodies.get(FILES[3]!)!));
  });

  it('refuses a file with one flipped byte, deletes it and says so', async () => {
    const victim = 'train-labels-idx1-ubyte.gz';
    behaviour.corrupt.set(victim, 1000);
    const error = await downloadDataset('mnist', opts()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DownloadError);
    const e = error as DownloadError;
    expect(e.code).toBe('checksum');
    expect(e.message).toContain(`${victim} from ${base}${victim} has the wrong checksum`);
    expect(e.message).toContain('published md5 is d53e105ee54ea40749a09fcbcd1e9432');
    expect(e.message).toContain('The file was deleted');
    expect(fs.existsSync(path.join(folder(), victim))).toBe(false);
    expect(fs.existsSync(path.join(folder(), victim + '.part'))).toBe(false);
    // The file before it is in place and verified; the ones after it were not attempted.
    expect(fs.existsSync(path.join(folder(), FILES[0]!))).toBe(true);
    expect(served.some((s) => s.url.endsWith(FILES[2]!))).toBe(false);
    const [mnist] = await listDatasets(tmp);
    expect(mnist).toMatchObject({ name: 'mnist', status: 'partial', complete: false });

    // Through the CLI the same failure is exit code 1 and the message on stderr.
    const io = captureIo();
    expect(await dataCommand(['download', 'mnist', '--base-url', base, '--data-folder', tmp], io)).toBe(1);
    expect(io.err()).toMatch(/^lrnet data: train-labels-idx1-ubyte\.gz from .* has the wrong checksum: .*The file was deleted/);
  });

  it('refuses Fashion-MNIST files that are not the published ones (only their .gz md5 is published)', async () => {
    // The server has MNIST files under Fashion-MNIST's names: same format, different data.
    const error = await downloadDataset('fashion-mnist', opts()).catch((e: unknown) => e);
    expect((error as DownloadError).code).toBe('checksum');
    expect((error as Error).message).toContain('the published md5 is 8d4fb7e6c68d591d4c3dfef9ec88bf0d. The file was deleted');
    expect(fs.readdirSync(path.join(tmp, 'datasets', 'fashion-mnist'))).toEqual([]);
  });

  it('resumes a transfer cut midway with a Range request from the size of the partial file', async () => {
    const victim = FILES[0]!;
    const size = bodies.get(victim)!.length;
    behaviour.cutAfter.set(victim, 3_000_000);
    const error = await downloadDataset('mnist', opts({ retries: 0 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DownloadError);
    expect((error as DownloadError).code).toBe('network');
    expect((error as Error).message).toContain('is kept: run the download again to resume it');
    const part = path.join(folder(), victim + '.part');
    const partial = fs.statSync(part).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThanOrEqual(3_000_000);
    expect(fs.existsSync(path.join(folder(), victim))).toBe(false);
    const [listed] = await listDatasets(tmp);
    expect(listed!.files[0]).toMatchObject({ present: false, partialBytes: partial, problem: 'download interrupted' });

    served = [];
    const result = await downloadDataset('mnist', opts({ retries: 0 }));
    expect(rangesFor(victim)).toEqual([`bytes=${partial}-`]);
    expect(served.find((s) => s.url.endsWith(victim))!.status).toBe(206);
    expect(result.files[0]).toMatchObject({ status: 'downloaded', resumedFrom: partial, restarted: false, bytes: size });
    expect(md5(fs.readFileSync(path.join(folder(), victim)))).toBe(md5(bodies.get(victim)!));
    expect(fs.existsSync(part)).toBe(false);
  });

  it('says nothing was downloaded, not that a partial file is kept, when no byte arrived', async () => {
    // A port nobody listens on: every attempt is refused before a byte arrives.
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await downloadDataset('mnist', opts({ baseUrl: `http://127.0.0.1:${port}/`, retries: 1 })).catch((e: unknown) => e);
    expect((error as DownloadError).code).toBe('network');
    expect((error as Error).message).not.toContain('is kept');
    expect((error as Error).message).toContain('Nothing was downloaded');
    expect(fs.readdirSync(folder()).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  it('retries a cut transfer by itself, resuming it', async () => {
    const victim = FILES[2]!;
    behaviour.cutAfter.set(victim, 500_000);
    const result = await downloadDataset('mnist', opts());
    const ranges = rangesFor(victim);
    expect(ranges).toHaveLength(2);
    expect(ranges[0]).toBeUndefined();
    const start = Number(/^bytes=(\d+)-$/.exec(ranges[1]!)![1]);
    expect(start).toBeGreaterThan(0);
    expect(start).toBeLessThanOrEqual(500_000);
    expect(result.files[2]).toMatchObject({ status: 'downloaded', resumedFrom: start, requests: 2 });
    expect(md5(fs.readFileSync(path.join(folder(), victim)))).toBe(md5(bodies.get(victim)!));
  });

  it('starts again cleanly when the server ignores Range', async () => {
    const victim = FILES[0]!;
    behaviour.cutAfter.set(victim, 2_000_000);
    await expect(downloadDataset('mnist', opts({ retries: 0 }))).rejects.toThrow(DownloadError);
    const partial = fs.statSync(path.join(folder(), victim + '.part')).size;
    expect(partial).toBeGreaterThan(0);

    served = [];
    behaviour.ignoreRange = true;
    const result = await downloadDataset('mnist', opts({ retries: 0 }));
    expect(rangesFor(victim)).toEqual([`bytes=${partial}-`]); // asked to resume...
    expect(served.find((s) => s.url.endsWith(victim))!.status).toBe(200); // ...got the whole file
    expect(result.files[0]).toMatchObject({ status: 'downloaded', resumedFrom: 0, restarted: true });
    // Had the body been appended to the part, the file would be too long and fail its checksum.
    expect(fs.statSync(path.join(folder(), victim)).size).toBe(bodies.get(victim)!.length);
    expect(md5(fs.readFileSync(path.join(folder(), victim)))).toBe(md5(bodies.get(victim)!));
  });

  it('reports a 404 clearly, and falls back to the next mirror', async () => {
    const missing = `${base}missing/`;
    const error = await downloadDataset('mnist', opts({ baseUrl: missing })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DownloadError);
    const e = error as DownloadError;
    expect(e.code).toBe('http');
    expect(e.status).toBe(404);
    expect(e.message).toContain(`${missing}${FILES[0]} answered HTTP 404 Not Found`);
    expect(e.message).toContain(`the file must be at BASE/${FILES[0]}`);
    expect(served).toHaveLength(1); // a 404 is not retried
    expect(fs.readdirSync(folder()).filter((f) => f !== MANIFEST_FILE)).toEqual([]);

    served = [];
    const result = await downloadDataset('mnist', opts({ baseUrl: [missing, base] }));
    expect(result.files.every((f) => f.url?.startsWith(base) && !f.url.startsWith(missing))).toBe(true);
    expect(served.filter((s) => s.status === 404)).toHaveLength(4);
  });

  it('stops on abort, keeps the partial file, and resumes it later', async () => {
    const controller = new AbortController();
    const victim = FILES[0]!;
    behaviour.stallAfter.set(victim, 1_500_000);
    behaviour.onStall = () => setTimeout(() => controller.abort(), 200);
    const error = await downloadDataset('mnist', opts({ signal: controller.signal })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DownloadError);
    expect((error as DownloadError).code).toBe('aborted');
    const partial = fs.statSync(path.join(folder(), victim + '.part')).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThanOrEqual(1_500_000);
    expect(fs.existsSync(path.join(folder(), '.lrnet-download.lock'))).toBe(false);
    served = [];
    const result = await downloadDataset('mnist', opts());
    expect(rangesFor(victim)).toEqual([`bytes=${partial}-`]);
    expect(result.files[0]!.resumedFrom).toBe(partial);
    expect(md5(fs.readFileSync(path.join(folder(), victim)))).toBe(md5(bodies.get(victim)!));
  });

  it('drops a connection that goes silent and resumes it', async () => {
    const victim = FILES[0]!;
    behaviour.stallAfter.set(victim, 1_000_000);
    const result = await downloadDataset('mnist', opts({ idleTimeoutMs: 1000 }));
    const ranges = rangesFor(victim);
    expect(ranges[0]).toBeUndefined();
    expect(ranges[1]).toBe('bytes=1000000-');
    expect(result.files[0]!.status).toBe('downloaded');
    expect(md5(fs.readFileSync(path.join(folder(), victim)))).toBe(md5(bodies.get(victim)!));
  });

  it('refuses a second download into the same folder while one runs', async () => {
    const outcomes = await Promise.allSettled([downloadDataset('mnist', opts()), downloadDataset('mnist', opts())]);
    const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    expect(failed).toHaveLength(1);
    expect((failed[0]!.reason as DownloadError).code).toBe('busy');
    expect((failed[0]!.reason as Error).message).toContain('is already downloading MNIST');
  });
});

describe('base URLs, names and the CLI arguments', () => {
  it('takes the base URL from the option, then LRNET_DATA_BASE_URL, then the official mirrors', () => {
    expect(mirrorsFor('mnist', undefined, {})).toEqual(DATASET_SOURCES.mnist.mirrors);
    expect(mirrorsFor('mnist', undefined, {})[0]).toBe('https://ossci-datasets.s3.amazonaws.com/mnist/');
    expect(mirrorsFor('cifar10', undefined, { LRNET_DATA_BASE_URL: 'http://h/{name}, http://g/x' })).toEqual(['http://h/cifar10/', 'http://g/x/']);
    expect(mirrorsFor('cifar10', 'http://opt', { LRNET_DATA_BASE_URL: 'http://env/' })).toEqual(['http://opt/']);
    expect(() => mirrorsFor('mnist', 'ftp://x/', {})).toThrow(/not an http or https URL/);
  });

  it('uses LRNET_DATA_BASE_URL when no base URL is given', async () => {
    const result = await downloadDataset('mnist', { dataFolder: tmp, env: { LRNET_DATA_BASE_URL: base }, retryDelayMs: 10 });
    expect(result.files.every((f) => f.url!.startsWith(base))).toBe(true);
  });

  it('rejects unknown data sets, bad URLs and unknown subcommands with exit code 2', async () => {
    const usage = async (args: string[], message: RegExp) => {
      const io = captureIo();
      expect(await dataCommand(args, io)).toBe(2);
      expect(io.err()).toMatch(message);
      expect(io.err()).toContain('Run "lrnet data --help" for the options.');
    };
    await usage(['download', 'imagenet', '--data-folder', tmp], /unknown data set "imagenet"; lrnet can download mnist, fashion-mnist, cifar10/);
    await usage(['download', 'mnist-sample', '--data-folder', tmp], /needs no download/);
    await usage(['download', 'mnist', '--base-url', 'not a url', '--data-folder', tmp], /--base-url: base URL "not a url" is not a valid URL/);
    await usage(['download', '--data-folder', tmp], /missing the data set to download/);
    await usage(['download', 'mnist', '--mirror', 'x'], /Unknown option '--mirror'/);
    await usage(['list', 'extra'], /Unexpected argument 'extra'/);
    await usage(['fetch'], /unknown subcommand "fetch"/);
    await usage([], /missing a subcommand/);
    expect(served).toEqual([]);
  });

  it('explains how to get a data set a run names but the folder lacks', async () => {
    expect(() => resolveDatasetPath('cifar10', tmp)).toThrow(DatasetError);
    expect(() => resolveDatasetPath('cifar10', tmp)).toThrow(/holds no downloaded CIFAR-10.*Run "lrnet data download cifar10"/);
    expect(() => resolveDatasetPath('imagenet', tmp)).toThrow(TypeError);
    expect(datasetSpecByName('mnist-sample', tmp)).toEqual({ name: 'mnist-sample' });
    const sets = await listDatasets(tmp);
    expect(sets.map((s) => [s.name, s.status])).toEqual([['mnist', 'missing'], ['fashion-mnist', 'missing'], ['cifar10', 'missing']]);
    const io = captureIo();
    await dataCommand(['list', '--data-folder', tmp], io);
    expect(io.out()).toMatch(/^NAME\s+STATUS\s+SIZE\s+PATH\n/);
    expect(io.out()).toContain('lrnet data download NAME');
  });
});
