/**
 * The app's services behind the API contract (app/contract.ts): the store, the run manager and the exporter, with
 * one handler per method. The Electron main process and the headless host (`lrnet serve`) both create them here,
 * so the desktop app and the browser UI behave the same.
 *
 * `call()` is the only entry point a transport uses: it validates the method and payload against the contract's
 * schemas, runs the handler and turns expected failures (unknown run, invalid configuration, a run that cannot be
 * resumed) into `{ ok: false, error }` values. Anything unexpected is logged and answered with code 'internal'.
 */
import os from 'node:os';
import path from 'node:path';
import { existsSync, mkdirSync } from 'node:fs';
import {
  validateCall,
  s,
  HEADLINE_METRIC,
  MAX_SERIES_PER_REQUEST,
  MAX_SERIES_POINTS,
  type ApiError,
  type ApiResult,
  type AppInfo,
  type ExportFormat,
  type ExportFormatInfo as WireExportFormatInfo,
  type ExportOutcome,
  type Handlers,
  type LiveEvent,
  type LogLine,
  type Method,
  type Request,
  type Response,
  type RunDetail as WireRunDetail,
  type TrainingConfig as WireTrainingConfig,
  type DatasetName as WireDatasetName,
  type TrainingEvent as WireTrainingEvent,
  type MetricSeries as WireMetricSeries,
  type ConfigDiff as WireConfigDiff,
  type RunListRow as WireRunListRow,
} from './contract.ts';
import { ARCHITECTURES } from '../engine/models.ts';
import { BACKEND_CHOICES, type BackendChoice } from '../engine/backends/index.ts';
import { DATASETS, type DatasetName } from '../engine/data/registry.ts';
import type { ExportFormatEntry } from '../engine/export/entry.ts';
import { ConfigError, PRESETS, parseConfig, type TrainingConfig } from '../engine/config.ts';
import type { TrainingEvent } from '../engine/train.ts';
import { defaultDatabasePath, openStore, StoreError, type Store, type RunDetail, type MetricSeries, type ConfigDiff, type RunListRow } from './store/index.ts';
import { createRunManager, runFolder, APP_VERSION } from './runs/manager.ts';
import { runExportJob } from './export/job.ts';
import { markInterruptedExports } from './export/interrupted.ts';
import { EXPORT_FORMATS, EXPORT_FORMAT_NAMES, type ExportFormatName } from './export/index.ts';
import { RunManagerError, type RunEvent, type RunManager, type RunManagerOptions } from './runs/types.ts';

// The wire types in the contract must keep describing exactly what the store and the engine produce: each line
// fails to compile when a field is added, renamed, retyped or made optional on either side.
// Mutual assignability alone misses an optional field that one side lacks, so the key sets must match too, at every
// depth. Readonly-ness is not compared (the contract marks everything readonly). Unions are compared as wholes
// (mutual assignability and their common keys).
type DeepReadonly<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends readonly (infer U)[]
    ? readonly DeepReadonly<U>[]
    : T extends object
      ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
      : T;
type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : false) : false;
type Exact<A, B> = [A] extends [B]
  ? [B] extends [A]
    ? [A] extends [readonly (infer EA)[]]
      ? [B] extends [readonly (infer EB)[]] ? Exact<EA, EB> : false
      : [A] extends [object]
        ? SameKeys<A, B> extends true
          ? false extends { [K in keyof A]-?: K extends keyof B ? Exact<NonNullable<A[K]>, NonNullable<B[K]>> : false }[keyof A] ? false : true
          : false
        : true
    : false
  : false;
type Equals<A, B> = Exact<DeepReadonly<A>, DeepReadonly<B>> extends true ? true : never;
// The store's types are the app's own: the wire may describe a subset of them (RunDetail's claim details stay in the
// store) or widen them (a NaN in a series arrives as null), so those only need to fit one way.
type Assignable<From, To> = [From] extends [To] ? true : never;
const _wireTypesFit: [
  Equals<TrainingConfig, WireTrainingConfig>,
  Equals<ExportFormatName, ExportFormat>,
  Equals<ExportFormatInfo, WireExportFormatInfo>,
  Equals<DatasetName, WireDatasetName>,
  // The UI reads a part of each event (the wire event leaves out what it never shows).
  Assignable<TrainingEvent, WireTrainingEvent>,
  Assignable<RunDetail, WireRunDetail>,
  Assignable<MetricSeries, WireMetricSeries>,
  Assignable<ConfigDiff, WireConfigDiff>,
  Assignable<RunListRow, WireRunListRow>,
  Assignable<RunEvent, LiveEvent>,
] = [true, true, true, true, true, true, true, true, true, true];
void _wireTypesFit;

