/**
 * The messages between the loader's main thread and its batch workers. Every message about a
 * batch carries `seq`, the job's number, so an answer about a job that was given up (aborted, or
 * failed on the main thread) is recognized and dropped. Buffers move, never copy: a built
 * batch's buffer goes to the main thread in the transfer list, and comes back with a later job
 * as a spare to encode into.
 */
import type { MDSShardInfo } from '@shardline/core';
import type { SerializedError } from '@shardline/core/internal';
import type { BatchJob, BuildStage, StageSeconds } from './batch-builder.ts';
import type { ResolvedModuleSpec } from './module-spec.ts';

/** `workerData` of a batch worker. */
export interface BatchWorkerData {
  readonly id: number;
  readonly job: string;
  readonly rank: number;
  readonly seed: number;
  readonly collate: ResolvedModuleSpec | null;
  readonly transform: ResolvedModuleSpec | null;
  readonly maxDecodedShards: number;
}

export type ToBatchWorker =
  /** Build this batch; `spare` (transferred) is a buffer to encode into. */
  | { type: 'build'; seq: number; job: BatchJob; spare?: ArrayBuffer }
  /** The shard asked for is lent: read `file` until you send `release`. */
  | { type: 'lease'; seq: number; shard: number; file: string; info: MDSShardInfo }
  /** No lease: the job was given up on the main thread; drop it without answering. */
  | { type: 'refused'; seq: number; shard: number };

export type FromBatchWorker =
  | { type: 'ready' }
  | { type: 'init-error'; error: SerializedError }
  /** Lend me `shard` for job `seq`. */
  | { type: 'acquire'; seq: number; shard: number }
  | { type: 'release'; seq: number; shard: number }
  /** The batch's bytes are `length` bytes at the start of `buffer` (transferred). */
  | { type: 'built'; seq: number; buffer: ArrayBuffer; length: number; skipped: string[]; seconds: number; stageSeconds: StageSeconds }
  | { type: 'failed'; seq: number; stage: BuildStage; position?: number; error: SerializedError };
