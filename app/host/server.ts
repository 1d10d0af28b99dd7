/**
 * The headless host: serves the built renderer and the API contract over HTTP, and live events over a WebSocket,
 * on 127.0.0.1 only. Like a notebook server it is protected by a random token: the first visit carries it in the
 * URL (`/?token=...`), which sets an HttpOnly SameSite=Strict cookie and redirects to the clean URL; scripts may send
 * it in the `x-lrnet-token` header instead. Requests without the token, from another Origin or naming another Host
 * (DNS rebinding) are refused with 403; API bodies must be JSON, at most MAX_BODY_BYTES, and match the method's
 * schema (400 with the problems otherwise).
 *
 * No request, however malformed, may end the process (it would interrupt every running run): each handler's
 * errors become a 4xx/5xx answer, and a refused WebSocket upgrade gets an HTTP answer before its socket is closed.
 */
import http from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { pipeline } from 'node:stream';
import path from 'node:path';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  HTTP_API_PREFIX,
  HTTP_EVENTS_PATH,
  MAX_BODY_BYTES,
  TOKEN_COOKIE,
  TOKEN_HEADER,
  type ApiErrorCode,
  type ApiResult,
  type LiveEvent,
} from '../contract.ts';
import { contentSecurityPolicy } from './csp.ts';

/** What the host needs from the app services (a narrow view, so tests can pass a fake). */
export interface HostServices {
  call(method: unknown, payload: unknown): Promise<ApiResult<unknown>>;
  subscribe(listener: (event: LiveEvent) => void): () => void;
}

export interface HostOptions {
  readonly services: HostServices;
  /** The built renderer (renderer/dist); a page explaining how to build it is served when it is missing. */
  readonly rendererDir: string;
  /** 0 (default) picks a free port. */
  readonly port?: number;
  /** Default: 32 random bytes, base64url. */
  readonly token?: string;
}

export interface Host {
  /** The URL to open, token included. */
  readonly url: string;
  readonly port: number;
  readonly token: string;
  /** Closes the WebSocket connections and the server (the services stay open). */
  close(): Promise<void>;
}

/** HTTP status for each expected error code (the body carries the error either way). */
const STATUS_OF: Record<ApiErrorCode, number> = {
  'invalid-request': 400,
  'invalid-config': 400,
  'ambiguous-id': 400,
  'unknown-method': 404,
  'not-found': 404,
  conflict: 409,
  claimed: 409,
  'export-failed': 422,
  unavailable: 501,
  closed: 503,
  internal: 500,
};

/** Content types of the files the UI is built into (shared with the Electron app:// protocol). */
export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

/** A WebSocket client whose send buffer is over this many bytes is skipped for step events until it drains. */
const SLOW_CLIENT_BYTES = 4 * 1024 * 1024;

