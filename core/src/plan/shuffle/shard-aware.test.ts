import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EpochPlan } from '../epoch-plan.ts';
import { ShardTable } from '../shards.ts';
import { shardAwareShuffle } from './shard-aware.ts';

function rankIds(plan: EpochPlan, rank: number): number[] {
  return [...plan.ids(rank)];
}

test('the order is a permutation of all samples, and a function of (seed, epoch)', () => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 40 }), { maxLength: 10 }), fc.integer({ min: 1, max: 5 }), fc.nat(), (sizes, k, seed) => {
      const shards = new ShardTable(sizes);
      const order = shardAwareShuffle({ seed, epoch: 1, shards, shardWindow: k });
      const ids = Array.from({ length: shards.numSamples }, (_, p) => order.at(p));
      assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: shards.numSamples }, (_, i) => i));
      const bulk = new Float64Array(shards.numSamples);
      shardAwareShuffle({ seed, epoch: 1, shards, shardWindow: k }).fill(0, bulk, 0, bulk.length);
      assert.deepEqual(Array.from(bulk), ids);
    }),
  );
});

test('shards move as a whole: each window is k whole shards, in a new order each epoch', () => {
  const shards = new ShardTable(new Array(12).fill(10));
  const firstShards = (epoch: number) => {
    const order = shardAwareShuffle({ seed: 4, epoch, shards, shardWindow: 3 });
    return new Set(Array.from({ length: 30 }, (_, p) => shards.shardOf(order.at(p))));
  };
  assert.equal(firstShards(0).size, 3);
  const windows = [0, 1, 2, 3, 4].map((e) => [...firstShards(e)].sort().join());
  assert.ok(new Set(windows).size > 1, 'the first window holds the same shards every epoch');
});

test('shard-aware: at every position at most k shards are open (started, not finished)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 16 }),
      fc.integer({ min: 1, max: 4 }),
      fc.nat(),
      (sizes, k, seed) => {
        const plan = new EpochPlan({ shardSizes: sizes, worldSize: 1, seed, shuffle: 'shard-aware', shardWindow: k });
        assert.ok(maxOpenShards(plan) <= k);
      },
    ),
  );
  // The property can fail: a global shuffle of the same data keeps far more shards open.
  const sizes = new Array(16).fill(30);
  const global = new EpochPlan({ shardSizes: sizes, worldSize: 1, seed: 1, shuffle: 'global' });
  assert.ok(maxOpenShards(global) > 8);
  const aware = new EpochPlan({ shardSizes: sizes, worldSize: 1, seed: 1, shuffle: 'shard-aware', shardWindow: 2 });
  assert.equal(maxOpenShards(aware), 2);
});

function maxOpenShards(plan: EpochPlan): number {
  const shardAt = rankIds(plan, 0).map((id) => plan.shards.shardOf(id));
  const last = new Map<number, number>();
  shardAt.forEach((s, p) => last.set(s, p));
  const open = new Set<number>();
  let most = 0;
  shardAt.forEach((s, p) => {
    open.add(s);
    most = Math.max(most, open.size);
    if (last.get(s) === p) open.delete(s);
  });
  return most;
}
