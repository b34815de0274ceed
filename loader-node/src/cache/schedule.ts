/**
 * A rank's shard access schedule: the order in which it will read shards this epoch, taken from
 * the epoch plan (consecutive samples of one shard collapse into one access). The cache asks it
 * "when is this shard needed next?" — the future that plain LRU does not know.
 */
import type { EpochPlan } from '@shardline/core';
import { ArgumentError } from '@shardline/core';

const NEVER = Number.POSITIVE_INFINITY;

/**
 * The shard indices rank `rank` reads this epoch, in order, with consecutive repeats collapsed.
 * O(perRank) time, reading the plan in chunks; the result has one entry per shard switch.
 * @example
 * const order = shardAccessOrder(plan, 3); // e.g. Int32Array [5, 2, 5, 7, ...]
 */
export function shardAccessOrder(plan: EpochPlan, rank: number): Int32Array {
  if (!Number.isInteger(rank) || rank < 0 || rank >= plan.worldSize) {
    throw new ArgumentError('rank', `must be an integer in [0, ${plan.worldSize}), got ${String(rank)}`);
  }
  const chunk = new Float64Array(Math.min(65_536, Math.max(1, plan.perRank)));
  let out = new Int32Array(1024);
  let length = 0;
  let last = -1;
  for (let start = 0; start < plan.perRank; start += chunk.length) {
    const count = Math.min(chunk.length, plan.perRank - start);
    const ids = chunk.subarray(0, count);
    plan.fill(rank, start, ids);
    for (const id of ids) {
      const shard = plan.shards.locate(id).shard;
      if (shard === last) continue;
      last = shard;
      if (length === out.length) {
        const grown = new Int32Array(out.length * 2);
        grown.set(out);
        out = grown;
      }
      out[length++] = shard;
    }
  }
  return out.slice(0, length);
}

/**
 * The shards rank `rank` opens this epoch, each once, in order of first use: what the cache
 * fetches. (Within a shard-aware window a rank alternates between a few open shards; those
 * re-reads are served by the shards it holds, not by new fetches.)
 * @example
 * shardVisitOrder(plan, 0); // e.g. Int32Array [5, 2, 7, ...], no shard twice
 */
export function shardVisitOrder(plan: EpochPlan, rank: number): Int32Array {
  const order = shardAccessOrder(plan, rank);
  const seen = new Uint8Array(plan.shards.count);
  let length = 0;
  for (const shard of order) {
    if (seen[shard] === 1) continue;
    seen[shard] = 1;
    order[length++] = shard;
  }
  return order.slice(0, length);
}

/**
 * The shard leases rank `rank` takes this epoch, in order: for each batch, the distinct shards of
 * its samples in order of first use — one access per (batch, shard), as the loader's batch
 * builder reads them (it holds one shard at a time and gives it back before the next batch).
 * This is the schedule the cache follows: within a shard-aware window every batch touches the
 * window's shards again, and a schedule that listed each shard once would call them unneeded
 * after their first batch (the cache then evicted the window it was reading: a miss per lease).
 * O(perRank) time; the result has one entry per (batch, shard).
 * @example
 * shardBatchAccessOrder(plan, 0); // e.g. Int32Array [20, 35, 18, 11, 11, 35, 18, 20, ...]
 */
export function shardBatchAccessOrder(plan: EpochPlan, rank: number): Int32Array {
  return shardBatchAccesses(plan, rank).order;
}

/**
 * {@link shardBatchAccessOrder} and where each batch's accesses start in it: `batchStarts[k]` is
 * the position of batch k's first access (`batchStarts[numBatches]` the order's length). A lease
 * taken for batch k moves the cache's cursor to `batchStarts[k]` (AccessSchedule.advanceTo), so
 * batches built concurrently, whose leases interleave, keep the schedule where the oldest is.
 */