function sameSecret(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The request target as a URL on this host, or undefined when it is not a path ("*", "http://other/", garbage).
 * The target is appended to the origin rather than resolved against it: `new URL('//x', base)` would read "//x" as
 * another host (and `//` throws).
 */
function requestUrl(target: string | undefined, origin: string): URL | undefined {
  if (target === undefined || !target.startsWith('/')) return undefined;
  try {
    return new URL(origin + target);
  } catch {
    return undefined;
  }
}

/** A same-origin path for a Location header: leading slashes collapsed, so "//evil.example" stays on this host. */
function sameOriginPath(url: URL): string {
  return '/' + url.pathname.replace(/^[/\\]+/, '') + url.search;
}

/** An HTTP answer written straight onto a socket (a refused WebSocket upgrade); the socket is closed after it. */
function refuseUpgrade(socket: Socket, status: number, reason: string, message: string): void {
  if (socket.destroyed) return;
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(message) + 1}\r\nConnection: close\r\n\r\n${message}\n`, () => socket.destroy());
}

const logUnexpected = (what: string, error: unknown): void => {
  process.stderr.write(`lrnet serve: ${what} failed unexpectedly: ${(error as Error)?.stack ?? String(error)}\n`);
};

function cookies(header: string | undefined): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) map.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return map;
}

/** Starts the host on 127.0.0.1. */
export async function startHost(options: HostOptions): Promise<Host> {
  const token = options.token ?? randomBytes(32).toString('base64url');
  const rendererDir = path.resolve(options.rendererDir);
  const server = http.createServer();
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const cookieName = `${TOKEN_COOKIE}_${port}`;
  const allowedHosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
  const allowedOrigins = new Set([...allowedHosts].map((h) => `http://${h}`));
  const csp = contentSecurityPolicy({ connect: [...allowedHosts].map((h) => `ws://${h}`) });

  /** Why a request must be refused before it is read, or undefined when it may go on. */
  const refusal = (req: http.IncomingMessage, url: URL): string | undefined => {
    if (!allowedHosts.has(req.headers.host ?? '')) return 'unexpected Host header';
    const origin = req.headers.origin;
    if (origin !== undefined && !allowedOrigins.has(origin)) return 'requests from another origin are refused';
    if (req.headers['sec-fetch-site'] === 'cross-site') return 'cross-site requests are refused';
    const header = req.headers[TOKEN_HEADER];
    const given = (typeof header === 'string' ? header : undefined) ?? cookies(req.headers.cookie).get(cookieName) ?? url.searchParams.get('token') ?? undefined;
    if (!sameSecret(given, token)) return 'missing or wrong token: open the URL that `lrnet serve` printed';
    return undefined;
  };

  const securityHeaders = {
    'content-security-policy': csp,
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
  };

  const sendJson = (res: http.ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { ...securityHeaders, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const fail = (res: http.ServerResponse, status: number, code: ApiErrorCode, message: string): void =>
    sendJson(res, status, { ok: false, error: { code, message } } satisfies ApiResult<never>);

  const handleApi = (req: http.IncomingMessage, res: http.ServerResponse, method: string): void => {
    if (req.method !== 'POST') return fail(res, 405, 'invalid-request', `use POST for ${HTTP_API_PREFIX}${method}`);
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') return fail(res, 415, 'invalid-request', 'the request body must be JSON (content-type: application/json)');
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      fail(res, 413, 'invalid-request', `request body over ${MAX_BODY_BYTES} bytes`);
      req.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let aborted = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES && !aborted) {
        aborted = true;
        fail(res, 413, 'invalid-request', `request body over ${MAX_BODY_BYTES} bytes`);
        req.destroy();
        return;
      }
      if (!aborted) chunks.push(chunk);
    });
    req.on('end', () => {
      if (aborted) return;
      let payload: unknown;
      try {
        const text = Buffer.concat(chunks).toString('utf8');
        payload = text.trim() === '' ? {} : JSON.parse(text);
      } catch (error) {
        return fail(res, 400, 'invalid-request', `the request body is not valid JSON: ${(error as Error).message}`);
      }
      // Promise.resolve().then: a services object that throws instead of rejecting is answered the same way.
      Promise.resolve()
        .then(() => options.services.call(method, payload))
        .then((result) => sendJson(res, result.ok ? 200 : (STATUS_OF[result.error.code] ?? 500), result))
        .catch((error: unknown) => answerUnexpected(res, `${HTTP_API_PREFIX}${method}`, error));
    });
  };

  const serveFile = (req: http.IncomingMessage, res: http.ServerResponse, pathname: string): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, securityHeaders).end();
      return;
    }
    const index = path.join(rendererDir, 'index.html');
    if (!existsSync(index)) {
      res.writeHead(503, { ...securityHeaders, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end('<!doctype html><title>lrnet</title><p>The UI is not built yet: run <code>npm run build:renderer</code>, then reload.</p>');
      return;
    }
    let decoded: string;
    try {
      decoded = decodeURIComponent(pathname);
    } catch {
      return fail(res, 400, 'invalid-request', 'the path is not valid percent-encoded UTF-8');
    }
    if (decoded.includes('\0')) return fail(res, 400, 'invalid-request', 'the path contains a NUL character');
    let file = path.resolve(rendererDir, '.' + decoded);
    if (file !== rendererDir && !file.startsWith(rendererDir + path.sep)) {
      res.writeHead(403, securityHeaders).end();
      return;
    }
    let stat = existsSync(file) ? statSync(file) : undefined;
    if (!stat || stat.isDirectory()) {
      // The UI routes with the URL hash; any other unknown path that is not an asset gets the page.
      if (pathname.startsWith('/assets/')) {
        res.writeHead(404, { ...securityHeaders, 'content-type': 'text/plain' }).end('not found');
        return;
      }
      file = index;
      stat = statSync(file);
    }
    const immutable = file.includes(`${path.sep}assets${path.sep}`);
    res.writeHead(200, {
      ...securityHeaders,
      'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': stat.size,
      'cache-control': immutable ? 'private, max-age=31536000, immutable' : 'no-store',
    });
    if (req.method === 'HEAD') res.end();
    // pipeline, not pipe: a read error (the file deleted since stat) must end the response, not the process.
    else pipeline(createReadStream(file), res, () => undefined);
  };

  /** A 500 for an error no handler expected, or a cut connection when the answer had already begun. */
  const answerUnexpected = (res: http.ServerResponse, what: string, error: unknown): void => {
    logUnexpected(what, error);
    try {
      if (res.headersSent) res.destroy();
      else fail(res, 500, 'internal', `${what} failed unexpectedly; the host logged the error`);
    } catch {
      res.destroy();
    }
  };

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    try {
      handleRequest(req, res);
    } catch (error) {
      answerUnexpected(res, `${req.method} request`, error);
    }
  });

  const handleRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = requestUrl(req.url, `http://127.0.0.1:${port}`);
    if (!url) return fail(res, 400, 'invalid-request', 'the request target must be a path starting with /');
    const why = refusal(req, url);
    if (why) return fail(res, 403, 'invalid-request', `forbidden: ${why}`);
    if (url.searchParams.has('token') && req.method === 'GET') {
      // Trade the token in the URL for a cookie, and take it out of the address bar and the history.
      url.searchParams.delete('token');
      res.writeHead(302, {
        ...securityHeaders,
        'set-cookie': `${cookieName}=${token}; HttpOnly; SameSite=Strict; Path=/`,
        location: sameOriginPath(url),
        'cache-control': 'no-store',
      });
      res.end();
      return;
    }
    if (url.pathname.startsWith(HTTP_API_PREFIX)) return handleApi(req, res, url.pathname.slice(HTTP_API_PREFIX.length));
    serveFile(req, res, url.pathname);
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    // Node hands over the socket without its error listener: a client that resets it must not end the process.
    socket.on('error', () => socket.destroy());
    try {
      const url = requestUrl(req.url, `http://127.0.0.1:${port}`);
      if (!url) return refuseUpgrade(socket, 400, 'Bad Request', 'the request target must be a path starting with /');
      if (url.pathname !== HTTP_EVENTS_PATH) return refuseUpgrade(socket, 404, 'Not Found', `live events are at ${HTTP_EVENTS_PATH}`);
      const why = refusal(req, url);
      if (why) return refuseUpgrade(socket, 403, 'Forbidden', `forbidden: ${why}`);
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    } catch (error) {
      logUnexpected('a WebSocket upgrade', error);
      refuseUpgrade(socket, 500, 'Internal Server Error', 'the upgrade failed unexpectedly; the host logged the error');
    }
  });
  // Without a listener Node drops CONNECT requests without a word; this host is no proxy, and says so.
  server.on('connect', (_req: http.IncomingMessage, socket: Socket) => {
    socket.on('error', () => socket.destroy());
    refuseUpgrade(socket, 405, 'Method Not Allowed', 'this host is not a proxy');
  });
  wss.on('connection', (ws: WebSocket) => {
    const unsubscribe = options.services.subscribe((event) => {
      if (ws.readyState !== ws.OPEN) return;
      if (event.type === 'run-progress' && event.event.type === 'step' && ws.bufferedAmount > SLOW_CLIENT_BYTES) return;
      ws.send(JSON.stringify(event));
    });
    let alive = true;
    ws.on('pong', () => (alive = true));
    const ping = setInterval(() => {
      if (!alive) return ws.terminate();
      alive = false;
      ws.ping();
    }, 30_000);
    ping.unref();
    // The channel is one-way: anything the page sends is ignored.
    ws.on('close', () => {
      clearInterval(ping);
      unsubscribe();
    });
    ws.on('error', () => ws.terminate());
  });

  return {
    url: `http://127.0.0.1:${port}/?token=${token}`,
    port,
    token,
    async close() {
      for (const client of wss.clients) client.terminate();
      wss.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}
