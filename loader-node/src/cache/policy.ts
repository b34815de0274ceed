/**
 * Eviction policies of the shard cache, and a simulator that replays an access sequence against
 * them (for tests and the `cache` benchmark):
 * - `plan-aware`: what ShardCache does. It knows the plans of the current and the next epoch (a
 *   plan is a pure function of seed and epoch): shards with no use left this epoch go first —
 *   those needed latest next epoch first — otherwise the one needed farthest in the future.
 * - `lru`: plain least-recently-used.
 * - `belady`: the clairvoyant optimum for equal-size items (evict the one needed farthest in the
 *   future, across all epochs): the yardstick, not something a loader can know.
 */

export const EvictionPolicy = { PlanAware: 'plan-aware', Lru: 'lru', Belady: 'belady' } as const;
export type EvictionPolicy = (typeof EvictionPolicy)[keyof typeof EvictionPolicy];

/** One epoch's shard accesses, in order (shard indices). */
export type EpochAccesses = ArrayLike<number>;

/** What {@link simulateCache} measured. */
export interface SimulationResult {
  readonly accesses: number;
  readonly hits: number;
  readonly hitRatio: number;
  readonly evictions: number;
  /** The most bytes held at once (never above the budget). */
  readonly peakBytes: number;
}

/**
 * Replays `epochs` (each epoch's shard access order) against a cache of `budgetBytes` holding
 * shards of `shardBytes[i]` bytes, with demand fetching (no prefetch), and counts hits.
 * @example
 * simulateCache('plan-aware', [order0, order1, order2], sizes, 0.3 * total).hitRatio;
 */
export function simulateCache(
  policy: EvictionPolicy,
  epochs: readonly EpochAccesses[],
  shardBytes: ArrayLike<number>,
  budgetBytes: number,
): SimulationResult {
  let largest = 0;
  for (let i = 0; i < shardBytes.length; i++) largest = Math.max(largest, shardBytes[i]!);
  if (!(budgetBytes >= largest)) throw new RangeError(`budgetBytes ${budgetBytes} is smaller than the largest shard ${largest}`);
  // Flatten, and for each access the position of the same shard's next access: within its epoch
  // (what the plan-aware policy may know) and anywhere later (Belady).
  const total = epochs.reduce((n, e) => n + e.length, 0);
  const shardAt = new Int32Array(total);
  // For each access: where the epoch after its own ends (the plan-aware policy's horizon).
  const horizon = new Float64Array(total);
  let p = 0;
  for (let e = 0; e < epochs.length; e++) {
    const epoch = epochs[e]!;
    const end = p + epoch.length + (epochs[e + 1]?.length ?? 0);
    for (let i = 0; i < epoch.length; i++, p++) {
      shardAt[p] = epoch[i]!;
      horizon[p] = end;
    }
  }
  const nextAny = new Float64Array(total);
  const seenAt = new Map<number, number>();
  for (let i = total - 1; i >= 0; i--) {
    nextAny[i] = seenAt.get(shardAt[i]!) ?? Number.POSITIVE_INFINITY;
    seenAt.set(shardAt[i]!, i);
  }

  // Cached shard → position of its last access. Its next access is nextAny[last]; the plan-aware
  // policy only sees it when it falls in this epoch or the next.
  const lastUse = new Map<number, number>();
  let used = 0;
  let hits = 0;
  let evictions = 0;
  let peak = 0;
  for (let i = 0; i < total; i++) {
    const shard = shardAt[i]!;
    if (lastUse.has(shard)) {
      hits++;
    } else {
      const size = shardBytes[shard]!;
      while (used + size > budgetBytes) {
        const victim = chooseVictim(policy, lastUse, (last) => {
          const next = nextAny[last]!;
          return policy === 'plan-aware' && next >= horizon[i]! ? Number.POSITIVE_INFINITY : next;
        });
        used -= shardBytes[victim]!;
        lastUse.delete(victim);
        evictions++;
      }
      used += size;
      peak = Math.max(peak, used);
    }
    lastUse.set(shard, i);
  }
  return { accesses: total, hits, hitRatio: total === 0 ? 1 : hits / total, evictions, peakBytes: peak };
}

// The cache's victim: the least recently used, or the one needed farthest ahead (ties, and shards
// never needed again, broken by least recent use), as the policy says.
function chooseVictim(policy: EvictionPolicy, lastUse: Map<number, number>, nextOf: (last: number) => number): number {
  let victim = -1;
  let bestNext = -1;
  let bestLast = Number.POSITIVE_INFINITY;
  for (const [shard, last] of lastUse) {
    const next = policy === 'lru' ? 0 : nextOf(last);
    if (next > bestNext || (next === bestNext && last < bestLast)) {
      victim = shard;
      bestNext = next;
      bestLast = last;
    }
  }
  if (victim < 0) throw new Error('nothing to evict');
  return victim;
}
