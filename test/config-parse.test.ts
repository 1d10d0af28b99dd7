/**
 * Configurations are parsed once, where they enter: parseConfig lists every problem, and refuses unknown
 * fields; the services' runs.start and runs.clone answer with those problems and
 * record nothing; a stored configuration that no longer parses is refused when the run is resumed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError, PRESETS, parseConfig } from '../engine/config.ts';
import { DATASETS } from '../engine/data/registry.ts';
import { createServices, type AppServices } from '../app/services.ts';
import { storedConfig, StoredConfigError } from '../app/runs/stored-config.ts';

const base = PRESETS['mnist-ternary-quick'];

function problemsOf(value: unknown): readonly string[] {
  try {
    parseConfig(value);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('parseConfig', () => {
  it('accepts every preset as it is, and returns it unchanged', () => {
    for (const preset of Object.values(PRESETS)) {
      const config = preset.dataset.name === 'mnist-sample' ? preset : { ...preset, dataset: { ...preset.dataset, path: '/data' } };
      expect(parseConfig(JSON.parse(JSON.stringify(config)))).toEqual(config);
    }
  });

  it('refuses unknown fields at every level, naming each', () => {
    const problems = problemsOf({ ...base, colour: 'red', dataset: { ...base.dataset, folder: '/x' }, lr: { ...base.lr, momentum: 0.9 }, evaluation: { ...base.evaluation, nets: 3 } });
    expect(problems).toEqual([
      'dataset.folder: unknown field (expected name, path, trainLimit, testLimit, cropSize, resizeShorter, decodeWorkers)',
      'lr.momentum: unknown field (expected epochs, learningRate, decayEvery, decayFactor, weightDecay, probabilityDecay, betaPenalty)',
      'evaluation.nets: unknown field (expected samples, every, batchNormImages)',
      expect.stringMatching(/^colour: unknown field \(expected preset, architecture, kind, dataset, /),
    ]);
  });

  it('lists every problem of a value that is not a configuration at all', () => {
    expect(problemsOf(null)).toEqual(['the configuration must be an object']);
    expect(problemsOf([])).toEqual(['the configuration must be an object']);
    const problems = problemsOf({}).join('\n');
    for (const field of ['preset', 'architecture', 'kind', 'dataset', 'seed', 'batchSize', 'pretrain', 'lr', 'evaluation', 'backend']) {
      expect(problems).toContain(field);
    }
  });

  it('refuses seeds beyond 32 bits', () => {
    expect(problemsOf({ ...base, seed: 1e20 })).toEqual(['seed: expected an integer from 0 to 4294967295, got 100000000000000000000']);
    expect(problemsOf({ ...base, seed: 2 ** 32 - 1 })).toEqual([]);
  });

  it('takes its data set names and path rules from the registry', () => {
    for (const entry of DATASETS) {
      const config = { ...base, architecture: entry.architectures[0], dataset: { name: entry.name } };
      const problems = problemsOf(config);
      if (entry.location === 'bundled') expect(problems).toEqual([]);
      else expect(problems).toEqual([expect.stringMatching(new RegExp(`^dataset.path: the ${entry.name} dataset needs a folder`))]);
    }
  });
});

describe('the services parse what clients send', () => {
  let home: string;
  let services: AppServices;

  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-parse-'));
    services = await createServices({ shell: 'browser', databasePath: path.join(home, 'lrnet.db'), concurrency: 1 });
  });

  afterAll(async () => {
    await services?.close();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('runs.start lists every wrong field of every run and queues none of the batch', async () => {
    const bad = { ...base, batchSize: 0, lr: { ...base.lr, learningRate: -1 }, backend: 'tpu' };
    const result = await services.call('runs.start', { runs: [{ config: { ...base, backend: 'cpu' }, name: 'good' }, { config: bad }] });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe('invalid-config');
    const problems = (result.error.problems ?? []).join('\n');
    for (const field of ['run 2: batchSize', 'run 2: lr.learningRate', 'run 2: backend']) expect(problems).toContain(field);
    expect(problems).not.toContain('run 1');
    expect(services.store.listRuns().total).toBe(0);
  });

  it('runs.clone refuses unknown fields in its changes, and records nothing', async () => {
    const run = services.store.createRun({ config: base, preset: base.preset, seed: base.seed, appVersion: 'test' });
    const before = services.store.listRuns().total;
    const result = await services.call('runs.clone', { id: run.id, changes: { lr: { momentum: 0.9 }, bogus: 1 } });
    expect(result).toMatchObject({ ok: false, error: { code: 'invalid-config', problems: [expect.stringMatching(/^lr\.momentum: unknown field/), expect.stringMatching(/^bogus: unknown field/)] } });
    expect(services.store.listRuns().total).toBe(before);
  });

  it('runs.clone refuses a "__proto__" key as an unknown field instead of letting it replace the prototype', async () => {
    const run = services.store.createRun({ config: base, preset: base.preset, seed: base.seed, appVersion: 'test' });
    const before = services.store.listRuns().total;
    const result = await services.call('runs.clone', JSON.parse(`{"id": "${run.id}", "changes": {"__proto__": {"x": 1}, "lr": {"__proto__": {"y": 2}}}}`));
    expect(result).toMatchObject({ ok: false, error: { code: 'invalid-config', problems: [expect.stringMatching(/^lr\.__proto__: unknown field/), expect.stringMatching(/^__proto__: unknown field/)] } });
    expect(services.store.listRuns().total).toBe(before);
  });

  it('config.validate answers the same problems as runs.start', async () => {
    const result = await services.call('config.validate', { config: { ...base, dataset: { name: 'imagenet' } } });
    expect(result).toEqual({ ok: true, value: { problems: [expect.stringMatching(/^dataset.name: expected one of mnist-sample, mnist, fashion-mnist, cifar10, imagefolder/)] } });
  });

  it('a stored configuration that no longer parses is refused by name when read back', () => {
    const run = services.store.createRun({ config: base, preset: base.preset, seed: base.seed, appVersion: 'test' });
    const db = new Database(path.join(home, 'lrnet.db'));
    try {
      db.prepare('UPDATE runs SET config = ? WHERE id = ?').run(JSON.stringify({ ...base, batchSize: -3 }), run.id);
    } finally {
      db.close();
    }
    const error = (() => {
      try {
        storedConfig(services.store.getRun(run.id));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(StoredConfigError);
    expect((error as Error).message).toBe(`run ${run.id} has a configuration this version cannot train:\n  - batchSize: expected an integer >= 1, got -3`);
  });
});
