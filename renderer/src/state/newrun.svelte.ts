/**
 * The New-run form: a preset to start from, every setting of the training configuration, and how many runs to
 * queue. The app checks the configuration as it is edited (the engine's validateConfig, through config.validate)
 * so the form shows exactly the problems that would refuse the run, next to the fields they concern.
 */
import type { ApiClient, AppInfo, TrainingConfig } from '../../../app/contract.ts';
import { realScheduler, type Scheduler } from './runs.svelte.ts';

/** A mutable copy of a configuration for the form's inputs (optional numbers may be cleared to null). */
export type FormConfig = {
  -readonly [K in keyof TrainingConfig]: TrainingConfig[K] extends object ? { -readonly [J in keyof TrainingConfig[K]]: TrainingConfig[K][J] | null } : TrainingConfig[K];
};

/** A configuration queued for the next Start, with the name it will get. */
export interface QueuedRun {
  readonly config: TrainingConfig;
  readonly name?: string;
  readonly tags?: readonly string[];
}

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

const IMAGE_FOLDER_NUMBERS = ['cropSize', 'resizeShorter', 'decodeWorkers'] as const;
/** The dataset's optional numbers, which the form may leave empty. */
const DATASET_NUMBERS = ['trainLimit', 'testLimit', ...IMAGE_FOLDER_NUMBERS] as const;

/** The form's dataset: every optional field present (null when empty) so inputs can bind to it. */
function formDataset(dataset: object): FormConfig['dataset'] {
  return { path: null, ...Object.fromEntries(DATASET_NUMBERS.map((k) => [k, null])), ...dataset } as FormConfig['dataset'];
}

/** The form's values as a configuration: cleared optional fields are left out, everything else kept as typed. */
export function toConfig(form: FormConfig): TrainingConfig {
  const copy = clone(form) as unknown as Record<string, unknown>;
  const dataset = copy['dataset'] as Record<string, unknown>;
  for (const key of ['path', ...DATASET_NUMBERS]) {
    if (dataset[key] === null || dataset[key] === undefined || dataset[key] === '') delete dataset[key];
  }
  // The image-folder settings are hidden for other data sets: do not send what the user cannot see.
  if (dataset['name'] !== 'imagefolder') for (const key of IMAGE_FOLDER_NUMBERS) delete dataset[key];
  return copy as unknown as TrainingConfig;
}

/** "lr.epochs: expected ..." -> ["lr.epochs", "expected ..."]; run-level problems have no field. */
export function splitProblem(problem: string): { field: string | null; message: string } {
  const m = /^(?:run \d+: )?([A-Za-z]+(?:\.[A-Za-z]+)*): (.*)$/.exec(problem);
  return m ? { field: m[1]!, message: m[2]! } : { field: null, message: problem };
}

export class NewRunState {
  static readonly VALIDATE_MS = 250;

  #preset = $state('');
  /** Deep state: the form binds straight into it. */
  config = $state<FormConfig>(null as unknown as FormConfig);
  name = $state('');
  tags = $state('');
  /** Runs to queue from this form, with seeds seed, seed+1, ... */
  count = $state(1);
  #queue = $state.raw<readonly QueuedRun[]>([]);
  #problems = $state.raw<readonly string[]>([]);
  #checking = $state(false);
  #starting = $state(false);
  #cancelValidation: (() => void) | null = null;
  #validation = 0;

  constructor(
    private readonly client: ApiClient,
    readonly info: AppInfo,
    private readonly scheduler: Scheduler = realScheduler,
  ) {
    this.applyPreset(info.defaultPreset in info.presets ? info.defaultPreset : Object.keys(info.presets)[0]!);
  }

  get preset(): string {
    return this.#preset;
  }
  get presetNames(): string[] {
    return Object.keys(this.info.presets);
  }
  get queue(): readonly QueuedRun[] {
    return this.#queue;
  }
  get problems(): readonly string[] {
    return this.#problems;
  }
  get checking(): boolean {
    return this.#checking;
  }
  get starting(): boolean {
    return this.#starting;
  }
  get valid(): boolean {
    return this.#problems.length === 0;
  }
  /** Runs a Start click queues: the batch plus this form's `count` runs. */
  get runsToStart(): number {
    return this.#queue.length + Math.max(0, Math.floor(this.count || 0));
  }

