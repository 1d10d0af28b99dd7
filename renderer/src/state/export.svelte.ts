/**
 * The Export page: pick a run, then one click per format. Each export re-checks the written file against the
 * trained net (the exporter's verification) and the page shows that result and the full report.
 */
import type { ApiClient, AppInfo, ExportFormat, ExportFormatInfo, ExportOutcome, LiveEvent, RunDetail, RunsPage } from '../../../app/contract.ts';

export type FormatState =
  | { readonly state: 'idle' }
  | { readonly state: 'running' }
  | { readonly state: 'done'; readonly outcome: ExportOutcome }
  | { readonly state: 'failed'; readonly message: string };

export class ExportState {
  #runId = $state<string | null>(null);
  #run = $state.raw<RunDetail | null>(null);
  #candidates = $state.raw<RunsPage['rows']>([]);
  #results = $state.raw<Readonly<Partial<Record<ExportFormat, FormatState>>>>({});
  #error = $state<string | null>(null);
  destination = $state('');

  constructor(
    private readonly client: ApiClient,
    readonly info: AppInfo,
  ) {}

  get runId(): string | null {
    return this.#runId;
  }
  get run(): RunDetail | null {
    return this.#run;
  }
  get candidates(): RunsPage['rows'] {
    return this.#candidates;
  }
  get error(): string | null {
    return this.#error;
  }
  /** Every format of the app's registry, in its order; those not `available` are shown disabled. */
  get formats(): readonly ExportFormatInfo[] {
    return this.info.exportFormats;
  }
  /** Whether this build can write any format. */
  get installed(): boolean {
    return this.info.exportFormats.some((f) => f.available);
  }

  stateOf(format: ExportFormat): FormatState {
    return this.#results[format] ?? { state: 'idle' };
  }

  /** Runs that can be exported: completed ones first, then any with a checkpoint. */
  async loadCandidates(): Promise<void> {
    const result = await this.client.call('runs.list', { status: ['completed', 'stopped', 'interrupted'], limit: 500, sort: 'created', order: 'desc' });
    if (result.ok) this.#candidates = result.value.rows;
  }

  async select(runId: string | null): Promise<void> {
    this.#runId = runId;
    this.#results = {};
    this.#run = null;
    if (!runId) return;
    const result = await this.client.call('runs.get', { id: runId });
    if (result.ok) {
      this.#run = result.value;
      this.#error = null;
    } else {
      this.#error = result.error.message;
    }
  }

  async exportTo(format: ExportFormat): Promise<FormatState> {
    if (!this.#runId) return { state: 'failed', message: 'Pick a run first.' };
    this.#set(format, { state: 'running' });
    const destination = this.destination.trim();
    const result = await this.client.call('export.run', { runId: this.#runId, format, ...(destination ? { destination: `${destination.replace(/[\\/]+$/, '')}/${format}` } : {}) });
    const next: FormatState = result.ok ? { state: 'done', outcome: result.value } : { state: 'failed', message: result.error.message };
    this.#set(format, next);
    // The run's artifacts now list this export.
    const run = await this.client.call('runs.get', { id: this.#runId });
    if (run.ok && run.value.id === this.#run?.id) this.#run = run.value;
    return next;
  }

  /** The native folder picker (desktop app). */
  async pickDestination(): Promise<void> {
    const result = await this.client.call('dialog.pickFolder', { purpose: 'export-destination', ...(this.destination ? { defaultPath: this.destination } : {}) });
    if (result.ok && result.value.path) this.destination = result.value.path;
  }

  handle(event: LiveEvent): void {
    if (event.type === 'run-deleted' && event.runId === this.#runId) void this.select(null);
  }

  #set(format: ExportFormat, state: FormatState): void {
    this.#results = { ...this.#results, [format]: state };
  }
}
