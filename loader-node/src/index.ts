/**
 * @shardline/loader-node: the per-rank loader — object stores (local directory, S3) behind the
 * ShardSource interface, and the plan-aware disk cache of shards.
 */
export type { ObjectInfo, DownloadOptions, ShardSource } from './store/shard-source.ts';
export { resolveKey, MAX_KEY_BYTES } from './store/key.ts';
export { PARTIAL_SUFFIX } from './store/partial-file.ts';
export { LocalDirectorySource } from './store/local-directory-source.ts';
export { S3Source, s3SourceDefaults } from './store/s3-source.ts';
export type {
  S3SourceOptions,
  ResolvedS3SourceOptions,
  S3Credentials,
  S3CredentialsProvider,
  S3ConnectionStats,
  S3RequestEvent,
} from './store/s3-source.ts';
export {
  s3SourceOptionsFrom,
  readS3Secret,
  mountedSecretCredentials,
  parseS3Url,
  S3_SECRET_FILES,
  S3_ENV_VARIABLES,
} from './store/s3-config.ts';
export type { S3ConfigInput } from './store/s3-config.ts';
export { ShardCache } from './cache/shard-cache.ts';
export type { CacheEvent, CacheStats, CachedShard, ShardCacheOptions, ShardSpec } from './cache/shard-cache.ts';
export { AccessSchedule, shardAccessOrder, shardBatchAccessOrder, shardBatchAccesses, shardVisitOrder, workingSetBytes } from './cache/schedule.ts';
export { EvictionPolicy, simulateCache } from './cache/policy.ts';
export type { EpochAccesses, SimulationResult } from './cache/policy.ts';
export * from './errors.ts';
export { openCachedMDSDataset } from './dataset/cached-mds-dataset.ts';
export type { CachedMDSDataset, CachedMDSDatasetOptions } from './dataset/cached-mds-dataset.ts';
export * from './delivery/index.ts';

export * from './loader/index.ts';
export { LoaderMetrics, startMetricsServer } from './metrics.ts';
export type { LoaderMetricsOptions, MetricsServer, MetricsServerOptions, ReadinessChecks, SenderWindow, StageDepths } from './metrics.ts';