/** A format of the export registry as AppInfo describes it. */
type ExportFormatInfo = Pick<ExportFormatEntry<ExportFormatName>, 'name' | 'title' | 'description'> & { readonly available: boolean };

/** The preset the New-run page opens with: the README's "ready-made MNIST default". */
export const DEFAULT_PRESET = 'mnist-ternary-quick';

/** An expected failure a handler reports; call() turns it into `{ ok: false, error }`. */
export class ApiFailure extends Error {
  override name = 'ApiFailure';
  constructor(
    readonly code: ApiError['code'],
    message: string,
    readonly problems?: readonly string[],
  ) {
    super(message);
  }
}

/**
 * The exporter as the services use it. app/export provides the real one; tests may pass their own. Formats it does
 * not list are answered 'unavailable'.
 */
export interface Exporter {
  readonly formats: readonly ExportFormat[];
  /** Writes `format` into `destination` (replacing an earlier export there when `force`). */
  exportRun(request: { store: Store; runId: string; format: ExportFormat; destination: string; force: boolean }): Promise<ExportOutcome>;
}

export interface ServicesOptions {
  /** 'electron' for the desktop app, 'browser' for `lrnet serve`. */
  readonly shell: AppInfo['shell'];
  /** Default: defaultDatabasePath() (under $LRNET_HOME when set). */
  readonly databasePath?: string;
  /** Checkpoints and exports; default: the database's folder. */
  readonly dataFolder?: string;
  /** Runs training at once (default: $LRNET_CONCURRENCY, else half the cores, at least 1). */
  readonly concurrency?: number;
  /** The native folder picker (Electron); without it dialog.pickFolder answers 'unavailable'. */
  readonly pickFolder?: (purpose: Request<'dialog.pickFolder'>['purpose'], defaultPath?: string) => Promise<string | null>;
  /** Default: app/export in a child process (no formats when app/export is not installed). */
  readonly exporter?: Exporter;
  /** Default: createRunManager (a child process per run). */
  readonly createRunManager?: (options: RunManagerOptions) => RunManager;
}

export interface AppServices {
  readonly info: AppInfo;
  readonly store: Store;
  readonly runs: RunManager;
  readonly handlers: Handlers;
  /** Validates and runs one call; never throws. */
  call(method: unknown, payload: unknown): Promise<ApiResult<unknown>>;
  subscribe(listener: (event: LiveEvent) => void): () => void;
  /** Stops running runs (each resumable later) and closes the store. */
  close(): Promise<void>;
}


/** Lines kept per run in the in-memory log; older history is rebuilt from the store. */
const LOG_LINES_PER_RUN = 400;

function defaultConcurrency(): number {
  const fromEnv = Number(process.env['LRNET_CONCURRENCY']);
  if (Number.isInteger(fromEnv) && fromEnv >= 1) return fromEnv;
  return Math.max(1, Math.floor(os.availableParallelism() / 2));
}

const percentText = (x: number) => `${(100 * x).toFixed(2)}%`;

/**
 * A relative dataset.path sent over the API would be resolved against the server's working folder, which means
 * nothing to the client: the API takes absolute paths only (the CLI resolves its own against the user's folder).
 */
function relativePathProblems(config: unknown): string[] {
  const problems: string[] = [];
  const dataset = typeof config === 'object' && config !== null ? (config as { dataset?: unknown }).dataset : undefined;
  const datasetPath = typeof dataset === 'object' && dataset !== null ? (dataset as { path?: unknown }).path : undefined;
  if (typeof datasetPath === 'string') s.absolutePath().check(datasetPath, 'dataset.path', problems);
  return problems;
}

/** Every problem of a configuration sent over the API, and the parsed configuration when there is none. */
function parseRequestConfig(config: unknown): { config?: TrainingConfig; problems: string[] } {
  const problems = relativePathProblems(config);
  try {
    const parsed = parseConfig(config);
    return problems.length > 0 ? { problems } : { config: parsed, problems };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return { problems: [...problems, ...error.problems] };
  }
}

