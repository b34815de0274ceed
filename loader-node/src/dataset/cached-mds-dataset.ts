/**
 * An MDS dataset read from any ShardSource through the disk cache: index.json comes straight
 * from the store (validated by core's parser), shard files through ShardCache, which verifies
 * each one on arrival (size, every hash the index lists, the shard layout) so a corrupt copy is
 * fetched again and, after repeated failures, quarantined by name. `followPlan` hands the cache
 * this rank's shard order for the epoch, so eviction and prefetch follow the plan.
 */
import { readFile } from 'node:fs/promises';
import {
  MAX_MDS_INDEX_BYTES,
  MDSDataset,
  MDS_INDEX_BASENAME,
  loadMDSShard,
  mdsStoredFile,
  parseMDSIndex,
  type EpochPlan,
  type MDSFileReader,
  type MDSShardInfo,
} from '@shardline/core';
import { ShardCache, type CacheEvent } from '../cache/shard-cache.ts';
import { shardBatchAccesses, workingSetBytes } from '../cache/schedule.ts';
import type { ShardSource } from '../store/shard-source.ts';

/** Options of {@link openCachedMDSDataset}. */
export interface CachedMDSDatasetOptions {
  source: ShardSource;
  /** The cache folder, and its byte budget (at least twice the largest stored shard file). */
  cacheDir: string;
  budgetBytes: number;
  /** Verify every hash the index lists when a shard arrives (default true). */
  verifyHashes?: boolean;
  maxFailures?: number;
  prefetchHorizon?: number;
  prefetchConcurrency?: number;
  onEvent?: (event: CacheEvent) => void;
}

/** A dataset over a cached store; `close()` closes the cache (its files stay for the next open). */
export interface CachedMDSDataset {
  readonly dataset: MDSDataset;
  readonly cache: ShardCache;
  /** The cache key (stored file) of each shard, in shard order. */
  readonly shardKeys: readonly string[];
  /**
   * Points eviction and prefetch at this rank's shard leases in `plan`, batch by batch (call
   * once per epoch).
   */
  followPlan(plan: EpochPlan, rank: number): void;
  /**
   * Where batch `step` of `epoch` starts in the schedule that followPlan set: pass it as the
   * cache acquire's `from` for a lease of that batch. Undefined for another epoch than
   * followPlan's (or before it).
   */
  scheduleStart(epoch: number, step: number): number | undefined;
  /**
   * The most bytes of shards that `span` consecutive batches of the plan followPlan set lease
   * (0 before followPlan): a cache smaller than this refetches shards while those batches are
   * built at once.
   */
  workingSetBytes(span: number): number;
  close(): Promise<void>;
}

/**
 * Opens the dataset at `source`'s prefix through a disk cache.
 * @throws FormatError naming the field when index.json is invalid (unsafe basenames included);
 *   CacheBudgetError when the budget is below twice the largest shard.
 * @example
 * const { dataset, followPlan } = await openCachedMDSDataset({ source: new S3Source(opts), cacheDir, budgetBytes: 8 << 30 });
 * followPlan(plan, rank);
 * const sample = await dataset.get(plan.batchIds(rank, 0)[0]);
 */
export async function openCachedMDSDataset(options: CachedMDSDatasetOptions): Promise<CachedMDSDataset> {
  const { source } = options;
  const index = parseMDSIndex(await source.read(MDS_INDEX_BASENAME, { maxBytes: MAX_MDS_INDEX_BYTES }));
  const infoByKey = new Map<string, MDSShardInfo>();
  const shardKeys = index.shards.map((info) => {
    const key = mdsStoredFile(info).basename;
    infoByKey.set(key, info);
    return key;
  });
  const verifyHashes = options.verifyHashes ?? true;
  const cache = await ShardCache.open({
    dir: options.cacheDir,
    budgetBytes: options.budgetBytes,
    source,
    shards: index.shards.map((info) => ({ key: mdsStoredFile(info).basename, size: mdsStoredFile(info).bytes })),
    // The whole check on arrival: stored size and hashes, decompression, raw size and hashes, layout.
    verify: async (shard, file) => {
      await loadMDSShard(infoByKey.get(shard.key)!, await readFile(file), { verifyHashes, label: `shard ${JSON.stringify(shard.key)}` });
    },
    maxFailures: options.maxFailures,
    prefetchHorizon: options.prefetchHorizon,
    prefetchConcurrency: options.prefetchConcurrency,
    onEvent: options.onEvent,
  });
  // index.json from the store; shard files from the cache, held only while they are read.
  const files: MDSFileReader = {
    async read(key, readOptions = {}) {
      if (!infoByKey.has(key)) return source.read(key, readOptions);
      const held = await cache.acquire(key, { signal: readOptions.signal });
      try {
        return await readFile(held.file);
      } finally {
        held.release();
      }
    },
  };
  // Shards were verified on arrival; MDSDataset need not hash them again.
  const dataset = await MDSDataset.open(files, { verifyHashes: false });
  let followed: { readonly epoch: number; readonly accesses: ReturnType<typeof shardBatchAccesses> } | undefined;
  const shardBytes = index.shards.map((info) => mdsStoredFile(info).bytes);
  return {
    dataset,
    cache,
    shardKeys,
    followPlan(plan, rank) {
      const accesses = shardBatchAccesses(plan, rank);
      cache.setSchedule(Array.from(accesses.order, (shard) => shardKeys[shard]!));
      followed = { epoch: plan.epoch, accesses };
    },
    workingSetBytes(span) {
      return followed === undefined ? 0 : workingSetBytes(followed.accesses, shardBytes, span);
    },
    scheduleStart(epoch, step) {
      if (followed === undefined || followed.epoch !== epoch || !Number.isInteger(step) || step < 0) return undefined;
      const starts = followed.accesses.batchStarts;
      return starts[Math.min(step, starts.length - 1)];
    },
    close: () => cache.close(),
  };
}
