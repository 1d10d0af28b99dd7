/**
 * What every page shares: the app's description (presets, formats, shell), the connection to the app, and the
 * notices shown in the corner.
 */
import type { AppInfo } from '../../../app/contract.ts';
import type { ConnectionState, RendererClient } from '../lib/api.ts';

export interface Notice {
  readonly id: number;
  readonly kind: 'info' | 'success' | 'error';
  readonly text: string;
  readonly detail?: readonly string[];
}

export class AppState {
  #info = $state.raw<AppInfo | null>(null);
  #error = $state<string | null>(null);
  #notices = $state.raw<readonly Notice[]>([]);
  #connection = $state<ConnectionState>('connecting');
  #nextId = 1;

  constructor(readonly client: RendererClient, private readonly timers: { setTimeout: (fn: () => void, ms: number) => unknown } = globalThis) {
    this.#connection = client.connection();
    client.onConnection((state) => (this.#connection = state));
  }

  get info(): AppInfo | null {
    return this.#info;
  }
  get error(): string | null {
    return this.#error;
  }
  get notices(): readonly Notice[] {
    return this.#notices;
  }
  get connection(): ConnectionState {
    return this.#connection;
  }

  async load(): Promise<void> {
    const result = await this.client.call('app.info', {});
    if (result.ok) {
      this.#info = result.value;
      this.#error = null;
    } else {
      this.#error = result.error.message;
    }
  }

  /** Shows a notice; errors stay until dismissed, the rest go after a few seconds. */
  notify(kind: Notice['kind'], text: string, detail?: readonly string[]): void {
    const notice: Notice = { id: this.#nextId++, kind, text, ...(detail && detail.length ? { detail } : {}) };
    this.#notices = [...this.#notices.slice(-4), notice];
    if (kind !== 'error') this.timers.setTimeout(() => this.dismiss(notice.id), 4000);
  }

  dismiss(id: number): void {
    this.#notices = this.#notices.filter((n) => n.id !== id);
  }
}
