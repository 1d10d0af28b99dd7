/**
 * Where each parameter lives in the memory the workers share.
 *
 * The replicas keep one copy of the training state between them, in SharedArrayBuffers: the trainable parameters,
 * their Adam moments and the batch-norm moving statistics as flat float32 vectors. Each worker also owns one slot
 * of the gradient and batch-statistics vectors, which the all-reduce sums. Trainable parameters are laid out back
 * to back in the order of the parameter map (the order trainStep hands them to the optimizer); the moving
 * statistics likewise, so that a batch-norm layer's batch statistics have the offsets of its moving statistics.
 */
import { isTrainable } from '../models.ts';

/** One parameter's place in its flat vector. */
export interface LayoutEntry {
  readonly name: string;
  readonly shape: readonly number[];
  /** Offset in floats within the trainable vector (trainable parameters) or the statistics vector (moving statistics). */
  readonly offset: number;
  readonly size: number;
}

/** The flat layout of one parameter set; plain data, so it crosses to the workers as is. */
export interface ParameterLayout {
  /** Every parameter name in the parameter map's order (trainable and statistics interleaved). */
  readonly order: readonly string[];
  /** Trainable parameters, in parameter-map order. */
  readonly trainable: readonly LayoutEntry[];
  /** Batch-norm moving means and variances, in parameter-map order. */
  readonly statistics: readonly LayoutEntry[];
  /** Floats in the trainable vector. */
  readonly trainableSize: number;
  /** Floats in the statistics vector. */
  readonly statisticsSize: number;
}

/** Lays out the parameters of a map of name -> shape (given in the parameter map's order). */
export function layoutParameters(shapes: Iterable<readonly [string, readonly number[]]>): ParameterLayout {
  const trainable: LayoutEntry[] = [];
  const statistics: LayoutEntry[] = [];
  let trainableSize = 0;
  let statisticsSize = 0;
  const order: string[] = [];
  for (const [name, shape] of shapes) {
    order.push(name);
    const size = shape.reduce((a, b) => a * b, 1);
    if (isTrainable(name)) {
      trainable.push({ name, shape: [...shape], offset: trainableSize, size });
      trainableSize += size;
    } else {
      statistics.push({ name, shape: [...shape], offset: statisticsSize, size });
      statisticsSize += size;
    }
  }
  return { order, trainable, statistics, trainableSize, statisticsSize };
}

/** Control words of the shared Int32Array. */
export const CONTROL = {
  /** Workers that reached the current barrier. */
  arrived: 0,
  /** Barrier generation: bumped by the last worker to arrive, which releases the others. */
  generation: 1,
  /** Non-zero once any worker (or the main thread) gave up: waiting workers throw instead of waiting forever. */
  abort: 2,
  /** 1 + the index of the worker that failed first (0 = the main thread or none). */
  failedWorker: 3,
  size: 8,
} as const;

/** Values each worker reports for its shard, in its row of the Float64 `scalars` array. */
export const SCALAR = { loss: 0, crossEntropy: 1, correct: 2, images: 3, size: 4 } as const;

/**
 * The shared memory of one stepper and one parameter layout. Every field is a SharedArrayBuffer-backed view that
 * both the main thread and the workers see; the buffers travel in messages, the views are rebuilt on each side.
 */
export interface SharedBuffers {
  readonly control: SharedArrayBuffer;
  /** Trainable parameters (float32, layout.trainableSize). */
  readonly params: SharedArrayBuffer;
  /** Adam first and second moments (float32, layout.trainableSize each). */
  readonly firstMoments: SharedArrayBuffer;
  readonly secondMoments: SharedArrayBuffer;
  /** Per-worker gradients: workers x layout.trainableSize floats. */
  readonly gradientSlots: SharedArrayBuffer;
  /** The all-reduced gradient of the last step (float32, layout.trainableSize). */
  readonly gradient: SharedArrayBuffer;
  /** Batch-norm moving statistics (float32, layout.statisticsSize). */
  readonly statistics: SharedArrayBuffer;
  /** Per-worker batch statistics in the moving statistics' layout: workers x layout.statisticsSize floats. */
  readonly statisticSlots: SharedArrayBuffer;
  /** Per-worker loss, cross-entropy, correct count and image count (float64, workers x SCALAR.size). */
  readonly scalars: SharedArrayBuffer;
  /**
   * Per trainable parameter: 1 where the worker's shard produced a gradient (workers x trainable count), then one
   * row saying whether the parameter has Adam moments yet (the optimizer creates them at a parameter's first
   * gradient, as engine/optimizer.ts does).
   */
  readonly flags: SharedArrayBuffer;
  /** Per moving statistic: 1 where the worker's forward pass reported batch statistics for its layer. */
  readonly statisticFlags: SharedArrayBuffer;
}

