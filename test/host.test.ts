/**
 * The headless host's door: real HTTP and WebSocket requests against `startHost` over real services on a temporary
 * database. Only the token holder on this machine's own origin gets in; bodies are size-limited and validated.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import WebSocket from 'ws';
import { createServices, type AppServices } from '../app/services.ts';
import { startHost, type Host } from '../app/host/server.ts';
import { parseServeArgs, ServeUsageError } from '../app/cli/serve.ts';
import { MAX_BODY_BYTES, TOKEN_HEADER, type LiveEvent } from '../app/contract.ts';

let home: string;
let services: AppServices;
let host: Host;
let origin: string;

beforeAll(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-host-'));
  const rendererDir = path.join(home, 'ui');
  fs.mkdirSync(path.join(rendererDir, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><title>lrnet</title><script type="module" src="./assets/app.js"></script>');
  fs.writeFileSync(path.join(rendererDir, 'assets', 'app.js'), 'console.log("ui")');
  services = await createServices({ shell: 'browser', databasePath: path.join(home, 'lrnet.db'), concurrency: 1 });
  host = await startHost({ services, rendererDir });
  origin = `http://127.0.0.1:${host.port}`;
});

afterAll(async () => {
  await host?.close();
  await services?.close();
  fs.rmSync(home, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A raw HTTP request, so every header (Host, Origin, Cookie) is exactly what the test says. */
