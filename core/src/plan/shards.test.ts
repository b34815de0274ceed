import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { ShardTable } from './shards.ts';

test('global ids are positions in the concatenation of shards, empty shards skipped', () => {
  const t = new ShardTable([3, 0, 2, 0, 0, 1]);
  assert.equal(t.count, 6);
  assert.equal(t.numSamples, 6);
  const located = Array.from({ length: 6 }, (_, id) => t.locate(id));
  assert.deepEqual(located, [
    { shard: 0, offset: 0 },
    { shard: 0, offset: 1 },
    { shard: 0, offset: 2 },
    { shard: 2, offset: 0 },
    { shard: 2, offset: 1 },
    { shard: 5, offset: 0 },
  ]);
  assert.equal(t.start(2), 3);
  assert.equal(t.size(1), 0);
  assert.equal(t.start(6), 6);
});

test('shardOf agrees with a linear scan (fast-check)', () => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 6 }), { maxLength: 12 }), (sizes) => {
      const t = new ShardTable(sizes);
      const expected: number[] = [];
      sizes.forEach((size, s) => {
        for (let i = 0; i < size; i++) expected.push(s);
      });
      assert.equal(t.numSamples, expected.length);
      expected.forEach((s, id) => assert.equal(t.shardOf(id), s));
    }),
  );
});

test('uniform tables and ids beyond 2^32', () => {
  const t = ShardTable.uniform(100_000, 100_000);
  assert.equal(t.numSamples, 1e10);
  assert.equal(t.shardOf(9_999_999_999), 99_999);
  assert.deepEqual(t.locate(5_000_012_345), { shard: 50_000, offset: 12_345 });
  assert.equal(ShardTable.uniform(3, 10, 4).numSamples, 24);
});

test('bad sizes and ids are refused, naming the shard', () => {
  assert.throws(() => new ShardTable([1, -2]), (e: unknown) => e instanceof ArgumentError && e.argument === 'shardSizes[1]');
  assert.throws(() => new ShardTable([1.5]), /shardSizes\[0\]: must be an integer ≥ 0, got 1.5/);
  assert.throws(() => new ShardTable([Number.NaN]), /shardSizes\[0\]/);
  assert.throws(() => new ShardTable([2 ** 52, 2 ** 52]), /2\^53/);
  assert.throws(() => new ShardTable(undefined as unknown as number[]), /shardSizes/);
  assert.throws(() => ShardTable.uniform(-1, 5), /count/);
  const t = new ShardTable([2]);
  assert.throws(() => t.shardOf(2), IndexOutOfRangeError);
  assert.throws(() => t.shardOf(-1), IndexOutOfRangeError);
  assert.throws(() => new ShardTable([]).shardOf(0), IndexOutOfRangeError);
});
