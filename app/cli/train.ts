/**
 * `lrnet train` and `lrnet resume`: build (or read back) a configuration, record the run in the store, train in this
 * process with a progress bar, print a summary and, with --json, one final line of JSON. The run is recorded through
 * the same RunRecorder the run manager uses, so it looks the same in the store as a run trained from the app.
 */
import { parseArgs } from 'node:util';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  PRESETS,
  PRESET_NAMES,
  isPresetName,
  parseConfig,
  ConfigError,
  type TrainingConfig,
} from '../../engine/config.ts';
import { BACKEND_CHOICES, type BackendChoice } from '../../engine/backends/index.ts';
import { DATASET_NAMES, datasetEntry, isDatasetName, type DatasetName } from '../../engine/data/registry.ts';
import type { CheckpointState, TrainingEvent } from '../../engine/train.ts';
import { readCheckpointState, resumeMismatch } from '../../engine/checkpoint.ts';
import type { SplitAccuracies } from '../../engine/evaluate.ts';
import { ProgressLine, formatDuration, formatPercent } from './progress.ts';
import { RUN_NAME_SCHEMA, TAG_SCHEMA } from '../contract.ts';
import { CliError, DB_OPTION, DB_USAGE, UsageError, attachNegativeValues, openRunStore, parseCommandArgs, parseNumberFlag, type NumberFlagSpec } from './common.ts';
import { RunRecorder } from '../runs/recorder.ts';
import { startTrainingThread } from '../runs/thread.ts';
import { takeOverRun } from '../runs/claims.ts';
import type { WorkerResult } from '../runs/protocol.ts';
import { APP_VERSION, checkpointFolder } from '../runs/manager.ts';
import { defaultDataFolder, fileBlockingFolder, type Store } from '../store/index.ts';
import { resolveDatasetPath } from '../data/registry.ts';
import { StoredConfigError, storedConfig } from '../runs/stored-config.ts';

export { UsageError };

export const TRAIN_USAGE = `usage: lrnet train [--preset NAME] [options]

Trains an LR-net: full-precision pretraining, then the LR phase, then discrete evaluation.

  --preset NAME        ${PRESET_NAMES.join(', ')}
                       (default mnist-ternary-quick: the bundled MNIST sample, a few minutes on a CPU)
  --epochs N           LR-phase epochs
  --fp-epochs N        full-precision pretraining epochs (0 = start from the weak uniform initialization)
  --batch N            batch size
  --lr X               LR-phase learning rate
  --seed N             random seed (same seed, same data, same backend: same result)
  --backend NAME       ${BACKEND_CHOICES.join(', ')} (default auto: the fastest that works here)
  --data DIR           folder with the dataset files (MNIST IDX files, raw or .gz; CIFAR-10 batches or .tar.gz;
                       an image folder: train/<class>/*.jpg|png and val/<class>/...)
  --dataset NAME       ${DATASET_NAMES.join(', ')} (default from the preset; mnist when --data is given to an mnist preset)
  --train-limit N      train on the first N training images only (an image folder: N chosen at random, fixed)
  --test-limit N       evaluate on the first N test images only
  --crop-size N        image folders: side of the square crop the network sees (default 224)
  --resize N           image folders: resize the shorter side to N before cropping (default 256)
  --decode-workers N   image folders: threads that read and decode images (default: every core but one, at most 8)
  --validation N       images held out from training to select among sampled nets
  --eval-samples N     sampled discrete nets per evaluation (default 7 in the paper's presets)
  --eval-every N       evaluate every N epochs (0 = only at the end)
  --checkpoint-dir DIR write checkpoints there (every epoch and on Ctrl-C; default: the run's folder next to
                       the database, runs/RUN/checkpoints)
  --resume FILE        start this new run from a checkpoint file (to continue a stopped run: lrnet resume RUN)
  --name NAME          the run's name (default PRESET-RUN)
  --tag TAG            tag the run (repeatable)
${DB_USAGE}
  --json               end the output with one line of JSON (with the run id)

The run id is printed at the start. Ctrl-C (or SIGTERM) stops after the current step with a checkpoint, and
lrnet resume RUN goes on from there; a second Ctrl-C quits at once.
`;

