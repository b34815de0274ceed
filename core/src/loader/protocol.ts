/**
 * The messages between the DataLoader and its worker threads. Every message about work carries
 * `iter`, the id of the pass (epoch iteration) it belongs to, so a persistent worker's late
 * answers to an abandoned pass are recognized and dropped.
 */
import type { ResolvedSpec } from './module-spec.ts';
import type { SerializedError } from './worker-error.ts';

/** `workerData` of a worker thread. */
export interface WorkerBootstrap {
  id: number;
  numWorkers: number;
  seed: number;
  epoch: number;
  dataset: ResolvedSpec;
  collate: ResolvedSpec | null;
  workerInit: ResolvedSpec | null;
  /** Batching of an IterableDataset happens in the worker. */
  batchSize: number;
  dropLast: boolean;
}

export type ToWorker =
  /** A new epoch for a persistent worker: updates getWorkerInfo(). */
  | { type: 'epoch'; epoch: number; seed: number }
  /** Map-style: load and collate these indices. */
  | { type: 'batch'; iter: number; seq: number; indices: number[] }
  /** Iterable: start a new pass over the worker's dataset (ends any previous pass). */
  | { type: 'iterate'; iter: number }
  /** Iterable: the worker may produce `n` more batches of pass `iter`. */
  | { type: 'credit'; iter: number; n: number }
  /** Iterable: stop pass `iter`. */
  | { type: 'stop'; iter: number };

export type DatasetKind = 'map' | 'iterable';

export type FromWorker =
  | { type: 'ready'; kind: DatasetKind; length: number | null }
  | { type: 'init-error'; error: SerializedError }
  | { type: 'batch'; iter: number; seq: number; data: unknown }
  | { type: 'error'; iter: number; seq: number; sampleIndex?: number; error: SerializedError }
  /** Iterable: the worker's share of the pass is exhausted after `batches` batches. */
  | { type: 'end'; iter: number; batches: number };
