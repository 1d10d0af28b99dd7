/**
 * The store commands: `lrnet runs` (list), `show`, `compare`, `rm`, `tag` and `note`. Each takes --db and accepts
 * any unique prefix of a run id; `--json` prints exactly one JSON document on stdout.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DISCRETE_SCORE_FIELDS, HEADLINE_METRIC, LAYER_STATISTICS, METRIC_KEYS, scoreKey, type MetricKey } from '../contract.ts';
import { defaultDatabasePath, metricGoal, RUN_STATUSES, type JsonValue, type MetricStats, type RunDetail, type RunSortKey, type RunStatus, type Store } from '../store/index.ts';
import { deleteRunFiles } from '../runs/manager.ts';
import { TAG_SCHEMA } from '../contract.ts';
import { takeOverRun } from '../runs/claims.ts';
import {
  DB_OPTION,
  DB_USAGE,
  UsageError,
  formatMetric,
  formatTable,
  formatTime,
  formatValue,
  openRunStore,
  parseNumberFlag,
  parseCommandArgs,
  percentOrDash,
} from './common.ts';
import { formatDuration } from './progress.ts';

/** The metric `runs` ranks by unless told otherwise: the headline metric, as the runs table shows it. */
const DEFAULT_METRIC = HEADLINE_METRIC;
const SORT_KEYS: readonly RunSortKey[] = [
  'created', 'started', 'finished', 'duration', 'name', 'status', 'preset', 'seed', 'dataset', 'backend', 'adapter', 'progress', 'best', 'last',
];
/** Metrics `compare` reports when any of the runs has them. */
const COMPARED_METRICS: readonly MetricKey[] = [
  ...(['selected', 'argmax', 'expected', 'sampledMean'] as const).map((field) => scoreKey('test', field)),
  scoreKey('validation', 'selected'),
  scoreKey('test', 'fullPrecision'),
  METRIC_KEYS.epochAccuracy,
  METRIC_KEYS.epochLoss,
  METRIC_KEYS.imagesPerSecond,
];

