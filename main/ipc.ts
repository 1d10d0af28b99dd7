/**
 * The main-process side of the contract: one invoke channel whose handler checks the sender frame, then lets the
 * services validate the method and payload (app/contract.ts schemas) and run it. Typed from the contract, no
 * Electron imports (main.ts wires it to ipcMain), so it is unit-tested without Electron.
 */
import { IPC_CHANNELS, type ApiResult, type LiveEvent } from '../app/contract.ts';
import { isTrustedSender } from './security.ts';

/** What the handler needs from the app services. */
export interface CallTarget {
  call(method: unknown, payload: unknown): Promise<ApiResult<unknown>>;
}

/** The parts of an IpcMainInvokeEvent the handler reads. */
export interface InvokeEvent {
  readonly senderFrame: { readonly url: string; readonly parent?: unknown } | null;
}

/** The handler for IPC_CHANNELS.invoke: (event, method, payload) -> ApiResult. Never throws. */
export function createInvokeHandler(services: CallTarget, log: (message: string) => void = (m) => process.stderr.write(`${m}\n`)) {
  return async (event: InvokeEvent, method: unknown, payload: unknown): Promise<ApiResult<unknown>> => {
    if (!isTrustedSender(event.senderFrame)) {
      log(`lrnet: refused ${String(method)} from ${event.senderFrame?.url ?? 'a destroyed frame'}`);
      return { ok: false, error: { code: 'invalid-request', message: 'refused: this frame may not call the app' } };
    }
    return services.call(method, payload);
  };
}

/** The parts of a WebContents the event forwarder uses. */
export interface EventTarget {
  isDestroyed(): boolean;
  send(channel: string, event: LiveEvent): void;
  getURL(): string;
}

/** Forwards live events to a window while it shows the app; returns a function that stops forwarding. */
export function forwardEvents(subscribe: (listener: (event: LiveEvent) => void) => () => void, target: EventTarget): () => void {
  return subscribe((event) => {
    if (!target.isDestroyed()) target.send(IPC_CHANNELS.event, event);
  });
}
