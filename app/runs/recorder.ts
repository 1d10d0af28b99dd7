/**
 * Turns a run's training events into store records: metrics, evaluations with per-layer statistics, checkpoints,
 * progress, and what the run learned at its start (backend, adapter, dataset, host). The run manager feeds it the
 * events its workers send; `lrnet train` feeds it the events of an in-process run. One code path, so a run looks
 * the same in the store whichever way it was trained.
 *
 * Cost: a step event is five pushes into the MetricWriter's column buffers (microseconds); the writer commits them
 * in one transaction every FLUSH_INTERVAL_MS, and progress is written at most once a second. Training steps take
 * tens to hundreds of milliseconds, so logging stays far below 1% of a step.
 */
import fs from 'node:fs';
import type { TrainingConfig } from '../../engine/config.ts';
import type { LayerWeightStatistics, SplitAccuracies } from '../../engine/evaluate.ts';
import type { Phase, TrainingEvent } from '../../engine/train.ts';
import { currentHost, type EvaluationScores, type LayerStats, type MetricWriter, type RunRecord, type Store } from '../store/index.ts';
import { metricsOfEvent } from '../contract.ts';

/**
 * Buffered metrics are committed at most this long after they arrive: a process killed mid-run loses at most this
 * much of its metrics (plus however long its event loop was busy), comfortably under a second.
 */
export const FLUSH_INTERVAL_MS = 500;
/** Progress is written to the runs row at most this often, besides epoch ends, checkpoints and the end. */
export const PROGRESS_INTERVAL_MS = 1000;

export interface RecorderOptions {
  /** Called with a store failure while recording; training goes on. Default: one line on stderr per failure. */
  readonly onError?: (error: unknown) => void;
  /** Milliseconds since the epoch; tests pin it. */
  readonly now?: () => number;
}

/** How a run ended, as the recorder writes it. */
export type RunOutcome =
  | { readonly status: 'completed' | 'stopped' }
  | { readonly status: 'failed'; readonly error: string };

const LN2 = Math.log(2);

/** The store's score columns from one split of a discrete evaluation. */
function scores(a: SplitAccuracies): EvaluationScores {
  return {
    argmax: a.argmax,
    sampledMean: a.sampledMean,
    sampledMin: a.sampledMin,
    sampledBest: a.sampledBest,
    selected: a.selected,
    expected: a.expected,
  };
}

/** Per-layer statistics as the store keeps them: entropy in nats (LAYER_STATISTICS), the engine reports bits. */
export function layerStats(layers: readonly LayerWeightStatistics[]): LayerStats[] {
  return layers.map((l) => ({
    layer: l.layer,
    kind: l.kind,
    fracMinus: l.fractionMinus,
    fracZero: l.fractionZero,
    fracPlus: l.fractionPlus,
    meanEntropy: l.meanEntropyBits * LN2,
  }));
}

/** Checkpoints kept per run (the newest ones). */
export const KEEP_CHECKPOINTS = 3;

/** Records one run's events into the store. Not reusable: one recorder per training attempt. */
export class RunRecorder {
  private readonly writer: MetricWriter;
  private readonly now: () => number;
  private readonly onError: (error: unknown) => void;
  private stepsPerEpoch: number;
  private lastProgressWrite = 0;
  private progress: number | null = null;
  private closed = false;
  /** The checkpoint recorded last: a stop right after an epoch's end rewrites the same file, recorded once. */
  private lastCheckpoint = '';
  /** Last optimizer step seen, for callers that report where a run got to. */
  lastStep = 0;

  constructor(
    private readonly store: Store,
    readonly runId: string,
    private readonly config: TrainingConfig,
    options: RecorderOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.onError = options.onError ?? ((error) => process.stderr.write(`lrnet: recording run ${runId} failed: ${(error as Error).message ?? String(error)}\n`));
    this.writer = store.metricWriter(runId, { flushIntervalMs: FLUSH_INTERVAL_MS });
    this.stepsPerEpoch = 0;
  }

  /** Records one event. Store failures go to onError: losing a metric must not kill a long training run. */
  record(event: TrainingEvent): void {
    if (this.closed) return;
    try {
      this.apply(event);
    } catch (error) {
      this.onError(error);
    }
  }

  /**
   * Keeps the newest KEEP_CHECKPOINTS checkpoints of the run and deletes the older rows and files: a run writes one
   * per epoch, and the paper's CIFAR-10 recipe would otherwise leave hundreds of 100 MB files. Resume and export
   * only ever use the newest.
   */
  private pruneCheckpoints(): void {
    const checkpoints = this.store.getRun(this.runId).checkpoints;
    for (const old of checkpoints.slice(0, Math.max(0, checkpoints.length - KEEP_CHECKPOINTS))) {
      // Undefined when a newer row still records the file (a resumed run that rewrote the same step).
      const file = this.store.deleteCheckpoint(old.id);
      if (file !== undefined) fs.rmSync(file, { force: true });
    }
  }

