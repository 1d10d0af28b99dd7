/**
 * `lrnet data`: download the official data sets (with resume and checksum verification) and list what is there.
 */
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ProgressLine, formatDuration } from './progress.ts';
import { defaultDataFolder } from '../store/paths.ts';
import { BASE_URL_ENV, DOWNLOADABLE_DATASETS, isDownloadableDataset } from '../data/catalog.ts';
import { datasetEntry, isDatasetName } from '../../engine/data/registry.ts';
import { DownloadError, downloadDataset, type DownloadProgress } from '../data/download.ts';
import { listDatasets, type DatasetStatus } from '../data/registry.ts';

export const DATA_USAGE = `usage: lrnet data download NAME [--base-url URL]... [--data-folder DIR]
       lrnet data list [--json] [--verify] [--data-folder DIR]

download   fetch the official files of NAME (${DOWNLOADABLE_DATASETS.join(', ')}) into DIR/datasets/NAME/ and check
           each file's published md5; a file with a wrong checksum is deleted. An interrupted download resumes
           where it stopped when run again. Runs then find the data set by its name.
list       the data sets in the data folder: where, size, md5 of each file, complete and verified or not

options:
  --base-url URL       download from URL/FILE instead of the official mirrors (repeat for fallbacks; "{name}" in
                       URL becomes the data set's name). Default: $${BASE_URL_ENV}, else the official mirrors
  --data-folder DIR    lrnet's data folder (default ${defaultDataFolder().replace(process.env['HOME'] ?? '\0', '~')}; LRNET_HOME moves it)
  --json               list: print JSON instead of a table
  --verify             list: hash every file again instead of trusting the record of the last verification
`;

/** Where the command writes; tests pass their own. */
export interface DataCommandIo {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WriteStream | (NodeJS.WritableStream & { isTTY?: boolean; columns?: number });
}

/** "9.9 MB", "28.9 kB", "512 B" (decimal units, as download tools show them). */
export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}

/** Wrong arguments: exit code 2. */
class DataUsageError extends Error {}

/** An expected failure (a download that failed, a damaged file): exit code 1. */
class DataFailure extends Error {}

function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: readonly string[], options: T, positionals: { min: number; max: number; names: string }) {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], strict: true, allowPositionals: positionals.max > 0, options });
  } catch (error) {
    throw new DataUsageError((error as Error).message);
  }
  const n = parsed.positionals.length;
  if (n < positionals.min) throw new DataUsageError(`missing ${positionals.names}`);
  if (n > positionals.max) throw new DataUsageError(`unexpected argument "${parsed.positionals[positionals.max]}"`);
  return parsed;
}

/**
 * Runs `lrnet data ...` (args without "data") and returns the exit code: 0 done, 1 failed, 2 wrong arguments,
 * 130 stopped by Ctrl-C. Messages go to `io` (stdout for results, stderr for progress and errors), so the command
 * needs nothing from the dispatcher but `--help` (DATA_USAGE).
 */