/**
 * The default exporter: app/export in a child process (see export/job.ts), from the run's last checkpoint,
 * recording one artifact per export.
 */
function jobExporter(databasePath: string): Exporter {
  return {
    formats: EXPORT_FORMAT_NAMES,
    async exportRun({ store, runId, format, destination, force }) {
      const run = store.getRun(runId);
      const checkpoint = run.checkpoints.find((c) => c.id === run.lastCheckpointId) ?? run.checkpoints[run.checkpoints.length - 1];
      if (!checkpoint) throw new ApiFailure('conflict', `Run ${run.name} has no checkpoint yet: export it once it has trained.`);
      const backend = (BACKEND_CHOICES as readonly string[]).includes(run.backend ?? '') ? (run.backend as BackendChoice) : 'auto';
      const reply = await runExportJob({ databasePath, runId, checkpoint: checkpoint.path, format, outDir: destination, force, backend });
      if (reply.type === 'failed') {
        // The exporter's own words for an existing folder name the CLI's --force, which the API does not have.
        if (reply.code === 'exists' && !force) throw new ApiFailure('conflict', destinationExists(destination));
        throw new ApiFailure(reply.code === 'not-finished' || reply.code === 'exists' ? 'conflict' : 'export-failed', reply.message);
      }
      const f = reply.report.formats[format];
      const v = f?.verification;
      const summary = v
        ? `${v.consumer}: top-1 agreement ${percentText(v.top1Agreement)} on ${v.images} test images, max |diff| ${v.maxAbsDiff.toExponential(2)} (tolerance ${v.tolerance}), accuracy ${percentText(v.accuracy)}${v.error ? `; ${v.error}` : ''}`
        : 'the exporter reported no verification for this format';
      const r = reply.report;
      return {
        runId,
        format,
        path: path.resolve(reply.outDir, f?.dir ?? format),
        artifactId: reply.artifactId,
        verification: { passed: v?.passed === true, summary },
        report: { ...f, net: r.net, totals: r.totals, reference: r.verification.reference, status: r.status },
      };
    },
  };
}

/** An export.run destination that exists: what an API client can do about it (it has no --force). */
const destinationExists = (destination: string) =>
  `${destination} already exists and is not replaced: name a new folder as destination, or leave destination out to export into the run's own folder (an earlier export there is replaced)`;

const mebibytes = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** A run's log: what the app saw while it ran (kept in memory) after what the store recorded. */
class RunLogs {
  private readonly lines = new Map<string, LogLine[]>();

  add(runId: string, level: LogLine['level'], text: string): void {
    let list = this.lines.get(runId);
    if (!list) this.lines.set(runId, (list = []));
    list.push({ time: Date.now(), level, text });
    if (list.length > LOG_LINES_PER_RUN) list.splice(0, list.length - LOG_LINES_PER_RUN);
  }

  drop(runId: string): void {
    this.lines.delete(runId);
  }

  record(event: RunEvent): void {
    if (event.type === 'run-deleted') return this.drop(event.runId);
    if (event.type === 'run-status') {
      const level = event.status === 'failed' ? 'error' : event.status === 'interrupted' ? 'warn' : 'info';
      return this.add(event.runId, level, `status: ${event.status}${event.error ? ` (${event.error})` : ''}`);
    }
    const e = event.event;
    const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
    switch (e.type) {
      case 'start':
        this.add(event.runId, 'info', `${e.resumedFromStep > 0 ? `resumed at step ${e.resumedFromStep}` : 'started'}: ${e.totalSteps} steps on ${e.backend.name} (${e.backend.adapter}), ${e.dataset.name} with ${e.trainImages} training, ${e.validationImages} validation and ${e.testImages} test images`);
        for (const note of e.backend.notes) this.add(event.runId, 'warn', note);
        return;
      case 'phase':
        return this.add(event.runId, 'info', `phase ${e.phase}: ${e.epochs} epoch${e.epochs === 1 ? '' : 's'} of ${e.stepsPerEpoch} steps`);
      case 'epoch':
        return this.add(event.runId, 'info', `${e.phase} epoch ${e.epoch} done at step ${e.step}: mean loss ${e.meanLoss.toFixed(4)}, training accuracy ${pct(e.trainAccuracy)}`);
      case 'evaluation':
        return this.add(event.runId, 'info', e.phase === 'pretrain'
          ? `full-precision evaluation at step ${e.step}: test ${pct(e.fullPrecision.test)}, validation ${pct(e.fullPrecision.validation)}`
          : `discrete evaluation at step ${e.step}: argmax ${pct(e.discrete.test.argmax)}, sampled mean ${pct(e.discrete.test.sampledMean)}, selected ${pct(e.discrete.test.selected)}, expected ${pct(e.discrete.test.expected)} (test)`);
      case 'checkpoint':
        return this.add(event.runId, 'info', `checkpoint at step ${e.step} (${mebibytes(e.bytes)})`);
      case 'step':
      case 'evaluating':
        return;
    }
  }

