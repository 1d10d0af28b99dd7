/**
 * Data-parallel training on worker threads: both CPU cores (or N) for one run on the wasm backend, which runs one
 * thread per process under Node.
 *
 * Each worker holds a full replica of the parameters as TensorFlow.js variables and computes the forward/backward
 * pass of its shard of the batch. The training state itself (parameters, Adam moments, batch-norm moving
 * statistics) lives once, in shared memory: the workers all-reduce the gradients and batch statistics through it
 * and each applies Adam to its own slice of the parameters (a sharded optimizer), after which every replica copies
 * the new parameters into its variables. Measured on the 2-core build machine, the JavaScript reduction + Adam over
 * half the parameters costs less than TensorFlow.js's Adam over all of them (20-40 ms against about 45 ms per
 * step), and the replicas cannot drift apart: they all read one copy. See engine/parallel/README.md for the design,
 * the measurements and what the trainer should change.
 */
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { typeScriptWorker } from '../typescript-entry.ts';
import { tf } from '../tf.ts';
import type { Phase, TrainingConfig } from '../config.ts';
import type { ModelDefinition, Parameters } from '../models.ts';
import type { Adam } from '../optimizer.ts';
import { abortStep, resetBarrier } from './barrier.ts';
import {
  type ParameterLayout,
  type SharedBuffers,
  type SharedViews,
  allocateShared,
  layoutParameters,
  SCALAR,
  shardBounds,
  viewShared,
} from './layout.ts';
import type { FromWorker, StepTimings, ToWorker, WorkerInit } from './protocol.ts';

/** What the trainer uses instead of calling trainStep directly. */
export interface ParallelStepper {
  readonly workers: number;
  /** Loads parameters and Adam state into every replica (after init, resume, or the pretrain->LR handover). */
  load(params: Parameters, adam: Adam, phase: Phase): Promise<void>;
  /**
   * One synchronous data-parallel step: the batch is split evenly across workers (shards differ by at most one
   * image); returns [loss, crossEntropy, correct] for the whole batch, as trainStep does.
   */
  step(
    input: Float32Array,
    labels: Int32Array,
    shape: [number, number, number, number],
    globalStep: number,
    learningRate: number,
  ): Promise<[number, number, number]>;
  /**
   * Copies the replicas' current parameters (incl. batch-norm moving statistics) and Adam state back into the main
   * thread's tensors, for evaluation and checkpoints. `params` must hold the loaded names; Adam moments are
   * assigned, or created where `adam` has none yet.
   */
  read(params: Parameters, adam: Adam): Promise<void>;
  dispose(): Promise<void>;
  /** The all-reduced (batch-averaged) gradient of the last step, by parameter name: diagnostics and tests. */
  lastGradients(): Map<string, Float32Array>;
  /** Where each worker's last step went, in ms (index = worker). */
  readonly lastTimings: readonly StepTimings[];
  /** Each replica's own variables and live tensor count: tests check that the replicas agree bit for bit. */
  snapshots(): Promise<{ readonly values: Map<string, Float32Array>; readonly numTensors: number }[]>;
}

export interface ParallelStepperOptions {
  readonly model: ModelDefinition;
  readonly config: TrainingConfig;
  readonly numClasses: number;
  /** Worker threads; defaults to the number of CPU cores. */
  readonly workers?: number;
}

/** A failed step, load or worker; the stepper must be loaded again (or disposed) after a failed step. */
export class ParallelStepError extends Error {
  override name = 'ParallelStepError';
}

/** The default number of workers: one per core. */
export function defaultWorkerCount(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** Starts the workers (each loads TensorFlow.js and the wasm backend) and resolves once all are ready. */
export async function createParallelStepper(options: ParallelStepperOptions): Promise<ParallelStepper> {
  const workers = options.workers ?? defaultWorkerCount();
  if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`workers: expected an integer >= 1, got ${workers}`);
  const stepper = new WorkerPoolStepper(options, workers);
  await stepper.started;
  return stepper;
}

const WORKER = new URL('./worker.ts', import.meta.url);