export interface TrainInvocation {
  readonly config: TrainingConfig;
  readonly json: boolean;
  readonly checkpointDir?: string;
  readonly resume?: string;
  /** --db as given; undefined means defaultDatabasePath(). */
  readonly db?: string;
  readonly name?: string;
  readonly tags: readonly string[];
}

/** The random generators mix seeds as 32-bit words: a larger seed would silently repeat a smaller one's results. */
const SEED_FLAG: NumberFlagSpec = { integer: true, min: 0, max: 2 ** 32 - 1, why: 'seeds are 32-bit' };

/** Parses `lrnet train` arguments into a validated configuration; every problem is reported at once. */
export function parseTrainArgs(args: readonly string[]): TrainInvocation {
  const options = {
    preset: { type: 'string' },
    epochs: { type: 'string' },
    'fp-epochs': { type: 'string' },
    batch: { type: 'string' },
    lr: { type: 'string' },
    seed: { type: 'string' },
    backend: { type: 'string' },
    data: { type: 'string' },
    dataset: { type: 'string' },
    'train-limit': { type: 'string' },
    'test-limit': { type: 'string' },
    'crop-size': { type: 'string' },
    resize: { type: 'string' },
    'decode-workers': { type: 'string' },
    validation: { type: 'string' },
    'eval-samples': { type: 'string' },
    'eval-every': { type: 'string' },
    'checkpoint-dir': { type: 'string' },
    resume: { type: 'string' },
    name: { type: 'string' },
    tag: { type: 'string', multiple: true },
    ...DB_OPTION,
    json: { type: 'boolean' },
  } as const;
  let parsed;
  try {
    parsed = parseArgs({ args: attachNegativeValues(args, options), strict: true, allowPositionals: false, options });
  } catch (error) {
    throw new UsageError([(error as Error).message]);
  }
  const v = parsed.values;
  const problems: string[] = [];
  const presetName = v.preset ?? 'mnist-ternary-quick';
  if (!isPresetName(presetName)) {
    throw new UsageError([`--preset: unknown preset "${presetName}"; choose one of ${PRESET_NAMES.join(', ')}`]);
  }
  const base = PRESETS[presetName];
  // Lower bounds are left to validateConfig, which knows each field's; here a value must be a number at all, and an
  // integer one exact (1e20 is an integer to JavaScript, but not one a run can use).
  const number = (flag: string, value: string | undefined, integer: boolean): number | undefined =>
    value === undefined ? undefined : parseNumberFlag(flag, value, flag === 'seed' ? SEED_FLAG : { integer }, problems);
  const epochs = number('epochs', v.epochs, true);
  const fpEpochs = number('fp-epochs', v['fp-epochs'], true);
  const batch = number('batch', v.batch, true);
  const learningRate = number('lr', v.lr, false);
  const seed = number('seed', v.seed, true);
  const trainLimit = number('train-limit', v['train-limit'], true);
  const testLimit = number('test-limit', v['test-limit'], true);
  const validationSize = number('validation', v.validation, true);
  const cropSize = number('crop-size', v['crop-size'], true);
  const resizeShorter = number('resize', v.resize, true);
  const decodeWorkers = number('decode-workers', v['decode-workers'], true);
  const samples = number('eval-samples', v['eval-samples'], true);
  const every = number('eval-every', v['eval-every'], true);
  if (v.backend !== undefined && !BACKEND_CHOICES.includes(v.backend as BackendChoice)) {
    problems.push(`--backend: unknown backend "${v.backend}"; choose one of ${BACKEND_CHOICES.join(', ')}`);
  }
  if (v.dataset !== undefined && !isDatasetName(v.dataset)) {
    problems.push(`--dataset: unknown dataset "${v.dataset}"; choose one of ${DATASET_NAMES.join(', ')}`);
  }
  let datasetName: DatasetName = isDatasetName(v.dataset) ? v.dataset : base.dataset.name;
  // --data given to a preset on the bundled sample means the full data set of that kind.
  if (v.data !== undefined && v.dataset === undefined && datasetName === 'mnist-sample') datasetName = 'mnist';
  if (v.name !== undefined) RUN_NAME_SCHEMA.check(v.name.trim() === '' ? '' : v.name, '--name', problems);
  for (const tag of v.tag ?? []) TAG_SCHEMA.check(tag, '--tag', problems);
  const dataset = datasetEntry(datasetName);
  if (dataset.location === 'bundled' && v.data !== undefined) {
    problems.push(`--data: the bundled ${datasetName} needs no folder; use --dataset mnist with --data DIR`);
  }

  // Without --data, a named data set comes from the data folder, where `lrnet data download NAME` puts it.
  let dataPath = v.data !== undefined ? path.resolve(v.data) : undefined;
  if (dataPath === undefined && dataset.location === 'path' && !dataset.download) {
    problems.push(`--data: ${dataset.name} has no default place (lrnet cannot download it): give ${dataset.pathHint} with --data DIR`);
  } else if (dataPath === undefined && dataset.location === 'path') {
    try {
      dataPath = resolveDatasetPath(datasetName, defaultDataFolder());
    } catch (error) {
      problems.push(`--data: ${(error as Error).message}`);
    }
  }

  // The preset's dataset settings (a quick preset's limits and crop) hold while the run trains on that kind of data.
  const { name: _baseName, path: _basePath, ...presetDataset } = datasetName === base.dataset.name ? base.dataset : { name: datasetName };
  const candidate: TrainingConfig = {
    ...base,
    dataset: {
      ...presetDataset,
      name: datasetName,
      ...(dataPath !== undefined ? { path: dataPath } : {}),
      ...(trainLimit !== undefined ? { trainLimit } : {}),
      ...(testLimit !== undefined ? { testLimit } : {}),
      ...(cropSize !== undefined ? { cropSize } : {}),
      ...(resizeShorter !== undefined ? { resizeShorter } : {}),
      ...(decodeWorkers !== undefined ? { decodeWorkers } : {}),
    },
    ...(seed !== undefined ? { seed } : {}),
    ...(batch !== undefined ? { batchSize: batch } : {}),
    ...(validationSize !== undefined ? { validationSize } : {}),
    ...(v.backend !== undefined ? { backend: v.backend as BackendChoice } : {}),
    pretrain: { ...base.pretrain, ...(fpEpochs !== undefined ? { epochs: fpEpochs } : {}) },
    lr: {
      ...base.lr,
      ...(epochs !== undefined ? { epochs } : {}),
      ...(learningRate !== undefined ? { learningRate } : {}),
    },
    evaluation: {
      ...base.evaluation,
      ...(samples !== undefined ? { samples } : {}),
      ...(every !== undefined ? { every } : {}),
    },
  };
  let config: TrainingConfig = candidate;
  try {
    config = parseConfig(candidate);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // A flag already reported (an unknown --backend, say) is not reported again through its config field.
    const reported = new Set(problems.map((p) => p.slice(0, p.indexOf(':'))));
    problems.push(...error.problems.map((p) => flagHint(p)).filter((p) => !reported.has(p.slice(0, p.indexOf(' (')))));
  }
  const checkpointDir = v['checkpoint-dir'] !== undefined ? path.resolve(v['checkpoint-dir']) : undefined;
  if (checkpointDir !== undefined) {
    // Found now rather than at the first checkpoint, an epoch later.
    const blocker = fileBlockingFolder(checkpointDir);
    if (blocker !== undefined) problems.push(`--checkpoint-dir: ${checkpointDir} cannot be a folder: ${blocker} is a file; choose another folder`);
  }
  if (problems.length > 0) throw new UsageError(problems);
  return {
    config,
    json: v.json ?? false,
    ...(checkpointDir !== undefined ? { checkpointDir } : {}),
    ...(v.resume !== undefined ? { resume: path.resolve(v.resume) } : {}),
    ...(v.db !== undefined ? { db: v.db } : {}),
    ...(v.name !== undefined ? { name: v.name } : {}),
    tags: v.tag ?? [],
  };
}

