/**
 * The real `lrnet` command (node bin/lrnet.js) with LRNET_HOME in a temporary folder: train records a run, the
 * store commands read and change it, bad flags and a foreign --db file are refused with a clear message.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type CliOptions, runLrnet } from './helpers/lrnet-cli.ts';
import { useTempDir } from './helpers/temp-dir.ts';

let home: string;
useTempDir('lrnet-cli-', 'all', (dir) => (home = dir));

/** lrnet in the suite's folder; `home` changes LRNET_HOME only. */
const lrnet = (args: string[], options: Partial<CliOptions> = {}) => runLrnet(args, { ...options, home: options.home ?? home, cwd: home });

const lastJson = (text: string) => JSON.parse(text.trim().split('\n').at(-1)!) as Record<string, unknown>;

/** The tiny run from the task: 500 training images, batch 50, one epoch of each phase. */
const TINY = ['--train-limit', '700', '--validation', '200', '--batch', '50', '--fp-epochs', '1', '--epochs', '1', '--eval-samples', '1', '--test-limit', '300', '--backend', 'wasm'];
/** Smaller still: LR phase only, 8 steps per epoch. */
const SMALL = ['--train-limit', '300', '--validation', '100', '--batch', '25', '--fp-epochs', '0', '--test-limit', '100', '--eval-samples', '1', '--backend', 'wasm'];

let firstId: string;
let secondId: string;