  private apply(event: TrainingEvent): void {
    switch (event.type) {
      case 'start': {
        const gpu = event.backend.hardwareAccelerated ? event.backend.adapter : null;
        const steps = this.config.pretrain.epochs + this.config.lr.epochs;
        if (steps > 0) this.stepsPerEpoch = Math.round(event.totalSteps / steps);
        this.progress = event.totalSteps > 0 ? event.resumedFromStep / event.totalSteps : 0;
        this.lastStep = event.resumedFromStep;
        this.store.updateRun(this.runId, {
          backend: event.backend.name,
          adapter: event.threads > 1 ? `${event.backend.adapter}, ${event.threads} threads` : event.backend.adapter,
          dataset: event.dataset,
          host: currentHost(gpu),
          progress: this.progress,
        });
        this.lastProgressWrite = this.now();
        return;
      }
      case 'phase':
        this.stepsPerEpoch = event.stepsPerEpoch;
        return;
      case 'step': {
        this.writeMetrics(event, { epoch: this.fractionalEpoch(event.phase, event.step), phase: event.phase });
        this.lastStep = event.step;
        this.progress = event.totalSteps > 0 ? event.step / event.totalSteps : null;
        if (this.now() - this.lastProgressWrite >= PROGRESS_INTERVAL_MS) this.writeProgress();
        return;
      }
      case 'epoch': {
        this.writeMetrics(event, { epoch: event.epoch, phase: event.phase });
        this.writeProgress();
        return;
      }
      case 'evaluation':
        if (event.phase === 'pretrain') {
          this.writeMetrics(event, { epoch: event.epoch, phase: event.phase });
        } else {
          // The store records the scores as metrics too, under the keys metricsOfEvent gives them.
          this.store.addEvaluation(this.runId, {
            step: event.step,
            epoch: event.epoch,
            phase: event.phase,
            test: scores(event.discrete.test),
            validation: scores(event.discrete.validation),
            layerStats: layerStats(event.discrete.layers),
          });
        }
        return;
      case 'checkpoint': {
        // Metrics up to a checkpoint are committed with it, so a resumed run has no gap before its first new step.
        this.writer.flush();
        const identity = `${event.step}:${event.path}`;
        if (identity === this.lastCheckpoint) return;
        this.lastCheckpoint = identity;
        this.store.addCheckpoint(this.runId, { step: event.step, epoch: event.epoch, phase: event.phase, path: event.path, bytes: event.bytes });
        this.pruneCheckpoints();
        this.writeProgress();
        return;
      }
      case 'evaluating':
        return;
    }
  }

  /** Buffers the event's metrics (a step event: five pushes into the writer's columns). */
  private writeMetrics(event: TrainingEvent, extra: { epoch: number | null; phase: Phase }): void {
    for (const m of metricsOfEvent(event)) this.writer.write(m.key, m.step, m.value, extra);
  }

  /** Epochs into the current phase at the end of global step `step`, e.g. 2.5 halfway through the third epoch. */
  private fractionalEpoch(phase: Phase, step: number): number | null {
    if (this.stepsPerEpoch <= 0) return null;
    const offset = phase === 'lr' ? this.config.pretrain.epochs * this.stepsPerEpoch : 0;
    return (step - offset) / this.stepsPerEpoch;
  }

  private writeProgress(): void {
    this.lastProgressWrite = this.now();
    if (this.progress !== null) this.store.updateRun(this.runId, { progress: Math.min(1, Math.max(0, this.progress)) });
  }

  /** Commits buffered metrics now. */
  flush(): void {
    try {
      this.writer.flush();
    } catch (error) {
      this.onError(error);
    }
  }

  /**
   * Commits what is buffered and records how the run ended. Returns the updated run. The recorder is closed after.
   */
  finish(outcome: RunOutcome): RunRecord {
    this.close();
    if (outcome.status === 'failed') return this.store.updateRun(this.runId, { status: 'failed', error: outcome.error });
    return this.store.updateRun(this.runId, {
      status: outcome.status,
      ...(outcome.status === 'completed' ? { progress: 1 } : this.progress !== null ? { progress: this.progress } : {}),
    });
  }

  /** Commits buffered metrics and stops recording (further events are ignored). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.writer.close();
    } catch (error) {
      this.onError(error);
    }
  }
}