  /** The store's record of the run as log lines, then the live lines (which start where the app first saw it). */
  for(run: RunDetail): LogLine[] {
    const history: LogLine[] = [{ time: run.createdAt, level: 'info', text: `created (${run.preset ?? 'custom'}, seed ${run.seed})` }];
    if (run.startedAt !== null) history.push({ time: run.startedAt, level: 'info', text: `first started${run.backend ? ` on ${run.backend}` : ''}${run.adapter ? ` (${run.adapter})` : ''}` });
    for (const c of run.checkpoints) history.push({ time: c.createdAt, level: 'info', text: `checkpoint at step ${c.step} (${mebibytes(c.bytes)})` });
    for (const e of run.evaluations) {
      const t = e.test;
      const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(2)}%`);
      history.push({ time: e.createdAt, level: 'info', text: `discrete evaluation at step ${e.step}: argmax ${pct(t.argmax)}, sampled mean ${pct(t.sampledMean)}, selected ${pct(t.selected)}, expected ${pct(t.expected)} (test)` });
    }
    for (const n of run.notes) history.push({ time: n.createdAt, level: 'info', text: `note: ${n.text}` });
    if (run.finishedAt !== null) {
      history.push({ time: run.finishedAt, level: run.status === 'failed' ? 'error' : 'info', text: `${run.status}${run.error ? `: ${run.error}` : ''}` });
    }
    const live = this.lines.get(run.id) ?? [];
    const firstLive = live[0]?.time ?? Infinity;
    return [...history.filter((l) => l.time < firstLive).sort((a, b) => a.time - b.time), ...live];
  }
}

/** Maps an error thrown by a handler to the value the client receives. */
export function toApiError(error: unknown): ApiError | undefined {
  if (error instanceof ApiFailure) return { code: error.code, message: error.message, ...(error.problems ? { problems: error.problems } : {}) };
  if (error instanceof ConfigError) return { code: 'invalid-config', message: 'The training configuration is invalid: fix the fields listed.', problems: error.problems };
  if (error instanceof StoreError) {
    const code = error.code === 'not-found' || error.code === 'ambiguous-id' || error.code === 'closed' ? error.code : 'conflict';
    return { code, message: error.message };
  }
  if (error instanceof RunManagerError) {
    return { code: error.code === 'closed' || error.code === 'claimed' ? error.code : 'conflict', message: error.message };
  }
  return undefined;
}

/**
 * Creates the services: opens the store, marks runs and exports a dead process left 'running' as interrupted, starts
 * the run manager.
 */
export async function createServices(options: ServicesOptions): Promise<AppServices> {
  const databasePath = path.resolve(options.databasePath ?? defaultDatabasePath());
  const dataFolder = path.resolve(options.dataFolder ?? path.dirname(databasePath));
  mkdirSync(dataFolder, { recursive: true });
  const store = openStore(databasePath);
  const interrupted = store.markInterruptedRuns();
  markInterruptedExports(store);
  const concurrency = options.concurrency ?? defaultConcurrency();
  const runs = (options.createRunManager ?? createRunManager)({ store, dataFolder, concurrency });
  const exporter = options.exporter ?? jobExporter(databasePath);
  const listeners = new Set<(event: LiveEvent) => void>();
  const logs = new RunLogs();
  for (const id of interrupted) logs.add(id, 'warn', 'marked interrupted: the process that ran it is gone; resume continues from its last checkpoint');

  const emit = (event: LiveEvent): void => {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (error) {
        process.stderr.write(`lrnet: a live event listener threw: ${(error as Error).message}\n`);
      }
    }
  };
  const unsubscribeRuns = runs.subscribe((event) => {
    logs.record(event);
    emit(event);
  });

  const info: AppInfo = {
    version: APP_VERSION,
    shell: options.shell,
    databasePath,
    dataFolder,
    defaultPreset: DEFAULT_PRESET,
    presets: PRESETS,
    architectures: ARCHITECTURES,
    datasets: DATASETS.map((d) => ({
      name: d.name,
      title: d.title,
      description: d.description,
      location: d.location,
      ...('pathHint' in d ? { pathHint: d.pathHint } : {}),
      architectures: d.architectures,
    })),
    backends: BACKEND_CHOICES,
    exportFormats: EXPORT_FORMATS.map((f): ExportFormatInfo => ({ name: f.name, title: f.title, description: f.description, available: exporter.formats.includes(f.name) })),
    nativeDialogs: options.pickFolder !== undefined,
    concurrency,
  };

  /** A run's discrete kind, read once from its configuration (configurations never change). */
  const kinds = new Map<string, string | null>();
  const kindOf = (id: string): string | null => {
    let kind = kinds.get(id);
    if (kind === undefined) {
      const config = store.getRun(id).config as { kind?: unknown };
      kind = typeof config.kind === 'string' ? config.kind : null;
      kinds.set(id, kind);
    }
    return kind;
  };

  const handlers: Handlers = {
    'app.info': async () => info,
    'config.validate': async ({ config }) => ({ problems: parseRequestConfig(config).problems }),
    'runs.list': async (query) => {
      const list = store.listRuns({ metric: HEADLINE_METRIC, ...query, limit: query.limit ?? 200 });
      return { total: list.total, rows: list.rows.map((row) => ({ ...row, kind: kindOf(row.id) })) };
    },
    'runs.get': async ({ id }) => store.getRun(id),
    'runs.getMany': async ({ ids }) => ids.map((id) => store.getRun(id)),
    'runs.series': async ({ runIds, keys, maxPoints, fromStep }) => {
      // A run named twice (or by two prefixes) is read once: the answer names each series' run anyway.
      const distinctRuns = [...new Set(runIds.map((id) => store.resolveRunId(id)))];
      const distinctKeys = [...new Set(keys)];
      const count = distinctRuns.length * distinctKeys.length;
      if (count > MAX_SERIES_PER_REQUEST) {
        throw new ApiFailure('invalid-request', `runs.series: at most ${MAX_SERIES_PER_REQUEST} series per request (runs x keys), got ${distinctRuns.length} x ${distinctKeys.length} = ${count}: ask for fewer runs or keys at a time`);
      }
      const share = Math.floor(MAX_SERIES_POINTS / count);
      const points = maxPoints === undefined ? Math.min(2000, share) : maxPoints === 0 ? share : Math.min(maxPoints, share);
      const series: MetricSeries[] = [];
      for (const id of distinctRuns) {
        for (const key of distinctKeys) {
          series.push(store.metricSeries(id, key, { maxPoints: points, ...(fromStep !== undefined ? { fromStep } : {}) }));
        }
      }
      return series;
    },
    'runs.configDiff': async ({ runIds }) => store.configDiff(runIds),
    'runs.log': async ({ id }) => ({ lines: logs.for(store.getRun(id)) }),
    'runs.start': async ({ runs: requests }) => {
      // Parse every configuration first, so a batch is queued whole or not at all.
      const problems: string[] = [];
      const configs: TrainingConfig[] = [];
      requests.forEach((r, i) => {
        const parsed = parseRequestConfig(r.config);
        if (parsed.config) configs.push(parsed.config);
        problems.push(...parsed.problems.map((p) => (requests.length > 1 ? `run ${i + 1}: ${p}` : p)));
      });
      if (problems.length > 0) throw new ApiFailure('invalid-config', 'The training configuration is invalid: fix the fields listed.', problems);
      const ids: string[] = [];
      for (const [i, r] of requests.entries()) {
        ids.push(await runs.start({ config: configs[i]!, ...(r.name ? { name: r.name } : {}), ...(r.tags ? { tags: [...r.tags] } : {}) }));
      }
      return { ids };
    },
    'runs.stop': async ({ id }) => {
      await runs.stop(store.resolveRunId(id));
      return null;
    },
    'runs.resume': async ({ id, steal }) => {
      await runs.resume(store.resolveRunId(id), { steal: steal === true });
      return null;
    },
    'runs.clone': async ({ id, changes, name }) => {
      const problems = relativePathProblems(changes);
      if (problems.length > 0) throw new ApiFailure('invalid-config', 'The changes to the configuration are invalid: fix the fields listed.', problems);
      // The manager parses the merged configuration; a ConfigError comes back as the list of problems.
      return { id: await runs.clone(store.resolveRunId(id), changes ?? {}, name) };
    },
    'runs.delete': async ({ id, force }) => {
      const full = store.resolveRunId(id);
      await runs.delete(full, { force: force === true });
      kinds.delete(full);
      return null;
    },
    'runs.tag': async ({ id, tag, remove }) => {
      const full = store.resolveRunId(id);
      if (remove) store.removeTag(full, tag);
      else store.addTag(full, tag);
      emit({ type: 'run-updated', runId: full });
      return { tags: store.getRun(full).tags };
    },
    'runs.note': async ({ id, text }) => {
      const note = store.addNote(id, text);
      emit({ type: 'run-updated', runId: note.runId });
      return note;
    },
    'export.run': async ({ runId, format, destination }) => {
      if (!exporter.formats.includes(format)) {
        throw new ApiFailure('unavailable', exporter.formats.length ? `This build cannot export to ${format}; available: ${exporter.formats.join(', ')}.` : 'Exports are not installed in this build.');
      }
      const full = store.resolveRunId(runId);
      const run = store.getRun(full);
      if (run.status !== 'completed' && run.lastCheckpointId === null) {
        throw new ApiFailure('conflict', `Run ${run.name} has no checkpoint yet: export it once it has trained.`);
      }
      // The run's own export folder is the app's to replace; a folder the person named is not.
      if (destination !== undefined && existsSync(destination)) throw new ApiFailure('conflict', destinationExists(destination));
      const folder = path.resolve(destination ?? path.join(runFolder(dataFolder, full), 'exports', format));
      emit({ type: 'export-status', runId: full, format, status: 'running' });
      try {
        const outcome = await exporter.exportRun({ store, runId: full, format, destination: folder, force: destination === undefined });
        emit({ type: 'export-status', runId: full, format, status: outcome.verification.passed ? 'done' : 'failed', message: outcome.verification.summary });
        return outcome;
      } catch (error) {
        emit({ type: 'export-status', runId: full, format, status: 'failed', message: (error as Error).message });
        throw toApiError(error) ? error : new ApiFailure('export-failed', `Export to ${format} failed: ${(error as Error).message}`);
      }
    },
    'dialog.pickFolder': async ({ purpose, defaultPath }) => {
      if (!options.pickFolder) throw new ApiFailure('unavailable', 'Native dialogs exist only in the desktop app: type the folder path instead.');
      return { path: await options.pickFolder(purpose, defaultPath) };
    },
  };

  let closed: Promise<void> | undefined;
  return {
    info,
    store,
    runs,
    handlers,
    async call(method, payload) {
      const checked = validateCall(method, payload);
      if (!checked.ok) return checked;
      const handler = handlers[checked.value.method] as (request: unknown) => Promise<unknown>;
      try {
        return { ok: true, value: await handler(checked.value.payload) };
      } catch (error) {
        const expected = toApiError(error);
        if (expected) return { ok: false, error: expected };
        process.stderr.write(`lrnet: ${String(method)} failed unexpectedly: ${(error as Error)?.stack ?? String(error)}\n`);
        return { ok: false, error: { code: 'internal', message: `${String(method)} failed unexpectedly: ${(error as Error)?.message ?? String(error)}` } };
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      closed ??= (async () => {
        try {
          await runs.close();
        } finally {
          unsubscribeRuns();
          listeners.clear();
          store.close();
        }
      })();
      return closed;
    },
  };
}

/** Narrows a method's response type for callers that know which method they called. */
export type ResponseOf<M extends Method> = Response<M>;
