/**
 * The loader's batch workers: `workers` threads running batch-worker.ts, each building the
 * batches it is handed with its own BatchBuilder. The main thread keeps the cache: a worker asks
 * for each shard it reads (`acquire`), gets the cached file lent (`lease`) and gives it back
 * (`release`); a job given up (abort, a failed lease, a failed pool) has its leases returned and
 * its worker told (`refused`), so no file stays pinned.
 *
 * Any worker failure — a batch it cannot build, an uncaught error, an exit — rejects that batch
 * (or every pending batch, for a dead thread) with core's WorkerError naming the worker, the
 * batch and the sample id. `close()` terminates every thread, even one stuck in a busy loop.
 *
 * Why not core's DataLoader pool: its workers each build a whole dataset from a module spec and
 * pull indices from a sampler, with no hook to lend a shard of the main thread's cache for the
 * time of a read; and its pool and worker entry are private to core.
 */
import { Worker } from 'node:worker_threads';
import { AbortError, ArgumentError, WorkerError } from '@shardline/core';
import type { LeasePosition, ShardLease } from '../dataset/shard-sample-reader.ts';
import { describeFailure, type BatchJob, type BuiltBatch } from './batch-builder.ts';
import type { DecodeStage } from './decode-stage.ts';
import { serializeError, type SerializedError } from '@shardline/core/internal';
import type { BatchWorkerData, FromBatchWorker, ToBatchWorker } from './worker-protocol.ts';

const WORKER_URL = new URL('./batch-worker.ts', import.meta.url);

/**
 * A worker's young generation, in MiB. With V8's default a worker's new space keeps growing
 * under the loader's allocation rate (one set of samples per batch, dropped at once) and the
 * process's RSS climbs by tens of MiB over a long epoch before it levels off; at 8 MiB it stays
 * flat (bench `loader`: rss_growth_bytes) at no measurable cost in throughput.
 */
const YOUNG_GENERATION_MB = 8;

let live = 0;

/** Batch worker threads alive in this process now (tests check that none outlives its loader). */
export function liveBatchWorkers(): number {
  return live;
}

/** Options of {@link BatchWorkerPool}. */
export interface BatchWorkerPoolOptions {
  readonly workers: number;
  /** What every worker gets (its `id` is added). */
  readonly data: Omit<BatchWorkerData, 'id'>;
  /** Lends a shard of the cache to a job; `signal` aborts when the job is given up. */
  /** Lends a shard for a job (`at`: the job's epoch and step). */
  readonly lease: (shard: number, signal: AbortSignal, at?: LeasePosition) => Promise<ShardLease>;
  /** Encode buffers kept on the main thread to hand back to workers (default 4). */
  readonly spareBuffers?: number;
}

interface PendingJob {
  readonly seq: number;
  readonly job: BatchJob;
  readonly worker: number;
  readonly controller: AbortController;
  readonly leases: Map<number, ShardLease>;
  readonly resolve: (batch: BuiltBatch) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The decode stage on worker threads.
 * @example
 * const pool = new BatchWorkerPool({ workers: 2, data, lease });
 * await pool.ready();
 * const { bytes } = await pool.build(job);
 * await pool.close();
 */
export class BatchWorkerPool implements DecodeStage {
  readonly size: number;
  readonly #options: BatchWorkerPoolOptions;
  readonly #workers: Worker[] = [];
  readonly #exited: Promise<void>[] = [];
  readonly #outstanding: number[];
  readonly #pending = new Map<number, PendingJob>();
  readonly #spare: ArrayBuffer[] = [];
  readonly #ready: Promise<void>;
  #seq = 0;
  #failure: unknown;
  #closing = false;
  #rejectReady: (error: unknown) => void = () => {};