interface Pending {
  readonly replies: FromWorker[];
  readonly resolve: (replies: FromWorker[]) => void;
  readonly reject: (error: Error) => void;
}

interface Loaded {
  readonly phase: Phase;
  readonly layout: ParameterLayout;
  readonly buffers: SharedBuffers;
  readonly views: SharedViews;
}

class WorkerPoolStepper implements ParallelStepper {
  readonly workers: number;
  readonly started: Promise<void>;
  lastTimings: StepTimings[] = [];
  private readonly threads: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private loaded?: Loaded;
  private adamStep = 0;
  /** Why the stepper cannot step until the next load (a failed step leaves the shared state half updated). */
  private broken?: string;
  /** Why the stepper cannot be used at all (a worker died, or it was disposed). */
  private dead?: string;
  private busy = false;

  constructor(options: ParallelStepperOptions, workers: number) {
    this.workers = workers;
    const ready: Promise<void>[] = [];
    for (let index = 0; index < workers; index++) {
      const init: WorkerInit = { index, workers, model: options.model, config: options.config, numClasses: options.numClasses };
      const thread = typeScriptWorker(WORKER, { workerData: init, name: `lrnet-parallel-${index}` });
      this.threads.push(thread);
      ready.push(new Promise<void>((resolve, reject) => {
        const settle = () => {
          thread.off('message', onMessage);
          thread.off('error', onError);
          thread.off('exit', onExit);
        };
        const onMessage = (m: FromWorker) => {
          if (m.type !== 'ready') return;
          settle();
          resolve();
        };
        const onError = (error: Error) => {
          settle();
          reject(new ParallelStepError(`worker ${index} failed to start: ${error.message}`, { cause: error }));
        };
        const onExit = (code: number) => {
          settle();
          reject(new ParallelStepError(`worker ${index} exited (code ${code}) before it was ready`));
        };
        thread.on('message', onMessage);
        thread.on('error', onError);
        thread.on('exit', onExit);
      }));
      thread.on('message', (m: FromWorker) => this.onMessage(m));
      thread.on('error', (error) => this.onWorkerGone(index, `worker ${index} crashed: ${error.stack ?? error.message}`));
      thread.on('exit', (code) => this.onWorkerGone(index, `worker ${index} exited (code ${code})`));
    }
    this.started = Promise.all(ready).then(
      () => this.idle(),
      async (error: Error) => {
        await this.dispose();
        throw error;
      },
    );
  }

  async load(params: Parameters, adam: Adam, phase: Phase): Promise<void> {
    this.enter();
    try {
      const layout = layoutParameters([...params].map(([name, v]) => [name, v.shape] as const));
      const reuse = this.loaded && sameLayout(this.loaded.layout, layout) ? this.loaded : undefined;
      const buffers = reuse?.buffers ?? allocateShared(layout, this.workers);
      const views = reuse?.views ?? viewShared(buffers, layout, this.workers);
      for (const e of layout.trainable) {
        views.params.set((await params.get(e.name)!.data()) as Float32Array, e.offset);
        const m = adam.state.firstMoments.get(e.name);
        const v = adam.state.secondMoments.get(e.name);
        const i = layout.trainable.indexOf(e);
        if (m && v) {
          views.firstMoments.set((await m.data()) as Float32Array, e.offset);
          views.secondMoments.set((await v.data()) as Float32Array, e.offset);
          views.momentFlags[i] = 1;
        } else {
          views.firstMoments.fill(0, e.offset, e.offset + e.size);
          views.secondMoments.fill(0, e.offset, e.offset + e.size);
          views.momentFlags[i] = 0;
        }
      }
      for (const e of layout.statistics) views.statistics.set((await params.get(e.name)!.data()) as Float32Array, e.offset);
      resetBarrier(views.control);
      this.loaded = { phase, layout, buffers, views };
      this.adamStep = adam.state.step;
      this.broken = undefined;
      await this.request(() => ({ type: 'load', seq: this.seq, phase, layout, buffers }));
    } catch (error) {
      this.broken = `load failed: ${(error as Error).message}`;
      throw error;
    } finally {
      this.leave();
    }
  }

