/**
 * UI benchmark, measured in Chromium (Debian's, via playwright-core) against the headless host on a synthetic
 * store: 10,000 runs, 50 of them with 10,000-step training curves, 10 evaluations and per-layer statistics.
 *
 *   node bin/run-ts.js bench/ui.ts [--runs N] [--curve-runs N] [--points N] [--screenshots DIR]
 *
 * Prints one JSON object: time to first paint and to the first table rows, scrolling the 10,000-run table,
 * rendering Compare for 20 runs and for 50 runs x 10,000 points (the store decimates each series to the 1,000
 * points the page asks for, keeping each bucket's min and max), frame times while hovering the 50-run chart and
 * when changing the smoothing, and the renderer's JS heap after each page.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { chromium } from 'playwright-core';
import { METRIC_KEYS } from '../app/contract.ts';
import { serve } from '../app/cli/serve.ts';
import { openStore, type LayerStats } from '../app/store/index.ts';
import { PRESETS } from '../engine/config.ts';

// The functions handed to page.evaluate() run in the page. This file compiles without the DOM library (the
// project's tsconfig is Node's), so the little of the DOM they use is declared here, for this module only.
interface PageElement {
  scrollTop: number;
  value: string;
  readonly textContent: string | null;
  dispatchEvent(event: Event): boolean;
}
declare const document: { querySelector(selector: string): PageElement | null; querySelectorAll(selector: string): { readonly length: number } };
declare const location: { hash: string };
declare const window: object;
declare function requestAnimationFrame(callback: (time: number) => void): number;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUNS = arg('--runs', 10_000);
const CURVE_RUNS = arg('--curve-runs', 50);
const POINTS = arg('--points', 10_000);
const screenshotIndex = process.argv.indexOf('--screenshots');
const SCREENSHOTS = screenshotIndex >= 0 ? path.resolve(process.argv[screenshotIndex + 1]!) : null;
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-bench-ui-'));
const db = path.join(home, 'lrnet.db');

// --- the synthetic store ---------------------------------------------------------------------------------------
const seedStart = performance.now();
const store = openStore(db);
const base = PRESETS['mnist-ternary-quick'];
const curveRuns: string[] = [];
const layers = ['conv1', 'conv2', 'fc1'];
for (let i = 0; i < RUNS; i++) {
  const kind = i % 2 ? 'binary' : 'ternary';
  const config = { ...base, kind, seed: i, batchSize: [64, 100, 128][i % 3]!, lr: { ...base.lr, learningRate: [0.003, 0.01][i % 2]! } };
  const run = store.createRun({ config, preset: base.preset, seed: i, appVersion: 'bench', status: 'running', tags: i % 10 === 0 ? ['sweep'] : [], name: `bench-${kind}-${i}` });
  if (i < CURVE_RUNS) {
    curveRuns.push(run.id);
    const writer = store.metricWriter(run.id, { phase: 'lr' });
    const t0 = Date.now() - POINTS * 100;
    for (let step = 1; step <= POINTS; step++) {
      const decay = Math.exp(-step / (POINTS / 4));
      const noise = 0.15 * Math.sin(step * 0.37 + i) * Math.cos(step * 0.011);
      writer.write(METRIC_KEYS.loss, step, 0.3 + 2 * decay + noise * decay + 0.02 * (i % 7), { epoch: step / 100, wallTime: t0 + step * 100 });
      writer.write(METRIC_KEYS.batchAccuracy, step, 0.98 - 0.9 * decay + 0.05 * noise, { epoch: step / 100, wallTime: t0 + step * 100 });
    }
    writer.close();
    for (let e = 1; e <= 10; e++) {
      const acc = 0.9 + 0.008 * e - 0.002 * (i % 5);
      const layerStats: LayerStats[] = layers.map((layer, l) => ({ layer, kind, fracMinus: 0.3, fracZero: kind === 'ternary' ? 0.2 + 0.02 * e + 0.01 * l : 0, fracPlus: kind === 'ternary' ? 0.5 - 0.02 * e - 0.01 * l : 0.7, meanEntropy: 0.9 - 0.07 * e }));
      store.addEvaluation(run.id, { step: (e * POINTS) / 10, epoch: e, phase: 'lr', test: { argmax: acc, sampledMean: acc - 0.01, sampledBest: acc + 0.003, selected: acc, expected: acc + 0.012, sampledMin: acc - 0.02 }, layerStats });
    }
  }
  store.updateRun(run.id, { status: 'completed', progress: 1 });
}
store.close();
const seedSeconds = (performance.now() - seedStart) / 1000;

// --- the UI, served ---------------------------------------------------------------------------------------------
const rendererDir = path.join(home, 'ui');
await build({ configFile: path.join(ROOT, 'renderer', 'vite.config.js'), logLevel: 'warn', build: { outDir: rendererDir, emptyOutDir: true, sourcemap: false } });
const app = await serve({ db, concurrency: 1, rendererDir });
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const result: Record<string, unknown> = { runs: RUNS, curveRuns: CURVE_RUNS, pointsPerCurve: POINTS, seedSeconds: round(seedSeconds) };
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  // tsx compiles this file with esbuild's keepNames, which wraps functions in __name(); the functions handed to
  // page.evaluate() run in the page, which needs it too.
  await page.addInitScript('globalThis.__name = (f) => f;');
  const cdp = await page.context().newCDPSession(page);
  const heapMiB = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    const { usedSize } = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number };
    return round(usedSize / 2 ** 20);
  };
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));

  // First paint and the first rows of a 10,000-run table.
  await page.goto(app.host.url);
  await page.locator('[data-run-id]').first().waitFor();
  const paint = await page.evaluate(() => ({
    firstPaint: performance.getEntriesByName('first-paint')[0]?.startTime ?? null,
    firstContentfulPaint: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null,
    rowsShown: performance.now(),
  }));
  result['firstPaintMs'] = paint.firstPaint === null ? null : round(paint.firstPaint);
  result['firstContentfulPaintMs'] = paint.firstContentfulPaint === null ? null : round(paint.firstContentfulPaint);
  result['runsTableFirstRowsMs'] = round(paint.rowsShown);
  result['runsTableDomRows'] = await page.locator('[data-run-id]').count();
  result['heapRunsMiB'] = await heapMiB();

  // Jump to the middle of the table, then to its end: pages load as they come into view.
  const jump = async (index: number) =>
    page.evaluate(async (i) => {
      const viewport = document.querySelector('.viewport')!;
      const t0 = performance.now();
      viewport.scrollTop = i * 40;
      viewport.dispatchEvent(new Event('scroll'));
      while (!document.querySelector(`[data-index="${i + 2}"][data-run-id]`)) await new Promise((r) => requestAnimationFrame(r));
      return performance.now() - t0;
    }, index);
  result['runsTableJumpToMiddleMs'] = round(await jump(Math.floor(RUNS / 2)));
  result['runsTableJumpToEndMs'] = round(await jump(RUNS - 20));
  if (SCREENSHOTS) {
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'bench-runs-10000.png') });
  }

  /** Navigates to Compare and waits until legend, charts and tables are drawn. */
  const compareMs = async (ids: string[]) =>
    page.evaluate(async (list) => {
      const t0 = performance.now();
      location.hash = `#/compare?ids=${list.join(',')}`;
      const frame = () => new Promise((r) => requestAnimationFrame(r));
      for (;;) {
        await frame();
        const legend = document.querySelectorAll('.legend .who').length;
        const canvases = document.querySelectorAll('.chart canvas').length;
        const configCols = document.querySelectorAll('table.config thead th').length;
        const busy = document.querySelector('.page-header .sub')?.textContent?.includes('loading');
        if (legend === list.length && canvases >= 4 && configCols === list.length + 1 && !busy) break;
      }
      await frame();
      return performance.now() - t0;
    }, ids);

  // Compare 20 runs (20 of the runs with curves).
  await page.evaluate(() => (location.hash = '#/runs'));
  result['compare20Ms'] = round(await compareMs(curveRuns.slice(0, 20)));
  result['heapCompare20MiB'] = await heapMiB();

  // Compare 50 runs x 10,000 points.
  await page.evaluate(() => (location.hash = '#/runs'));
  await page.locator('[data-run-id]').first().waitFor();
  result['compare50Ms'] = round(await compareMs(curveRuns.slice(0, 50)));
  result['heapCompare50MiB'] = await heapMiB();
  if (SCREENSHOTS) {
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'bench-compare-50.png') });
  }

  // Hovering the 50-run loss chart: frame intervals while the cursor sweeps it.
  const over = page.locator('.chart .u-over').first();
  const box = (await over.boundingBox())!;
  await page.evaluate(() => {
    const w = window as unknown as { frames_: number[] };
    w.frames_ = [];
    let last = performance.now();
    const loop = (t: number) => {
      w.frames_.push(t - last);
      last = t;
      if (w.frames_.length < 400) requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  });
  for (let i = 0; i < 60; i++) await page.mouse.move(box.x + (box.width * (i + 0.5)) / 60, box.y + box.height / 2);
  const frames = (await page.evaluate(() => (window as unknown as { frames_: number[] }).frames_.slice(2))).sort((a, b) => a - b);
  const pct = (p: number) => round(frames[Math.min(frames.length - 1, Math.floor(p * frames.length))] ?? NaN);
  result['hover50FrameMs'] = { p50: pct(0.5), p95: pct(0.95), max: pct(1), frames: frames.length };

  // Changing the smoothing recomputes the EMA of 50 x 2 training curves and redraws.
  result['smoothingChange50Ms'] = round(
    await page.evaluate(async () => {
      const slider = document.querySelector('.smoothing input[type=range]')!;
      const t0 = performance.now();
      slider.value = '0.9';
      slider.dispatchEvent(new Event('input', { bubbles: true }));
      await new Promise((r) => requestAnimationFrame(r));
      await new Promise((r) => requestAnimationFrame(r));
      return performance.now() - t0;
    }),
  );
  result['pageErrors'] = errors;
} finally {
  await browser.close();
  await app.close();
  fs.rmSync(home, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(result)}\n`);
