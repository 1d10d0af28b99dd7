/**
 * The threads that read, decode and transform images for an image folder (`workers: N`): each worker imports this
 * file, which serves tasks when it finds itself in such a thread.
 */
import fs from 'node:fs';
import { type Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { DatasetError } from './errors.ts';
import { typeScriptWorker } from '../typescript-entry.ts';
import { fsError } from './io.ts';
import { decodeImage } from './imagefolder-decode.ts';
import { transformImage, type ImageTransform } from './imagefolder-transform.ts';

/** Reads, decodes and transforms one image file (synchronously; used by the worker threads). */
function loadSync(file: string, t: ImageTransform, out: Float32Array, offset: number): void {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw fsError(file, err);
  }
  transformImage(decodeImage(bytes, file), t, out, offset);
}

interface WorkerTask {
  readonly id: number;
  readonly file: string;
  readonly transform: ImageTransform;
}

type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly pixels: Float32Array }
  | { readonly id: number; readonly ok: false; readonly name: string; readonly message: string; readonly file?: string; readonly problem?: string; readonly remedy?: string };

/** A pool of decoding threads; each worker has at most two tasks in flight, the rest wait in one queue. */
export class DecodePool {
  private readonly workers: { worker: Worker; busy: number }[] = [];
  private readonly queue: { task: WorkerTask; resolve: (p: Float32Array) => void; reject: (e: Error) => void }[] = [];
  private readonly pending = new Map<number, { resolve: (p: Float32Array) => void; reject: (e: Error) => void; slot: number }>();
  private nextId = 0;
  private failure: Error | undefined;
  private closed = false;

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const worker = typeScriptWorker(import.meta.url, { workerData: { lrnetImageDecoder: true } });
      worker.unref();
      worker.on('message', (reply: WorkerReply) => this.onReply(reply));
      worker.on('error', (err) => this.fail(new Error(`an image decoding thread failed: ${err.message}`, { cause: err })));
      worker.on('exit', (code) => {
        if (!this.closed) this.fail(new Error(`an image decoding thread ended unexpectedly (exit code ${code})`));
      });
      this.workers.push({ worker, busy: 0 });
    }
  }

  run(file: string, transform: ImageTransform): Promise<Float32Array> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('the image folder was closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ task: { id: this.nextId++, file, transform }, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (;;) {
      if (this.queue.length === 0) return;
      let best = -1;
      for (let i = 0; i < this.workers.length; i++) {
        if (this.workers[i]!.busy < 2 && (best < 0 || this.workers[i]!.busy < this.workers[best]!.busy)) best = i;
      }
      if (best < 0) return;
      const { task, resolve, reject } = this.queue.shift()!;
      const slot = this.workers[best]!;
      if (slot.busy++ === 0) slot.worker.ref(); // keep the process alive while work is out
      this.pending.set(task.id, { resolve, reject, slot: best });
      slot.worker.postMessage(task);
    }
  }

  private onReply(reply: WorkerReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    const slot = this.workers[p.slot]!;
    if (--slot.busy === 0) slot.worker.unref();
    if (reply.ok) p.resolve(reply.pixels);
    else if (reply.name === 'DatasetError' && reply.file !== undefined) p.reject(new DatasetError(reply.file, reply.problem ?? reply.message, reply.remedy));
    else p.reject(Object.assign(new Error(reply.message), { name: reply.name }));
    this.dispatch();
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const q of this.queue.splice(0)) q.reject(err);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.fail(new Error('the image folder was closed'));
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}

function serveWorker(): void {
  const port = parentPort!;
  port.on('message', (task: WorkerTask) => {
    const crop = task.transform.cropSize;
    const pixels = new Float32Array(crop * crop * 3);
    try {
      loadSync(task.file, task.transform, pixels, 0);
      port.postMessage({ id: task.id, ok: true, pixels } satisfies WorkerReply, [pixels.buffer]);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      const d = err instanceof DatasetError ? { file: err.file, problem: err.problem, remedy: err.remedy } : {};
      port.postMessage({ id: task.id, ok: false, name: e.name, message: e.message, ...d } satisfies WorkerReply);
    }
  });
}

if (!isMainThread && (workerData as { lrnetImageDecoder?: boolean } | null)?.lrnetImageDecoder === true) serveWorker();
