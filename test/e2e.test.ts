/**
 * End to end, as a person uses it: real Chromium (Debian's, driven by playwright-core) against `lrnet serve`
 * (in-process) on a temporary LRNET_HOME, training real LR-nets on the bundled MNIST sample.
 *
 * From the UI: start two tiny runs, watch one train live, stop it and resume it, compare the two, download the
 * comparison as CSV and export one run to ONNX with its verification passing. A screenshot of each page goes to
 * test-artifacts/screenshots/.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { chromium, type Browser, type Page } from 'playwright-core';
import { serve } from '../app/cli/serve.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCREENSHOTS = path.join(ROOT, 'test-artifacts', 'screenshots');
const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let home: string;
let app: Awaited<ReturnType<typeof serve>>;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

const shot = (name: string) => page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });

beforeAll(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-e2e-'));
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  // The UI as `npm run build:renderer` builds it, into a folder of this test's own.
  const rendererDir = path.join(home, 'ui');
  await build({ configFile: path.join(ROOT, 'renderer', 'vite.config.js'), logLevel: 'warn', build: { outDir: rendererDir, emptyOutDir: true, sourcemap: false } });
  app = await serve({ db: path.join(home, 'lrnet.db'), concurrency: 2, rendererDir });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
  page.on('pageerror', (error) => pageErrors.push(error.message));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  if (home) fs.rmSync(home, { recursive: true, force: true });
}, 60_000);

/** Text of the run's status badge in the Live run header. */
const headerStatus = () => page.locator('.page-header .badge').first().getAttribute('data-status');

describe('the app in a browser', () => {
  it('trains, stops, resumes, compares and exports runs from the UI', async () => {
    const t0 = Date.now();
    const marks: Record<string, number> = {};
    const mark = (name: string) => (marks[name] = Math.round((Date.now() - t0) / 100) / 10);

    // First start: an empty store, nothing queued, and the way to the ready-made run.
    await page.goto(app.host.url);
    await page.getByRole('heading', { name: 'No runs yet' }).waitFor();
    expect(page.url()).not.toContain('token=');
    await shot('runs-empty');
    await page.getByRole('button', { name: 'New run' }).first().click();

    // The New-run page opens on the quick MNIST preset; shrink it to a tiny run and queue two seeds.
    await expect.poll(() => page.locator('.preset.on').getAttribute('data-preset')).toBe('mnist-ternary-quick');
    const fill = async (name: string, value: string) => page.locator(`[name="${name}"]`).fill(value);
    await fill('name', 'e2e');
    await fill('count', '2');
    await fill('trainLimit', '500');
    await fill('testLimit', '200');
    await fill('validationSize', '100');
    await fill('batchSize', '50');
    await fill('pretrain.epochs', '1');
    await fill('lr.epochs', '1');
    await fill('evaluation.samples', '2');
    await fill('evaluation.batchNormImages', '100');
    await page.locator('[name="backend"]').selectOption('wasm');
    // A wrong value is flagged under its field before anything is started...
    await fill('batchSize', '0');
    await page.getByText('expected an integer >= 1, got 0').waitFor();
    await shot('new-run-invalid');
    await fill('batchSize', '50');
    await page.getByText('✓ Configuration valid').waitFor();
    await shot('new-run');
    await page.getByTestId('start-runs').click();
    mark('started');

    // Both runs are in the table and train at once (concurrency 2).
    await page.locator('[data-run-id]').nth(1).waitFor();
    const ids = await page.locator('[data-run-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run-id')!));
    expect(ids).toHaveLength(2);
    const [second, first] = ids as [string, string]; // newest first
    await page.locator('[data-status="running"]').first().waitFor({ timeout: 60_000 });
    await shot('runs');

    // Live: progress moves, the loss curve draws, then stop (a checkpoint is written) and resume.
    await page.locator(`a[href="#/run/${first}"]`).click();
    const stepsDone = async () => Number(((await page.getByTestId('step').textContent()) ?? '0').split('/')[0]!.trim().replace(/,/g, '') || 0);
    await expect.poll(stepsDone, { timeout: 90_000, interval: 500 }).toBeGreaterThanOrEqual(3);
    mark('live');
    await expect.poll(() => page.locator('.chart canvas').count()).toBeGreaterThan(0);
    await shot('live-run');
    const before = await stepsDone();
    await page.getByTestId('stop-run').click();
    await expect.poll(headerStatus, { timeout: 60_000 }).toBe('stopped');
    mark('stopped');
    const detail = app.services.store.getRun(first);
    expect(detail.status).toBe('stopped');
    expect(detail.checkpoints.length).toBeGreaterThan(0);
    await page.getByTestId('resume-run').click();
    await expect.poll(headerStatus, { timeout: 30_000 }).toMatch(/queued|running/);
    await expect.poll(stepsDone, { timeout: 60_000, interval: 500 }).toBeGreaterThan(before);
    await expect.poll(headerStatus, { timeout: 150_000, interval: 1000 }).toBe('completed');
    mark('completed');
    await expect.poll(() => page.getByTestId('run-log').textContent()).toContain('resumed at step');
    await page.getByText('Latest evaluation · step').waitFor();
    await shot('live-run-completed');
    const scrollContent = () => page.locator('main.content').evaluate((el) => el.scrollTo(0, el.scrollHeight));
    await scrollContent();
    await shot('live-run-log');
    await expect.poll(() => app.services.store.getRun(second).status, { timeout: 120_000, interval: 1000 }).toBe('completed');

    // Compare the two: overlaid curves, the seed in the differences, the CSV.
    await page.locator('[data-nav="runs"]').click();
    for (const id of ids) await page.locator(`[data-run-id="${id}"] input[type="checkbox"]`).check();
    await page.getByTestId('compare-selected').click();
    await page.getByRole('heading', { name: 'Compare' }).waitFor();
    await expect.poll(() => page.locator('.chart canvas').count()).toBeGreaterThanOrEqual(4);
    await expect.poll(() => page.locator('table.config td.mono').first().textContent()).toBe('seed');
    await page.waitForTimeout(500);
    await shot('compare');
    await scrollContent();
    await shot('compare-tables');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('compare-csv').click()]);
    const csv = fs.readFileSync((await download.path())!, 'utf8').trim().split('\r\n');
    expect(csv).toHaveLength(3);
    expect(csv[0]).toContain('test/argmax final');
    mark('compared');

    // Export the first run to ONNX: the exporter checks the file with ONNX Runtime against the trained net.
    await page.locator('[data-nav="export"]').click();
    await page.getByTestId('export-run').selectOption(first);
    await page.getByTestId('export-onnx').click();
    const verdict = page.getByTestId('verification-onnx');
    await verdict.waitFor({ timeout: 120_000 });
    expect(await verdict.textContent()).toContain('Verification passed');
    mark('exported');
    await shot('export');

    expect(pageErrors).toEqual([]);
    console.log(`e2e timeline (s): ${JSON.stringify(marks)}`);
  }, 300_000);
});