/** Names the flag that sets a configuration field, so a config error points at what to type. */
function flagHint(problem: string): string {
  const flags: Record<string, string> = {
    'lr.epochs': '--epochs', 'pretrain.epochs': '--fp-epochs', batchSize: '--batch', 'lr.learningRate': '--lr',
    seed: '--seed', 'dataset.path': '--data', 'dataset.trainLimit': '--train-limit', 'dataset.testLimit': '--test-limit',
    validationSize: '--validation', 'evaluation.samples': '--eval-samples', 'evaluation.every': '--eval-every',
    backend: '--backend', 'dataset.name': '--dataset', 'dataset.cropSize': '--crop-size', 'dataset.resizeShorter': '--resize',
    'dataset.decodeWorkers': '--decode-workers',
  };
  const field = problem.slice(0, problem.indexOf(':'));
  return flags[field] ? `${flags[field]} (${problem})` : problem;
}

/** The one line of JSON that `--json` prints last. Accuracies are fractions in [0, 1]. */
export function summaryJson(config: TrainingConfig, result: WorkerResult, runId?: string): Record<string, unknown> {
  const pick = (a: SplitAccuracies | undefined) =>
    a ? { argmax: a.argmax, sampledMean: a.sampledMean, sampledBest: a.sampledBest, selected: a.selected, expected: a.expected } : null;
  return {
    ...(runId !== undefined ? { runId } : {}),
    preset: config.preset,
    kind: config.kind,
    dataset: result.dataset.name,
    backend: result.backend.name,
    adapter: result.backend.adapter,
    threads: result.threads,
    status: result.status,
    epochs: { pretrain: config.pretrain.epochs, lr: config.lr.epochs },
    imagesPerSecond: Math.round(result.imagesPerSecond * 10) / 10,
    durationSeconds: Math.round(result.durationSeconds * 10) / 10,
    test: pick(result.evaluation?.test),
    validation: pick(result.evaluation?.validation),
  };
}