function json(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function durationOf(run: { startedAt: number | null; finishedAt: number | null }): string {
  if (run.startedAt === null) return '-';
  return formatDuration(((run.finishedAt ?? Date.now()) - run.startedAt) / 1000);
}

// ---- lrnet runs ---------------------------------------------------------------------------------------------------

export const RUNS_USAGE = `usage: lrnet runs [options]

Lists runs, newest first.

  --status STATUS      ${RUN_STATUSES.join(', ')} (repeatable, or comma-separated)
  --preset NAME        runs of this preset (repeatable)
  --tag TAG            runs with this tag (repeatable: all of them)
  --search TEXT        full-text search over name, tags, notes, preset, status and config; words match as prefixes,
                       "field:word" searches one field, "quoted words" a phrase
  --metric KEY         metric shown as best/last (default ${DEFAULT_METRIC}; e.g. ${scoreKey('test', 'argmax')}, ${METRIC_KEYS.loss})
  --sort KEY           ${SORT_KEYS.join(', ')} (default created)
  --order asc|desc     (default: desc; asc for name, preset and dataset, and best/last of a loss)
  --limit N            at most N runs (default 50)
${DB_USAGE}
  --json               one JSON document: { rows, total }
`;

export async function runsCommand(args: readonly string[]): Promise<number> {
  const { values: v } = parseCommandArgs(
    args,
    {
      ...DB_OPTION,
      status: { type: 'string', multiple: true },
      preset: { type: 'string', multiple: true },
      tag: { type: 'string', multiple: true },
      search: { type: 'string' },
      metric: { type: 'string' },
      sort: { type: 'string' },
      order: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    },
    { min: 0, max: 0, names: '' },
  );
  const problems: string[] = [];
  const statuses = (v.status ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  for (const s of statuses) if (!RUN_STATUSES.includes(s as RunStatus)) problems.push(`--status: unknown status "${s}"; choose from ${RUN_STATUSES.join(', ')}`);
  if (v.sort !== undefined && !SORT_KEYS.includes(v.sort as RunSortKey)) problems.push(`--sort: cannot sort by "${v.sort}"; choose from ${SORT_KEYS.join(', ')}`);
  if (v.order !== undefined && v.order !== 'asc' && v.order !== 'desc') problems.push(`--order: expected asc or desc, got "${v.order}"`);
  const limit = v.limit === undefined ? 50 : parseNumberFlag('limit', v.limit, { integer: true, min: 1 }, problems);
  if (v.metric !== undefined && v.metric.trim() === '') problems.push(`--metric: expected a metric key such as ${DEFAULT_METRIC}`);
  if (problems.length > 0) throw new UsageError(problems);

  const metric = v.metric ?? DEFAULT_METRIC;
  const sort = v.sort as RunSortKey | undefined;
  const order = (v.order as 'asc' | 'desc' | undefined) ?? ((sort === 'best' || sort === 'last') && metricGoal(metric) === 'min' ? 'asc' : undefined);
  const file = path.resolve(v.db ?? defaultDatabasePath());
  if (!existsSync(file)) {
    // Nothing trained yet: an empty list, without creating a database just to look.
    if (v.json) json({ rows: [], total: 0 });
    else process.stdout.write(`no runs yet (no database at ${file})\n`);
    return 0;
  }
  const { store } = openRunStore(file, { mustExist: true });
  try {
    const list = store.listRuns({
      metric,
      limit,
      ...(statuses.length > 0 ? { status: statuses as RunStatus[] } : {}),
      ...(v.preset ? { preset: v.preset } : {}),
      ...(v.tag ? { tag: v.tag } : {}),
      ...(v.search !== undefined ? { search: v.search } : {}),
      ...(sort ? { sort } : {}),
      ...(order ? { order } : {}),
    });
    if (v.json) {
      json(list);
      return 0;
    }
    if (list.total === 0) {
      process.stdout.write('no runs match\n');
      return 0;
    }
    const rows = list.rows.map((r) => [
      r.id,
      r.name,
      r.status,
      r.preset ?? '-',
      r.progress === null ? '-' : `${Math.round(r.progress * 100)}%`,
      formatMetric(metric, r.metric?.best),
      formatMetric(metric, r.metric?.last),
      durationOf(r),
      formatTime(r.createdAt),
      r.tags.join(','),
    ]);
    process.stdout.write(
      `${formatTable(['ID', 'NAME', 'STATUS', 'PRESET', 'DONE', `BEST ${metric}`, 'LAST', 'TIME', 'CREATED', 'TAGS'], rows, [4, 5, 6, 7])}\n`,
    );
    if (list.total > list.rows.length) process.stdout.write(`(${list.rows.length} of ${list.total} runs; --limit shows more)\n`);
    return 0;
  } finally {
    store.close();
  }
}

// ---- lrnet show ---------------------------------------------------------------------------------------------------

export const SHOW_USAGE = `usage: lrnet show RUN [--json] [--db FILE]

Shows everything recorded about a run: status, configuration, dataset, backend, the last evaluation with per-layer
weight statistics, metrics, checkpoints, artifacts, tags and notes. RUN is a run id or a unique prefix of one.

${DB_USAGE}
  --json               the whole record as one JSON document
`;

/** A configuration as dotted keys, objects flattened, arrays kept whole. */
function flatten(value: JsonValue, prefix = '', out: [string, JsonValue][] = []): [string, JsonValue][] {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.push([prefix, value]);
  }
  return out;
}

function describeRun(run: RunDetail): string {
  const out: string[] = [];
  out.push(`run ${run.id} "${run.name}": ${run.status}${run.progress !== null && run.status !== 'completed' ? ` (${Math.round(run.progress * 100)}% done)` : ''}`);
  if (run.error) out.push(`  error: ${run.error.split('\n').join('\n         ')}`);
  out.push(`  created ${formatTime(run.createdAt)}, started ${formatTime(run.startedAt)}, finished ${formatTime(run.finishedAt)} (${durationOf(run)})`);
  out.push(`  preset ${run.preset ?? '-'}, seed ${run.seed}, lrnet ${run.appVersion}`);
  const d = run.dataset;
  out.push(d ? `  dataset ${d.name} (${d.source}): ${d.trainCount} training, ${d.testCount} test images, checksum ${d.checksum.slice(0, 12)}` : '  dataset: not loaded yet');
  out.push(`  backend ${run.backend ?? '-'}${run.adapter ? ` on ${run.adapter}` : ''}`);
  if (run.host) out.push(`  host ${run.host.cpuModel}, ${run.host.cores} cores, ${(run.host.memoryBytes / 2 ** 30).toFixed(1)} GiB${run.host.gpu ? `, GPU ${run.host.gpu}` : ''}`);
  out.push(`  tags: ${run.tags.length > 0 ? run.tags.join(', ') : '-'}`);

  out.push('', 'configuration:');
  const config = flatten(run.config);
  const width = Math.max(...config.map(([k]) => k.length));
  for (const [key, value] of config) out.push(`  ${key.padEnd(width)}  ${formatValue(value)}`);

  const last = run.evaluations.at(-1);
  if (last) {
    out.push('', `last evaluation (step ${last.step}, ${last.phase ?? '?'} epoch ${last.epoch ?? '?'}, ${run.evaluations.length} in all):`);
    const fields = DISCRETE_SCORE_FIELDS;
    const rows = (['validation', 'test'] as const).map((split) => [split, ...fields.map((f) => percentOrDash(last[split][f]))]);
    out.push(indent(formatTable(['', 'argmax', 'sampled mean', 'sampled min', 'sampled best', 'selected', 'expected'], rows, [1, 2, 3, 4, 5, 6])));
    if (last.layerStats.length > 0) {
      out.push('', `weights per layer (fraction of most probable values; mean entropy in ${LAYER_STATISTICS.meanEntropy.unit}):`);
      const layerRows = last.layerStats.map((l) => [l.layer, l.kind, percentOrDash(l.fracMinus), percentOrDash(l.fracZero), percentOrDash(l.fracPlus), l.meanEntropy.toFixed(3)]);
      out.push(indent(formatTable(['layer', 'kind', '-1', '0', '+1', 'entropy'], layerRows, [2, 3, 4, 5])));
    }
  } else {
    out.push('', 'no evaluation yet');
  }

  if (run.metrics.length > 0) {
    out.push('', 'metrics:');
    const rows = run.metrics.map((m) => [m.key, String(m.count), `${formatMetric(m.key, m.best)}${m.bestStep !== null ? ` @${m.bestStep}` : ''}`, `${formatMetric(m.key, m.last)} @${m.lastStep}`]);
    out.push(indent(formatTable(['key', 'points', 'best', 'last'], rows, [1])));
  }
  if (run.checkpoints.length > 0) {
    out.push('', 'checkpoints:');
    const rows = run.checkpoints.map((c) => [String(c.step), c.phase ?? '-', c.epoch === null ? '-' : String(c.epoch), `${(c.bytes / 1024).toFixed(0)} KiB`, c.path]);
    out.push(indent(formatTable(['step', 'phase', 'epoch', 'size', 'path'], rows, [0, 2, 3])));
  }
  if (run.artifacts.length > 0) {
    out.push('', 'artifacts:');
    out.push(indent(formatTable(['kind', 'status', 'path'], run.artifacts.map((a) => [a.kind, a.status, a.path]))));
  }
  if (run.notes.length > 0) {
    out.push('', 'notes:');
    for (const n of run.notes) out.push(`  ${formatTime(n.createdAt)}  ${n.text.split('\n').join('\n                    ')}`);
  }
  return `${out.join('\n')}\n`;
}

function indent(text: string): string {
  return text.split('\n').map((l) => `  ${l}`).join('\n');
}

export async function showCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { ...DB_OPTION, json: { type: 'boolean' } }, { min: 1, max: 1, names: 'the run to show (lrnet show RUN)' });
  const { store } = openRunStore(values.db, { mustExist: true });
  try {
    const run = store.getRun(positionals[0]!);
    if (values.json) json(run);
    else process.stdout.write(describeRun(run));
    return 0;
  } finally {
    store.close();
  }
}