function request(method: string, pathname: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: host.port, method, path: pathname, headers: { host: `127.0.0.1:${host.port}`, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' || error.code === 'EPIPE' ? resolve({ status: 0, headers: {}, body: '' }) : reject(error)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const api = (method: string, payload: unknown, headers: Record<string, string> = {}) =>
  request('POST', `/api/${method}`, { 'content-type': 'application/json', [TOKEN_HEADER]: host.token, ...headers }, JSON.stringify(payload));

describe('headless host: who may enter', () => {
  it('listens on 127.0.0.1 and prints a URL that carries a long random token', () => {
    expect(host.url).toBe(`http://127.0.0.1:${host.port}/?token=${host.token}`);
    expect(host.token.length).toBeGreaterThanOrEqual(40);
  });

  it('refuses the page and the API without the token (403)', async () => {
    const page = await request('GET', '/');
    expect(page.status).toBe(403);
    const call = await request('POST', '/api/app.info', { 'content-type': 'application/json' }, '{}');
    expect(call.status).toBe(403);
    expect(JSON.parse(call.body)).toMatchObject({ ok: false, error: { message: expect.stringContaining('token') } });
  });

  it('refuses a wrong token in the URL, the cookie or the header (403)', async () => {
    const wrong = host.token.slice(0, -1) + (host.token.endsWith('A') ? 'B' : 'A');
    expect((await request('GET', `/?token=${wrong}`)).status).toBe(403);
    expect((await request('GET', '/', { cookie: `lrnet_token_${host.port}=${wrong}` })).status).toBe(403);
    expect((await api('app.info', {}, { [TOKEN_HEADER]: wrong })).status).toBe(403);
    expect((await api('app.info', {}, { [TOKEN_HEADER]: 'short' })).status).toBe(403);
  });

  it('trades the token in the URL for an HttpOnly SameSite=Strict cookie and a clean URL, then serves the page with a CSP', async () => {
    const first = await request('GET', `/?token=${host.token}`);
    expect(first.status).toBe(302);
    expect(first.headers.location).toBe('/');
    const cookie = String(first.headers['set-cookie']);
    expect(cookie).toContain(`lrnet_token_${host.port}=${host.token}`);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    const page = await request('GET', '/', { cookie: cookie.split(';')[0]! });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>lrnet</title>');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['x-frame-options']).toBe('DENY');
    const asset = await request('GET', '/assets/app.js', { cookie: cookie.split(';')[0]! });
    expect(asset.status).toBe(200);
    expect(asset.headers['content-type']).toContain('javascript');
    const outside = await request('GET', '/assets/../../lrnet.db', { cookie: cookie.split(';')[0]! });
    expect(outside.body).not.toContain('SQLite');
  });

  it('refuses a request from another Origin or for another Host even with the right token (403)', async () => {
    const foreign = await api('app.info', {}, { origin: 'http://evil.example' });
    expect(foreign.status).toBe(403);
    expect(JSON.parse(foreign.body).error.message).toContain('origin');
    expect((await api('app.info', {}, { origin: `http://127.0.0.1:${host.port + 1}` })).status).toBe(403);
    expect((await api('app.info', {}, { host: `attacker.example:${host.port}` })).status).toBe(403);
    expect((await api('app.info', {}, { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    // The page's own origin is fine.
    expect((await api('app.info', {}, { origin })).status).toBe(200);
  });
});

describe('headless host: what it accepts', () => {
  it('answers a valid call with { ok: true, value }', async () => {
    const reply = await api('app.info', {});
    expect(reply.status).toBe(200);
    const body = JSON.parse(reply.body);
    expect(body.ok).toBe(true);
    expect(body.value.defaultPreset).toBe('mnist-ternary-quick');
    expect(body.value.shell).toBe('browser');
    expect(body.value.presets['mnist-ternary-quick'].kind).toBe('ternary');
  });

  it('answers a payload that does not match the schema with 400 and a message naming each field', async () => {
    const reply = await api('runs.list', { limit: -3, sort: 'colour', extra: 1 });
    expect(reply.status).toBe(400);
    const body = JSON.parse(reply.body);
    expect(body.ok).toBe(false);
    expect(body.error.code).toBe('invalid-request');
    expect(body.error.problems).toEqual(expect.arrayContaining([
      'limit: expected an integer >= 1 and <= 1000, got -3',
      expect.stringContaining('sort: expected one of "created"'),
      expect.stringContaining('unknown field "extra"'),
    ]));
    expect(body.error.message).toContain('invalid runs.list request');
  });

  it('answers an invalid training configuration with 400 and every problem', async () => {
    const reply = await api('runs.start', { runs: [{ config: { preset: 'x', batchSize: 0 } }] });
    expect(reply.status).toBe(400);
    const body = JSON.parse(reply.body);
    expect(body.error.code).toBe('invalid-config');
    expect(body.error.problems).toEqual(expect.arrayContaining([expect.stringContaining('batchSize')]));
  });

  it('answers bad JSON, a wrong content type, an unknown method and a GET with clear errors', async () => {
    const notJson = await request('POST', '/api/app.info', { 'content-type': 'application/json', [TOKEN_HEADER]: host.token }, '{nope');
    expect(notJson.status).toBe(400);
    expect(JSON.parse(notJson.body).error.message).toContain('not valid JSON');
    expect((await request('POST', '/api/app.info', { 'content-type': 'text/plain', [TOKEN_HEADER]: host.token }, '{}')).status).toBe(415);
    const unknown = await api('runs.explode', {});
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body).error.code).toBe('unknown-method');
    expect((await request('GET', '/api/app.info', { [TOKEN_HEADER]: host.token })).status).toBe(405);
    const missing = await api('runs.get', { id: 'ZZZZZZZZ' });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).error.code).toBe('not-found');
  });

  it('refuses a body over the size limit (413)', async () => {
    const big = JSON.stringify({ config: { preset: 'x'.repeat(MAX_BODY_BYTES) } });
    const reply = await request('POST', '/api/config.validate', { 'content-type': 'application/json', [TOKEN_HEADER]: host.token, 'content-length': String(Buffer.byteLength(big)) }, big);
    expect([413, 0]).toContain(reply.status);
    if (reply.status === 413) expect(JSON.parse(reply.body).error.message).toContain('over');
  });
});

describe('headless host: live events', () => {
  const connect = (headers: Record<string, string>, query = '') =>
    new Promise<{ ws: WebSocket; status: number | 'open' }>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${host.port}/api/events${query}`, { headers });
      ws.on('open', () => resolve({ ws, status: 'open' }));
      ws.on('unexpected-response', (_req, res) => resolve({ ws, status: res.statusCode ?? 0 }));
      ws.on('error', () => resolve({ ws, status: 0 }));
    });

  it('refuses a WebSocket without the token or from another origin', async () => {
    expect((await connect({})).status).toBe(403);
    expect((await connect({ origin: 'http://evil.example' }, `?token=${host.token}`)).status).toBe(403);
    expect((await connect({ cookie: `lrnet_token_${host.port}=nope` })).status).toBe(403);
  });

  it('delivers the app events to a WebSocket that has the token', async () => {
    const { ws, status } = await connect({ origin, cookie: `lrnet_token_${host.port}=${host.token}` });
    expect(status).toBe('open');
    const received = new Promise<LiveEvent>((resolve) => ws.once('message', (data: WebSocket.RawData) => resolve(JSON.parse(String(data)))));
    // Tagging a run is an app event: create one directly in the store, then tag it through the API.
    const run = services.store.createRun({ config: { kind: 'ternary' }, seed: 1, appVersion: 'test', status: 'queued' });
    services.store.updateRun(run.id, { status: 'stopped' });
    const tagged = await api('runs.tag', { id: run.id, tag: 'baseline' });
    expect(JSON.parse(tagged.body).value.tags).toEqual(['baseline']);
    expect(await received).toEqual({ type: 'run-updated', runId: run.id });
    ws.close();
  });
});

describe('lrnet serve options', () => {
  it('parses --port, --db and --concurrency and lists every wrong option', () => {
    expect(parseServeArgs(['--port', '8421', '--db=/tmp/x.db', '--concurrency', '2'])).toEqual({ port: 8421, db: '/tmp/x.db', concurrency: 2 });
    try {
      parseServeArgs(['--port', 'abc', '--bogus']);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ServeUsageError);
      expect((error as ServeUsageError).problems).toEqual(['--port: expected an integer from 0 to 65535, got "abc"', 'unknown option "--bogus"']);
    }
  });
});
