/**
 * The cache's schedules from an epoch plan: the per-batch lease order matches what a batch
 * builder takes (each batch's distinct shards in order of first use), with each batch's start;
 * the cursor moves forward only.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ArgumentError, EpochPlan } from '@shardline/core';
import { AccessSchedule, shardBatchAccesses, shardVisitOrder, workingSetBytes } from './schedule.ts';

test('property: shardBatchAccesses lists each batch’s distinct shards in order of first use, and where each batch starts', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 17 }),
      fc.constantFrom('none', 'global', 'shard-aware'),
      fc.nat(1000),
      (shardSizes, worldSize, batchSize, shuffle, seed) => {
        const plan = new EpochPlan({ shardSizes, worldSize, batchSize, shuffle: shuffle as 'none', seed });
        const shardOf = (id: number): number => plan.shards.locate(id).shard;
        for (let rank = 0; rank < worldSize; rank++) {
          const { order, batchStarts } = shardBatchAccesses(plan, rank);
          const expected: number[] = [];
          const starts: number[] = [];
          for (let k = 0; k < plan.numBatches; k++) {
            starts.push(expected.length);
            expected.push(...new Set(plan.batchIds(rank, k).map(shardOf)));
          }
          starts.push(expected.length);
          assert.deepEqual(Array.from(order), expected);
          assert.deepEqual(Array.from(batchStarts), starts);
          // Every shard the rank visits is in it, and nothing else.
          assert.deepEqual(new Set(order), new Set(shardVisitOrder(plan, rank)));
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('in a shard-aware window every batch leases the window’s shards again, so none of them looks unneeded after its first batch', () => {
  const plan = new EpochPlan({ shardSizes: Array(12).fill(40), worldSize: 1, batchSize: 8, shuffle: 'shard-aware', seed: 3 });
  const { order } = shardBatchAccesses(plan, 0);
  const schedule = new AccessSchedule(Array.from(order));
  const first = order[0]!;
  schedule.advance(first);
  assert.ok(schedule.nextUse(first) < 8, `the first shard is needed again within two batches (next use ${schedule.nextUse(first)})`);
  const visits = new AccessSchedule(Array.from(shardVisitOrder(plan, 0)));
  visits.advance(first);
  assert.equal(visits.nextUse(first), Number.POSITIVE_INFINITY, 'the once-per-shard visit order calls it unneeded: what the cache used to evict first');
});

test('property: workingSetBytes is the most bytes of distinct shards any span of consecutive batches leases', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 10 }),
      fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 1, max: 5 }),
      fc.constantFrom('none', 'global', 'shard-aware'),
      (shardSizes, batchSize, span, shuffle) => {
        const plan = new EpochPlan({ shardSizes, worldSize: 1, batchSize, shuffle: shuffle as 'none', seed: 5 });
        const bytes = shardSizes.map((n, s) => 1000 * n + s);
        const shardOf = (id: number): number => plan.shards.locate(id).shard;
        let most = 0;
        for (let k = 0; k < plan.numBatches; k++) {
          const shards = new Set<number>();
          for (let j = Math.max(0, k - span + 1); j <= k; j++) for (const id of plan.batchIds(0, j)) shards.add(shardOf(id));
          most = Math.max(most, [...shards].reduce((n, s) => n + bytes[s]!, 0));
        }
        assert.equal(workingSetBytes(shardBatchAccesses(plan, 0), bytes, span), most);
      },
    ),
    { numRuns: 200 },
  );
  assert.throws(() => workingSetBytes({ order: new Int32Array(0), batchStarts: new Int32Array(1) }, [], 0), ArgumentError);
});

test('advanceTo moves the cursor forward only, up to the end, and refuses a bad position', () => {
  const schedule = new AccessSchedule(['a', 'b', 'c', 'a', 'b']);
  schedule.advanceTo(2);
  assert.equal(schedule.cursor, 2);
  assert.equal(schedule.nextUse('a'), 1);
  assert.equal(schedule.nextUse('b'), 2);
  schedule.advanceTo(1);
  assert.equal(schedule.cursor, 2, 'never back');
  schedule.advance('b');
  assert.equal(schedule.cursor, 5);
  schedule.advanceTo(99);
  assert.equal(schedule.cursor, 5, 'clamped to the end');
  assert.equal(schedule.nextUse('a'), Number.POSITIVE_INFINITY);
  assert.throws(() => schedule.advanceTo(-1), ArgumentError);
  assert.throws(() => schedule.advanceTo(1.5), ArgumentError);
});