// ---- lrnet compare ------------------------------------------------------------------------------------------------

export const COMPARE_USAGE = `usage: lrnet compare RUN RUN... [--json] [--db FILE]

Compares runs: the configuration fields and run facts (seed, dataset, backend...) that differ, then the best and
last value of the main metrics.

${DB_USAGE}
  --json               one JSON document: { runs, config, run, metrics }
`;

interface ComparedMetric {
  readonly key: string;
  readonly goal: 'max' | 'min';
  /** Per run id; null when the run has no such metric. */
  readonly values: Record<string, { best: number | null; bestStep: number | null; last: number; lastStep: number } | null>;
}

function compareMetrics(store: Store, ids: readonly string[]): ComparedMetric[] {
  const out: ComparedMetric[] = [];
  for (const key of COMPARED_METRICS) {
    const stats = ids.map((id) => [id, store.metricStats(id, key)] as const);
    if (stats.every(([, s]) => s === undefined)) continue;
    const values: ComparedMetric['values'] = {};
    for (const [id, s] of stats) values[id] = s ? pickStats(s) : null;
    out.push({ key, goal: metricGoal(key), values });
  }
  return out;
}

function pickStats(s: MetricStats) {
  return { best: s.best, bestStep: s.bestStep, last: s.last, lastStep: s.lastStep };
}