  async step(
    input: Float32Array,
    labels: Int32Array,
    shape: [number, number, number, number],
    globalStep: number,
    learningRate: number,
  ): Promise<[number, number, number]> {
    const loaded = this.requireLoaded();
    if (this.broken) throw new ParallelStepError(`cannot step: ${this.broken}; call load() again`);
    const [batch, h, w, c] = shape;
    const pixels = h * w * c;
    if (batch < this.workers) throw new RangeError(`a batch of ${batch} images cannot be split across ${this.workers} workers`);
    if (input.length !== batch * pixels) throw new RangeError(`input holds ${input.length} values, shape [${shape.join(', ')}] needs ${batch * pixels}`);
    if (labels.length !== batch) throw new RangeError(`labels hold ${labels.length} values for a batch of ${batch}`);
    this.enter();
    try {
      const bounds = shardBounds(batch, this.workers);
      const weights = Array.from({ length: this.workers }, (_, k) => (bounds[k + 1]! - bounds[k]!) / batch);
      const adamStep = this.adamStep + 1;
      let replies: FromWorker[];
      try {
        replies = await this.request((k) => {
          const [lo, hi] = [bounds[k]!, bounds[k + 1]!];
          const message: ToWorker = {
            type: 'step', seq: this.seq, input: input.slice(lo * pixels, hi * pixels), labels: labels.slice(lo, hi),
            shape: [hi - lo, h, w, c], globalStep, learningRate, adamStep, weights,
          };
          return message;
        }, (m) => (m.type === 'step' ? [m.input.buffer, m.labels.buffer] : []));
      } catch (error) {
        this.broken = `a step failed (${(error as Error).message.split('\n')[0]})`;
        throw error;
      }
      this.adamStep = adamStep;
      this.lastTimings = replies.map((r) => (r.type === 'done' && r.timings ? r.timings : undefined)).filter((t) => t !== undefined);
      const s = loaded.views.scalars;
      let loss = 0;
      let crossEntropy = 0;
      let correct = 0;
      for (let k = 0; k < this.workers; k++) {
        const row = k * SCALAR.size;
        loss += weights[k]! * s[row + SCALAR.loss]!;
        crossEntropy += weights[k]! * s[row + SCALAR.crossEntropy]!;
        correct += s[row + SCALAR.correct]!;
      }
      return [loss, crossEntropy, correct];
    } finally {
      this.leave();
    }
  }

  async read(params: Parameters, adam: Adam): Promise<void> {
    const { layout, views } = this.requireLoaded();
    if (this.broken) throw new ParallelStepError(`cannot read: ${this.broken}`);
    if (this.busy) throw new ParallelStepError('read() while a step or load is in progress; await it first');
    const target = (name: string) => {
      const v = params.get(name);
      if (!v) throw new ParallelStepError(`read(): the parameters have no "${name}" (loaded: ${layout.order.join(', ')})`);
      return v;
    };
    const assign = (v: tf.Variable, source: Float32Array, offset: number, size: number) => {
      if (v.size !== size) throw new ParallelStepError(`read(): parameter of ${v.size} values where ${size} were loaded`);
      // A copy: the cpu backend keeps the array it is given, and the shared memory changes with the next step.
      tf.tidy(() => v.assign(tf.tensor(source.slice(offset, offset + size), v.shape)));
    };
    for (const e of layout.trainable) assign(target(e.name), views.params, e.offset, e.size);
    for (const e of layout.statistics) assign(target(e.name), views.statistics, e.offset, e.size);
    adam.state.step = this.adamStep;
    layout.trainable.forEach((e, i) => {
      if (views.momentFlags[i] !== 1) return;
      for (const [store, source] of [[adam.state.firstMoments, views.firstMoments], [adam.state.secondMoments, views.secondMoments]] as const) {
        const existing = store.get(e.name);
        if (existing) assign(existing, source, e.offset, e.size);
        else store.set(e.name, tf.tidy(() => tf.variable(tf.tensor(source.slice(e.offset, e.offset + e.size), [...e.shape]), false)));
      }
    });
  }

