/**
 * The shard table of a plan: shard sizes turned into prefix sums, so a global sample id (its
 * position in the concatenation of shards, ConcatDataset semantics) maps to (shard, offset) by
 * binary search. O(shards) memory, O(log shards) lookup.
 */
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';

/** Where a global sample id lives. */
export interface ShardLocation {
  shard: number;
  /** Position inside the shard. */
  offset: number;
}

/**
 * Shard sizes as prefix sums.
 *
 * @example
 * const t = new ShardTable([3, 0, 2]);
 * t.numSamples; // 5
 * t.locate(4); // { shard: 2, offset: 1 }
 */
export class ShardTable {
  /** Number of shards (empty shards included). */
  readonly count: number;
  /** Total number of samples N. */
  readonly numSamples: number;
  /** offsets[s] = first global id of shard s; offsets[count] = N. */
  readonly #offsets: Float64Array;

  /**
   * @param sizes the number of samples of each shard: integers ≥ 0 whose sum is at most
   *   2^53 − 1 (ids stay safe integers)
   */
  constructor(sizes: ArrayLike<number>) {
    if (sizes == null || typeof sizes.length !== 'number') {
      throw new ArgumentError('shardSizes', `must be an array of shard sizes, got ${String(sizes)}`);
    }
    const offsets = new Float64Array(sizes.length + 1);
    let total = 0;
    for (let s = 0; s < sizes.length; s++) {
      const size = sizes[s];
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
        throw new ArgumentError(`shardSizes[${s}]`, `must be an integer ≥ 0, got ${String(size)}`);
      }
      offsets[s] = total;
      total += size;
      if (total > Number.MAX_SAFE_INTEGER) {
        throw new ArgumentError('shardSizes', `must sum to at most 2^53 − 1, but shards 0..${s} already exceed it`);
      }
    }
    offsets[sizes.length] = total;
    this.count = sizes.length;
    this.numSamples = total;
    this.#offsets = offsets;
  }

  /** A table of `count` shards of `size` samples each (the last one may be given a different size). */
  static uniform(count: number, size: number, lastSize = size): ShardTable {
    if (!Number.isSafeInteger(count) || count < 0) throw new ArgumentError('count', `must be an integer ≥ 0, got ${count}`);
    const sizes = new Float64Array(count).fill(size);
    if (count > 0) sizes[count - 1] = lastSize;
    return new ShardTable(sizes);
  }

  /** First global id of shard `s` (s in [0, count]; `start(count)` is N). */
  start(s: number): number {
    return this.#offsets[s]!;
  }

  /** Number of samples of shard `s`. */
  size(s: number): number {
    return this.#offsets[s + 1]! - this.#offsets[s]!;
  }

  /** The shard holding global id `id` (empty shards never hold one). */
  shardOf(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.numSamples) {
      throw new IndexOutOfRangeError(id, this.numSamples, 'sample id');
    }
    return this.shardOfUnchecked(id);
  }

  /** `shardOf` without checks, for hot loops. */
  shardOfUnchecked(id: number): number {
    const o = this.#offsets;
    // Largest s in [0, count) with offsets[s] ≤ id: it is non-empty, since an empty shard s has
    // offsets[s + 1] = offsets[s] ≤ id too.
    let lo = 0;
    let hi = this.count - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (o[mid]! <= id) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** (shard, offset) of global id `id`. */
  locate(id: number): ShardLocation {
    const shard = this.shardOf(id);
    return { shard, offset: id - this.#offsets[shard]! };
  }
}
