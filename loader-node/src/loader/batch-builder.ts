/**
 * The decode stage of the loader pipeline, one batch at a time: read its samples from the cached
 * shard files (one shard lease at a time), run the per-sample transform, collate, keep the
 * tensors and encode them into the wire format in a reused buffer. The same BatchBuilder runs in
 * a worker thread (batch-worker.ts) or on the main thread (`workers: 0`), so both give the same
 * bytes for the same batch.
 *
 * A failure is reported as a {@link BuildFailure} that says which step failed on which sample,
 * so the caller can name the sample id in its error whatever thread the batch was built on; a
 * failure to lend a shard (quarantined, aborted) is the lender's own error and passes unchanged.
 */
import {
  AbortError,
  ArgumentError,
  BatchEncoder,
  DatasetError,
  defaultCollate,
  type BatchMetadata,
  type CollateFn,
  type MDSSample,
  type Tensor,
} from '@shardline/core';
import { ShardSampleReader, type LeaseShard, type ShardLease } from '../dataset/shard-sample-reader.ts';
import { batchTensors } from './batch-tensors.ts';
import type { SampleTransform } from './module-spec.ts';

/** One batch to build: what it is and where each of its samples lives. */
export interface BatchJob {
  readonly epoch: number;
  readonly step: number;
  readonly sampleIds: readonly number[];
  /** For each sample, its shard (index in the dataset index) and its offset inside that shard. */
  readonly shards: readonly number[];
  readonly offsets: readonly number[];
}

/** A built batch: its wire bytes (a view of a buffer the stage may reuse once recycled). */
export interface BuiltBatch {
  readonly bytes: Uint8Array;
  /** Fields of the collated batch that are not tensors and stay off the wire. */
  readonly skipped: readonly string[];
  /** Time spent building it where it was built (read, decode, transform, collate, encode). */
  readonly seconds: number;
  /** That time by step: reading and decoding the samples, transforming them, collating, encoding. */
  readonly stageSeconds: StageSeconds;
}

/** Seconds of each step of building one batch (`decode` reads the samples from their shards and decodes them). */
export interface StageSeconds {
  readonly decode: number;
  readonly transform: number;
  readonly collate: number;
  readonly encode: number;
}

/** Which step of building a batch failed. */
export type BuildStage = 'read' | 'transform' | 'collate' | 'encode';

/** A failure while building a batch: the step, the sample (its position in the batch) when one is at fault, the error. */
export class BuildFailure {
  readonly stage: BuildStage;
  readonly position: number | undefined;
  readonly error: unknown;
  constructor(stage: BuildStage, position: number | undefined, error: unknown) {
    this.stage = stage;
    this.position = position;
    this.error = error;
  }
}

/** A shard lender's error, kept apart from the builder's own failures so it passes unchanged. */
export class LeaseFailure {
  readonly error: unknown;
  constructor(error: unknown) {
    this.error = error;
  }
}

/**
 * What went wrong, naming the batch and, when one is at fault, the sample id:
 * `transform failed on sample 1234 (position 3 of epoch 0 step 5): TypeError: …`.
 */
export function describeFailure(job: Pick<BatchJob, 'epoch' | 'step' | 'sampleIds'>, failure: { stage: BuildStage; position?: number | undefined; error: { name: string; message: string } }): string {
  const batch = `epoch ${job.epoch} step ${job.step}`;
  const cause = `${failure.error.name}: ${failure.error.message}`;
  if (failure.position !== undefined) {
    const at = `sample ${job.sampleIds[failure.position]} (position ${failure.position} of ${batch})`;
    return failure.stage === 'read' ? `${at} could not be read: ${cause}` : `${failure.stage} failed on ${at}: ${cause}`;
  }
  if (failure.stage === 'collate') return `collate failed on ${batch} (samples ${formatIds(job.sampleIds)}): ${cause}`;
  return `${failure.stage} failed on ${batch}: ${cause}`;
}

/** `[4, 5, 6]`, or `[4, 5, 6, … 29 more]` for long batches. */
export function formatIds(ids: readonly number[]): string {
  const head = ids.slice(0, 8).join(', ');
  return ids.length > 8 ? `[${head}, … ${ids.length - 8} more]` : `[${head}]`;
}

/** Options of {@link BatchBuilder}. */
export interface BatchBuilderOptions {
  /** The job name and rank, written into every batch's metadata. */
  readonly job: string;
  readonly rank: number;
  /** The loader's seed, passed to the transform. */
  readonly seed: number;
  readonly lease: LeaseShard;
  /** Samples → batch (default core's defaultCollate). */
  readonly collate?: CollateFn;
  /** Runs on each decoded sample before collate (default none). */
  readonly transform?: SampleTransform;
  /** Decompressed shards kept (default 2), and whether files are read with blocking calls (default false); see ShardSampleReader. */
  readonly maxDecodedShards?: number;
  readonly syncReads?: boolean;
  /** Encode buffers kept for reuse (default 4). */
  readonly spareBuffers?: number;
}

/**
 * Builds batches from jobs. Several builds may run at once (they share the decoded-shard cache
 * and the spare buffers); each holds at most one shard lease at a time.
 * @example
 * const builder = new BatchBuilder({ job: 'mnist', rank: 0, seed: 0, lease });
 * const { bytes } = await builder.build({ epoch: 0, step: 0, sampleIds: [4, 9], shards: [0, 1], offsets: [4, 2] });
 * await sender.send({ epoch: 0, step: 0, sampleIds: [4, 9], bytes });
 * builder.recycle(bytes.buffer); // the sender copied it
 */
