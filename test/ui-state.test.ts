/**
 * The renderer's state classes (renderer/src/state/*.svelte.ts) and pure helpers, driven by a fake API client.
 *
 * The classes use Svelte runes, which only Svelte's compiler understands, and this project's vitest config has no
 * Svelte plugin: so the tests bundle the modules first with Vite and the Svelte plugin (the same compilation as the
 * app, browser build of the Svelte runtime), then import the bundle. That takes about a second.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { build } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import type { ApiClient, ApiResult, AppInfo, LiveEvent, MetricSeries, Method, Request, Response, RunDetail, RunsPage } from '../app/contract.ts';
import { PRESETS } from '../engine/config.ts';
import { DATASETS } from '../engine/data/registry.ts';
import { EXPORT_FORMATS } from '../engine/export/registry.ts';

import type * as RunsModule from '../renderer/src/state/runs.svelte.ts';
import type * as NewRunModule from '../renderer/src/state/newrun.svelte.ts';
import type * as LiveRunModule from '../renderer/src/state/liverun.svelte.ts';
import type * as CompareModule from '../renderer/src/state/compare.svelte.ts';
import type * as ExportModule from '../renderer/src/state/export.svelte.ts';
import type * as RouterModule from '../renderer/src/state/router.svelte.ts';
import type * as SeriesModule from '../renderer/src/lib/series.ts';
import type * as CsvModule from '../renderer/src/lib/csv.ts';
import type * as SvgModule from '../renderer/src/lib/svg.ts';
import type * as FormatModule from '../renderer/src/lib/format.ts';

const RENDERER = fileURLToPath(new URL('../renderer', import.meta.url));
const ENTRIES = {
  runs: 'src/state/runs.svelte.ts',
  newrun: 'src/state/newrun.svelte.ts',
  liverun: 'src/state/liverun.svelte.ts',
  compare: 'src/state/compare.svelte.ts',
  exporter: 'src/state/export.svelte.ts',
  router: 'src/state/router.svelte.ts',
  series: 'src/lib/series.ts',
  csv: 'src/lib/csv.ts',
  svg: 'src/lib/svg.ts',
  format: 'src/lib/format.ts',
};

let out: string;
let runs: typeof RunsModule;
let newrun: typeof NewRunModule;
let liverun: typeof LiveRunModule;
let compare: typeof CompareModule;
let exporter: typeof ExportModule;
let router: typeof RouterModule;
let series: typeof SeriesModule;
let csv: typeof CsvModule;
let svg: typeof SvgModule;
let format: typeof FormatModule;

beforeAll(async () => {
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-ui-state-'));
  await build({
    configFile: false,
    logLevel: 'warn',
    root: RENDERER,
    plugins: [svelte()],
    build: {
      outDir: out,
      emptyOutDir: true,
      minify: false,
      lib: { entry: Object.fromEntries(Object.entries(ENTRIES).map(([k, v]) => [k, path.join(RENDERER, v)])), formats: ['es'] },
    },
  });
  const load = async <T>(name: string) => (await import(pathToFileURL(path.join(out, `${name}.js`)).href)) as T;
  [runs, newrun, liverun, compare, exporter, router, series, csv, svg, format] = await Promise.all([
    load<typeof RunsModule>('runs'),
    load<typeof NewRunModule>('newrun'),
    load<typeof LiveRunModule>('liverun'),
    load<typeof CompareModule>('compare'),
    load<typeof ExportModule>('exporter'),
    load<typeof RouterModule>('router'),
    load<typeof SeriesModule>('series'),
    load<typeof CsvModule>('csv'),
    load<typeof SvgModule>('svg'),
    load<typeof FormatModule>('format'),
  ]);
}, 60_000);

afterAll(() => {
  if (out) fs.rmSync(out, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------------
// A fake app behind the contract
// ---------------------------------------------------------------------------------------------------------------

type Handler<M extends Method> = (request: Request<M>) => ApiResult<Response<M>> | Promise<ApiResult<Response<M>>>;

class FakeClient implements ApiClient {
  readonly calls: { method: Method; request: unknown }[] = [];
  readonly listeners = new Set<(event: LiveEvent) => void>();
  private readonly handlers = new Map<Method, Handler<Method>>();

  on<M extends Method>(method: M, handler: Handler<M>): this {
    this.handlers.set(method, handler as unknown as Handler<Method>);
    return this;
  }
  async call<M extends Method>(method: M, request: Request<M>): Promise<ApiResult<Response<M>>> {
    this.calls.push({ method, request });
    const handler = this.handlers.get(method);
    if (!handler) return { ok: false, error: { code: 'unknown-method', message: `no fake for ${method}` } };
    return (await handler(request as Request<Method>)) as ApiResult<Response<M>>;
  }
  subscribe(listener: (event: LiveEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  callsOf(method: Method): unknown[] {
    return this.calls.filter((c) => c.method === method).map((c) => c.request);
  }
}

/** A scheduler whose timers run when the test says so. */
class ManualScheduler {
  pending: { ms: number; fn: () => void; cancelled: boolean }[] = [];
  after(ms: number, fn: () => void): () => void {
    const task = { ms, fn, cancelled: false };
    this.pending.push(task);
    return () => (task.cancelled = true);
  }
  flush(): number {
    const tasks = this.pending.filter((t) => !t.cancelled);
    this.pending = [];
    for (const t of tasks) t.fn();
    return tasks.length;
  }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
const ok = <T>(value: T): ApiResult<T> => ({ ok: true, value });

function row(i: number, extra: Partial<RunsPage['rows'][number]> = {}): RunsPage['rows'][number] {
  return {
    id: `run${String(i).padStart(5, '0')}`, name: `run-${i}`, status: 'completed', createdAt: 1_700_000_000_000 + i, startedAt: 1_700_000_000_000 + i,
    finishedAt: 1_700_000_060_000 + i, preset: 'mnist-ternary-quick', seed: i, datasetName: 'mnist-sample', datasetChecksum: 'abc', backend: 'wasm',
    adapter: 'cpu', progress: 1, error: null, tags: [], metric: { key: 'test/argmax', best: 0.9, bestStep: 10, last: 0.89, lastStep: 20 }, kind: 'ternary', ...extra,
  };
}

/** A store of `n` runs answering runs.list pages like the app does. */
function tableClient(n: number): FakeClient {
  return new FakeClient().on('runs.list', (q) => {
    const all = Array.from({ length: n }, (_, i) => row(i));
    const filtered = q.search ? all.filter((r) => r.name.includes(q.search!)) : all;
    const sorted = q.order === 'asc' ? filtered : [...filtered].reverse();
    const offset = q.offset ?? 0;
    return ok({ rows: sorted.slice(offset, offset + (q.limit ?? 100)), total: filtered.length });
  });
}

const info: AppInfo = {
  version: '0.1.0', shell: 'browser', databasePath: '/tmp/x.db', dataFolder: '/tmp', defaultPreset: 'mnist-ternary-quick',
  presets: PRESETS, architectures: ['mnist', 'cifar10-vgg', 'resnet18'], datasets: DATASETS.map(({ name, title, description, location, architectures }) => ({ name, title, description, location, architectures })),
  backends: ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'], exportFormats: EXPORT_FORMATS.map(({ name, title, description }) => ({ name, title, description, available: true })), nativeDialogs: false, concurrency: 1,
};

function seriesOf(runId: string, key: string, steps: number[], values: (number | null)[], epochs?: (number | null)[]): MetricSeries {
  return { runId, key, total: steps.length, downsampled: false, steps, values, epochs: epochs ?? steps.map(() => null), wallTimes: steps.map((s) => 1_000_000 + s * 60_000) };
}

function detail(id: string, extra: Partial<RunDetail> = {}): RunDetail {
  return {
    id, name: `run-${id}`, status: 'completed', createdAt: 0, startedAt: 1_000_000, finishedAt: 2_000_000, preset: 'mnist-ternary-quick',
    config: { ...PRESETS['mnist-ternary-quick'], seed: 1 } as unknown as Record<string, unknown>, seed: 1, dataset: null, backend: 'wasm', adapter: null,
    appVersion: '0.1.0', error: null, progress: 1, tags: [], notes: [], evaluations: [], checkpoints: [], artifacts: [], metrics: [], ...extra,
  };
}

// ---------------------------------------------------------------------------------------------------------------

describe('RunsTableState', () => {
  it('fetches only the pages the visible rows fall in, so 10,000 runs cost two pages', async () => {
    const client = tableClient(10_000);
    const table = new runs.RunsTableState(client, new ManualScheduler());
    await table.reload();
    expect(table.total).toBe(10_000);
    expect(client.callsOf('runs.list')).toHaveLength(1);
    table.setRange(5_050, 5_130);
    await tick();
    const offsets = client.callsOf('runs.list').map((q) => (q as { offset: number }).offset);
    expect(offsets).toEqual([0, 5_000, 5_100]);
    expect(table.rowAt(5_050)?.name).toBe(`run-${10_000 - 1 - 5_050}`);
    expect(table.rowAt(7_000)).toBeUndefined();
    // Scrolling back over loaded pages fetches nothing.
    table.setRange(5_060, 5_100);
    await tick();
    expect(client.callsOf('runs.list')).toHaveLength(3);
  });

  it('asks for the headline metric, the sort and the filters; the same column twice flips the order', async () => {
    const client = tableClient(5);
    const table = new runs.RunsTableState(client, new ManualScheduler());
    table.sortBy('best');
    await tick();
    expect(table.sort).toBe('best');
    expect(table.order).toBe('desc');
    table.sortBy('best');
    table.toggleStatus('running');
    table.setTag('baseline');
    await tick();
    const last = client.callsOf('runs.list').at(-1);
    // The headline metric, as `lrnet runs` ranks by it: the validation-selected sampled net's test accuracy.
    expect(last).toMatchObject({ metric: 'test/selected', sort: 'best', order: 'asc', status: ['running'], tag: ['baseline'], offset: 0, limit: 100 });
  });

  it('drops answers to a query that was replaced while they were on their way', async () => {
    let release: () => void = () => {};
    const slow = new Promise<void>((resolve) => (release = resolve));
    const client = new FakeClient().on('runs.list', async (q) => {
      if (q.search === 'old') await slow;
      return ok({ rows: [row(q.search === 'old' ? 1 : 2)], total: 1 });
    });
    const table = new runs.RunsTableState(client, new ManualScheduler());
    table.setSearch('old');
    table.setSearch('new');
    await tick();
    release();
    await tick();
    expect(table.rowAt(0)?.name).toBe('run-2');
  });

  it('selects like a file manager: click, Ctrl-click and Shift-click', async () => {
    const table = new runs.RunsTableState(tableClient(10), new ManualScheduler());
    await table.reload();
    table.select(2);
    expect(table.selectedIds).toEqual([table.rowAt(2)!.id]);
    table.select(5, { range: true });
    expect(table.selected.size).toBe(4);
    table.select(8, { toggle: true });
    expect(table.selected.size).toBe(5);
    table.select(8, { toggle: true });
    expect(table.selected.size).toBe(4);
    table.toggleAllLoaded();
    expect(table.selected.size).toBe(10);
    table.toggleAllLoaded();
    expect(table.selected.size).toBe(0);
  });

  it('moves progress in place on step events and refreshes once per burst of status changes', async () => {
    const scheduler = new ManualScheduler();
    const client = tableClient(3);
    const table = new runs.RunsTableState(client, scheduler);
    await table.reload();
    const id = table.rowAt(0)!.id;
    table.handle({ type: 'run-progress', runId: id, event: { type: 'step', phase: 'lr', epoch: 1, step: 5, totalSteps: 20, loss: 1, crossEntropy: 1, batchAccuracy: 0.5, learningRate: 0.01, imagesPerSecond: 100, etaSeconds: 3, elapsedSeconds: 1 } });
    expect(table.rowAt(0)!.progress).toBe(0.25);
    expect(table.rowAt(0)!.status).toBe('running');
    expect(client.callsOf('runs.list')).toHaveLength(1);
    table.handle({ type: 'run-status', runId: id, status: 'completed' });
    table.handle({ type: 'run-status', runId: id, status: 'completed' });
    expect(scheduler.flush()).toBe(1);
    await tick();
    expect(client.callsOf('runs.list')).toHaveLength(2);
  });
});

describe('NewRunState', () => {
  it('opens on the ready-made MNIST preset, so one Start queues it as it is', async () => {
    const client = new FakeClient().on('runs.start', (r) => ok({ ids: r.runs.map((_, i) => `new${i}`) }));
    const form = new newrun.NewRunState(client, info, new ManualScheduler());
    expect(form.preset).toBe('mnist-ternary-quick');
    expect(form.runsToStart).toBe(1);
    const result = await form.start();
    expect(result).toEqual({ ids: ['new0'] });
    const sent = client.callsOf('runs.start')[0] as Request<'runs.start'>;
    expect(sent.runs[0]!.config).toEqual(PRESETS['mnist-ternary-quick']);
  });

  it('leaves cleared optional fields out, and queues several seeds under one name', () => {
    const form = new newrun.NewRunState(new FakeClient(), info, new ManualScheduler());
    form.config.dataset.trainLimit = 700;
    form.config.dataset.testLimit = null;
    form.name = 'sweep';
    form.count = 3;
    form.tags = 'a, b c';
    const made = form.formRuns();
    expect(made.map((r) => [r.name, r.config.seed])).toEqual([['sweep-s1', 1], ['sweep-s2', 2], ['sweep-s3', 3]]);
    expect(made[0]!.config.dataset).toEqual({ name: 'mnist-sample', trainLimit: 700 });
    expect(made[0]!.tags).toEqual(['a', 'b', 'c']);
  });

  it('sends the image-folder settings only while the dataset is an image folder', () => {
    const form = new newrun.NewRunState(new FakeClient(), info, new ManualScheduler());
    form.applyPreset('imagenet-ternary-quick');
    expect(form.config.architecture).toBe('resnet18');
    form.config.dataset.path = '/data/imagenet';
    form.config.dataset.decodeWorkers = null;
    expect(form.formRuns()[0]!.config.dataset).toEqual({ name: 'imagefolder', path: '/data/imagenet', trainLimit: 3000, testLimit: 500, cropSize: 64, resizeShorter: 72 });
    form.config.dataset.name = 'mnist';
    expect(form.formRuns()[0]!.config.dataset).toEqual({ name: 'mnist', path: '/data/imagenet', trainLimit: 3000, testLimit: 500 });
  });

  it('checks the configuration once edits pause and files each problem under its field', async () => {
    const scheduler = new ManualScheduler();
    const client = new FakeClient().on('config.validate', () => ok({ problems: ['lr.epochs: expected an integer >= 1, got 0', 'the configuration is odd'] }));
    const form = new newrun.NewRunState(client, info, scheduler);
    form.changed();
    form.changed();
    form.changed();
    expect(scheduler.flush()).toBe(1);
    await tick();
    expect(client.callsOf('config.validate')).toHaveLength(1);
    expect(form.valid).toBe(false);
    expect(form.problemsFor('lr.epochs')).toEqual(['expected an integer >= 1, got 0']);
    expect(form.generalProblems).toEqual(['the configuration is odd']);
  });

  it('starts a batch of different settings together and shows the app\'s problems when it refuses', async () => {
    let refuse = true;
    const client = new FakeClient()
      .on('config.validate', () => ok({ problems: [] }))
      .on('runs.start', (r) => (refuse ? { ok: false, error: { code: 'invalid-config', message: 'invalid', problems: ['run 2: batchSize: expected an integer >= 1, got 0'] } } : ok({ ids: r.runs.map((_, i) => `id${i}`) })));
    const form = new newrun.NewRunState(client, info, new ManualScheduler());
    expect(await form.addToQueue()).toBe(true);
    form.applyPreset('mnist-binary-quick');
    expect(form.config.kind).toBe('binary');
    expect(form.runsToStart).toBe(2);
    expect(await form.start()).toEqual({ error: 'invalid' });
    expect(form.problemsFor('batchSize')).toEqual(['expected an integer >= 1, got 0']);
    refuse = false;
    expect(await form.start()).toEqual({ ids: ['id0', 'id1'] });
    expect(form.queue).toHaveLength(0);
  });
});

describe('LiveRunState', () => {
  const step = (n: number, loss = 1): LiveEvent => ({
    type: 'run-progress', runId: 'r1',
    event: { type: 'step', phase: 'lr', epoch: 1, step: n, totalSteps: 40, loss, crossEntropy: loss, batchAccuracy: 0.5, learningRate: 0.01, imagesPerSecond: 250, etaSeconds: 12, elapsedSeconds: 3 },
  });

  function liveClient(): FakeClient {
    return new FakeClient()
      .on('runs.get', () => ok(detail('r1', { status: 'running', progress: 0.25, metrics: [{ key: 'train/loss', count: 10, goal: 'min', best: 0.5, bestStep: 9, last: 0.6, lastStep: 10 }] })))
      .on('runs.series', () => ok([
        seriesOf('r1', 'train/loss', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [2, 1.8, 1.5, 1.2, 1, 0.9, 0.8, 0.7, 0.5, 0.6]),
        seriesOf('r1', 'train/batchAccuracy', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9]),
        seriesOf('r1', 'test/argmax', [10], [0.8]),
        seriesOf('r1', 'test/expected', [10], [0.85]),
      ]))
      .on('runs.log', () => ok({ lines: [{ time: 1, level: 'info', text: 'started' }] }))
      .on('runs.stop', () => ok(null));
  }

  it('loads the curves so far, then grows them with each step event', async () => {
    const run = new liverun.LiveRunState(liveClient(), 'r1', new ManualScheduler());
    await run.load();
    expect(run.curves.steps).toHaveLength(10);
    expect(run.curves.batchAccuracy.slice(0, 3)).toEqual([0.1, 0.2, 0.3]);
    expect(run.evaluations.expected).toEqual([0.85]);
    expect(run.progress).toMatchObject({ step: 10, totalSteps: 40, fraction: 0.25 });
    expect(run.log[0]!.text).toBe('started');
    const version = run.version;
    run.handle(step(11, 0.55));
    run.handle(step(11, 0.55));
    run.handle({ ...step(12), runId: 'someone-else' } as LiveEvent);
    expect(run.curves.steps.at(-1)).toBe(11);
    expect(run.curves.steps).toHaveLength(11);
    expect([run.curves.loss.at(-1), run.curves.batchAccuracy.at(-1)]).toEqual([0.55, 0.5]);
    expect(run.version).toBe(version + 1);
    expect(run.progress).toMatchObject({ step: 11, etaSeconds: 12, imagesPerSecond: 250, phase: 'lr' });
    expect(run.canStop).toBe(true);
    expect(run.canResume).toBe(false);
  });

  it('a resumed run replays from its checkpoint: points after it are dropped, not doubled', async () => {
    const run = new liverun.LiveRunState(liveClient(), 'r1', new ManualScheduler());
    await run.load();
    run.handle({ type: 'run-progress', runId: 'r1', event: { type: 'start', backend: { name: 'wasm', tfBackend: 'wasm', adapter: 'cpu', hardwareAccelerated: false, notes: [] }, dataset: { name: 'mnist-sample', source: '', trainCount: 1, testCount: 1, checksum: '' }, model: { architecture: 'mnist', totalParameters: 1, totalBytes: 1, totalMacs: 1 }, totalSteps: 40, resumedFromStep: 6, trainImages: 1, validationImages: 1, testImages: 1 } });
    expect(run.curves.steps).toEqual([1, 2, 3, 4, 5, 6]);
    run.handle(step(7));
    expect(run.curves.steps.at(-1)).toBe(7);
  });

  it('records evaluations as points, refetches the run for its layer statistics, and stops on request', async () => {
    const scheduler = new ManualScheduler();
    const client = liveClient();
    const run = new liverun.LiveRunState(client, 'r1', scheduler);
    await run.load();
    const scores = { argmax: 0.9, sampledMean: 0.88, sampledMin: 0.8, sampledBest: 0.91, selected: 0.9, expected: 0.93, samples: [0.88] };
    run.handle({ type: 'run-progress', runId: 'r1', event: { type: 'evaluation', phase: 'lr', epoch: 1, step: 20, discrete: { test: scores, validation: scores, layers: [] } } });
    expect(run.evaluations.steps).toEqual([10, 20]);
    expect(run.evaluations.sampledBest).toEqual([null, 0.91]);
    scheduler.flush();
    await tick();
    expect(client.callsOf('runs.get').length).toBeGreaterThanOrEqual(2);
    expect(await run.stop()).toBeNull();
    expect(client.callsOf('runs.stop')).toEqual([{ id: 'r1' }]);
    run.handle({ type: 'run-status', runId: 'r1', status: 'stopped' });
    expect(run.canResume).toBe(true);
  });

  it('lists per-layer statistics over evaluations', async () => {
    const layer = (layer: string, fracZero: number) => ({ layer, kind: 'ternary', fracMinus: 0.3, fracZero, fracPlus: 0.7 - fracZero, meanEntropy: 0.5 });
    const evaluation = (step: number, zero: number) => ({ id: step, runId: 'r1', step, epoch: 1, phase: 'lr', createdAt: 0, test: { argmax: 0.9, sampledMean: 0.9, sampledMin: 0.9, sampledBest: 0.9, selected: 0.9, expected: 0.9 }, validation: { argmax: 0.9, sampledMean: 0.9, sampledMin: 0.9, sampledBest: 0.9, selected: 0.9, expected: 0.9 }, layerStats: [layer('conv1', zero), layer('fc1', zero / 2)] });
    const client = liveClient().on('runs.get', () => ok(detail('r1', { evaluations: [evaluation(10, 0.2), evaluation(20, 0.4)] })));
    const run = new liverun.LiveRunState(client, 'r1', new ManualScheduler());
    await run.load();
    expect(run.layers.map((l) => [l.layer, l.steps, l.fracZero])).toEqual([['conv1', [10, 20], [0.2, 0.4]], ['fc1', [10, 20], [0.1, 0.2]]]);
  });
});

