/**
 * The loader process in standalone mode: one rank of a job, no coordinator. For each epoch it
 * computes the rank's EpochPlan (seed, epoch, shard sizes from the dataset index, world size,
 * batch size, shuffle), points the disk cache at it, and runs the bounded pipeline
 *
 *   plan batch ids → shard cache → read, decode, transform, collate, encode (worker threads)
 *     → BatchSender, in step order
 *
 * with at most `prefetchBatches` batches being built ahead of the one being sent and at most
 * `maxCredits` held by the sender until the trainer acks them, so memory stays flat whatever
 * the epoch's size. The main thread owns the cache: a worker reads a shard's cached file only
 * while the main thread lends it (one shard at a time per batch, so no budget is too small for
 * any shuffle), and encodes into buffers that travel back and forth instead of being allocated
 * per batch. With `workers: 0` the same builder runs on the main thread.
 *
 * An abort stops taking work and gives up the batches being built, gives the trainer
 * `drainTimeoutMs` to ack what was already accepted, then closes the workers, the sender and
 * the cache; the NATS connection and the store belong to the caller. No worker thread outlives
 * runLoader, however it ends.
 */
import {
  AbortError,
  ArgumentError,
  EpochPlan,
  ShardTable,
  ShuffleMode,
  type CollateFn,
  type ModuleSpec,
} from '@shardline/core';
import { requireInt } from '@shardline/core/internal';
import type { NatsConnection } from 'nats';
import { openCachedMDSDataset, type CachedMDSDataset } from '../dataset/cached-mds-dataset.ts';
import type { LeasePosition, ShardLease } from '../dataset/shard-sample-reader.ts';
import { BatchSender } from '../delivery/batch-sender.ts';
import { requireSubjectToken, type SenderEvent } from '@shardline/core/protocol';
import type { LoaderMetrics } from '../metrics.ts';
import type { ShardSource } from '../store/shard-source.ts';
import type { BuiltBatch } from './batch-builder.ts';
import { BatchWorkerPool } from './batch-worker-pool.ts';
import { InProcessDecodeStage, type DecodeStage } from './decode-stage.ts';
import { loadSteps, resolveModuleSpec, type ResolvedModuleSpec, type SampleTransform } from './module-spec.ts';

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
  /**
   * The step `firstEpoch` starts at (default 0): a replacement loader for a rank whose trainer
   * already has steps 0 … firstStep − 1 of it. At most the epoch's batch count (then only its
   * end marker is sent).
   */
  readonly firstStep?: number;
  readonly seed?: number;
  /** `none`, `global` or `shard-aware` (default: shard-aware, which keeps the cache hot). */
  readonly shuffle?: ShuffleMode;
  /** Drop the tail so every rank has ⌊N/W⌋ samples (default false: pad by wrapping). */
  readonly dropLast?: boolean;
  /** The disk cache folder and its byte budget (at least twice the largest shard file). */
  readonly cacheDir: string;
  readonly cacheBudgetBytes: number;
  /**
   * Worker threads that read, decode, transform, collate and encode batches (default 2; 0: all
   * on the main thread). At most `prefetchBatches` + 1 batches are built at once, so more
   * workers than that stay idle.
   */
  readonly workers?: number;
  /** Batches built ahead of the one being sent (default 2). */
  readonly prefetchBatches?: number;
  /** Batches the sender holds until acked (default 8). */
  readonly maxCredits?: number;
  /** Largest encoded batch, in bytes (default the sender's, 64 MiB). */
  readonly maxBatchBytes?: number;
  /** Bytes the sender holds unacked at most (default the sender's, 48 MiB; keep it below the server's max_pending). */
  readonly maxHeldBytes?: number;
  /** After an abort, how long the trainer may still ack batches already accepted (default 5 s). */
  readonly drainTimeoutMs?: number;
  /**
   * The shared-memory fast path for a trainer on this host (docs/protocol.md §12): its segment
   * folder (default `{}`: `/dev/shm`), or false for NATS only. Used only with a trainer whose
   * hello offers it from the same `hostId`.
   */
  readonly shm?: { readonly directory?: string } | false;
  /** This loader's host in welcomes; shared memory needs the trainer's to be equal (default the hostname; in Kubernetes the node name). */
  readonly hostId?: string;
  /**
   * Samples → batch, as a module spec whose export is a factory `(args) => collateFn` (default
   * core's defaultCollate). Tensors of the result go on the wire.
   */
  readonly collate?: ModuleSpec;
  /**
   * Runs on every decoded sample before collate, as a module spec whose export is a factory
   * `(args) => (sample, context) => transformed` (see SampleTransform).
   */
  readonly transform?: ModuleSpec;
}

