/**
 * @shardline/loader-node: the per-rank loader — object stores (local directory, S3), the
 * plan-aware disk cache, and (later) batch delivery.
 */
export {};
