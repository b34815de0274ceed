import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import { DistributedSampler } from './distributed.ts';
import type { DistributedSamplerOptions } from './distributed.ts';

const ranksOf = (n: number, o: Omit<DistributedSamplerOptions, 'rank'>) =>
  Array.from({ length: o.numReplicas }, (_, rank) => [...new DistributedSampler(n, { ...o, rank })]);

test('PyTorch semantics without shuffle: contiguous slices, padded by wrapping or dropped', () => {
  assert.deepEqual(ranksOf(10, { numReplicas: 3, shuffle: false }), [
    [0, 1, 2, 3],
    [4, 5, 6, 7],
    [8, 9, 0, 1],
  ]);
  assert.deepEqual(ranksOf(10, { numReplicas: 3, shuffle: false, dropLast: true }), [
    [0, 1, 2],
    [3, 4, 5],
    [6, 7, 8],
  ]);
  // More ranks than samples: padding wraps around as often as needed.
  assert.deepEqual(ranksOf(2, { numReplicas: 5, shuffle: false }), [[0], [1], [0], [1], [0]]);
  assert.deepEqual(ranksOf(2, { numReplicas: 5, shuffle: false, dropLast: true }), [[], [], [], [], []]);
});

test('shuffled: equal lengths, each sample once (plus declared padding), a function of (seed, epoch)', () => {
  fc.assert(
    fc.property(
      fc.nat({ max: 200 }),
      fc.integer({ min: 1, max: 9 }),
      fc.boolean(),
      fc.nat(),
      fc.nat({ max: 100 }),
      (n, numReplicas, dropLast, seed, epoch) => {
        const ranks = ranksOf(n, { numReplicas, dropLast, seed, epoch });
        const L = dropLast ? Math.floor(n / numReplicas) : Math.ceil(n / numReplicas);
        for (const r of ranks) assert.equal(r.length, L);
        const all = ranks.flat();
        const distinct = new Set(all);
        if (dropLast) assert.equal(distinct.size, all.length);
        else assert.equal(distinct.size, n);
        assert.deepEqual(ranksOf(n, { numReplicas, dropLast, seed, epoch }), ranks);
      },
    ),
    { numRuns: 80 },
  );
});

test('setEpoch selects the epoch; each pass advances it; passes of different epochs differ', () => {
  const s = new DistributedSampler({ length: 100 }, { numReplicas: 4, rank: 1, seed: 3 });
  assert.equal(s.length, 25);
  assert.equal(s.epoch, 0);
  const e0 = [...s];
  assert.equal(s.epoch, 1);
  const e1 = [...s];
  assert.notDeepEqual(e0, e1);
  s.setEpoch(0);
  assert.deepEqual([...s], e0);
  assert.deepEqual([...new DistributedSampler(100, { numReplicas: 4, rank: 1, seed: 3, epoch: 1 })], e1);
  // The sampler's plan is the planner's view of the current epoch.
  s.setEpoch(7);
  assert.equal(s.plan.epoch, 7);
  assert.deepEqual([...s.plan.ids(1)], [...s]);
});

test('a 10^10-sample dataset needs no index: the first ids of rank 700 come at once', () => {
  const s = new DistributedSampler(1e10, { numReplicas: 1024, rank: 700, seed: 1 });
  assert.equal(s.length, 9_765_625);
  const it = s[Symbol.iterator]();
  for (let i = 0; i < 1000; i++) {
    const v = it.next().value as number;
    assert.ok(Number.isSafeInteger(v) && v >= 0 && v < 1e10);
  }
});

test('bad arguments are refused with the argument named', () => {
  const argument = (name: string) => (e: unknown) => e instanceof ArgumentError && e.argument === name;
  assert.throws(() => new DistributedSampler(10, { numReplicas: 0, rank: 0 }), argument('numReplicas'));
  assert.throws(() => new DistributedSampler(10, { numReplicas: 2, rank: 2 }), /rank: must be in \[0, 1\], got 2/);
  assert.throws(() => new DistributedSampler(10, { numReplicas: 2, rank: -1 }), argument('rank'));
  assert.throws(() => new DistributedSampler(10, { numReplicas: 2, rank: 0, seed: -5 }), argument('seed'));
  assert.throws(() => new DistributedSampler(10, { numReplicas: 2, rank: 0, epoch: 0.5 }), argument('epoch'));
  assert.throws(() => new DistributedSampler(10, { numReplicas: 2, rank: 0, shuffle: 'yes' as never }), argument('shuffle'));
  assert.throws(() => new DistributedSampler(10, { numReplicas: 2, rank: 0, dropLast: 1 as never }), argument('dropLast'));
  assert.throws(() => new DistributedSampler(-3, { numReplicas: 2, rank: 0 }), argument('source.length'));
  assert.throws(() => new DistributedSampler(10, undefined as never), argument('options'));
  const s = new DistributedSampler(10, { numReplicas: 2, rank: 0 });
  assert.throws(() => s.setEpoch(-1), argument('epoch'));
});