/** What the loader talks to; the caller opens and closes them. */
export interface LoaderDeps {
  readonly source: ShardSource;
  readonly nc: NatsConnection;
  readonly metrics?: LoaderMetrics;
  /** Stops the loader (SIGTERM). */
  readonly signal?: AbortSignal;
  /** Samples → batch as a function: only with `workers: 0` (a function cannot reach a worker; give `options.collate`). */
  readonly collate?: CollateFn;
  /** The per-sample transform as a function: only with `workers: 0` (else give `options.transform`). */
  readonly transform?: SampleTransform;
  readonly onEvent?: (event: LoaderEvent) => void;
}

/** What happens in a loader, for logs. */
export type LoaderEvent =
  | { type: 'dataset-opened'; samples: number; shards: number }
  | { type: 'epoch-started'; epoch: number; batches: number; samplesPerRank: number; firstStep: number }
  | { type: 'epoch-finished'; epoch: number; batches: number; seconds: number }
  | { type: 'fields-skipped'; fields: string[] }
  /**
   * The batches built at once (prefetchBatches + 1) lease more shard bytes than the cache budget
   * at some point of this epoch: those shards are fetched more than once (the run goes on).
   * Reported once per run, at the first epoch where it happens.
   */
  | { type: 'cache-too-small'; epoch: number; workingSetBytes: number; budgetBytes: number; shuffle: string }
  | { type: 'draining'; heldBatches: number; timeoutMs: number }
  | { type: 'delivery'; event: SenderEvent };

/** How a run ended. */
export interface LoaderSummary {
  /** Epochs whose every batch and end marker the sender accepted. */
  readonly epochs: number;
  /** Batches and samples this loader sent (from `firstStep` on in the first epoch). */
  readonly batches: number;
  readonly samples: number;
  /** True when the signal stopped the loader before the trainer acked everything. */
  readonly aborted: boolean;
}

/** The defaults of {@link LoaderOptions}. */
export function loaderDefaults(): Required<Pick<LoaderOptions, 'namespace' | 'firstEpoch' | 'firstStep' | 'seed' | 'shuffle' | 'dropLast' | 'workers' | 'prefetchBatches' | 'maxCredits' | 'drainTimeoutMs' | 'shm'>> {
  return {
    namespace: 'default',
    firstEpoch: 0,
    firstStep: 0,
    seed: 0,
    shuffle: ShuffleMode.ShardAware,
    dropLast: false,
    workers: 2,
    prefetchBatches: 2,
    maxCredits: 8,
    drainTimeoutMs: 5000,
    shm: {},
  };
}

/** Decompressed shards each builder keeps (compressed datasets only). */
const DECODED_SHARDS = 2;

interface PreparedBatch {
  readonly step: number;
  readonly sampleIds: number[];
  readonly built: BuiltBatch;
}

/**
 * Serves `options.epochs` epochs of one rank, then waits until the trainer acked all of them.
 * Resolves with `aborted: true` when `deps.signal` stopped it (never rejects for that).
 * @throws ArgumentError naming a bad option (`firstStep` past the epoch's batches, a collate or
 *   transform spec that does not load); the dataset's FormatError or CacheBudgetError at open;
 *   a store, verification or quarantine error met while serving; for a sample that cannot be
 *   read or transformed, or a collate that fails, a WorkerError (DatasetError with `workers: 0`)
 *   naming the sample id, epoch and step — always after ending every worker thread.
 * @example
 * const controller = new AbortController();
 * process.once('SIGTERM', () => controller.abort());
 * await runLoader({ job: 'mnist', rank: 0, worldSize: 2, batchSize: 32, epochs: 3, cacheDir, cacheBudgetBytes: 8 << 30, workers: 2 },
 *   { source: new LocalDirectorySource('/data/mnist'), nc, signal: controller.signal });
 */