function describeEvent(event: TrainingEvent): string | undefined {
  switch (event.type) {
    case 'start':
      return [
        `backend ${event.backend.name} (${event.backend.adapter}${event.threads > 1 ? `, ${event.threads} data-parallel threads` : ''})`,
        `dataset ${event.dataset.name}: ${event.trainImages} train, ${event.validationImages} validation, ${event.testImages} test images`,
        `model ${event.model.architecture} ${event.model.precision}: ${event.model.totalParameters.toLocaleString('en-US')} parameters, ` +
          `${(event.model.totalBytes / 1024).toFixed(1)} KiB deployed, ${(event.model.totalMacs / 1e6).toFixed(1)} M MACs/image`,
        ...(event.resumedFromStep > 0 ? [`resuming at step ${event.resumedFromStep} of ${event.totalSteps}`] : []),
      ].join('\n');
    case 'phase':
      return `${event.phase === 'pretrain' ? 'full-precision pretraining' : 'LR training'}: ${event.epochs} epochs x ${event.stepsPerEpoch} steps`;
    case 'epoch':
      return `${event.phase} epoch ${event.epoch}: loss ${event.meanLoss.toFixed(4)}, train accuracy ${formatPercent(event.trainAccuracy)}`;
    case 'evaluation':
      if (event.phase === 'pretrain') {
        return `  full-precision net: validation ${formatPercent(event.fullPrecision.validation)}, test ${formatPercent(event.fullPrecision.test)}`;
      }
      return `  discrete nets (test): argmax ${formatPercent(event.discrete.test.argmax)}, sampled mean ${formatPercent(event.discrete.test.sampledMean)}, ` +
        `best ${formatPercent(event.discrete.test.sampledBest)}, selected ${formatPercent(event.discrete.test.selected)}, expected ${formatPercent(event.discrete.test.expected)}`;
    case 'checkpoint':
      return undefined;
    default:
      return undefined;
  }
}