  /** Problems about one field (dotted path), for the message under its input. */
  problemsFor(field: string): string[] {
    return this.#problems.map(splitProblem).filter((p) => p.field === field).map((p) => p.message);
  }

  /** Problems that name no field of the form. */
  get generalProblems(): string[] {
    return this.#problems.map(splitProblem).filter((p) => p.field === null).map((p) => p.message);
  }

  /** Replaces every setting with the preset's. */
  applyPreset(name: string): void {
    const preset = this.info.presets[name];
    if (!preset) return;
    this.#preset = name;
    const form = clone(preset) as unknown as FormConfig;
    form.dataset = formDataset(form.dataset);
    this.config = form;
    this.#problems = [];
  }

  /** Starts from an existing run's configuration (Clone). */
  loadConfig(config: Record<string, unknown>, name?: string): void {
    const form = clone(config) as unknown as FormConfig;
    form.dataset = formDataset(form.dataset);
    this.#preset = typeof config['preset'] === 'string' && config['preset'] in this.info.presets ? (config['preset'] as string) : '';
    this.config = form;
    if (name) this.name = `${name}-clone`;
    this.changed();
  }

  /** Call after any edit: checks the configuration once the edits pause. */
  changed(): void {
    this.#cancelValidation?.();
    this.#cancelValidation = this.scheduler.after(NewRunState.VALIDATE_MS, () => {
      this.#cancelValidation = null;
      void this.validate();
    });
  }

  /** Asks the app whether the configuration is valid; returns the problems. */
  async validate(): Promise<readonly string[]> {
    const ticket = ++this.#validation;
    this.#checking = true;
    const result = await this.client.call('config.validate', { config: toConfig(this.config) as unknown as Record<string, unknown> });
    if (ticket !== this.#validation) return this.#problems;
    this.#checking = false;
    this.#problems = result.ok ? result.value.problems : result.error.problems ?? [result.error.message];
    return this.#problems;
  }

  #tagList(): string[] {
    return this.tags.split(/[\s,]+/).map((t) => t.trim()).filter(Boolean);
  }

  /** The runs this form adds: `count` copies with consecutive seeds (names suffixed with the seed when several). */
  formRuns(): QueuedRun[] {
    const base = toConfig(this.config);
    const n = Math.max(0, Math.floor(this.count || 0));
    const tags = this.#tagList();
    return Array.from({ length: n }, (_, i) => {
      const config = { ...base, seed: base.seed + i };
      const name = this.name.trim() ? (n > 1 ? `${this.name.trim()}-s${config.seed}` : this.name.trim()) : undefined;
      return { config, ...(name ? { name } : {}), ...(tags.length ? { tags } : {}) };
    });
  }

  /** Adds this form's runs to the batch, so different settings start together. */
  async addToQueue(): Promise<boolean> {
    if ((await this.validate()).length > 0) return false;
    this.#queue = [...this.#queue, ...this.formRuns()];
    return true;
  }

  removeFromQueue(index: number): void {
    this.#queue = this.#queue.filter((_, i) => i !== index);
  }

  /**
   * Queues the batch and this form's runs in the app. Returns the new run ids, or null when the app refused them
   * (the problems are then shown on the form).
   */
  async start(): Promise<{ ids: readonly string[] } | { error: string }> {
    const runs = [...this.#queue, ...this.formRuns()];
    if (runs.length === 0) return { error: 'Nothing to start: set "runs" to at least 1 or add runs to the queue.' };
    this.#starting = true;
    try {
      const result = await this.client.call('runs.start', {
        runs: runs.map((r) => ({ config: r.config as unknown as Record<string, unknown>, ...(r.name ? { name: r.name } : {}), ...(r.tags ? { tags: r.tags } : {}) })),
      });
      if (!result.ok) {
        this.#problems = result.error.problems ?? [];
        return { error: result.error.message };
      }
      this.#queue = [];
      return { ids: result.value.ids };
    } finally {
      this.#starting = false;
    }
  }

  dispose(): void {
    this.#cancelValidation?.();
  }
}
