/**
 * The decode stage of the loader pipeline behind one interface: batch jobs in, wire bytes out.
 * BatchWorkerPool runs it on worker threads; InProcessDecodeStage runs the same BatchBuilder on
 * the main thread (`workers: 0`), where a collate or transform may also be a plain function.
 */
import { AbortError } from '@shardline/core';
import type { LeasePosition, ShardLease } from '../dataset/shard-sample-reader.ts';
import { BatchBuilder, inProcessError, type BatchBuilderOptions, type BatchJob, type BuiltBatch } from './batch-builder.ts';

/** Builds batches; the pipeline awaits them in step order. */
export interface DecodeStage {
  /**
   * Builds one batch.
   * @throws an error naming the sample id (WorkerError from a worker, DatasetError on the main
   *   thread) when a sample cannot be read or transformed or the collate fails; the cache's own
   *   error when a shard cannot be lent; the error given to `abort()`.
   */
  build(job: BatchJob): Promise<BuiltBatch>;
  /** Gives back the buffer of a built batch once its bytes were sent (copied), to encode into again. */
  recycle(buffer: ArrayBuffer): void;
  /** Batches being built now (the stage's queue depth). */
  readonly building: number;
  /** Gives up every batch being built with `error`; later builds reject with it too. */
  abort(error: unknown): void;
  /** Ends the stage (its threads, if any); resolves once nothing of it runs. */
  close(): Promise<void>;
}

/** Options of {@link InProcessDecodeStage}: the builder's, with a lease that can be aborted. */
export interface InProcessDecodeStageOptions extends Omit<BatchBuilderOptions, 'lease'> {
  readonly lease: (shard: number, signal: AbortSignal, at?: LeasePosition) => Promise<ShardLease>;
}

/** The decode stage on the main thread: concurrent builds interleave at their reads. */
export class InProcessDecodeStage implements DecodeStage {
  readonly #controller = new AbortController();
  readonly #builder: BatchBuilder;
  #building = 0;
  #failure: unknown;

  constructor(options: InProcessDecodeStageOptions) {
    const signal = this.#controller.signal;
    this.#builder = new BatchBuilder({ ...options, lease: (shard, at) => options.lease(shard, signal, at) });
  }

  get building(): number {
    return this.#building;
  }

  async build(job: BatchJob): Promise<BuiltBatch> {
    if (this.#failure !== undefined) throw this.#failure;
    this.#building++;
    try {
      return await this.#builder.build(job, this.#controller.signal);
    } catch (error) {
      // An abort surfaces as the reason it was given.
      if (this.#failure !== undefined && (error instanceof AbortError || (error as { error?: unknown }).error instanceof AbortError)) throw this.#failure;
      throw inProcessError(job, error);
    } finally {
      this.#building--;
    }
  }

  recycle(buffer: ArrayBuffer): void {
    this.#builder.recycle(buffer);
  }

  abort(error: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.#controller.abort(error);
  }

  async close(): Promise<void> {
    this.abort(new AbortError('the decode stage was closed'));
  }
}
