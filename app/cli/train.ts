/**
 * `lrnet train`: builds a configuration from a preset and flags, trains with a progress bar, prints a summary and,
 * with --json, one final line of JSON.
 */
import { parseArgs } from 'node:util';
import path from 'node:path';
import {
  PRESETS,
  PRESET_NAMES,
  isPresetName,
  validateConfig,
  ConfigError,
  type TrainingConfig,
} from '../../engine/config.ts';
import { BACKEND_CHOICES, type BackendChoice } from '../../engine/backends/index.ts';
import { DATASET_NAMES, type DatasetName } from '../../engine/data/index.ts';
import { runTraining } from '../../engine/run.ts';
import type { TrainingEvent, TrainingResult } from '../../engine/train.ts';
import type { SplitAccuracies } from '../../engine/evaluate.ts';
import { ProgressLine, formatDuration, formatPercent } from './progress.ts';

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
  --data DIR           folder with the dataset files (MNIST IDX files, raw or .gz; CIFAR-10 batches or .tar.gz)
  --dataset NAME       ${DATASET_NAMES.join(', ')} (default from the preset; mnist when --data is given to an mnist preset)
  --train-limit N      train on the first N training images only
  --test-limit N       evaluate on the first N test images only
  --validation N       images held out from training to select among sampled nets
  --eval-samples N     sampled discrete nets per evaluation (default 7 in the paper's presets)
  --eval-every N       evaluate every N epochs (0 = only at the end)
  --checkpoint-dir DIR write checkpoints there (every epoch and on Ctrl-C)
  --resume FILE        continue from a checkpoint file
  --json               end the output with one line of JSON
`;

export class UsageError extends Error {
  override name = 'UsageError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}

export interface TrainInvocation {
  readonly config: TrainingConfig;
  readonly json: boolean;
  readonly checkpointDir?: string;
  readonly resume?: string;
}

/** Parses `lrnet train` arguments into a validated configuration; every problem is reported at once. */
export function parseTrainArgs(args: readonly string[]): TrainInvocation {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
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
        validation: { type: 'string' },
        'eval-samples': { type: 'string' },
        'eval-every': { type: 'string' },
        'checkpoint-dir': { type: 'string' },
        resume: { type: 'string' },
        json: { type: 'boolean' },
      },
    });
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
  const number = (flag: string, value: string | undefined, integer: boolean): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
      problems.push(`--${flag}: expected ${integer ? 'an integer' : 'a number'}, got "${value}"`);
      return undefined;
    }
    return n;
  };
  const epochs = number('epochs', v.epochs, true);
  const fpEpochs = number('fp-epochs', v['fp-epochs'], true);
  const batch = number('batch', v.batch, true);
  const learningRate = number('lr', v.lr, false);
  const seed = number('seed', v.seed, true);
  const trainLimit = number('train-limit', v['train-limit'], true);
  const testLimit = number('test-limit', v['test-limit'], true);
  const validationSize = number('validation', v.validation, true);
  const samples = number('eval-samples', v['eval-samples'], true);
  const every = number('eval-every', v['eval-every'], true);
  if (v.backend !== undefined && !BACKEND_CHOICES.includes(v.backend as BackendChoice)) {
    problems.push(`--backend: unknown backend "${v.backend}"; choose one of ${BACKEND_CHOICES.join(', ')}`);
  }
  if (v.dataset !== undefined && !DATASET_NAMES.includes(v.dataset as DatasetName)) {
    problems.push(`--dataset: unknown dataset "${v.dataset}"; choose one of ${DATASET_NAMES.join(', ')}`);
  }
  let datasetName: DatasetName = (v.dataset as DatasetName | undefined) ?? base.dataset.name;
  if (v.data !== undefined && v.dataset === undefined && datasetName === 'mnist-sample') datasetName = 'mnist';
  if (datasetName === 'mnist-sample' && v.data !== undefined) {
    problems.push('--data: the bundled mnist-sample needs no folder; use --dataset mnist with --data DIR');
  }

  const config: TrainingConfig = {
    ...base,
    dataset: {
      name: datasetName,
      ...(v.data !== undefined ? { path: path.resolve(v.data) } : {}),
      ...(trainLimit !== undefined ? { trainLimit } : base.dataset.trainLimit !== undefined && v.data === undefined ? { trainLimit: base.dataset.trainLimit } : {}),
      ...(testLimit !== undefined ? { testLimit } : base.dataset.testLimit !== undefined && v.data === undefined ? { testLimit: base.dataset.testLimit } : {}),
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
  try {
    validateConfig(config);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems.map((p) => flagHint(p)));
  }
  if (problems.length > 0) throw new UsageError(problems);
  return {
    config,
    json: v.json ?? false,
    ...(v['checkpoint-dir'] !== undefined ? { checkpointDir: path.resolve(v['checkpoint-dir']) } : {}),
    ...(v.resume !== undefined ? { resume: path.resolve(v.resume) } : {}),
  };
}

/** Names the flag that sets a configuration field, so a config error points at what to type. */
function flagHint(problem: string): string {
  const flags: Record<string, string> = {
    'lr.epochs': '--epochs', 'pretrain.epochs': '--fp-epochs', batchSize: '--batch', 'lr.learningRate': '--lr',
    seed: '--seed', 'dataset.path': '--data', 'dataset.trainLimit': '--train-limit', 'dataset.testLimit': '--test-limit',
    validationSize: '--validation', 'evaluation.samples': '--eval-samples', 'evaluation.every': '--eval-every',
  };
  const field = problem.slice(0, problem.indexOf(':'));
  return flags[field] ? `${flags[field]} (${problem})` : problem;
}

/** The one line of JSON that `--json` prints last. Accuracies are fractions in [0, 1]. */
export function summaryJson(config: TrainingConfig, result: TrainingResult): Record<string, unknown> {
  const pick = (a: SplitAccuracies | undefined) =>
    a ? { argmax: a.argmax, sampledMean: a.sampledMean, sampledBest: a.sampledBest, selected: a.selected, expected: a.expected } : null;
  return {
    preset: config.preset,
    kind: config.kind,
    dataset: result.dataset.name,
    backend: result.backend.name,
    adapter: result.backend.adapter,
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
        `backend ${event.backend.name} (${event.backend.adapter})`,
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
  const progress = new ProgressLine(process.stderr);
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    progress.clear();
    process.stderr.write('stopping after this step (Ctrl-C again to quit at once)...\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const log = (line: string) => {
    progress.clear();
    process.stderr.write(`${line}\n`);
  };
  log(`lrnet train: preset ${config.preset} (${config.architecture}, ${config.kind}), seed ${config.seed}, batch ${config.batchSize}`);
  try {
    const result = await runTraining(config, {
      signal: controller.signal,
      ...(invocation.checkpointDir ? { checkpointDir: invocation.checkpointDir } : {}),
      ...(invocation.resume ? { resumeFrom: invocation.resume } : {}),
      onEvent: (event) => {
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
      },
    });
    progress.clear();
    printSummary(result);
    if (invocation.json) process.stdout.write(`${JSON.stringify(summaryJson(config, result))}\n`);
    return result.status === 'completed' ? 0 : 130;
  } finally {
    progress.clear();
    process.off('SIGINT', onSigint);
  }
}

function printSummary(result: TrainingResult): void {
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
