/**
 * The renderer's API client. In the desktop app the preload exposes `window.lrnet` (Electron IPC); served by
 * `lrnet serve` the page calls the same methods over HTTP and hears live events over a WebSocket. Either way the
 * pages see one typed ApiClient from the contract.
 */
import {
  HTTP_API_PREFIX,
  HTTP_EVENTS_PATH,
  type ApiClient,
  type ApiResult,
  type LiveEvent,
  type Method,
  type PreloadBridge,
  type Request,
  type Response,
} from '../../../app/contract.ts';

export type ConnectionState = 'connecting' | 'open' | 'closed';

/** An ApiClient that also reports whether live events are flowing (the browser transport can drop). */
export interface RendererClient extends ApiClient {
  readonly connection: () => ConnectionState;
  onConnection(listener: (state: ConnectionState) => void): () => void;
}

function failure(message: string): ApiResult<never> {
  return { ok: false, error: { code: 'internal', message } };
}

/** The Electron transport: every call goes through the preload bridge, which validates nothing itself. */
export function bridgeClient(bridge: PreloadBridge): RendererClient {
  return {
    async call<M extends Method>(method: M, request: Request<M>) {
      try {
        return (await bridge.invoke(method, request)) as ApiResult<Response<M>>;
      } catch (error) {
        return failure(`The app did not answer ${method}: ${(error as Error).message}`);
      }
    },
    subscribe: (listener) => bridge.onEvent(listener),
    connection: () => 'open',
    onConnection: () => () => {},
  };
}

/** The browser transport: fetch for calls, one WebSocket (reconnecting with backoff) for events. */
export function httpClient(base: URL = new URL(window.location.href)): RendererClient {
  const listeners = new Set<(event: LiveEvent) => void>();
  const connectionListeners = new Set<(state: ConnectionState) => void>();
  let state: ConnectionState = 'connecting';
  let socket: WebSocket | undefined;
  let retry = 500;
  const setState = (next: ConnectionState) => {
    state = next;
    for (const l of connectionListeners) l(next);
  };
  const connect = () => {
    const url = new URL(HTTP_EVENTS_PATH, base);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = '';
    url.hash = '';
    setState('connecting');
    const ws = new WebSocket(url);
    socket = ws;
    ws.onopen = () => {
      retry = 500;
      setState('open');
    };
    ws.onmessage = (message) => {
      let event: LiveEvent;
      try {
        event = JSON.parse(String(message.data)) as LiveEvent;
      } catch {
        return;
      }
      for (const l of listeners) l(event);
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      setState('closed');
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10_000);
    };
  };
  connect();
  return {
    async call<M extends Method>(method: M, request: Request<M>) {
      let reply: globalThis.Response;
      try {
        reply = await fetch(new URL(HTTP_API_PREFIX + method, base), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(request),
          credentials: 'same-origin',
        });
      } catch (error) {
        return failure(`Cannot reach the lrnet host (${(error as Error).message}); is \`lrnet serve\` still running?`);
      }
      try {
        return (await reply.json()) as ApiResult<Response<M>>;
      } catch {
        return failure(reply.status === 403 ? 'The host refused this page: open the URL that `lrnet serve` printed (with its token).' : `The host answered ${reply.status} without a result.`);
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    connection: () => state,
    onConnection(listener) {
      connectionListeners.add(listener);
      return () => connectionListeners.delete(listener);
    },
  };
}

/** The client for this window: the preload bridge when there is one, else HTTP. */
export function createClient(): RendererClient {
  const bridge = (window as unknown as { lrnet?: PreloadBridge }).lrnet;
  return bridge ? bridgeClient(bridge) : httpClient();
}

/** Unwraps a result or throws an Error carrying the ApiError (for code paths that show failures as toasts). */
export class ApiCallError extends Error {
  override name = 'ApiCallError';
  constructor(readonly code: string, message: string, readonly problems: readonly string[] = []) {
    super(message);
  }
}

export async function unwrap<T>(result: Promise<ApiResult<T>>): Promise<T> {
  const r = await result;
  if (r.ok) return r.value;
  throw new ApiCallError(r.error.code, r.error.message, r.error.problems ?? []);
}
