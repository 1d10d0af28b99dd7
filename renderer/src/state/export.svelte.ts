/**
 * The Export page: pick a run, then one click per format. Each export re-checks the written file against the
 * trained net (the exporter's verification) and the page shows that result and the full report.
 */
import type { ApiClient, AppInfo, ExportFormat, ExportOutcome, LiveEvent, RunDetail, RunsPage } from '../../../app/contract.ts';

export interface FormatInfo {
  readonly format: ExportFormat;
  readonly title: string;
  readonly description: string;
}

export const FORMAT_INFO: readonly FormatInfo[] = [
  { format: 'packed', title: 'Packed weights', description: 'Binary weights at 1 bit, ternary at 2 bits, with a JSON manifest: the smallest file.' },
  { format: 'c', title: 'C source', description: 'A dependency-free C99 inference function with the packed weights inlined, for microcontrollers.' },
  { format: 'onnx', title: 'ONNX', description: 'The discrete net as an ONNX graph, checked with ONNX Runtime.' },
  { format: 'tfjs', title: 'TensorFlow.js', description: 'A TensorFlow.js graph model (model.json + weights) for the browser or Node.' },
];

export type FormatState =
  | { readonly state: 'idle' }
  | { readonly state: 'running' }
  | { readonly state: 'done'; readonly outcome: ExportOutcome }
  | { readonly state: 'failed'; readonly message: string };

export class ExportState {
  #runId = $state<string | null>(null);
  #run = $state.raw<RunDetail | null>(null);
  #candidates = $state.raw<RunsPage['rows']>([]);
  #formats = $state.raw<Readonly<Partial<Record<ExportFormat, FormatState>>>>({});
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
  /** Formats this build can write (the rest are shown disabled). */
  get available(): readonly ExportFormat[] {
    return this.info.exportFormats;
  }

  stateOf(format: ExportFormat): FormatState {
    return this.#formats[format] ?? { state: 'idle' };
  }

  /** Runs that can be exported: completed ones first, then any with a checkpoint. */
  async loadCandidates(): Promise<void> {
    const result = await this.client.call('runs.list', { status: ['completed', 'stopped', 'interrupted'], limit: 500, sort: 'created', order: 'desc' });
    if (result.ok) this.#candidates = result.value.rows;
  }

  async select(runId: string | null): Promise<void> {
    this.#runId = runId;
    this.#formats = {};
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
    this.#formats = { ...this.#formats, [format]: state };
  }
}