/** Runs `lrnet train`; returns the process exit code. */
export async function trainCommand(args: readonly string[]): Promise<number> {
  const invocation = parseTrainArgs(args);
  const { config } = invocation;
  if (invocation.resume !== undefined) {
    if (!existsSync(invocation.resume)) throw new UsageError([`--resume: there is no checkpoint file ${invocation.resume}`]);
    if (!statSync(invocation.resume).isFile()) throw new UsageError([`--resume: ${invocation.resume} is a folder; give the checkpoint file in it (a .ckpt file)`]);
    // Refused before a run is recorded; the engine checks the same again when it loads the checkpoint.
    const mismatch = resumeMismatch(readCheckpointState<CheckpointState>(invocation.resume).config, config);
    if (mismatch) throw new UsageError([`--resume: ${invocation.resume}: ${mismatch}`]);
  }
  const { store, dataFolder } = openRunStore(invocation.db, { mustExist: false });
  try {
    const run = store.createRun({
      config,
      preset: config.preset,
      seed: config.seed,
      appVersion: APP_VERSION,
      status: 'running',
      tags: invocation.tags,
      ...(invocation.name !== undefined ? { name: invocation.name } : {}),
    });
    return await trainInForeground(store, run.id, config, {
      header: `lrnet train: run ${run.id} "${run.name}": preset ${config.preset} (${config.architecture}, ${config.kind}), seed ${config.seed}, batch ${config.batchSize}`,
      checkpointDir: invocation.checkpointDir ?? checkpointFolder(dataFolder, run.id),
      json: invocation.json,
      ...(invocation.resume !== undefined ? { resumeFrom: invocation.resume } : {}),
    });
  } finally {
    store.close();
  }
}

export const RESUME_USAGE = `usage: lrnet resume RUN [--steal] [--json] [--db FILE]

Continues a stopped, interrupted or failed run from its last checkpoint, in this process, with the configuration
it started with (a run without checkpoints starts over). RUN is a run id or a unique prefix of one.

  --steal              take over a run still marked running by a process on another host (the database was moved
                       or its container recreated): say so only when nothing trains it there any more
${DB_USAGE}
  --json               end the output with one line of JSON
`;

/** Runs `lrnet resume RUN`. */
export async function resumeCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    args,
    { ...DB_OPTION, json: { type: 'boolean' }, steal: { type: 'boolean' } },
    { min: 1, max: 1, names: 'the run to resume (lrnet resume RUN)' },
  );
  const { store } = openRunStore(values.db, { mustExist: true });
  try {
    const id = store.resolveRunId(positionals[0]!);
    const released = takeOverRun(store, id, { force: values.steal ?? false, howToForce: `take it over with: lrnet resume ${id} --steal` });
    if (released !== undefined) process.stderr.write(`${released}\n`);
    const run = store.getRun(id);
    if (run.status === 'completed') throw new CliError(`run ${run.id} is completed; there is nothing to resume`);
    let config: TrainingConfig;
    try {
      config = storedConfig(run);
    } catch (error) {
      if (error instanceof StoredConfigError) throw new CliError(error.message);
      throw error;
    }
    const checkpoint = run.checkpoints.find((c) => c.id === run.lastCheckpointId);
    if (checkpoint && !existsSync(checkpoint.path)) {
      throw new CliError(`run ${run.id} cannot be resumed: its last checkpoint ${checkpoint.path} is missing`);
    }
    store.updateRun(run.id, { status: 'running', error: null }, { resume: true });
    return await trainInForeground(store, run.id, config, {
      header: `lrnet resume: run ${run.id} "${run.name}" (${run.status}), ` +
        (checkpoint ? `from its checkpoint at step ${checkpoint.step}` : 'from the start (it has no checkpoint)'),
      checkpointDir: checkpoint ? path.dirname(checkpoint.path) : checkpointFolder(path.dirname(store.file), run.id),
      json: values.json ?? false,
      ...(checkpoint ? { resumeFrom: checkpoint.path } : {}),
    });
  } finally {
    store.close();
  }
}

interface ForegroundOptions {
  /** The first line printed (names the run). */
  readonly header: string;
  readonly checkpointDir: string;
  readonly resumeFrom?: string;
  readonly json: boolean;
}