export async function dataCommand(args: readonly string[], io: DataCommandIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'download':
        return await download(rest, io);
      case 'list':
        return await list(rest, io);
      case undefined:
        throw new DataUsageError('missing a subcommand: download or list');
      default:
        throw new DataUsageError(`unknown subcommand "${sub}"; use download or list`);
    }
  } catch (error) {
    if (error instanceof DataUsageError) {
      io.stderr.write(`lrnet data: ${error.message}\n\nRun "lrnet data --help" for the options.\n`);
      return 2;
    }
    if (error instanceof DataFailure) {
      io.stderr.write(`lrnet data: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

async function download(args: readonly string[], io: DataCommandIo): Promise<number> {
  const { values, positionals } = parse(
    args,
    { 'base-url': { type: 'string', multiple: true }, 'data-folder': { type: 'string' } },
    { min: 1, max: 1, names: `the data set to download (${DOWNLOADABLE_DATASETS.join(', ')})` },
  );
  const name = positionals[0]!;
  if (!isDownloadableDataset(name)) {
    throw new DataUsageError(
      isDatasetName(name) && datasetEntry(name).location === 'bundled'
        ? `${name} ships with lrnet and needs no download`
        : `unknown data set "${name}"; lrnet can download ${DOWNLOADABLE_DATASETS.join(', ')}`,
    );
  }
  const dataFolder = path.resolve(values['data-folder'] ?? defaultDataFolder());
  const baseUrls = values['base-url'];
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const bar = new ProgressLine(io.stderr as NodeJS.WriteStream);
  const started = Date.now();
  const onProgress = (p: DownloadProgress) => {
    const label = `${p.file} (${p.fileIndex + 1}/${p.fileCount})`;
    if (p.phase === 'downloading') {
      const size = p.total !== undefined ? `${formatBytes(p.bytes)} / ${formatBytes(p.total)}` : formatBytes(p.bytes);
      const eta = p.total !== undefined && p.rate > 0 ? ` ETA ${formatDuration((p.total - p.bytes) / p.rate)}` : '';
      bar.update(p.total ? p.bytes / p.total : 0, `${label} ${size} ${formatBytes(p.rate)}/s${eta}`);
    } else if (p.phase === 'checking' || p.phase === 'verifying') {
      bar.update(1, `${label} checking md5...`);
    } else {
      bar.clear();
    }
  };
  try {
    const result = await downloadDataset(name, {
      dataFolder,
      ...(baseUrls !== undefined ? { baseUrl: baseUrls } : {}),
      onProgress,
      signal: controller.signal,
    });
    bar.clear();
    for (const f of result.files) {
      const how = f.verifiedBy.includes('md5') ? 'md5 matches the published one' : 'uncompressed content matches the published md5';
      const what =
        f.status === 'already-present'
          ? 'already there'
          : `downloaded${f.resumedFrom > 0 ? ` (resumed at ${formatBytes(f.resumedFrom)})` : ''}${f.restarted ? ' (the server ignored the resume request: fetched again from the start)' : ''}`;
      io.stdout.write(`${f.name}: ${formatBytes(f.bytes)}, ${what}, ${how}\n`);
    }
    io.stdout.write(`${name} is ready in ${result.folder} (${formatDuration((Date.now() - started) / 1000)})\n`);
    return 0;
  } catch (error) {
    bar.clear();
    if (error instanceof DownloadError) {
      if (error.code === 'aborted') {
        io.stderr.write(`lrnet data: download stopped; run "lrnet data download ${name}" again to resume it\n`);
        return 130;
      }
      if (error.code === 'bad-url') throw new DataUsageError(`--base-url: ${error.message}`);
      throw new DataFailure(error.message);
    }
    throw error;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

async function list(args: readonly string[], io: DataCommandIo): Promise<number> {
  const { values } = parse(
    args,
    { json: { type: 'boolean' }, verify: { type: 'boolean' }, 'data-folder': { type: 'string' } },
    { min: 0, max: 0, names: '' },
  );
  const dataFolder = path.resolve(values['data-folder'] ?? defaultDataFolder());
  const sets = await listDatasets(dataFolder, { verify: values.verify ? 'full' : 'auto' });
  if (values.json) {
    io.stdout.write(`${JSON.stringify({ dataFolder, datasets: sets }, null, 2)}\n`);
    return 0;
  }
  io.stdout.write(formatTable(sets));
  if (sets.some((s) => s.status !== 'verified')) {
    io.stdout.write(`\nDownload one with "lrnet data download NAME" (data folder: ${dataFolder}).\n`);
  }
  return 0;
}

function formatTable(sets: readonly DatasetStatus[]): string {
  const rows = [['NAME', 'STATUS', 'SIZE', 'PATH']];
  for (const s of sets) rows.push([s.name, s.status, s.bytes > 0 ? formatBytes(s.bytes) : '-', s.status === 'missing' ? '-' : s.path]);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '));
  for (const s of sets) {
    if (s.status === 'missing') continue;
    lines.push('', `${s.name}:`);
    for (const f of s.files) {
      const state = f.verified ? `md5 ${f.md5} verified${f.verifiedBy.includes('md5') ? '' : ' (by its uncompressed content)'}` : f.present ? `${f.md5 !== null ? `md5 ${f.md5} ` : ''}NOT verified: ${f.problem ?? ''}` : f.partialBytes !== null ? `interrupted at ${formatBytes(f.partialBytes)}` : 'missing';
      lines.push(`  ${f.name.padEnd(28)} ${(f.bytes !== null ? formatBytes(f.bytes) : '-').padStart(9)}  ${state}`);
    }
  }
  return lines.join('\n') + '\n';
}