export async function compareCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { ...DB_OPTION, json: { type: 'boolean' } }, { min: 2, max: Infinity, names: 'the runs to compare: two or more (lrnet compare RUN RUN...)' });
  const { store } = openRunStore(values.db, { mustExist: true });
  try {
    const diff = store.configDiff(positionals);
    if (diff.runIds.length < 2) throw new UsageError(['compare needs two different runs']);
    const runs = diff.runIds.map((id) => store.getRun(id));
    const metrics = compareMetrics(store, diff.runIds);
    if (values.json) {
      json({
        runs: runs.map((r) => ({ id: r.id, name: r.name, status: r.status, preset: r.preset })),
        config: diff.config,
        run: diff.run,
        metrics,
      });
      return 0;
    }
    const headers = ['', ...runs.map((r) => r.id)];
    const sections: string[] = [];
    sections.push(formatTable(headers, [['name', ...runs.map((r) => r.name)], ['status', ...runs.map((r) => r.status)]]));
    // seed and preset are both run facts and config fields; show them once.
    const configKeys = new Set(diff.config.map((row) => row.key));
    const differing = [...diff.run.filter((row) => !configKeys.has(row.key)), ...diff.config];
    sections.push(
      differing.length === 0
        ? 'configuration: identical'
        : `configuration (only what differs):\n${indent(formatTable(headers, differing.map((row) => [row.key, ...diff.runIds.map((id) => formatValue(row.values[id]))])))}`,
    );
    if (metrics.length > 0) {
      const rows = metrics.flatMap((m) => [
        [`${m.key} best`, ...diff.runIds.map((id) => formatMetric(m.key, m.values[id]?.best))],
        [`${m.key} last`, ...diff.runIds.map((id) => formatMetric(m.key, m.values[id]?.last))],
      ]);
      sections.push(`metrics:\n${indent(formatTable(headers, rows, headers.map((_, i) => i).slice(1)))}`);
    } else {
      sections.push('metrics: none recorded yet');
    }
    process.stdout.write(`${sections.join('\n\n')}\n`);
    return 0;
  } finally {
    store.close();
  }
}

// ---- lrnet rm, tag, note ------------------------------------------------------------------------------------------