  /** Starts the threads; {@link ready} says when they can build. */
  constructor(options: BatchWorkerPoolOptions) {
    if (!Number.isSafeInteger(options.workers) || options.workers < 1) throw new ArgumentError('workers', `must be an integer ≥ 1, got ${String(options.workers)}`);
    this.size = options.workers;
    this.#options = options;
    this.#outstanding = new Array<number>(this.size).fill(0);
    let waiting = this.size;
    let resolveReady!: () => void;
    this.#ready = new Promise<void>((resolve, reject) => {
      resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.#ready.catch(() => {}); // seen by whoever awaits ready(); a failure also fails every build
    const onReady = (): void => {
      if (--waiting === 0) resolveReady();
    };
    try {
      for (let id = 0; id < this.size; id++) this.#workers.push(this.#start(id, onReady));
    } catch (error) {
      // A thread that cannot start (out of memory, a resource limit): none of the others stays.
      this.#closing = true;
      for (const worker of this.#workers) void worker.terminate();
      throw error;
    }
  }

  #start(id: number, onReady: () => void): Worker {
    const worker = new Worker(WORKER_URL, {
      workerData: { ...this.#options.data, id } satisfies BatchWorkerData,
      name: `shardline-batch-${id}`,
      resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
    live++;
    this.#exited.push(
      new Promise<void>((resolve) => {
        worker.once('exit', (code) => {
          live--;
          resolve();
          if (!this.#closing) this.#fail(new WorkerError(`batch worker ${id} exited with code ${code}${this.#busyWith(id)}`, { workerId: id }));
        });
      }),
    );
    worker.on('message', (message: FromBatchWorker) => {
      if (message.type === 'ready') onReady();
      else if (message.type === 'init-error') this.#fail(startupError(id, message.error));
      else this.#receive(id, message);
    });
    const crash = (error: unknown): void => {
      const e = serializeError(error);
      this.#fail(new WorkerError(`batch worker ${id} crashed${this.#busyWith(id)}: ${e.name}: ${e.message}`, { workerId: id, cause: e }));
    };
    worker.on('error', crash);
    worker.on('messageerror', crash);
    return worker;
  }

  /** Resolves when every worker loaded its collate and transform; rejects with the first startup error (an ArgumentError for a bad spec). */
  ready(): Promise<void> {
    return this.#ready;
  }

  get building(): number {
    return this.#pending.size;
  }

  build(job: BatchJob): Promise<BuiltBatch> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    let worker = 0;
    for (let w = 1; w < this.size; w++) if (this.#outstanding[w]! < this.#outstanding[worker]!) worker = w;
    const seq = this.#seq++;
    return new Promise<BuiltBatch>((resolve, reject) => {
      this.#pending.set(seq, { seq, job, worker, controller: new AbortController(), leases: new Map(), resolve, reject });
      this.#outstanding[worker]!++;
      const spare = this.#spare.pop();
      const message: ToBatchWorker = spare === undefined ? { type: 'build', seq, job } : { type: 'build', seq, job, spare };
      this.#workers[worker]!.postMessage(message, spare === undefined ? [] : [spare]);
    });
  }

  recycle(buffer: ArrayBuffer): void {
    if (buffer.byteLength > 0 && this.#spare.length < (this.#options.spareBuffers ?? 4) && !this.#spare.includes(buffer)) this.#spare.push(buffer);
  }

  /** Gives up every pending batch with `error` (e.g. an AbortError when the loader stops); later builds reject with it too. */
  abort(error: unknown): void {
    this.#fail(error);
  }

  /** Gives up what is pending, terminates every thread and resolves once all have exited. Idempotent. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#fail(new AbortError('the batch workers were closed'));
    await Promise.all(this.#workers.map((w) => w.terminate().catch(() => {})));
    await Promise.all(this.#exited);
  }

  #fail(error: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.#rejectReady(error); // a pool that fails while starting never says ready
    for (const job of [...this.#pending.values()]) this.#settle(job, { error });
  }

  #settle(job: PendingJob, outcome: { batch: BuiltBatch } | { error: unknown }): void {
    if (this.#pending.get(job.seq) !== job) return;
    this.#pending.delete(job.seq);
    this.#outstanding[job.worker]!--;
    job.controller.abort();
    for (const lease of job.leases.values()) lease.release();
    job.leases.clear();
    if ('batch' in outcome) job.resolve(outcome.batch);
    else job.reject(outcome.error);
  }

  #receive(id: number, message: Exclude<FromBatchWorker, { type: 'ready' | 'init-error' }>): void {
    const job = this.#pending.get(message.seq);
    switch (message.type) {
      case 'acquire':
        this.#lend(id, job, message.seq, message.shard);
        return;
      case 'release': {
        const lease = job?.leases.get(message.shard);
        job?.leases.delete(message.shard);
        lease?.release();
        return;
      }
      case 'built':
        if (job === undefined) {
          this.recycle(message.buffer);
          return;
        }
        this.#settle(job, { batch: { bytes: new Uint8Array(message.buffer, 0, message.length), skipped: message.skipped, seconds: message.seconds, stageSeconds: message.stageSeconds } });
        return;
      case 'failed': {
        if (job === undefined) return;
        const { job: batch } = job;
        const sampleId = message.position === undefined ? undefined : batch.sampleIds[message.position];
        const error = new WorkerError(`batch worker ${id} failed: ${describeFailure(batch, message)}`, {
          workerId: id,
          batch: batch.step,
          indices: batch.sampleIds,
          ...(sampleId === undefined ? {} : { sampleIndex: sampleId }),
          cause: message.error,
        });
        this.#settle(job, { error });
        return;
      }
      default:
        return;
    }
  }

  // Lends a shard to a worker's job; a job that is gone (or goes while the shard is fetched) gets
  // `refused`, and a failed lease fails the job with the cache's own error.
  #lend(id: number, job: PendingJob | undefined, seq: number, shard: number): void {
    const worker = this.#workers[id]!;
    const refuse = (): void => worker.postMessage({ type: 'refused', seq, shard } satisfies ToBatchWorker);
    if (job === undefined) {
      refuse();
      return;
    }
    this.#options.lease(shard, job.controller.signal, { epoch: job.job.epoch, step: job.job.step }).then(
      (lease) => {
        if (this.#pending.get(seq) !== job) {
          lease.release();
          refuse();
          return;
        }
        job.leases.set(shard, lease);
        worker.postMessage({ type: 'lease', seq, shard, file: lease.file, info: lease.info } satisfies ToBatchWorker);
      },
      (error: unknown) => {
        this.#settle(job, { error });
        refuse();
      },
    );
  }

  #busyWith(id: number): string {
    const jobs = [...this.#pending.values()].filter((j) => j.worker === id).map((j) => `epoch ${j.job.epoch} step ${j.job.step}`);
    return jobs.length === 0 ? '' : ` while building ${jobs.join(', ')}`;
  }
}

/** A worker's failure to start: a bad spec stays the ArgumentError it was. */
function startupError(id: number, error: SerializedError): Error {
  if (error.argument !== undefined) {
    const prefix = `${error.argument}: `;
    const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
    return new ArgumentError(error.argument, `${message} (in batch worker ${id})`);
  }
  return new WorkerError(`batch worker ${id} failed to start: ${error.name}: ${error.message}`, { workerId: id, cause: error });
}
