/**
 * Partition `distributed` (PyTorch DistributedSampler semantics): every rank gets L = ⌈N/W⌉
 * positions, the missing W·L − N padded by wrapping around to the start of the order, or
 * L = ⌊N/W⌋ with dropLast (the tail is dropped). Rank r owns the CONTIGUOUS range
 * [r·L, (r + 1)·L) of the order rather than PyTorch's stride r, r + W, …: with the shard-aware
 * shuffle a contiguous range stays inside few shard windows, so each loader reads few shards.
 */
import { fillWrapped, perRankCount } from '../types.ts';
import type { Partition, RankSequences, SampleOrder } from '../types.ts';

class ContiguousRanks implements RankSequences {
  readonly perRank: number;
  readonly #order: SampleOrder;

  constructor(order: SampleOrder, perRank: number) {
    this.perRank = perRank;
    this.#order = order;
  }

  at(rank: number, position: number): number {
    return this.#order.at((rank * this.perRank + position) % this.#order.size);
  }

  fill(rank: number, start: number, out: Float64Array, offset: number, count: number): void {
    if (count > 0) fillWrapped(this.#order, rank * this.perRank + start, out, offset, count);
  }
}

/** Equal contiguous ranges of the order, padded or dropped to a multiple of W. */
export const distributedPartition: Partition = ({ order, worldSize, dropLast }) =>
  new ContiguousRanks(order, perRankCount(order.size, worldSize, dropLast));