export const RM_USAGE = `usage: lrnet rm RUN... [--force] [--db FILE]

Deletes runs: everything recorded about them and their files (the run's folder with its checkpoints, and exported
files). A run that is training must be stopped first.

  --force              also delete a run still marked running by a process on another host (the database was
                       moved or its container recreated): say so only when nothing trains it there any more
${DB_USAGE}
`;

export async function rmCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    args,
    { ...DB_OPTION, force: { type: 'boolean' } },
    { min: 1, max: Infinity, names: 'the run to delete (lrnet rm RUN...)' },
  );
  const { store, dataFolder } = openRunStore(values.db, { mustExist: true });
  try {
    // Resolve every id and check that none is training first, so a typo or a live run deletes nothing.
    const runs = positionals.map((p) => store.getRun(p));
    const force = values.force ?? false;
    for (const run of runs) {
      if (run.status !== 'running') continue;
      const released = takeOverRun(store, run.id, { force, howToForce: `delete it anyway with: lrnet rm ${run.id} --force` });
      if (released !== undefined) process.stderr.write(`${released}\n`);
    }
    for (const run of runs) {
      const deleted = store.deleteRun(run.id);
      const { removed, kept } = deleteRunFiles(dataFolder, deleted);
      const shown = (p: string) => path.relative(process.cwd(), p) || p;
      process.stdout.write(`deleted run ${run.id} "${run.name}"${removed.length > 0 ? ` and ${removed.map(shown).join(', ')}` : ''}\n`);
      if (kept.length > 0) {
        process.stderr.write(`lrnet rm: kept ${kept.length} file${kept.length === 1 ? '' : 's'} in the run's folder that lrnet did not write for it: ${kept.slice(0, 5).map(shown).join(', ')}${kept.length > 5 ? ', ...' : ''}\n`);
      }
    }
    return 0;
  } finally {
    store.close();
  }
}

export const TAG_USAGE = `usage: lrnet tag RUN TAG... [--remove] [--db FILE]

Adds tags to a run (or removes them with --remove). Tags are case-insensitive; lrnet runs --tag TAG finds them.

  --remove             remove the tags instead
${DB_USAGE}
`;

export async function tagCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { ...DB_OPTION, remove: { type: 'boolean' } }, { min: 2, max: Infinity, names: 'a run and at least one tag (lrnet tag RUN TAG...)' });
  const { store } = openRunStore(values.db, { mustExist: true });
  try {
    const id = store.resolveRunId(positionals[0]!);
    if (!values.remove) {
      // The same rule as the API's, so a tag added here can be found and removed there.
      const problems: string[] = [];
      for (const tag of positionals.slice(1)) TAG_SCHEMA.check(tag, 'TAG', problems);
      if (problems.length > 0) throw new UsageError(problems);
    }
    for (const tag of positionals.slice(1)) {
      const changed = values.remove ? store.removeTag(id, tag) : store.addTag(id, tag);
      if (!changed) process.stderr.write(`run ${id} ${values.remove ? 'did not have' : 'already had'} tag "${tag}"\n`);
    }
    process.stdout.write(`run ${id} tags: ${store.getRun(id).tags.join(', ') || '-'}\n`);
    return 0;
  } finally {
    store.close();
  }
}

export const NOTE_USAGE = `usage: lrnet note RUN TEXT... [--db FILE]

Adds a note to a run (the words are joined with spaces; quote the text to keep line breaks). Notes are searchable:
lrnet runs --search "notes:word".

${DB_USAGE}
`;

export async function noteCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { ...DB_OPTION }, { min: 2, max: Infinity, names: 'a run and the note text (lrnet note RUN TEXT...)' });
  const text = positionals.slice(1).join(' ');
  if (text.trim() === '') throw new UsageError(['the note is empty']);
  const { store } = openRunStore(values.db, { mustExist: true });
  try {
    const id = store.resolveRunId(positionals[0]!);
    store.addNote(id, text);
    process.stdout.write(`noted on run ${id}\n`);
    return 0;
  } finally {
    store.close();
  }
}
