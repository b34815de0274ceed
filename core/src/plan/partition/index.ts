/** The partition registry: each mode name maps to a pure function of (order, W, costs, seed, epoch). */
import { distributedPartition } from './distributed.ts';
import { loadBalancedPartition } from './load-balanced.ts';
import type { Partition } from '../types.ts';

export const PartitionMode = {
  Distributed: 'distributed',
  LoadBalanced: 'load-balanced',
} as const;
export type PartitionMode = (typeof PartitionMode)[keyof typeof PartitionMode];

/** Partition families by name. */
export const partitions: Readonly<Record<PartitionMode, Partition>> = Object.freeze({
  distributed: distributedPartition,
  'load-balanced': loadBalancedPartition,
});

export { distributedPartition, loadBalancedPartition };