  lastGradients(): Map<string, Float32Array> {
    const { layout, views } = this.requireLoaded();
    return new Map(layout.trainable.map((e) => [e.name, views.gradient.slice(e.offset, e.offset + e.size)]));
  }

  async snapshots(): Promise<{ values: Map<string, Float32Array>; numTensors: number }[]> {
    this.enter();
    try {
      const replies = await this.request(() => ({ type: 'snapshot', seq: this.seq }));
      return replies.map((r) => {
        if (r.type !== 'snapshot') throw new ParallelStepError(`unexpected reply ${r.type} to a snapshot`);
        return { values: new Map(r.values), numTensors: r.numTensors };
      });
    } finally {
      this.leave();
    }
  }

  async dispose(): Promise<void> {
    if (this.dead === 'disposed') return;
    this.dead = 'disposed';
    for (const p of this.pending.values()) p.reject(new ParallelStepError('the stepper was disposed'));
    this.pending.clear();
    if (this.loaded) abortStep(this.loaded.views.control, -1);
    await Promise.all(this.threads.map((t) => t.terminate()));
  }

  /** Posts one message to every worker and resolves with their replies in worker order (rejects on any error). */
  private request(make: (worker: number) => ToWorker, transfer?: (m: ToWorker) => ArrayBufferLike[]): Promise<FromWorker[]> {
    if (this.dead) return Promise.reject(new ParallelStepError(`the stepper is unusable: ${this.dead}`));
    const seq = ++this.seq;
    return new Promise<FromWorker[]>((resolve, reject) => {
      this.pending.set(seq, { replies: [], resolve, reject });
      this.threads.forEach((thread, k) => {
        const message = make(k);
        thread.postMessage(message, (transfer?.(message) ?? []) as ArrayBuffer[]);
      });
    });
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'ready') return;
    const p = this.pending.get(m.seq);
    if (!p) return;
    p.replies.push(m);
    if (p.replies.length < this.workers) return;
    this.pending.delete(m.seq);
    const errors = p.replies.filter((r) => r.type === 'error');
    if (errors.length > 0) {
      // The worker that failed first explains the step; the others were released by its abort.
      const cause = errors.find((e) => !e.aborted) ?? errors[0]!;
      const remote = Object.assign(new Error(cause.message), { stack: cause.stack });
      p.reject(new ParallelStepError(`worker ${cause.index}: ${cause.message}`, { cause: remote }));
    } else {
      p.resolve([...p.replies].sort((a, b) => a.index - b.index));
    }
  }

  private onWorkerGone(index: number, why: string): void {
    if (this.dead) return;
    this.dead = why;
    if (this.loaded) abortStep(this.loaded.views.control, index);
    for (const p of this.pending.values()) p.reject(new ParallelStepError(why));
    this.pending.clear();
    void Promise.all(this.threads.map((t) => t.terminate()));
  }

  private requireLoaded(): Loaded {
    if (this.dead) throw new ParallelStepError(`the stepper is unusable: ${this.dead}`);
    if (!this.loaded) throw new ParallelStepError('load() parameters before stepping or reading');
    return this.loaded;
  }

  /** One operation at a time; the workers keep the process alive only while one runs (see idle()). */
  private enter(): void {
    if (this.dead) throw new ParallelStepError(`the stepper is unusable: ${this.dead}`);
    if (this.busy) throw new ParallelStepError('another load, step or snapshot is in progress; await it first');
    this.busy = true;
    for (const t of this.threads) t.ref();
  }

  private leave(): void {
    this.busy = false;
    this.idle();
  }

  /** Between operations idle workers do not keep the process alive, so a stepper left undisposed cannot hang it. */
  private idle(): void {
    for (const t of this.threads) t.unref();
  }
}

function sameLayout(a: ParameterLayout, b: ParameterLayout): boolean {
  const same = (x: ParameterLayout['trainable'], y: ParameterLayout['trainable']) =>
    x.length === y.length && x.every((e, i) => e.name === y[i]!.name && e.size === y[i]!.size && e.offset === y[i]!.offset);
  return same(a.trainable, b.trainable) && same(a.statistics, b.statistics) && a.order.join('\n') === b.order.join('\n');
}
