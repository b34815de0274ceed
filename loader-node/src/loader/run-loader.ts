/**
 * The loader process in standalone mode: one rank of a job, no coordinator. For each epoch it
 * computes the rank's EpochPlan (seed, epoch, shard sizes from the dataset index, world size,
 * batch size, shuffle), points the disk cache at it, and runs the bounded pipeline
 *
 *   plan batch ids → samples (cache → MDS reader) → collate → encode → BatchSender
 *
 * with at most `prefetchBatches` batches prepared ahead of the one being sent and at most
 * `maxCredits` held by the sender until the trainer acks them, so memory stays flat whatever
 * the epoch's size. An abort stops taking work, gives the trainer `drainTimeoutMs` to ack what
 * was already accepted, then closes the sender and the cache; the NATS connection and the store
 * belong to the caller.
 *
 * Decoding runs on the main thread for now (no worker threads).
 */
import {
  AbortError,
  ArgumentError,
  EpochPlan,
  ShardTable,
  ShuffleMode,
  defaultCollate,
  encodeBatch,
  type CollateFn,
} from '@shardline/core';
import { requireInt } from '@shardline/core/internal';
import type { NatsConnection } from 'nats';
import { openCachedMDSDataset } from '../dataset/cached-mds-dataset.ts';
import { BatchSender } from '../delivery/batch-sender.ts';
import { requireSubjectToken, type SenderEvent } from '@shardline/core/protocol';
import type { LoaderMetrics } from '../metrics.ts';
import type { ShardSource } from '../store/shard-source.ts';
import { batchTensors } from './batch-tensors.ts';

/** What one loader serves and how. */
export interface LoaderOptions {
  /** The job's Kubernetes namespace and name (DNS labels; they scope the NATS subjects). */
  readonly namespace?: string;
  readonly job: string;
  readonly rank: number;
  readonly worldSize: number;
  readonly batchSize: number;
  /** Epochs to serve, from `firstEpoch` on. */
  readonly epochs: number;
  readonly firstEpoch?: number;
  readonly seed?: number;
  /** `none`, `global` or `shard-aware` (default: shard-aware, which keeps the cache hot). */
  readonly shuffle?: ShuffleMode;
  /** Drop the tail so every rank has ⌊N/W⌋ samples (default false: pad by wrapping). */
  readonly dropLast?: boolean;
  /** The disk cache folder and its byte budget (at least twice the largest shard file). */
  readonly cacheDir: string;
  readonly cacheBudgetBytes: number;
  /** Batches prepared ahead of the one being sent (default 2). */
  readonly prefetchBatches?: number;
  /** Batches the sender holds until acked (default 8). */
  readonly maxCredits?: number;
  /** Largest encoded batch, in bytes (default the sender's, 64 MiB). */
  readonly maxBatchBytes?: number;
  /** After an abort, how long the trainer may still ack batches already accepted (default 5 s). */
  readonly drainTimeoutMs?: number;
}

/** What the loader talks to; the caller opens and closes them. */
export interface LoaderDeps {
  readonly source: ShardSource;
  readonly nc: NatsConnection;
  readonly metrics?: LoaderMetrics;
  /** Stops the loader (SIGTERM). */
  readonly signal?: AbortSignal;
  /** Samples → batch (default core's defaultCollate); tensors of the result go on the wire. */
  readonly collate?: CollateFn;
  readonly onEvent?: (event: LoaderEvent) => void;
}

/** What happens in a loader, for logs. */
export type LoaderEvent =
  | { type: 'dataset-opened'; samples: number; shards: number }
  | { type: 'epoch-started'; epoch: number; batches: number; samplesPerRank: number }
  | { type: 'epoch-finished'; epoch: number; batches: number; seconds: number }
  | { type: 'fields-skipped'; fields: string[] }
  | { type: 'draining'; heldBatches: number; timeoutMs: number }
  | { type: 'delivery'; event: SenderEvent };

/** How a run ended. */
export interface LoaderSummary {
  /** Epochs whose every batch and end marker the sender accepted. */
  readonly epochs: number;
  readonly batches: number;
  readonly samples: number;
  /** True when the signal stopped the loader before the trainer acked everything. */
  readonly aborted: boolean;
}