/**
 * Trains a run that is already 'running' in the store, in this process, recording it as it goes. Ctrl-C stops it
 * after the current step with a checkpoint ('stopped'); a second Ctrl-C quits at once ('interrupted').
 * Returns the exit code: 0 completed, 130 stopped; a failure is recorded and rethrown.
 */
export async function trainInForeground(store: Store, runId: string, config: TrainingConfig, options: ForegroundOptions): Promise<number> {
  const progress = new ProgressLine(process.stderr);
  const recorder = new RunRecorder(store, runId, config);
  const log = (line: string) => {
    progress.clear();
    process.stderr.write(`${line}\n`);
  };
  log(options.header);
  // The engine trains in a worker thread so that this thread hears Ctrl-C and flushes metrics on time (thread.ts).
  const thread = startTrainingThread(
    { config, checkpointDir: options.checkpointDir, checkpointPrefix: runId, ...(options.resumeFrom ? { resumeFrom: options.resumeFrom } : {}) },
    (event) => {
      recorder.record(event);
      showEvent(event, progress, log);
    },
  );
  let stopping = false;
  const onSignal = () => {
    if (stopping) {
      recorder.close();
      try {
        store.updateRun(runId, { status: 'interrupted', error: 'quit with a second Ctrl-C before it could stop' });
        store.close();
      } finally {
        process.exit(130);
      }
    }
    stopping = true;
    progress.clear();
    process.stderr.write('stopping after this step (Ctrl-C again to quit at once)...\n');
    thread.stop();
  };
  // SIGTERM (kill, docker stop, a process manager) stops the run the same way.
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    let result: WorkerResult;
    try {
      result = await thread.result;
    } catch (error) {
      try {
        recorder.finish({ status: 'failed', error: error instanceof Error ? error.message : String(error) });
      } catch (storeError) {
        process.stderr.write(`lrnet: could not record the failure: ${(storeError as Error).message}\n`);
      }
      throw error;
    }
    recorder.finish({ status: result.status });
    progress.clear();
    printSummary(result);
    if (result.status === 'stopped') log(`stopped; continue with: lrnet resume ${runId}`);
    if (options.json) process.stdout.write(`${JSON.stringify(summaryJson(config, result, runId))}\n`);
    return result.status === 'completed' ? 0 : 130;
  } finally {
    progress.clear();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function showEvent(event: TrainingEvent, progress: ProgressLine, log: (line: string) => void): void {
  if (event.type === 'step') {
    progress.update(
      event.step / event.totalSteps,
      `${event.phase === 'pretrain' ? 'FP' : 'LR'} ep ${event.epoch} step ${event.step}/${event.totalSteps} ` +
        `loss ${event.loss.toFixed(3)} lr ${event.learningRate.toExponential(1)} ` +
        `${event.imagesPerSecond.toFixed(0)} img/s ETA ${formatDuration(event.etaSeconds)}`,
    );
  } else if (event.type === 'evaluating') {
    progress.update(event.netsDone / event.netsTotal, `evaluating discrete nets ${event.netsDone}/${event.netsTotal}`);
  } else {
    const line = describeEvent(event);
    if (line) log(line);
  }
}

function printSummary(result: WorkerResult): void {
  const lines = [`${result.status} in ${formatDuration(result.durationSeconds)}, ${result.imagesPerSecond.toFixed(1)} images/s (${result.backend.name})`];
  const e = result.evaluation;
  if (e) {
    lines.push('                 argmax  sampled mean  sampled best  selected  expected');
    for (const [name, a] of [['validation', e.validation], ['test', e.test]] as const) {
      lines.push(
        `${name.padEnd(16)} ${formatPercent(a.argmax).padStart(6)}  ${formatPercent(a.sampledMean).padStart(12)}  ` +
          `${formatPercent(a.sampledBest).padStart(12)}  ${formatPercent(a.selected).padStart(8)}  ${formatPercent(a.expected).padStart(8)}`,
      );
    }
  }
  if (result.checkpoint) lines.push(`last checkpoint: ${result.checkpoint}`);
  process.stderr.write(`${lines.join('\n')}\n`);
}