describe('CompareState', () => {
  const evaluation = (expected: number, argmax: number, sampledMean: number) => ({
    id: 1, runId: 'x', step: 20, epoch: 1, phase: 'lr', createdAt: 0,
    test: { argmax, sampledMean, sampledMin: sampledMean, sampledBest: argmax, selected: argmax, expected },
    validation: { argmax, sampledMean, sampledMin: sampledMean, sampledBest: argmax, selected: argmax, expected },
    layerStats: [{ layer: 'conv1', kind: 'ternary', fracMinus: 0.3, fracZero: 0.4, fracPlus: 0.3, meanEntropy: 0.6 }],
  });
  const a = detail('a', { name: 'alpha', evaluations: [evaluation(0.95, 0.9, 0.88)], artifacts: [{ id: 1, runId: 'a', kind: 'export-onnx', path: '/x', status: 'done', report: { format: { verification: { passed: true } } }, createdAt: 0, updatedAt: 1 }] });
  const b = detail('b', { name: 'beta, "quoted"', seed: 2, config: { ...PRESETS['mnist-ternary-quick'], seed: 2, batchSize: 50 } as unknown as Record<string, unknown>, evaluations: [evaluation(0.9, 0.9, 0.85)] });

  function compareClient(): FakeClient {
    return new FakeClient()
      .on('runs.getMany', () => ok([a, b]))
      .on('runs.series', (q) => ok(q.runIds.flatMap((id) => q.keys.map((key) =>
        // 10 steps per epoch; pretraining is 2 epochs, so the LR phase's epochs restart at step 21.
        seriesOf(id, key, [5, 10, 25, 30], key === 'train/loss' ? [4, 2, 4, 2] : [0.5, 0.6, 0.7, 0.8], [0.5, 1, 0.5, 1])))));
  }

  it('overlays one line per run, smoothed by EMA, by step, epoch or wall time', async () => {
    const c = new compare.CompareState(compareClient(), new ManualScheduler());
    await c.load(['a', 'b']);
    c.smoothing = 0;
    const raw = c.lines('train/loss');
    expect(raw.map((l) => l.label)).toEqual(['alpha', 'beta, "quoted"']);
    expect(raw[0]!.ys).toEqual([4, 2, 4, 2]);
    expect(raw[0]!.color).not.toBe(raw[1]!.color);
    c.smoothing = 0.5;
    const smooth = c.lines('train/loss')[0]!.ys;
    expect(smooth[0]).toBeCloseTo(4);
    expect(smooth[1]).toBeCloseTo((0.5 * 4 * 0.5 + 0.5 * 2) / (1 - 0.25));
    c.xAxis = 'epoch';
    expect(c.lines('train/loss')[0]!.xs).toEqual([0.5, 1, 2.5, 3]);
    c.xAxis = 'wall';
    expect(c.lines('train/loss')[0]!.xs).toEqual([(1_000_000 + 5 * 60_000 - 1_000_000) / 60_000, 10, 25, 30]);
    // Evaluation metrics are not smoothed.
    c.xAxis = 'step';
    expect(c.lines('test/argmax')[0]!.ys).toEqual([0.5, 0.6, 0.7, 0.8]);
  });

  it('shows only the differing settings by default, all of them on request', async () => {
    const c = new compare.CompareState(compareClient(), new ManualScheduler());
    await c.load(['a', 'b']);
    expect(c.configRows.map((r) => r.key)).toEqual(['batchSize', 'seed']);
    expect(c.configRows.find((r) => r.key === 'seed')!.values).toEqual(['1', '2']);
    expect(c.configRows.find((r) => r.key === 'batchSize')!.values).toEqual(['100', '50']);
    c.diffOnly = false;
    expect(c.configRows.length).toBeGreaterThan(20);
    expect(c.configRows.find((r) => r.key === 'kind')).toEqual({ key: 'kind', values: ['ternary', 'ternary'], differs: false });
  });

  it('shows the seed once when only the seed differs', async () => {
    const sameButSeed = detail('c', { name: 'gamma', seed: 3, config: { ...PRESETS['mnist-ternary-quick'], seed: 3 } as unknown as Record<string, unknown> });
    const c = new compare.CompareState(new FakeClient().on('runs.getMany', () => ok([a, sameButSeed])).on('runs.series', () => ok([])), new ManualScheduler());
    await c.load(['a', 'c']);
    expect(c.configRows).toEqual([{ key: 'seed', values: ['1', '3'], differs: true }]);
    expect(c.toCsv().split('\r\n')[0]!.split(',').filter((h) => h.includes('seed'))).toEqual(['seed', 'config seed']);
  });

  it('offers every catalog metric, labelled and smoothed as the catalog says', async () => {
    expect(compare.COMPARE_METRICS.map((m) => m.key)).toEqual(expect.arrayContaining(['train/loss', 'train/batchAccuracy', 'test/selected', 'validation/argmax']));
    const c = new compare.CompareState(compareClient(), new ManualScheduler());
    await c.load(['a', 'b']);
    expect(c.metrics).toEqual(['train/loss', 'train/batchAccuracy', 'test/argmax', 'test/expected']);
    c.smoothing = 0.5;
    // The batch accuracy is smoothed (recorded every step), the test accuracy is not.
    expect(c.lines('train/batchAccuracy')[0]!.ys[1]).not.toBeCloseTo(0.6);
    expect(c.lines('test/argmax')[0]!.ys).toEqual([0.5, 0.6, 0.7, 0.8]);
  });

  it('computes the discretization gap, per-layer rows and export status', async () => {
    const c = new compare.CompareState(compareClient(), new ManualScheduler());
    await c.load(['a', 'b']);
    expect(c.gap(a).gapArgmax).toBeCloseTo(0.05);
    expect(c.gap(a).gapSampled).toBeCloseTo(0.07);
    expect(c.gap(b).gapArgmax).toBeCloseTo(0);
    expect(c.layerTable).toEqual([{ layer: 'conv1', perRun: [expect.objectContaining({ fracZero: 0.4 }), expect.objectContaining({ meanEntropy: 0.6 })] }]);
    expect(c.exportStatus(a)).toEqual([{ kind: 'export-onnx', status: 'done', passed: true }]);
    expect(c.exportStatus(b)).toEqual([]);
  });

  it('writes the comparison as CSV with quoting and the differing settings', async () => {
    const c = new compare.CompareState(compareClient(), new ManualScheduler());
    await c.load(['a', 'b']);
    const text = c.toCsv();
    const lines = text.trimEnd().split('\r\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toContain('test/argmax final');
    expect(lines[0]).toContain('config batchSize');
    expect(lines[2]).toContain('"beta, ""quoted"""');
    expect(lines[1]!.split(',')[0]).toBe('a');
  });

  it('refreshes at most every 2 s while compared runs train', async () => {
    const scheduler = new ManualScheduler();
    const client = compareClient();
    const c = new compare.CompareState(client, scheduler);
    await c.load(['a', 'b']);
    for (let i = 0; i < 20; i++) c.handle({ type: 'run-status', runId: 'a', status: 'running' });
    c.handle({ type: 'run-status', runId: 'zzz', status: 'running' });
    expect(scheduler.pending).toHaveLength(1);
    expect(scheduler.pending[0]!.ms).toBe(2000);
  });
});

describe('ExportState', () => {
  it('exports one format per click and keeps each format\'s result', async () => {
    const client = new FakeClient()
      .on('runs.get', () => ok(detail('a')))
      .on('export.run', (r) => (r.format === 'onnx'
        ? ok({ runId: 'a', format: 'onnx' as const, path: '/x/onnx', artifactId: 3, verification: { passed: true, summary: 'top-1 agreement 100%' }, report: {} })
        : { ok: false, error: { code: 'export-failed', message: 'C compiler missing' } }));
    const e = new exporter.ExportState(client, info);
    await e.select('a');
    expect(e.run?.id).toBe('a');
    await e.exportTo('onnx');
    await e.exportTo('c');
    expect(e.stateOf('onnx')).toMatchObject({ state: 'done', outcome: { verification: { passed: true } } });
    expect(e.stateOf('c')).toEqual({ state: 'failed', message: 'C compiler missing' });
    expect(e.stateOf('tfjs')).toEqual({ state: 'idle' });
    e.destination = '/exports/';
    await e.exportTo('onnx');
    expect(client.callsOf('export.run').at(-1)).toEqual({ runId: 'a', format: 'onnx', destination: '/exports/onnx' });
  });
});

describe('renderer helpers', () => {
  it('routes by hash', () => {
    expect(router.parseRoute('#/run/AB12')).toEqual({ page: 'run', id: 'AB12' });
    expect(router.parseRoute('#/compare?ids=a,b')).toEqual({ page: 'compare', ids: ['a', 'b'] });
    expect(router.parseRoute('#/nope')).toEqual({ page: 'runs' });
    for (const r of [{ page: 'new', from: 'x1' }, { page: 'export', id: 'q' }, { page: 'compare', ids: ['a'] }] as const) {
      expect(router.parseRoute(router.routeHash(r))).toEqual(r);
    }
  });

  it('smooths with a debiased EMA that skips gaps', () => {
    expect(series.ema([1, 1, 1], 0.9)).toEqual([1, 1, 1].map(() => expect.closeTo(1, 12)));
    expect(series.ema([1, null, 3], 0)).toEqual([1, null, 3]);
    const s = series.ema([0, null, 10], 0.5);
    expect(s[1]).toBeNull();
    expect(s[2]).toBeCloseTo((0.5 * 0 * 0.5 + 0.5 * 10) / 0.75);
  });

  it('infers steps per epoch from the first point of the first phase', () => {
    expect(series.inferStepsPerEpoch(seriesOf('a', 'k', [3, 6, 25], [1, 1, 1], [0.3, 0.6, 0.5]))).toBe(10);
    expect(series.inferStepsPerEpoch(undefined)).toBeNull();
  });

  it('defuses spreadsheet formulas and quotes CSV cells', () => {
    expect(csv.csvCell('=SUM(A1)')).toBe("'=SUM(A1)");
    expect(csv.csvCell('a,b')).toBe('"a,b"');
    expect(csv.csvCell(NaN)).toBe('');
    expect(csv.toCsv(['x'], [[1], ['y"z']])).toBe('x\r\n1\r\n"y""z"\r\n');
  });

  it('draws a chart as standalone SVG with round ticks and escaped labels', () => {
    expect(svg.ticks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    const text = svg.chartSvg({ title: 'Loss <test>', xLabel: 'step', yLabel: 'loss', series: [{ label: 'a&b', color: '#123456', xs: [1, 2, null, 4], ys: [1, 0.5, 0.4, 0.2] }] });
    expect(text.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(text).toContain('Loss &#60;test&#62;');
    expect(text).toContain('a&#38;b');
    expect((text.match(/<path d="M[^"]*M/g) ?? []).length).toBe(1);
  });

  it('formats durations, percentages and gaps for people', () => {
    expect(format.duration(3725)).toBe('1 h 02 min');
    expect(format.duration(65)).toBe('1 min 05 s');
    expect(format.percent(0.97314)).toBe('97.31%');
    expect(format.percent(null)).toBe('–');
    expect(format.points(0.012)).toBe('+1.20 pp');
  });
});