/** The defaults of {@link LoaderOptions}. */
export function loaderDefaults(): Required<Pick<LoaderOptions, 'namespace' | 'firstEpoch' | 'seed' | 'shuffle' | 'dropLast' | 'prefetchBatches' | 'maxCredits' | 'drainTimeoutMs'>> {
  return { namespace: 'default', firstEpoch: 0, seed: 0, shuffle: ShuffleMode.ShardAware, dropLast: false, prefetchBatches: 2, maxCredits: 8, drainTimeoutMs: 5000 };
}

interface PreparedBatch {
  readonly step: number;
  readonly sampleIds: number[];
  readonly bytes: Uint8Array;
}

/**
 * Serves `options.epochs` epochs of one rank, then waits until the trainer acked all of them.
 * Resolves with `aborted: true` when `deps.signal` stopped it (never rejects for that).
 * @throws ArgumentError naming a bad option; the dataset's FormatError or CacheBudgetError at
 *   open; a store, verification or collate error met while serving (after cleaning up).
 * @example
 * const controller = new AbortController();
 * process.once('SIGTERM', () => controller.abort());
 * await runLoader({ job: 'mnist', rank: 0, worldSize: 2, batchSize: 32, epochs: 3, cacheDir, cacheBudgetBytes: 8 << 30 },
 *   { source: new LocalDirectorySource('/data/mnist'), nc, signal: controller.signal });
 */
export async function runLoader(options: LoaderOptions, deps: LoaderDeps): Promise<LoaderSummary> {
  const o = { ...loaderDefaults(), ...withoutUndefined(options) };
  checkOptions(o);
  const { signal, metrics } = deps;
  const emit = deps.onEvent ?? (() => {});
  const collate = deps.collate ?? defaultCollate;
  let batches = 0;
  let samples = 0;
  let epochsDone = 0;
  const summary = (aborted: boolean): LoaderSummary => ({ epochs: epochsDone, batches, samples, aborted });
  if (signal?.aborted) return summary(true);

  const opened = await openCachedMDSDataset({
    source: deps.source,
    cacheDir: o.cacheDir,
    budgetBytes: o.cacheBudgetBytes,
    onEvent: metrics === undefined ? undefined : (event) => metrics.onCacheEvent(event),
  });
  let sender: BatchSender | undefined;
  // Batches handed to the sender and not acked yet: for the delivered counters and latency.
  const pending = new Map<string, { readonly started: number; readonly samples: number; readonly bytes: number }>();
  const inFlight = new Set<Promise<unknown>>();
  try {
    const { dataset } = opened;
    emit({ type: 'dataset-opened', samples: dataset.length, shards: dataset.index.shards.length });
    sender = await BatchSender.open(deps.nc, {
      namespace: o.namespace,
      job: o.job,
      rank: o.rank,
      maxCredits: o.maxCredits,
      maxBatchBytes: o.maxBatchBytes,
      start: { epoch: o.firstEpoch, step: 0 },
      onEvent: (event) => {
        if (event.type === 'batch-acked') {
          const key = `${event.epoch}:${event.step}`;
          const batch = pending.get(key);
          pending.delete(key);
          if (batch !== undefined) metrics?.onDelivered({ samples: batch.samples, bytes: batch.bytes, seconds: (performance.now() - batch.started) / 1000 });
        }
        emit({ type: 'delivery', event });
      },
    });
    const openedSender = sender;
    metrics?.watchSender(() => openedSender.stats());

    const base = new EpochPlan({
      shardSizes: new ShardTable(dataset.index.shards.map((s) => s.samples)),
      worldSize: o.worldSize,
      seed: o.seed,
      epoch: o.firstEpoch,
      shuffle: o.shuffle,
      dropLast: o.dropLast,
      batchSize: o.batchSize,
    });
    let skippedReported = false;
    const prepare = async (plan: EpochPlan, step: number): Promise<PreparedBatch> => {
      const sampleIds = plan.batchIds(o.rank, step);
      const rows = [];
      for (const id of sampleIds) {
        if (signal?.aborted) throw new AbortError('the loader was stopped');
        rows.push(await dataset.get(id));
      }
      const { tensors, skipped } = batchTensors(await collate(rows));
      if (skipped.length > 0 && !skippedReported) {
        skippedReported = true;
        emit({ type: 'fields-skipped', fields: skipped });
      }
      const bytes = encodeBatch(tensors, { job: o.job, epoch: plan.epoch, rank: o.rank, step, sampleIds });
      return { step, sampleIds, bytes };
    };
    const track = <T>(promise: Promise<T>): Promise<T> => {
      inFlight.add(promise);
      // Settled batches leave the set; a rejection is seen where the batch is awaited.
      promise.then(
        () => inFlight.delete(promise),
        () => inFlight.delete(promise),
      );
      return promise;
    };

    for (let epoch = o.firstEpoch; epoch < o.firstEpoch + o.epochs; epoch++) {
      if (signal?.aborted) break;
      const plan = epoch === o.firstEpoch ? base : base.withEpoch(epoch);
      const started = performance.now();
      opened.followPlan(plan, o.rank);
      emit({ type: 'epoch-started', epoch, batches: plan.numBatches, samplesPerRank: plan.perRank });
      const ahead: Array<Promise<PreparedBatch>> = [];
      let next = 0;
      for (let step = 0; step < plan.numBatches; step++) {
        while (next < plan.numBatches && ahead.length <= o.prefetchBatches) ahead.push(track(prepare(plan, next++)));
        const batch = await ahead.shift()!;
        pending.set(`${epoch}:${batch.step}`, { started: performance.now(), samples: batch.sampleIds.length, bytes: batch.bytes.byteLength });
        await sender.send({ epoch, step: batch.step, sampleIds: batch.sampleIds, bytes: batch.bytes }, { signal });
        batches++;
        samples += batch.sampleIds.length;
      }
      await sender.endEpoch(epoch, plan.numBatches, { signal });
      epochsDone++;
      emit({ type: 'epoch-finished', epoch, batches: plan.numBatches, seconds: (performance.now() - started) / 1000 });
    }
    if (!signal?.aborted) await sender.acknowledged({ signal });
    return summary(false);
  } catch (error) {
    if (signal?.aborted && (error instanceof AbortError || isAbort(error))) return summary(true);
    throw error;
  } finally {
    // Batches being prepared read through the cache: let them settle before it closes.
    await Promise.allSettled(inFlight);
    if (sender !== undefined && signal?.aborted) await drain(sender, o.drainTimeoutMs, emit);
    metrics?.watchSender(undefined);
    await sender?.close();
    await opened.close();
  }
}

