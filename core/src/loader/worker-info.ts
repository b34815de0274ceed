/**
 * `getWorkerInfo()`: inside a DataLoader worker thread, who am I (PyTorch's `get_worker_info`).
 * An IterableDataset uses it to read only its share of the stream; a dataset uses `seed` for its
 * random augmentations so every worker draws a different, reproducible stream.
 */
import type { Dataset, IterableDataset } from '../dataset/dataset.ts';

export interface WorkerInfo {
  /** This worker's id in [0, numWorkers). */
  readonly id: number;
  readonly numWorkers: number;
  /** hashSeed(loader seed, epoch, id): different per worker and per epoch, reproducible. */
  readonly seed: number;
  /** The epoch being loaded. */
  readonly epoch: number;
  /** This worker's own copy of the dataset. */
  readonly dataset: Dataset<unknown> | IterableDataset<unknown>;
}

let current: WorkerInfo | null = null;

/**
 * Information about the DataLoader worker thread this code runs in, or null outside a worker
 * (the main thread, or `numWorkers: 0`).
 *
 * @example
 * // an IterableDataset that shards its stream across workers
 * async *[Symbol.asyncIterator]() {
 *   const info = getWorkerInfo();
 *   const [id, n] = info ? [info.id, info.numWorkers] : [0, 1];
 *   for (let i = id; i < this.length; i += n) yield await this.read(i);
 * }
 */
export function getWorkerInfo(): WorkerInfo | null {
  return current;
}

/** Set by the worker entry point; not part of the public API. */
export function setWorkerInfo(info: WorkerInfo | null): void {
  current = info === null ? null : Object.freeze({ ...info });
}
