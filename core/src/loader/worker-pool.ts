/**
 * The worker threads of one DataLoader: starts them, forwards everything they say (messages,
 * crashes, exits) to one sink as events, and terminates them. It counts live threads process-wide
 * so tests (and health checks) can verify that no worker outlives its loader.
 */
import { Worker } from 'node:worker_threads';
import type { FromWorker, ToWorker, WorkerBootstrap } from './protocol.ts';
import type { SerializedError } from './worker-error.ts';
import { serializeError } from './worker-error.ts';

export type PoolEvent =
  | (FromWorker & { workerId: number })
  /** The worker thread raised an uncaught error (it exits next). */
  | { type: 'crash'; workerId: number; error: SerializedError }
  /** The worker thread exited without being asked to. */
  | { type: 'exit'; workerId: number; code: number };

let live = 0;

/** How many DataLoader worker threads are running in this process right now. */
export function liveWorkerCount(): number {
  return live;
}

const WORKER_URL = new URL('./worker.ts', import.meta.url);

export class WorkerPool {
  readonly size: number;
  #workers: Worker[] = [];
  #exited: Promise<void>[] = [];
  #sink: (event: PoolEvent) => void;
  #terminating = false;
  /** The first crash or exit seen, so a persistent pool that died while idle is not reused. */
  broken: PoolEvent | null = null;

  /** @param bootOf the workerData of worker `id` */
  constructor(size: number, bootOf: (id: number) => WorkerBootstrap, sink: (event: PoolEvent) => void) {
    this.size = size;
    this.#sink = sink;
    for (let id = 0; id < size; id++) {
      const worker = new Worker(WORKER_URL, { workerData: bootOf(id), name: `shardline-loader-${id}` });
      live++;
      this.#exited.push(
        new Promise<void>((resolve) => {
          worker.once('exit', (code) => {
            live--;
            resolve();
            if (!this.#terminating) this.#emit({ type: 'exit', workerId: id, code });
          });
        }),
      );
      worker.on('message', (message: FromWorker) => this.#emit({ ...message, workerId: id }));
      worker.on('error', (error) => this.#emit({ type: 'crash', workerId: id, error: serializeError(error) }));
      worker.on('messageerror', (error) => this.#emit({ type: 'crash', workerId: id, error: serializeError(error) }));
      this.#workers.push(worker);
    }
  }

  #emit(event: PoolEvent): void {
    if (this.#terminating) return;
    if ((event.type === 'crash' || event.type === 'exit') && this.broken === null) this.broken = event;
    this.#sink(event);
  }

  /** Where events go from now on (each epoch reads them from its own mailbox). */
  setSink(sink: (event: PoolEvent) => void): void {
    this.#sink = sink;
  }

  post(workerId: number, message: ToWorker): void {
    this.#workers[workerId]!.postMessage(message);
  }

  /** Keep the process alive while work is in flight, not while a persistent pool sits idle. */
  ref(): void {
    for (const w of this.#workers) w.ref();
  }

  unref(): void {
    for (const w of this.#workers) w.unref();
  }

  get terminated(): boolean {
    return this.#terminating;
  }

  /** Stops every thread (even one stuck in a busy loop) and resolves once all have exited. */
  async terminate(): Promise<void> {
    this.#terminating = true;
    await Promise.all(this.#workers.map((w) => w.terminate().catch(() => {})));
    await Promise.all(this.#exited);
  }
}
