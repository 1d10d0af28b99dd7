/**
 * The headless host against hostile and buggy clients (issue 11). The host runs as its own process, as
 * `lrnet serve` does, so "the host stays up" is a fact about a process: malformed URLs, bad percent-encodings and
 * WebSocket upgrades with garbage must each get an HTTP answer (or a cleanly closed socket), never end it. A seeded
 * fuzz sends a few thousand random and mutated requests at every route; set LRNET_FUZZ_SEED to replay a failure.
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { MAX_SERIES_POINTS, MAX_SERIES_PER_REQUEST, METHODS, TOKEN_HEADER, type ApiError, type MetricSeries, type RunsPage } from '../app/contract.ts';
import { openStore, type Store } from '../app/store/index.ts';
import { PRESETS } from '../engine/config.ts';
import { startHost, type HostServices } from '../app/host/server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The host process: serve() with a small built UI, one completed run with a metric, then its address as JSON. */
const SCRIPT = `
import { serve } from ${JSON.stringify(path.join(ROOT, 'app/cli/serve.ts'))};
const [db, ui] = process.argv.slice(1);
const app = await serve({ db, rendererDir: ui, concurrency: 1 });
const store = app.services.store;
// An invalid configuration on purpose: no fuzzed clone or resume of it can ever start a training.
const run = store.createRun({ config: { kind: 'ternary' }, seed: 1, appVersion: 'test', status: 'running' });
const writer = store.metricWriter(run.id);
for (let step = 1; step <= 3000; step++) writer.write('train/loss', step, 1 / step);
writer.close();
store.updateRun(run.id, { status: 'completed' });
process.stdout.write(JSON.stringify({ port: app.host.port, token: app.host.token, runId: run.id }) + '\\n');
`;

interface ChildHost {
  readonly child: ChildProcess;
  readonly port: number;
  readonly token: string;
  readonly runId: string;
  stderr(): string;
}

let home: string;
let host: ChildHost;

async function startChildHost(): Promise<ChildHost> {
  const ui = path.join(home, 'ui');
  fs.mkdirSync(path.join(ui, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(ui, 'index.html'), '<!doctype html><title>lrnet</title>');
  fs.writeFileSync(path.join(ui, 'assets', 'app.js'), 'console.log("ui")');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT, path.join(home, 'lrnet.db'), ui], {
    cwd: ROOT,
    env: { ...process.env, LRNET_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const address = await new Promise<{ port: number; token: string; runId: string }>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!));
    });
    child.on('exit', (code) => reject(new Error(`the host exited (${code}) before listening: ${stderr}`)));
  });
  return { child, ...address, stderr: () => stderr };
}

beforeAll(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-hostile-'));
  host = await startChildHost();
}, 60_000);

afterAll(() => {
  host?.child.kill('SIGKILL');
  fs.rmSync(home, { recursive: true, force: true });
});

interface RawReply {
  /** 0 when the socket closed without a status line. */
  readonly status: number;
  readonly head: string;
  readonly body: string;
  /** The host closed the socket (rather than the test timing out). */
  readonly closed: boolean;
}

/**
 * Writes `request` as raw bytes (so targets, methods and headers can be anything) and reads until the host closes
 * the socket. A 101 answer is closed by the test. `reset` sends a TCP reset right after the request.
 */
