/**
 * The contracts between the planner's algorithm families: a shuffle turns (seed, epoch, shards)
 * into a `SampleOrder` (the epoch's sequence of all N sample ids), a partition turns that order
 * into `RankSequences` (each rank's equal-length sequence). Both are pure functions of their
 * inputs, looked up by name in a registry, so every process computes the same plan.
 */
import type { ShardTable } from './shards.ts';
import type { CostTable } from './costs.ts';

/** The epoch's order of all N samples: a bijection from positions [0, N) to global ids [0, N). */
export interface SampleOrder {
  /** N. */
  readonly size: number;
  /** The global id at position `position` (trusted: an integer in [0, size)). */
  at(position: number): number;
  /**
   * Writes the ids of positions [start, start + count) to out[offset, offset + count).
   * Trusted arguments: the range lies inside [0, size) and inside `out`.
   */
  fill(start: number, out: Float64Array, offset: number, count: number): void;
}

/** What a shuffle is computed from. */
export interface ShuffleInput {
  readonly seed: number;
  readonly epoch: number;
  readonly shards: ShardTable;
  /** Shards per window of the shard-aware shuffle (k). */
  readonly shardWindow: number;
}

/** A shuffle family: a pure function of its input. */
export type Shuffle = (input: ShuffleInput) => SampleOrder;

/** Each rank's sequence of `perRank` ids. */
export interface RankSequences {
  /** L: every rank has exactly this many positions. */
  readonly perRank: number;
  /** The id at position `position` of rank `rank` (trusted arguments). */
  at(rank: number, position: number): number;
  /** Writes rank `rank`'s ids at positions [start, start + count) to out[offset…] (trusted). */
  fill(rank: number, start: number, out: Float64Array, offset: number, count: number): void;
  /** Partitions that balance cost report their own guaranteed bound. */
  costReport?(): CostReport;
}

/** Per-rank cost totals of one epoch (padding duplicates count for the rank that gets them). */
export interface CostReport {
  /** Total cost of each rank's L samples. */
  readonly perRank: Float64Array;
  /** Mean of `perRank`. */
  readonly mean: number;
  readonly min: number;
  readonly max: number;
  /** max over ranks of |perRank[r] − mean|. */
  readonly maxDeviation: number;
  /** maxDeviation / mean (0 when the mean is 0). */
  readonly imbalance: number;
  /**
   * A guaranteed upper bound on maxDeviation for this plan (load-balanced partition: the sum
   * over balancing windows of each window's cost range), or null when the partition gives none.
   */
  readonly bound: number | null;
}

/** What a partition is computed from. */
export interface PartitionInput {
  readonly seed: number;
  readonly epoch: number;
  readonly order: SampleOrder;
  readonly worldSize: number;
  /** Drop the tail so N divides evenly (else pad by wrapping around to the start). */
  readonly dropLast: boolean;
  /** Per-sample costs; required by the load-balanced partition. */
  readonly costs: CostTable | undefined;
  /** Positions per rank in one balancing window (R) of the load-balanced partition. */
  readonly balanceWindow: number;
}

/** A partition family: a pure function of its input. */
export type Partition = (input: PartitionInput) => RankSequences;

/** L, the per-rank count: ⌈N/W⌉ with padding, ⌊N/W⌋ with dropLast. */
export function perRankCount(numSamples: number, worldSize: number, dropLast: boolean): number {
  return dropLast ? Math.floor(numSamples / worldSize) : Math.ceil(numSamples / worldSize);
}

/**
 * Writes the order's ids at padded positions [start, start + count): position q ≥ N wraps to
 * q mod N (PyTorch's padding: the first samples again). Trusted arguments; N > 0 when count > 0.
 */
export function fillWrapped(order: SampleOrder, start: number, out: Float64Array, offset: number, count: number): void {
  const n = order.size;
  let q = start % n;
  let done = 0;
  while (done < count) {
    const run = Math.min(count - done, n - q);
    order.fill(q, out, offset + done, run);
    done += run;
    q = 0;
  }
}