export function shardBatchAccesses(plan: EpochPlan, rank: number): { readonly order: Int32Array; readonly batchStarts: Int32Array } {
  if (!Number.isInteger(rank) || rank < 0 || rank >= plan.worldSize) {
    throw new ArgumentError('rank', `must be an integer in [0, ${plan.worldSize}), got ${String(rank)}`);
  }
  let ids = new Float64Array(0);
  let out = new Int32Array(1024);
  let length = 0;
  const seen = new Int32Array(plan.shards.count).fill(-1);
  const batchStarts = new Int32Array(plan.numBatches + 1);
  for (let k = 0; k < plan.numBatches; k++) {
    batchStarts[k] = length;
    const size = plan.batch(k).size;
    if (ids.length < size) ids = new Float64Array(size);
    plan.fillBatch(rank, k, ids);
    for (let i = 0; i < size; i++) {
      const shard = plan.shards.locate(ids[i]!).shard;
      if (seen[shard] === k) continue;
      seen[shard] = k;
      if (length === out.length) {
        const grown = new Int32Array(out.length * 2);
        grown.set(out);
        out = grown;
      }
      out[length++] = shard;
    }
  }
  batchStarts[plan.numBatches] = length;
  return { order: out.slice(0, length), batchStarts };
}

/**
 * The most bytes of distinct shards that any `span` consecutive batches of `accesses` lease: what
 * a cache must hold for those batches to be built at once without fetching a shard twice.
 * `shardBytes[s]` is shard s's stored size. O(accesses) with a sliding window.
 * @example
 * workingSetBytes(shardBatchAccesses(plan, rank), sizes, 5); // e.g. 8 shards' bytes where windows meet
 */
export function workingSetBytes(accesses: { readonly order: Int32Array; readonly batchStarts: Int32Array }, shardBytes: ArrayLike<number>, span: number): number {
  if (!Number.isSafeInteger(span) || span < 1) throw new ArgumentError('span', `must be an integer ≥ 1, got ${String(span)}`);
  const { order, batchStarts } = accesses;
  const batches = batchStarts.length - 1;
  const uses = new Map<number, number>();
  let bytes = 0;
  let most = 0;
  const add = (k: number, delta: 1 | -1): void => {
    for (let p = batchStarts[k]!; p < batchStarts[k + 1]!; p++) {
      const shard = order[p]!;
      const n = (uses.get(shard) ?? 0) + delta;
      if (n === 0) {
        uses.delete(shard);
        bytes -= shardBytes[shard]!;
      } else {
        if (n === 1 && delta === 1) bytes += shardBytes[shard]!;
        uses.set(shard, n);
      }
    }
  };
  for (let k = 0; k < batches; k++) {
    add(k, 1);
    if (k >= span) add(k - span, -1);
    most = Math.max(most, bytes);
  }
  return most;
}

/**
 * A cursor over an access order that answers "how many accesses from now is `item` needed next"
 * in O(log occurrences). Items are any values (shard keys or indices).
 */
export class AccessSchedule<T> {
  readonly length: number;
  readonly #order: readonly T[];
  readonly #positions = new Map<T, number[]>();
  #cursor = 0;

  constructor(order: Iterable<T>) {
    this.#order = [...order];
    this.length = this.#order.length;
    this.#order.forEach((item, position) => {
      let list = this.#positions.get(item);
      if (list === undefined) this.#positions.set(item, (list = []));
      list.push(position);
    });
  }

  /** Position of the next access (accesses before it are done). */
  get cursor(): number {
    return this.#cursor;
  }

  /** The item at `position` (undefined past the end). */
  at(position: number): T | undefined {
    return this.#order[position];
  }

  /** Accesses from the cursor until `item` is needed (0: it is the next one); Infinity when never again. */
  nextUse(item: T): number {
    const list = this.#positions.get(item);
    if (list === undefined) return NEVER;
    const index = lowerBound(list, this.#cursor);
    return index === list.length ? NEVER : list[index]! - this.#cursor;
  }

  /**
   * Records an access to `item`: the cursor moves past its next occurrence. An access the
   * schedule did not foresee (a retry, a read out of plan) leaves the cursor where it is.
   */
  advance(item: T): void {
    const distance = this.nextUse(item);
    if (distance !== NEVER) this.#cursor += distance + 1;
  }

  /**
   * Moves the cursor to `position` (never back): the accesses before it are done. For callers
   * that know where in the order an access belongs, e.g. the first access of its batch.
   */
  advanceTo(position: number): void {
    if (!Number.isSafeInteger(position) || position < 0) throw new ArgumentError('position', `must be an integer ≥ 0, got ${String(position)}`);
    this.#cursor = Math.max(this.#cursor, Math.min(position, this.length));
  }

  /** The distinct items of the next `count` accesses, in order of first use. */
  upcoming(count: number): T[] {
    const seen = new Set<T>();
    for (let p = this.#cursor; p < Math.min(this.length, this.#cursor + count); p++) seen.add(this.#order[p]!);
    return [...seen];
  }
}

function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