function raw(request: string | Buffer, options: { reset?: boolean; timeoutMs?: number; port?: number } = {}): Promise<RawReply> {
  return new Promise((resolve) => {
    const socket = net.connect(options.port ?? host.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
      resolve({ status: status ? Number(status) : 0, head: split < 0 ? text : text.slice(0, split), body: split < 0 ? '' : text.slice(split + 4), closed });
    };
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 5000);
    socket.on('connect', () => {
      socket.write(request);
      if (options.reset) {
        socket.resetAndDestroy();
        finish(true);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (/^HTTP\/1\.1 101/.test(Buffer.concat(chunks).toString('latin1'))) finish(true);
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
  });
}

const hostHeader = () => `127.0.0.1:${host.port}`;

/** An HTTP/1.1 request as text; Content-Length is added for a body. */
function requestText(method: string, target: string, headers: Record<string, string>, body = ''): string {
  const lines = [`${method} ${target} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (body) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

const authorized = () => ({ Host: hostHeader(), [TOKEN_HEADER]: host.token, Connection: 'close' });
const apiCall = (method: string, payload: unknown) =>
  raw(requestText('POST', `/api/${method}`, { ...authorized(), 'Content-Type': 'application/json' }, JSON.stringify(payload)));

const upgradeHeaders = (extra: Record<string, string> = {}): Record<string, string> => ({
  Host: hostHeader(),
  Upgrade: 'websocket',
  Connection: 'Upgrade',
  'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
  'Sec-WebSocket-Version': '13',
  ...extra,
});

/** The host still serves a normal call, and its process is alive. */
async function expectHostUp(): Promise<void> {
  expect(host.child.exitCode, `the host exited; its stderr:\n${host.stderr()}`).toBeNull();
  const info = await apiCall('app.info', {});
  expect(info.status).toBe(200);
  expect(JSON.parse(info.body)).toMatchObject({ ok: true, value: { shell: 'browser' } });
}

describe('the host survives what used to end it', () => {
  it('refuses a WebSocket to ws://127.0.0.1:PORT// (no token needed) with an HTTP answer and closes the socket', async () => {
    // What any web page could do: new WebSocket('ws://127.0.0.1:PORT//'). "//" is a path here, not another host.
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${host.port}//`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => resolve(0));
    });
    expect(refused).toBe(404);
    const bare = await raw(requestText('GET', '//', upgradeHeaders()));
    expect(bare).toMatchObject({ status: 404, closed: true });
    expect(bare.body).toContain('/api/events');
    // "//evil.example/api/events" is not the events path of another host either.
    expect((await raw(requestText('GET', `//evil.example/api/events?token=${host.token}`, upgradeHeaders())))).toMatchObject({ status: 404, closed: true });
    // Targets that are no path at all: 400.
    for (const target of ['*', 'http://127.0.0.1/api/events', 'api/events']) {
      expect(await raw(requestText('GET', target, upgradeHeaders({ [TOKEN_HEADER]: host.token }))), target).toMatchObject({ status: 400, closed: true });
    }
    await expectHostUp();
  });

  it('answers a path with a broken percent-encoding (GET /%E0%A4%A) with 400, with or without the token', async () => {
    const withToken = await raw(requestText('GET', '/%E0%A4%A', authorized()));
    expect(withToken.status).toBe(400);
    expect(JSON.parse(withToken.body).error.message).toContain('percent-encoded');
    expect((await raw(requestText('GET', '/assets/%E0%A4%A', authorized()))).status).toBe(400);
    expect((await raw(requestText('GET', '/%00', authorized()))).status).toBe(400);
    expect((await raw(requestText('GET', '/%E0%A4%A', { Host: hostHeader(), Connection: 'close' }))).status).toBe(403);
    await expectHostUp();
  });

  it('redirects the token URL only to a path on this host, never to //other.host', async () => {
    for (const target of [`/x/..//evil.example?token=${host.token}`, `//evil.example/?token=${host.token}`, `/%2F/evil.example?token=${host.token}`]) {
      const reply = await raw(requestText('GET', target, { Host: hostHeader(), Connection: 'close' }));
      expect(reply.status, target).toBe(302);
      const location = /\r\nlocation: (.*)/i.exec(reply.head)?.[1] ?? '';
      expect(location, target).toMatch(/^\/(?![/\\])/);
      expect(location).not.toContain('token');
      expect(new URL(location, `http://127.0.0.1:${host.port}`).host, target).toBe(`127.0.0.1:${host.port}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The fuzz
// ---------------------------------------------------------------------------------------------------------------

// It runs while the host's database holds only the seeded run (whose configuration is invalid and which has no
// checkpoint): whatever id or prefix a request names, no fuzzed call can start a training or an export process.

/** mulberry32: small, fast and seedable, so a failing request can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env['LRNET_FUZZ_SEED'] ?? 11);
const HTTP_REQUESTS = 2400;
const UPGRADES = 600;
const PARALLEL = 16;

describe('fuzz: random and mutated requests at a live host', () => {
  it(`answers each of ${HTTP_REQUESTS} HTTP requests with a status below 500 and each of ${UPGRADES} upgrades with a closed socket, and keeps serving (seed ${SEED})`, async () => {
    const rnd = random(SEED);
    const int = (n: number) => Math.floor(rnd() * n);
    const pick = <T,>(list: readonly T[]): T => list[int(list.length)]!;
    const chance = (p: number) => rnd() < p;
    const runId = host.runId;

    const PATH_PIECES = ['', '/', '//', '..', '.', '%', '%E0%A4%A', '%ZZ', '%00', '%2e%2e', '%2F', '%5C', '%C0%AF', '%FF%FE', 'api', 'events',
      'assets', 'index.html', 'app.js', 'lrnet.db', '?', '?token=', `?token=${'x'.repeat(43)}`, '#frag', ';', '@', ':', 'evil.example', '\u00e9', '~'];
    const randomPath = (): string => {
      let p = chance(0.3) ? pick(['/', '//', '/api/', '/assets/', '/x/..//']) : '/';
      for (let i = int(6); i > 0; i--) p += pick(PATH_PIECES) + (chance(0.5) ? '/' : '');
      if (chance(0.03)) p += 'a'.repeat(2000 + int(6000));
      // The request line cannot carry spaces or control characters; anything else goes.
      return encodeURI(p).replace(/%25/g, '%');
    };
    const VALUES: unknown[] = [null, true, false, 0, -1, 1, 1e300, -1e300, 1.5, 2 ** 53, NaN, '', ' ', 'x', '..', '../../etc', 'relative/path', '/abs/path',
      'C:\\x', '\u0000', '💥', 'x'.repeat(5000), [], [null], {}, { a: { b: { c: {} } } }, runId, runId.slice(0, 3), 'ZZZZZZZZ', 'train/loss', 'ternary', 'packed'];
    const randomJson = (depth = 0): unknown => {
      const roll = int(depth > 3 ? 4 : 7);
      if (roll < 4) return pick(VALUES);
      if (roll < 5) return Array.from({ length: int(4) }, () => randomJson(depth + 1));
      return Object.fromEntries(Array.from({ length: int(4) }, () => [pick(['id', 'runIds', 'keys', 'config', 'limit', 'offset', 'x', '__proto__', 'constructor']), randomJson(depth + 1)]));
    };
    /** A valid-looking payload per method, so mutations reach the handlers. The run's delete is never sent valid. */
    const SAMPLES: Record<string, Record<string, unknown>> = {
      'app.info': {},
      'config.validate': { config: { kind: 'ternary', dataset: { name: 'mnist-sample' } } },
      'runs.list': { status: ['completed'], limit: 10, offset: 0, sort: 'best', order: 'asc', metric: 'train/loss', search: 'x' },
      'runs.get': { id: runId },
      'runs.getMany': { ids: [runId, runId] },
      'runs.series': { runIds: [runId], keys: ['train/loss'], maxPoints: 100, fromStep: 0 },
      'runs.configDiff': { runIds: [runId] },
      'runs.log': { id: runId },
      // No architecture: mutations never add one, so no fuzzed request can queue a training.
      'runs.start': { runs: [{ config: { kind: 'ternary', batchSize: 1 }, name: 'fuzz', tags: ['a'] }] },
      'runs.stop': { id: runId },
      'runs.resume': { id: runId },
      'runs.clone': { id: runId, changes: { batchSize: 2 }, name: 'fuzz' },
      'runs.delete': { id: 'ZZZZZZZZ' },
      'runs.tag': { id: runId, tag: 'fuzz', remove: false },
      'runs.note': { id: runId, text: 'fuzz' },
      'export.run': { runId, format: 'packed' },
      'dialog.pickFolder': { purpose: 'export-destination', defaultPath: '/tmp' },
    };
    const mutate = (value: unknown, method: string): unknown => {
      if (typeof value !== 'object' || value === null || chance(0.15)) return chance(0.5) ? randomJson() : value;
      const copy: Record<string, unknown> = Array.isArray(value) ? ([...value] as unknown as Record<string, unknown>) : { ...value };
      const keys = Object.keys(copy);
      const roll = int(5);
      if (roll === 0 && keys.length) delete copy[pick(keys)];
      else if (roll === 1) copy[pick(['junk', 'extra', '__proto__', 'architectur'])] = randomJson();
      else if (keys.length) {
        const key = pick(keys);
        copy[key] = chance(0.5) ? mutate(copy[key], method) : pick(VALUES);
      }
      if (method === 'runs.delete' && typeof copy['id'] === 'string' && runId.startsWith(copy['id'])) copy['id'] = 'ZZZZZZZZ';
      return copy;
    };
    const methods = [...METHODS, 'runs.explode', '', '__proto__', 'constructor', 'app.info/x', '%E0%A4%A'];
    const HTTP_METHODS = ['GET', 'POST', 'POST', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'FOO', 'CONNECT'];

    const headersFor = (): Record<string, string> => {
      const headers: Record<string, string> = { Host: chance(0.97) ? hostHeader() : pick(['evil.example', '', `localhost:${host.port}`, '127.0.0.1']), Connection: 'close' };
      const door = int(20);
      if (door < 16) headers[TOKEN_HEADER] = host.token;
      else if (door === 16) headers['Cookie'] = pick([`lrnet_token_${host.port}=${host.token}`, 'a=b; ;=;', `lrnet_token_${host.port}=`, '%E0%A4%A']);
      else if (door === 17) headers[TOKEN_HEADER] = pick(['', 'short', host.token + 'x', 'x'.repeat(43), '💥']);
      if (chance(0.06)) headers['Origin'] = pick(['http://evil.example', 'null', `http://127.0.0.1:${host.port}`, '', '//', 'http://[::1']);
      if (chance(0.03)) headers['Sec-Fetch-Site'] = pick(['cross-site', 'same-origin', 'none']);
      if (chance(0.03)) headers['X-Huge'] = 'h'.repeat(8000 + int(40_000));
      return headers;
    };

    const buildHttp = (): { text: string; reset: boolean } => {
      const headers = headersFor();
      const reset = chance(0.03);
      if (chance(0.55)) {
        const method = pick(methods);
        const base = Object.hasOwn(SAMPLES, method) ? SAMPLES[method]! : {};
        let body: string;
        const roll = int(10);
        if (roll < 6) body = JSON.stringify(mutate(base, method));
        else if (roll < 7) body = JSON.stringify(randomJson());
        else if (roll < 8) body = JSON.stringify(base).slice(0, int(JSON.stringify(base).length));
        else if (roll < 9) body = pick(['{', '[]', 'null', '"x"', '1e999', '{"a":', '\u0000', '{"id":"\ud800"}']);
        else body = JSON.stringify(mutate(mutate(base, method), method));
        headers['Content-Type'] = chance(0.9) ? 'application/json' : pick(['text/plain', 'application/json; charset=utf-8', '', 'multipart/form-data']);
        const target = `/api/${chance(0.9) ? method : randomPath()}`;
        return { text: requestText(chance(0.92) ? 'POST' : pick(['GET', 'PUT', 'DELETE']), target.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c)), headers, body), reset };
      }
      return { text: requestText(chance(0.6) ? 'GET' : pick(HTTP_METHODS), randomPath(), headers), reset };
    };

    const buildUpgrade = (): { text: string; reset: boolean } => {
      const headers = upgradeHeaders();
      if (chance(0.8)) headers[TOKEN_HEADER] = chance(0.8) ? host.token : pick(['', 'x', host.token.slice(1)]);
      if (chance(0.3)) headers['Origin'] = pick(['http://evil.example', 'null', `http://127.0.0.1:${host.port}`, '', '//', 'ws://x', '%E0%A4%A']);
      if (chance(0.2)) headers['Sec-WebSocket-Key'] = pick(['', 'x', '=====', 'a'.repeat(200)]);
      if (chance(0.1)) headers['Sec-WebSocket-Version'] = pick(['8', '', 'x']);
      if (chance(0.1)) headers['Upgrade'] = pick(['h2c', 'websocket, x', 'WebSocket']);
      if (chance(0.05)) headers['Host'] = 'evil.example';
      const target = chance(0.7) ? pick(['/api/events', '/api/events', `/api/events?token=${host.token}`, '//', '///api/events', '/api//events', '/api/events?token=%E0%A4%A']) : randomPath();
      return { text: requestText('GET', target, headers), reset: chance(0.1) };
    };

    const plan = [...Array.from({ length: HTTP_REQUESTS }, buildHttp), ...Array.from({ length: UPGRADES }, () => ({ ...buildUpgrade(), upgrade: true }))];
    // Shuffle so upgrades and requests interleave.
    for (let i = plan.length - 1; i > 0; i--) {
      const j = int(i + 1);
      [plan[i], plan[j]] = [plan[j]!, plan[i]!];
    }
    const started = Date.now();
    const failures: string[] = [];
    let answered = 0;
    let next = 0;
    const worker = async () => {
      while (next < plan.length) {
        const index = next++;
        const item = plan[index]!;
        const reply = await raw(item.text, { reset: item.reset });
        const line = item.text.slice(0, 200).split('\r\n')[0];
        if (item.reset) continue;
        if (!reply.closed) failures.push(`#${index} ${line}: not closed within 5 s (${reply.status}) ${JSON.stringify(item.text.slice(0, 400))} ${JSON.stringify(reply.head.slice(0, 200))}`);
        else if (reply.status === 0 && !('upgrade' in item)) failures.push(`#${index} ${line}: the socket closed without a status`);
        // 5xx only for what is expected here: 501 for the desktop app's native dialog.
        else if (reply.status >= 500 && !(reply.status === 501 && reply.body.includes('"unavailable"'))) failures.push(`#${index} ${line}: ${reply.status} ${reply.body.slice(0, 300)}`);
        else answered++;
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    const seconds = (Date.now() - started) / 1000;
    expect(failures, `seed ${SEED}: ${failures.length} of ${plan.length} requests went wrong`).toEqual([]);
    expect(answered).toBeGreaterThan(plan.length * 0.9);
    expect(seconds).toBeLessThan(40);
    await expectHostUp();
    expect(host.stderr()).not.toMatch(/failed unexpectedly|Uncaught/);
  }, 90_000);
});