export async function runLoader(options: LoaderOptions, deps: LoaderDeps): Promise<LoaderSummary> {
  const o = { ...loaderDefaults(), ...withoutUndefined(options) };
  const specs = checkOptions(o, deps);
  const { signal, metrics } = deps;
  const emit = deps.onEvent ?? (() => {});
  let batches = 0;
  let samples = 0;
  let epochsDone = 0;
  const summary = (aborted: boolean): LoaderSummary => ({ epochs: epochsDone, batches, samples, aborted });
  if (signal?.aborted) return summary(true);

  let opened: CachedMDSDataset | undefined;
  let stage: DecodeStage | undefined;
  let sender: BatchSender | undefined;
  // Lends shard `shard` of the cache to a builder, for as long as it reads it.
  // Batches are built several at a time and their leases interleave. Each lease names its batch
  // and moves the cache's schedule to that batch's start (never back): per key, interleaved
  // leases pushed the cursor past what slower batches still needed and the cache evicted the
  // window it was reading. (Measured: following the oldest batch, or the newest one started,
  // refetched more where windows meet than following the newest one that leases.)
  const lease = async (shard: number, leaseSignal: AbortSignal, at?: LeasePosition): Promise<ShardLease> => {
    const { cache, shardKeys, dataset } = opened!;
    const from = at === undefined ? undefined : opened!.scheduleStart(at.epoch, at.step);
    const held = await cache.acquire(shardKeys[shard]!, { signal: leaseSignal, ...(from === undefined ? {} : { from }) });
    return { file: held.file, info: dataset.index.shards[shard]!, release: held.release };
  };
  const stop = (): void => stage?.abort(new AbortError('the loader was stopped'));
  signal?.addEventListener('abort', stop, { once: true });
  // Batches handed to the sender and not acked yet: for the delivered counters and latency.
  const pending = new Map<string, { readonly started: number; readonly samples: number; readonly bytes: number }>();
  const inFlight = new Set<Promise<unknown>>();
  try {
    // Workers start (import their modules) while the dataset index is read.
    let pool: BatchWorkerPool | undefined;
    if (o.workers > 0) {
      pool = new BatchWorkerPool({
        workers: o.workers,
        data: { job: o.job, rank: o.rank, seed: o.seed, collate: specs.collate, transform: specs.transform, maxDecodedShards: DECODED_SHARDS },
        lease,
        spareBuffers: o.prefetchBatches + 2,
      });
      stage = pool;
    } else {
      const loaded = await loadSteps(specs);
      stage = new InProcessDecodeStage({
        job: o.job,
        rank: o.rank,
        seed: o.seed,
        lease,
        collate: deps.collate ?? loaded.collate,
        transform: deps.transform ?? loaded.transform,
        maxDecodedShards: DECODED_SHARDS,
        spareBuffers: o.prefetchBatches + 2,
      });
    }
    if (signal?.aborted) return summary(true);
    opened = await openCachedMDSDataset({
      source: deps.source,
      cacheDir: o.cacheDir,
      budgetBytes: o.cacheBudgetBytes,
      onEvent: metrics === undefined ? undefined : (event) => metrics.onCacheEvent(event),
    });
    const { cache, dataset } = opened;
    metrics?.watchCache(() => cache);
    await pool?.ready();
    const decoder = stage;
    emit({ type: 'dataset-opened', samples: dataset.length, shards: dataset.index.shards.length });

    const base = new EpochPlan({
      shardSizes: new ShardTable(dataset.index.shards.map((s) => s.samples)),
      worldSize: o.worldSize,
      seed: o.seed,
      epoch: o.firstEpoch,
      shuffle: o.shuffle,
      dropLast: o.dropLast,
      batchSize: o.batchSize,
    });
    if (o.firstStep > base.numBatches) {
      throw new ArgumentError('firstStep', `is ${o.firstStep}, but epoch ${o.firstEpoch} has ${base.numBatches} batches for rank ${o.rank} of ${o.worldSize} (firstStep may be 0 … ${base.numBatches})`);
    }
    sender = await BatchSender.open(deps.nc, {
      namespace: o.namespace,
      job: o.job,
      rank: o.rank,
      maxCredits: o.maxCredits,
      maxBatchBytes: o.maxBatchBytes,
      maxHeldBytes: o.maxHeldBytes,
      start: { epoch: o.firstEpoch, step: o.firstStep },
      shm: o.shm === false ? false : { ...o.shm },
      ...(o.hostId === undefined ? {} : { hostId: o.hostId }),
      onEvent: (event) => {
        metrics?.onSenderEvent(event);
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
    // Built batches waiting for the sender, and batches placed in shared memory so far.
    let ready = 0;
    let shmBatches = 0;
    metrics?.watchStages(() => ({ decode: decoder.building, send: ready }));

    let skippedReported = false;
    let cacheWarned = false;
    const prepare = async (plan: EpochPlan, step: number): Promise<PreparedBatch> => {
      const sampleIds = plan.batchIds(o.rank, step);
      const shards: number[] = [];
      const offsets: number[] = [];
      for (const id of sampleIds) {
        const { shard, offset } = dataset.table.locate(id);
        shards.push(shard);
        offsets.push(offset);
      }
      const built = await decoder.build({ epoch: plan.epoch, step, sampleIds, shards, offsets });
      ready++;
      metrics?.onBatchBuilt(built.seconds, built.stageSeconds);
      if (built.skipped.length > 0 && !skippedReported) {
        skippedReported = true;
        emit({ type: 'fields-skipped', fields: [...built.skipped] });
      }
      return { step, sampleIds, built };
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
      const firstStep = epoch === o.firstEpoch ? o.firstStep : 0;
      const started = performance.now();
      opened.followPlan(plan, o.rank);
      if (!cacheWarned) {
        const needed = opened.workingSetBytes(o.prefetchBatches + 1);
        if (needed > o.cacheBudgetBytes) {
          cacheWarned = true;
          emit({ type: 'cache-too-small', epoch, workingSetBytes: needed, budgetBytes: o.cacheBudgetBytes, shuffle: o.shuffle });
        }
      }
      emit({ type: 'epoch-started', epoch, batches: plan.numBatches, samplesPerRank: plan.perRank, firstStep });
      const ahead: Array<Promise<PreparedBatch>> = [];
      let next = firstStep;
      for (let step = firstStep; step < plan.numBatches; step++) {
        while (next < plan.numBatches && ahead.length <= o.prefetchBatches) ahead.push(track(prepare(plan, next++)));
        const batch = await ahead.shift()!;
        const { bytes } = batch.built;
        pending.set(`${epoch}:${batch.step}`, { started: performance.now(), samples: batch.sampleIds.length, bytes: bytes.byteLength });
        await sender.send({ epoch, step: batch.step, sampleIds: batch.sampleIds, bytes }, { signal });
        ready--;
        const placed = sender.stats().shmBatches;
        if (placed > shmBatches) metrics?.onShmBatch();
        shmBatches = placed;
        // The sender copied the bytes: their buffer can take another batch.
        decoder.recycle(bytes.buffer as ArrayBuffer);
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
    signal?.removeEventListener('abort', stop);
    // Batches being built read through the cache: end them (and the threads) before it closes.
    await stage?.close();
    await Promise.allSettled(inFlight);
    if (sender !== undefined && signal?.aborted) await drain(sender, o.drainTimeoutMs, emit);
    metrics?.watchSender(undefined);
    metrics?.watchStages(undefined);
    metrics?.watchCache(undefined);
    await sender?.close();
    await opened?.close();
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

/** Checks every option that can be checked before anything opens; returns the resolved module specs. */
function checkOptions(o: LoaderOptions & ReturnType<typeof loaderDefaults>, deps: LoaderDeps): { collate: ResolvedModuleSpec | null; transform: ResolvedModuleSpec | null } {
  requireSubjectToken('namespace', o.namespace);
  requireSubjectToken('job', o.job);
  requireInt('worldSize', o.worldSize, { min: 1, max: 2 ** 31 - 1 });
  requireInt('rank', o.rank, { max: o.worldSize - 1 });
  requireInt('batchSize', o.batchSize, { min: 1, max: 1 << 24 });
  requireInt('epochs', o.epochs, { min: 0, max: 2 ** 32 - 1 });
  requireInt('firstEpoch', o.firstEpoch, { max: 2 ** 32 - 1 - o.epochs });
  requireInt('firstStep', o.firstStep, { max: 2 ** 32 - 1 });
  requireInt('seed', o.seed);
  requireInt('workers', o.workers, { max: 256 });
  requireInt('prefetchBatches', o.prefetchBatches, { max: 64 });
  requireInt('maxCredits', o.maxCredits, { min: 1, max: 1_000_000 });
  requireInt('drainTimeoutMs', o.drainTimeoutMs, { max: 3_600_000 });
  if (o.shm !== false && (typeof o.shm !== 'object' || o.shm === null || (o.shm.directory !== undefined && (typeof o.shm.directory !== 'string' || o.shm.directory === '')))) {
    throw new ArgumentError('shm', `must be false or { directory?: a non-empty path }, got ${JSON.stringify(o.shm)}`);
  }
  requireInt('cacheBudgetBytes', o.cacheBudgetBytes, { min: 1 });
  if (typeof o.cacheDir !== 'string' || o.cacheDir === '') throw new ArgumentError('cacheDir', `must be a directory path, got ${JSON.stringify(o.cacheDir)}`);
  if (!Object.values(ShuffleMode).includes(o.shuffle)) {
    throw new ArgumentError('shuffle', `must be one of ${Object.values(ShuffleMode).join(', ')}, got ${JSON.stringify(o.shuffle)}`);
  }
  const step = (name: 'collate' | 'transform'): ResolvedModuleSpec | null => {
    const fn: unknown = deps[name];
    if (fn !== undefined) {
      if (typeof fn !== 'function') throw new ArgumentError(name, `deps.${name} must be a function, got ${typeof fn}`);
      if (o[name] !== undefined) throw new ArgumentError(name, `is given twice: as options.${name} (a module spec) and as deps.${name} (a function)`);
      if (o.workers > 0) {
        throw new ArgumentError(name, `a function cannot reach the ${o.workers} worker threads: give options.${name} as a module spec { module, export, args }, or set workers: 0`);
      }
    }
    return o[name] === undefined ? null : resolveModuleSpec(name, o[name]);
  };
  return { collate: step('collate'), transform: step('transform') };
}

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