/** Typed views of SharedBuffers. */
export interface SharedViews {
  readonly control: Int32Array;
  readonly params: Float32Array;
  readonly firstMoments: Float32Array;
  readonly secondMoments: Float32Array;
  /** One view per worker. */
  readonly gradientSlots: readonly Float32Array[];
  readonly gradient: Float32Array;
  readonly statistics: Float32Array;
  readonly statisticSlots: readonly Float32Array[];
  readonly scalars: Float64Array;
  /** Per worker: gradient flags of each trainable parameter. */
  readonly gradientFlags: readonly Int32Array[];
  /** Whether each trainable parameter has Adam moments. */
  readonly momentFlags: Int32Array;
  readonly statisticFlags: readonly Int32Array[];
}

export function allocateShared(layout: ParameterLayout, workers: number): SharedBuffers {
  const f32 = (n: number) => new SharedArrayBuffer(4 * n);
  const t = layout.trainableSize;
  const s = layout.statisticsSize;
  return {
    control: new SharedArrayBuffer(4 * CONTROL.size),
    params: f32(t),
    firstMoments: f32(t),
    secondMoments: f32(t),
    gradientSlots: f32(workers * t),
    gradient: f32(t),
    statistics: f32(s),
    statisticSlots: f32(workers * s),
    scalars: new SharedArrayBuffer(8 * workers * SCALAR.size),
    flags: new SharedArrayBuffer(4 * (workers + 1) * layout.trainable.length),
    statisticFlags: new SharedArrayBuffer(4 * workers * layout.statistics.length),
  };
}

export function viewShared(buffers: SharedBuffers, layout: ParameterLayout, workers: number): SharedViews {
  const t = layout.trainableSize;
  const s = layout.statisticsSize;
  const nt = layout.trainable.length;
  const ns = layout.statistics.length;
  const rows = <T>(n: number, make: (k: number) => T): T[] => Array.from({ length: n }, (_, k) => make(k));
  return {
    control: new Int32Array(buffers.control),
    params: new Float32Array(buffers.params),
    firstMoments: new Float32Array(buffers.firstMoments),
    secondMoments: new Float32Array(buffers.secondMoments),
    gradientSlots: rows(workers, (k) => new Float32Array(buffers.gradientSlots, 4 * k * t, t)),
    gradient: new Float32Array(buffers.gradient),
    statistics: new Float32Array(buffers.statistics),
    statisticSlots: rows(workers, (k) => new Float32Array(buffers.statisticSlots, 4 * k * s, s)),
    scalars: new Float64Array(buffers.scalars),
    gradientFlags: rows(workers, (k) => new Int32Array(buffers.flags, 4 * k * nt, nt)),
    momentFlags: new Int32Array(buffers.flags, 4 * workers * nt, nt),
    statisticFlags: rows(workers, (k) => new Int32Array(buffers.statisticFlags, 4 * k * ns, ns)),
  };
}

/** The first image of each worker's shard, plus the batch size at the end: shards differ by at most one image. */
export function shardBounds(batch: number, workers: number): number[] {
  return Array.from({ length: workers + 1 }, (_, k) => Math.floor((k * batch) / workers));
}

/** The slice [lo, hi) of the trainable vector whose reduction and optimizer update worker `index` owns. */
export function ownedRange(size: number, workers: number, index: number): [number, number] {
  return [Math.floor((index * size) / workers), Math.floor(((index + 1) * size) / workers)];
}
