/**
 * The epoch planner: seeded O(1)-memory permutations, shuffle and partition families behind
 * string-keyed registries, batch schedules, and the composed `EpochPlan`.
 */
export { EpochPlan } from './epoch-plan.ts';
export type { EpochPlanOptions, PlannedBatch } from './epoch-plan.ts';
export { SeededPermutation, MAX_PERMUTATION_SIZE } from './permutation.ts';
export { ShardTable } from './shards.ts';
export type { ShardLocation } from './shards.ts';
export { CostTable } from './costs.ts';
export { BatchLayout, normalizeSchedule } from './batches.ts';
export type { BatchRange, BatchSizeSchedule, BatchSizeStep } from './batches.ts';
export { ShuffleMode, shuffles, noShuffle, globalShuffle, shardAwareShuffle } from './shuffle/index.ts';
export { PartitionMode, partitions, distributedPartition, loadBalancedPartition } from './partition/index.ts';
export { summarizeCosts } from './partition/load-balanced.ts';
export { perRankCount } from './types.ts';
export type {
  CostReport,
  Partition,
  PartitionInput,
  RankSequences,
  SampleOrder,
  Shuffle,
  ShuffleInput,
} from './types.ts';