/** Gives the trainer, when one is connected, up to `timeoutMs` to ack what the sender already accepted. */
async function drain(sender: BatchSender, timeoutMs: number, emit: (event: LoaderEvent) => void): Promise<void> {
  const { heldBatches: held, session } = sender.stats();
  // Without a session nobody can ack: waiting would only delay the exit.
  if (held === 0 || session === undefined || timeoutMs === 0) return;
  emit({ type: 'draining', heldBatches: held, timeoutMs });
  try {
    await sender.acknowledged({ signal: AbortSignal.timeout(timeoutMs) });
  } catch {
    // Not acked in time (or the sender closed): the batches are dropped; a restarted loader resends from the acked cursor.
  }
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError');
}

function checkOptions(o: LoaderOptions & ReturnType<typeof loaderDefaults>): void {
  requireSubjectToken('namespace', o.namespace);
  requireSubjectToken('job', o.job);
  requireInt('worldSize', o.worldSize, { min: 1, max: 2 ** 31 - 1 });
  requireInt('rank', o.rank, { max: o.worldSize - 1 });
  requireInt('batchSize', o.batchSize, { min: 1, max: 1 << 24 });
  requireInt('epochs', o.epochs, { min: 0, max: 2 ** 32 - 1 });
  requireInt('firstEpoch', o.firstEpoch, { max: 2 ** 32 - 1 - o.epochs });
  requireInt('seed', o.seed);
  requireInt('prefetchBatches', o.prefetchBatches, { max: 64 });
  requireInt('maxCredits', o.maxCredits, { min: 1, max: 1_000_000 });
  requireInt('drainTimeoutMs', o.drainTimeoutMs, { max: 3_600_000 });
  requireInt('cacheBudgetBytes', o.cacheBudgetBytes, { min: 1 });
  if (typeof o.cacheDir !== 'string' || o.cacheDir === '') throw new ArgumentError('cacheDir', `must be a directory path, got ${JSON.stringify(o.cacheDir)}`);
  if (!Object.values(ShuffleMode).includes(o.shuffle)) {
    throw new ArgumentError('shuffle', `must be one of ${Object.values(ShuffleMode).join(', ')}, got ${JSON.stringify(o.shuffle)}`);
  }
}

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