describe('lrnet CLI', () => {
  it('train records a run, prints its id first and a final JSON line with the run id and accuracies', async () => {
    const r = await lrnet(['train', ...TINY, '--json', '--name', 'first', '--tag', 'cli']);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const summary = lastJson(r.stdout);
    firstId = summary['runId'] as string;
    expect(firstId).toMatch(/^[0-9a-z]{8}$/);
    expect(r.stderr.split('\n')[0]).toContain(`run ${firstId} "first"`);
    expect(summary).toMatchObject({ status: 'completed', backend: 'wasm', dataset: 'mnist-sample', epochs: { pretrain: 1, lr: 1 } });
    for (const split of ['test', 'validation']) {
      for (const value of Object.values(summary[split] as Record<string, number>)) {
        expect(value).toBeGreaterThanOrEqual(0);
        expect(value).toBeLessThanOrEqual(1);
      }
    }
    expect(existsSync(path.join(home, 'lrnet.db'))).toBe(true);
    expect(existsSync(path.join(home, 'runs', firstId, 'checkpoints'))).toBe(true);
  });

  it('exits 2 listing every invalid flag, without creating a database', async () => {
    const empty = mkdtempSync(path.join(os.tmpdir(), 'lrnet-cli-empty-'));
    try {
      const r = await lrnet(['train', '--batch', 'x', '--seed', '-1', '--backend', 'foo'], { home: empty });
      expect(r.code).toBe(2);
      for (const flag of ['--batch', '--seed', '--backend']) expect(r.stderr).toContain(flag);
      expect(r.stderr).toContain('"x"');
      expect(r.stderr).toContain('foo');
      expect(existsSync(path.join(empty, 'lrnet.db'))).toBe(false);
      const unknown = await lrnet(['train', '--no-such-flag'], { home: empty });
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toContain('--no-such-flag');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('stops a training run on SIGINT with a checkpoint, and resume finishes it', async () => {
    let signalled = false;
    const r = await lrnet(['train', ...SMALL, '--epochs', '2', '--lr', '0.01', '--seed', '3'], {
      onStderr: (text, child) => {
        // The LR phase has begun; give it a step or two, then Ctrl-C.
        if (!signalled && text.includes('LR training')) {
          signalled = true;
          setTimeout(() => child.kill('SIGINT'), 1500);
        }
      },
    });
    expect(r.code).toBe(130);
    secondId = /run ([0-9a-z]{8})/.exec(r.stderr)![1]!;
    expect(r.stderr).toContain(`lrnet resume ${secondId}`);
    const stopped = lastJson((await lrnet(['show', secondId, '--json'])).stdout);
    expect(stopped['status']).toBe('stopped');
    expect((stopped['checkpoints'] as unknown[]).length).toBeGreaterThan(0);

    const resumed = await lrnet(['resume', secondId.slice(0, 5), '--json']);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(/from its checkpoint at step \d+/);
    expect(lastJson(resumed.stdout)).toMatchObject({ runId: secondId, status: 'completed' });
    const again = await lrnet(['resume', secondId]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('completed');
  });

  it('runs, show, compare, tag and note read and annotate the runs', async () => {
    const list = JSON.parse((await lrnet(['runs', '--json'])).stdout) as { total: number; rows: { id: string; status: string; tags: string[]; metric: { best: number } | null }[] };
    expect(list.total).toBe(2);
    expect(list.rows.map((r) => r.id)).toEqual([secondId, firstId]);
    expect(list.rows.every((r) => r.status === 'completed' && r.metric !== null)).toBe(true);
    expect(list.rows[1]!.tags).toEqual(['cli']);
    const table = await lrnet(['runs']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`${firstId}\\s+first\\s+completed`));

    expect((await lrnet(['tag', firstId, 'baseline'])).code).toBe(0);
    expect((await lrnet(['note', firstId.slice(0, 4), 'reference', 'run'])).code).toBe(0);
    const tagged = JSON.parse((await lrnet(['runs', '--json', '--tag', 'baseline', '--search', 'notes:reference'])).stdout) as { rows: { id: string }[] };
    expect(tagged.rows.map((r) => r.id)).toEqual([firstId]);
    const filtered = JSON.parse((await lrnet(['runs', '--json', '--status', 'failed,stopped'])).stdout) as { total: number };
    expect(filtered.total).toBe(0);
    const badList = await lrnet(['runs', '--status', 'done', '--sort', 'colour', '--limit', '0']);
    expect(badList.code).toBe(2);
    for (const flag of ['--status', '--sort', '--limit']) expect(badList.stderr).toContain(flag);

    const show = await lrnet(['show', firstId]);
    expect(show.code).toBe(0);
    for (const text of [`run ${firstId} "first": completed`, 'dataset mnist-sample', 'backend wasm', 'lr.learningRate', 'last evaluation', 'weights per layer', 'conv1', 'checkpoints:', 'baseline, cli', 'reference run']) {
      expect(show.stdout).toContain(text);
    }
    // Metrics under the catalog's keys; what it marks as a percentage prints as one, the rest as numbers.
    expect(show.stdout).toMatch(/\n\s+train\/batchAccuracy\s+\d+\s+\d+\.\d\d% @\d+/);
    expect(show.stdout).toMatch(/\n\s+train\/imagesPerSecond\s+\d+\s+[\d.]+ @\d+/);
    const detail = lastJson((await lrnet(['show', firstId, '--json'])).stdout) as { evaluations: { layerStats: unknown[] }[]; notes: { text: string }[]; tags: string[] };
    expect(detail.evaluations).toHaveLength(1);
    expect(detail.evaluations[0]!.layerStats).toHaveLength(3);
    expect(detail.notes.map((n) => n.text)).toEqual(['reference run']);
    expect(detail.tags).toEqual(['baseline', 'cli']);

    const compare = JSON.parse((await lrnet(['compare', firstId, secondId, '--json'])).stdout) as {
      config: { key: string; values: Record<string, unknown> }[];
      metrics: { key: string; values: Record<string, { best: number; last: number } | null> }[];
    };
    const keys = compare.config.map((row) => row.key);
    expect(keys).toEqual(expect.arrayContaining(['lr.learningRate', 'seed', 'batchSize', 'pretrain.epochs']));
    expect(keys).not.toContain('architecture');
    expect(compare.config.find((row) => row.key === 'lr.learningRate')!.values).toEqual({ [firstId]: 0.003, [secondId]: 0.01 });
    const selected = compare.metrics.find((m) => m.key === 'test/selected')!;
    for (const id of [firstId, secondId]) expect(selected.values[id]!.best).toBeGreaterThanOrEqual(0);
    const table2 = await lrnet(['compare', firstId, secondId]);
    expect(table2.stdout).toContain('configuration (only what differs)');
    expect(table2.stdout).toContain('lr.learningRate');
    expect(table2.stdout).toContain('test/selected best');
  });

  it('rm deletes a run and its files; unknown run ids are named in the error', async () => {
    const folder = path.join(home, 'runs', secondId);
    expect(existsSync(folder)).toBe(true);
    const rm = await lrnet(['rm', secondId]);
    expect(rm.code).toBe(0);
    expect(rm.stdout).toContain(`deleted run ${secondId}`);
    expect(existsSync(folder)).toBe(false);
    const gone = await lrnet(['show', secondId]);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toContain(`no run with id ${secondId}`);
    for (const args of [['show', 'zzzzzzzz'], ['rm', 'zzzzzzzz'], ['tag', 'zzzzzzzz', 'x'], ['resume', 'zzzzzzzz'], ['compare', firstId, 'zzzzzzzz']]) {
      const r = await lrnet(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('no run with id zzzzzzzz');
    }
    expect(JSON.parse((await lrnet(['runs', '--json'])).stdout).total).toBe(1);
  });

  it('refuses a --db file that is not an lrnet database and leaves it unchanged', async () => {
    const file = path.join(home, 'notes.txt');
    writeFileSync(file, 'not a database\n');
    for (const args of [['train', ...SMALL, '--epochs', '1', '--db', file], ['runs', '--db', file], ['show', firstId, '--db', file]]) {
      const r = await lrnet(args);
      expect(r.code, args[0]).toBe(1);
      expect(r.stderr).toContain(`${file} is not an lrnet database`);
    }
    expect(readFileSync(file, 'utf8')).toBe('not a database\n');
    expect(existsSync(`${file}-wal`)).toBe(false);
    expect(existsSync(`${file}-shm`)).toBe(false);
    // Listing a database that does not exist yet shows no runs and creates nothing.
    const missing = await lrnet(['runs', '--json', '--db', path.join(home, 'nowhere.db')]);
    expect(missing.code).toBe(0);
    expect(JSON.parse(missing.stdout)).toEqual({ rows: [], total: 0 });
    expect(existsSync(path.join(home, 'nowhere.db'))).toBe(false);
  });
});