describe('what the API refuses, naming the field', () => {
  /** A second connection to the host's database, to set up runs the host then serves. */
  let store: Store;
  beforeAll(() => {
    store = openStore(path.join(home, 'lrnet.db'));
  });
  afterAll(() => store?.close());
  const completedRun = (config: object): string => {
    const run = store.createRun({ config, seed: 1, appVersion: 'test', status: 'running' });
    store.updateRun(run.id, { status: 'completed' });
    return run.id;
  };
  const quick = PRESETS['mnist-ternary-quick'];
  /** The value of an answer that must have succeeded, and the error of one that must have failed. */
  const valueOf = <T,>(reply: RawReply): T => (JSON.parse(reply.body) as { value: T }).value;
  const errorOf = (reply: RawReply): ApiError => (JSON.parse(reply.body) as { error: ApiError }).error;

  it('runs.list: an offset of 1e300 or 2^53 is a 400 naming offset, not a 500', async () => {
    const huge = await apiCall('runs.list', { offset: 1e300 });
    expect(huge.status).toBe(400);
    expect(errorOf(huge).problems).toEqual([`offset: expected an integer >= 0 and <= ${Number.MAX_SAFE_INTEGER}, got 1e+300`]);
    expect((await apiCall('runs.list', { offset: 2 ** 53 })).status).toBe(400);
    expect((await apiCall('runs.series', { runIds: [host.runId], keys: ['train/loss'], fromStep: 1e300 })).status).toBe(400);
    const far = await apiCall('runs.list', { offset: Number.MAX_SAFE_INTEGER });
    expect(far.status).toBe(200);
    expect(valueOf<RunsPage>(far).rows).toEqual([]);
  });

  it('runs.series: a run named 50 times is read once, and the answer stays small', async () => {
    const reply = await apiCall('runs.series', { runIds: Array(50).fill(host.runId), keys: ['train/loss', 'train/loss', 'test/argmax'], maxPoints: 0 });
    expect(reply.status).toBe(200);
    const series = valueOf<MetricSeries[]>(reply);
    expect(series.map((s) => s.key)).toEqual(['train/loss', 'test/argmax']);
    expect(series[0]).toMatchObject({ runId: host.runId, total: 3000 });
    expect(series[0]!.steps).toHaveLength(3000);
    expect(reply.body.length).toBeLessThan(300_000);
  });

  it(`runs.series: more than ${MAX_SERIES_PER_REQUEST} series is a 400 naming the limit; up to it, points are shared out`, async () => {
    const others = Array.from({ length: 25 }, () => completedRun({ kind: 'binary' }));
    const keys = Array.from({ length: 19 }, (_, i) => `k/${i}`);
    const tooMany = await apiCall('runs.series', { runIds: [host.runId, ...others], keys: ['train/loss', ...keys] });
    expect(tooMany.status).toBe(400);
    expect(errorOf(tooMany).message).toContain(`at most ${MAX_SERIES_PER_REQUEST} series per request`);
    expect(errorOf(tooMany).message).toContain('26 x 20 = 520');
    // 25 runs x 20 keys = 500 series: each may have MAX_SERIES_POINTS / 500 points, even when all are asked for.
    const full = await apiCall('runs.series', { runIds: [host.runId, ...others.slice(1)], keys: ['train/loss', ...keys], maxPoints: 0 });
    expect(full.status).toBe(200);
    const series = valueOf<MetricSeries[]>(full);
    expect(series).toHaveLength(500);
    const loss = series.find((s) => s.runId === host.runId && s.key === 'train/loss')!;
    expect(loss.downsampled).toBe(true);
    expect(loss.steps.length).toBeLessThanOrEqual(MAX_SERIES_POINTS / 500);
    expect(loss.steps.length).toBeGreaterThan(50);
    expect(loss.steps.at(-1)).toBe(3000);
  });

  it("refuses relative paths (they would be resolved against the server's working folder) with a 400 naming the field", async () => {
    const exported = await apiCall('export.run', { runId: host.runId, format: 'packed', destination: 'exports/here' });
    expect(exported.status).toBe(400);
    expect(errorOf(exported).problems).toEqual(['destination: expected an absolute path (relative paths would be resolved against the server\'s working folder), got "exports/here"']);
    const picked = await apiCall('dialog.pickFolder', { purpose: 'data-folder', defaultPath: 'data' });
    expect(picked.status).toBe(400);
    expect(errorOf(picked).problems![0]).toMatch(/^defaultPath: expected an absolute path/);
    const config = { ...quick, dataset: { name: 'mnist', path: 'data/mnist' } };
    const started = await apiCall('runs.start', { runs: [{ config }] });
    expect(started.status).toBe(400);
    expect(errorOf(started)).toMatchObject({ code: 'invalid-config', problems: [expect.stringMatching(/^dataset\.path: expected an absolute path/)] });
    const checked = await apiCall('config.validate', { config });
    expect(valueOf<{ problems: string[] }>(checked).problems).toEqual([expect.stringMatching(/^dataset\.path: expected an absolute path/)]);
    const absolute = await apiCall('config.validate', { config: { ...config, dataset: { name: 'mnist', path: path.join(home, 'mnist') } } });
    expect(valueOf<{ problems: string[] }>(absolute).problems).toEqual([]);
  });

  it('runs.clone, runs.start and config.validate refuse unknown configuration fields, naming each', async () => {
    const source = completedRun(quick);
    const cloned = await apiCall('runs.clone', { id: source, changes: { batchsize: 5, lr: { epoch: 2 } } });
    expect(cloned.status).toBe(400);
    expect(errorOf(cloned)).toMatchObject({ code: 'invalid-config' });
    expect(errorOf(cloned).problems).toEqual([
      // The changes are merged into the source's configuration first, so its fields come in that order.
      expect.stringMatching(/^lr\.epoch: unknown field \(expected epochs, /),
      expect.stringMatching(/^batchsize: unknown field \(expected preset, architecture, .*batchSize/),
    ]);
    const started = await apiCall('runs.start', { runs: [{ config: quick }, { config: { ...quick, colour: 'red' } }] });
    expect(started.status).toBe(400);
    expect(errorOf(started).problems).toEqual([expect.stringMatching(/^run 2: colour: unknown field/)]);
    expect(store.listRuns({ search: 'colour' }).total).toBe(0);
    // Every field the engine knows is accepted, the image-folder ones included.
    const folder = { ...quick, threads: 1, dataset: { name: 'imagefolder', path: '/data/images', trainLimit: 1, testLimit: 1, cropSize: 32, resizeShorter: 40, decodeWorkers: 1 } };
    expect(valueOf<{ problems: string[] }>(await apiCall('config.validate', { config: folder })).problems).toEqual([]);
  });

  it('export.run into an existing folder says what an API client can do (it has no --force) and touches nothing', async () => {
    const id = completedRun(quick);
    store.addCheckpoint(id, { step: 1, path: path.join(home, 'nowhere.ckpt'), bytes: 1 });
    const destination = path.join(home, 'mine');
    fs.mkdirSync(destination);
    fs.writeFileSync(path.join(destination, 'notes.txt'), 'my own file');
    const reply = await apiCall('export.run', { runId: id, format: 'packed', destination });
    expect(reply.status).toBe(409);
    const message = errorOf(reply).message;
    expect(message).toContain(destination);
    expect(message).toContain('leave destination out');
    expect(message).not.toContain('--force');
    expect(fs.readdirSync(destination)).toEqual(['notes.txt']);
    expect(store.getRun(id).artifacts).toEqual([]);
  });
});

describe('lrnet serve --port N with N in use', () => {
  it('says so in one line and exits 1, without a stack trace', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const child = spawn(process.execPath, [path.join(ROOT, 'bin/lrnet.js'), 'serve', '--port', String(port), '--db', path.join(home, 'busy.db')], {
        cwd: ROOT,
        env: { ...process.env, LRNET_HOME: home },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect(stderr.trim()).toBe(`lrnet serve: port ${port} on 127.0.0.1 is already in use: pick another with --port N, or --port 0 for a free one`);
      expect(code).toBe(1);
    } finally {
      blocker.close();
    }
  }, 30_000);
});

describe('a handler that fails unexpectedly', () => {
  it('is answered 500 (and logged), whether the services throw, reject or answer something unsendable', async () => {
    const behaviours: Record<string, () => Promise<unknown>> = {
      throws: () => {
        throw new Error('thrown');
      },
      rejects: () => Promise.reject(new Error('rejected')),
      unsendable: () => Promise.resolve({ ok: true, value: 10n }),
      'unknown-code': () => Promise.resolve({ ok: false, error: { code: 'no-such-code', message: 'x' } }),
    };
    const services: HostServices = {
      call: (method) => behaviours[String(method)]!() as ReturnType<HostServices['call']>,
      subscribe: () => () => undefined,
    };
    const logged = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const local = await startHost({ services, rendererDir: path.join(home, 'no-ui') });
    try {
      for (const method of Object.keys(behaviours)) {
        const reply = await raw(requestText('POST', `/api/${method}`, { Host: `127.0.0.1:${local.port}`, [TOKEN_HEADER]: local.token, 'Content-Type': 'application/json', Connection: 'close' }, '{}'), { port: local.port });
        expect(reply.status, method).toBe(500);
      }
      expect(logged.mock.calls.map((c) => String(c[0])).join('')).toContain('failed unexpectedly');
    } finally {
      logged.mockRestore();
      await local.close();
    }
  });
});