export class BatchBuilder {
  readonly #options: BatchBuilderOptions;
  readonly #reader: ShardSampleReader;
  readonly #collate: CollateFn;
  readonly #spare: ArrayBuffer[] = [];
  readonly #maxSpare: number;
  #lastBytes = 64 * 1024;

  constructor(options: BatchBuilderOptions) {
    this.#options = options;
    const lease = options.lease;
    // A lender's error is its own (quarantined shard, abort): marked so it is not blamed on a sample.
    this.#reader = new ShardSampleReader(
      (shard, at): Promise<ShardLease> => lease(shard, at).catch((error: unknown) => Promise.reject(new LeaseFailure(error))),
      { maxDecodedShards: options.maxDecodedShards, syncReads: options.syncReads },
    );
    this.#collate = options.collate ?? defaultCollate;
    this.#maxSpare = options.spareBuffers ?? 4;
  }

  /**
   * Builds one batch. `signal` is checked between samples.
   * @throws BuildFailure for a sample that cannot be read or transformed, a collate or encode
   *   failure; LeaseFailure wrapping the lender's error; AbortError.
   */
  async build(job: BatchJob, signal?: AbortSignal): Promise<BuiltBatch> {
    const started = performance.now();
    checkJob(job);
    const { sampleIds, shards, offsets } = job;
    // Samples grouped by shard, in order of first use: one lease per shard and batch.
    const groups = new Map<number, number[]>();
    for (let p = 0; p < sampleIds.length; p++) {
      const positions = groups.get(shards[p]!);
      if (positions === undefined) groups.set(shards[p]!, [p]);
      else positions.push(p);
    }
    const samples = new Array<MDSSample>(sampleIds.length);
    for (const [shard, positions] of groups) {
      let current = positions[0]!;
      try {
        await this.#reader.withShard(
          shard,
          async (file) => {
            for (const p of positions) {
              if (signal?.aborted) throw new AbortError('the loader was stopped');
              current = p;
              samples[p] = await file.get(offsets[p]!);
            }
          },
          { epoch: job.epoch, step: job.step },
        );
      } catch (error) {
        if (error instanceof LeaseFailure || error instanceof AbortError) throw error;
        throw new BuildFailure('read', current, error);
      }
    }
    const decoded = performance.now();
    const { transform, rank, seed } = this.#options;
    let rows: unknown[] = samples;
    if (transform !== undefined) {
      rows = new Array<unknown>(samples.length);
      for (let p = 0; p < samples.length; p++) {
        if (signal?.aborted) throw new AbortError('the loader was stopped');
        try {
          rows[p] = await transform(samples[p]!, { sampleId: sampleIds[p]!, epoch: job.epoch, step: job.step, position: p, rank, seed });
        } catch (error) {
          throw new BuildFailure('transform', p, error);
        }
      }
    }
    const transformed = performance.now();
    let batch: unknown;
    try {
      batch = await this.#collate(rows);
    } catch (error) {
      throw new BuildFailure('collate', undefined, error);
    }
    const collated = performance.now();
    const { tensors, skipped } = batchTensors(batch);
    let bytes: Uint8Array;
    try {
      bytes = this.#encode(tensors, { job: this.#options.job, epoch: job.epoch, rank, step: job.step, sampleIds: [...sampleIds] });
    } catch (error) {
      throw new BuildFailure('encode', undefined, error);
    }
    const finished = performance.now();
    const stageSeconds = { decode: (decoded - started) / 1000, transform: (transformed - decoded) / 1000, collate: (collated - transformed) / 1000, encode: (finished - collated) / 1000 };
    return { bytes, skipped, seconds: (finished - started) / 1000, stageSeconds };
  }

  /** Gives back the buffer of a built batch once its bytes were sent (copied): the next build may encode into it. */
  recycle(buffer: ArrayBuffer): void {
    // A detached buffer reads as empty.
    if (buffer.byteLength > 0 && this.#spare.length < this.#maxSpare && !this.#spare.includes(buffer)) this.#spare.push(buffer);
  }

  #encode(tensors: Record<string, Tensor>, metadata: BatchMetadata): Uint8Array {
    const spare = this.#spare.pop();
    const encoder = new BatchEncoder(spare === undefined ? { initialCapacity: this.#lastBytes } : { buffer: new Uint8Array(spare) });
    const bytes = encoder.encode(tensors, metadata);
    this.#lastBytes = bytes.byteLength;
    return bytes;
  }
}

/** The error a failure of a batch built on the main thread becomes (a worker's becomes a WorkerError). */
export function inProcessError(job: BatchJob, error: unknown): unknown {
  if (error instanceof LeaseFailure) return error.error;
  if (!(error instanceof BuildFailure)) return error;
  const cause = error.error instanceof Error ? error.error : new Error(String(error.error));
  const index = error.position === undefined ? undefined : job.sampleIds[error.position];
  return new DatasetError(describeFailure(job, { stage: error.stage, position: error.position, error: cause }), { cause, index });
}

function checkJob(job: BatchJob): void {
  const n = job.sampleIds.length;
  if (job.shards.length !== n || job.offsets.length !== n) {
    throw new ArgumentError('job', `has ${n} sample ids, ${job.shards.length} shards and ${job.offsets.length} offsets: one of each per sample`);
  }
}
