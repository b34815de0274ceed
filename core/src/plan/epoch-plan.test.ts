import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { EpochPlan } from './epoch-plan.ts';
import type { EpochPlanOptions } from './epoch-plan.ts';
import type { PartitionMode } from './partition/index.ts';
import type { ShuffleMode } from './shuffle/index.ts';

const SHUFFLES: ShuffleMode[] = ['none', 'global', 'shard-aware'];
const PARTITIONS: PartitionMode[] = ['distributed', 'load-balanced'];

/** Deterministic skewed-ish integer costs for a dataset of n samples. */
const costsOf = (n: number) => Array.from({ length: n }, (_, i) => 1 + ((i * 37) % 11) * ((i * 13) % 7));

const optionsArb: fc.Arbitrary<EpochPlanOptions> = fc
  .record({
    shardSizes: fc.array(fc.nat({ max: 12 }), { maxLength: 6 }),
    worldSize: fc.integer({ min: 1, max: 5 }),
    seed: fc.nat(),
    epoch: fc.nat({ max: 1000 }),
    shuffle: fc.constantFrom(...SHUFFLES),
    partition: fc.constantFrom(...PARTITIONS),
    dropLast: fc.boolean(),
    shardWindow: fc.integer({ min: 1, max: 3 }),
    balanceWindow: fc.integer({ min: 1, max: 4 }),
    batchSize: fc.integer({ min: 1, max: 5 }),
    dropLastBatch: fc.boolean(),
  })
  .map((o) => ({ ...o, costs: costsOf(o.shardSizes.reduce((a, b) => a + b, 0)) }));

function rankIds(plan: EpochPlan, rank: number): number[] {
  return [...plan.ids(rank)];
}

const countBy = (xs: number[]) => {
  const m = new Map<number, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
};

test('coverage: every sample once per epoch across ranks, padding exactly as declared', () => {
  fc.assert(
    fc.property(optionsArb, (o) => {
      const plan = new EpochPlan(o);
      const N = plan.numSamples;
      const W = plan.worldSize;
      const L = o.dropLast ? Math.floor(N / W) : Math.ceil(N / W);
      assert.equal(plan.perRank, L);
      // The order is a permutation of [0, N).
      const order = Array.from({ length: N }, (_, p) => plan.order.at(p));
      assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i));
      // The ranks together hold order positions [0, W·L), positions ≥ N wrapping to the start.
      const all = Array.from({ length: W }, (_, r) => rankIds(plan, r)).flat();
      const expected = Array.from({ length: W * L }, (_, q) => order[q % N]!);
      assert.deepEqual(countBy(all), countBy(expected));
      const counts = countBy(all);
      if (o.dropLast) {
        assert.equal(counts.size, W * L, 'with dropLast no sample repeats');
      } else {
        assert.equal(counts.size, N, 'without dropLast every sample is planned');
        assert.equal(all.length - N, W * L - N, 'padding is W·L − N');
      }
    }),
    { numRuns: 150 },
  );
});

test('every rank has the same length and the same batches, and batches tile its sequence', () => {
  fc.assert(
    fc.property(optionsArb, (o) => {
      const plan = new EpochPlan(o);
      for (let r = 0; r < plan.worldSize; r++) {
        const ids = rankIds(plan, r);
        assert.equal(ids.length, plan.perRank);
        const batches = [...plan.batches(r)];
        assert.equal(batches.length, plan.numBatches);
        const flat = batches.flatMap((b) => b.ids);
        assert.deepEqual(flat, ids.slice(0, flat.length));
        if (!o.dropLastBatch) assert.equal(flat.length, ids.length);
        for (const b of batches) {
          assert.deepEqual(plan.batchIds(r, b.index), b.ids);
          assert.ok(b.size === o.batchSize || (!o.dropLastBatch && b.index === plan.numBatches - 1));
        }
      }
    }),
    { numRuns: 100 },
  );
});

test('determinism: the same inputs give the same plan in a fresh object; withEpoch equals a new plan', () => {
  fc.assert(
    fc.property(optionsArb, fc.nat({ max: 50 }), (o, e) => {
      const a = new EpochPlan(o);
      const b = new EpochPlan({ ...o, costs: o.costs === undefined ? undefined : [...(o.costs as number[])] });
      const c = a.withEpoch(e);
      const d = new EpochPlan({ ...o, epoch: e });
      for (let r = 0; r < a.worldSize; r++) {
        assert.deepEqual(rankIds(a, r), rankIds(b, r));
        assert.deepEqual(rankIds(c, r), rankIds(d, r));
      }
    }),
    { numRuns: 60 },
  );
});

test('different epochs (and seeds) give different orders', () => {
  for (const shuffle of ['global', 'shard-aware'] as const) {
    for (const partition of PARTITIONS) {
      const o = { shardSizes: [40, 40, 40, 40, 40], worldSize: 4, seed: 3, shuffle, partition, costs: costsOf(200) };
      const a = rankIds(new EpochPlan({ ...o, epoch: 1 }), 2);
      assert.notDeepEqual(a, rankIds(new EpochPlan({ ...o, epoch: 2 }), 2), `${shuffle}/${partition}: epochs`);
      assert.notDeepEqual(a, rankIds(new EpochPlan({ ...o, epoch: 1, seed: 4 }), 2), `${shuffle}/${partition}: seeds`);
    }
  }
  const none = { numSamples: 50, worldSize: 2, shuffle: 'none' as const };
  assert.deepEqual(rankIds(new EpochPlan({ ...none, epoch: 1 }), 1), rankIds(new EpochPlan({ ...none, epoch: 9 }), 1));
});

test('resume: ids from position p of any rank equal the tail of the full sequence, computed cold', () => {
  fc.assert(
    fc.property(optionsArb, fc.nat(), fc.nat(), (o, rankSeed, positionSeed) => {
      const full = new EpochPlan(o);
      const rank = rankSeed % full.worldSize;
      const ids = rankIds(full, rank);
      const p = full.perRank === 0 ? 0 : positionSeed % (full.perRank + 1);
      const cold = new EpochPlan(o);
      const out = new Float64Array(full.perRank + 3).fill(-1);
      const n = cold.fill(rank, p, out, 2);
      assert.equal(n, full.perRank - p);
      assert.deepEqual(Array.from(out.subarray(2, 2 + n)), ids.slice(p));
      assert.equal(out[1], -1);
      assert.equal(out[2 + n], -1);
      assert.deepEqual([...new EpochPlan(o).ids(rank, p)], ids.slice(p));
      if (p < full.perRank) assert.equal(new EpochPlan(o).at(rank, p), ids[p]);
    }),
    { numRuns: 150 },
  );
});

test('large plans: 10^12 samples, ids are integers in range and resume matches at()', () => {
  for (const shuffle of ['global', 'shard-aware'] as const) {
    const plan = new EpochPlan({
      shardSizes: new Array(1000).fill(1e9),
      worldSize: 1000,
      seed: 9,
      epoch: 3,
      shuffle,
      batchSize: 4096,
    });
    assert.equal(plan.numSamples, 1e12);
    assert.equal(plan.perRank, 1e9);
    assert.equal(plan.numBatches, Math.ceil(1e9 / 4096));
    for (const [rank, p] of [
      [0, 0],
      [999, 999_999_990],
      [500, 123_456_789],
    ] as const) {
      const out = new Float64Array(10);
      assert.equal(plan.fill(rank, p, out), 10);
      out.forEach((id, i) => {
        assert.ok(Number.isSafeInteger(id) && id >= 0 && id < 1e12, `id ${id}`);
        assert.equal(plan.at(rank, p + i), id);
      });
      assert.equal(new Set(out).size, 10);
    }
    const last = plan.batch(plan.numBatches - 1);
    assert.equal(last.start + last.size, 1e9);
  }
});

test('bad inputs are refused with the field named', () => {
  const base = { numSamples: 10, worldSize: 2 };
  const argument = (name: string) => (e: unknown) => e instanceof ArgumentError && e.argument === name;
  assert.throws(() => new EpochPlan({ ...base, worldSize: 0 }), argument('worldSize'));
  assert.throws(() => new EpochPlan({ ...base, worldSize: 1.5 }), argument('worldSize'));
  assert.throws(() => new EpochPlan({ ...base, seed: -1 }), argument('seed'));
  assert.throws(() => new EpochPlan({ ...base, seed: 2 ** 53 }), argument('seed'));
  assert.throws(() => new EpochPlan({ ...base, epoch: -2 }), argument('epoch'));
  assert.throws(() => new EpochPlan({ ...base, shuffle: 'random' as ShuffleMode }), /shuffle: must be one of none, global, shard-aware, got "random"/);
  assert.throws(() => new EpochPlan({ ...base, partition: 'greedy' as PartitionMode }), argument('partition'));
  assert.throws(() => new EpochPlan({ ...base, partition: 'load-balanced' }), argument('costs'));
  assert.throws(() => new EpochPlan({ ...base, costs: [1, 2, 3] }), /costs: length must equal the number of samples 10, got 3/);
  const withNaN = new Array(10).fill(1);
  withNaN[4] = Number.NaN;
  assert.throws(() => new EpochPlan({ ...base, costs: withNaN }), argument('costs[4]'));
  assert.throws(() => new EpochPlan({ ...base, costs: new Array(10).fill(-1) }), /costs\[0\]: must be a finite number ≥ 0, got -1/);
  assert.throws(() => new EpochPlan({ ...base, costs: new Array(10).fill(Infinity) }), argument('costs[0]'));
  assert.throws(() => new EpochPlan({ worldSize: 2 }), argument('shardSizes'));
  assert.throws(() => new EpochPlan({ ...base, shardSizes: [5, 5] }), argument('shardSizes'));
  assert.throws(() => new EpochPlan({ shardSizes: [3, -1], worldSize: 2 }), argument('shardSizes[1]'));
  assert.throws(() => new EpochPlan({ ...base, numSamples: -1 }), argument('numSamples'));
  assert.throws(() => new EpochPlan({ ...base, shardWindow: 0 }), argument('shardWindow'));
  assert.throws(() => new EpochPlan({ ...base, balanceWindow: 0 }), argument('balanceWindow'));
  assert.throws(() => new EpochPlan({ ...base, batchSize: 0 }), argument('batchSize'));
  assert.throws(() => new EpochPlan(null as unknown as EpochPlanOptions), argument('options'));

  const plan = new EpochPlan(base);
  assert.throws(() => plan.at(2, 0), argument('rank'));
  assert.throws(() => plan.at(-1, 0), argument('rank'));
  assert.throws(() => plan.at(0, 5), IndexOutOfRangeError);
  assert.throws(() => plan.fill(0, 6, new Float64Array(1)), argument('start'));
  assert.throws(() => plan.fill(0, 0, [] as unknown as Float64Array), argument('out'));
  assert.throws(() => plan.fill(0, 0, new Float64Array(2), 3), argument('offset'));
  assert.throws(() => plan.fill(0, 0, new Float64Array(2), 1, 2), argument('count'));
  assert.throws(() => plan.batch(10), IndexOutOfRangeError);
  assert.throws(() => plan.fillBatch(0, 0, new Float64Array(0)), argument('out'));
  assert.throws(() => plan.costReport(), argument('costs'));
  assert.equal(plan.fill(0, 5, new Float64Array(3)), 0, 'the end of the sequence is a valid start');
});

test('an empty dataset gives empty ranks', () => {
  for (const partition of PARTITIONS) {
    const plan = new EpochPlan({ shardSizes: [0, 0], worldSize: 3, partition, costs: [] });
    assert.equal(plan.perRank, 0);
    assert.equal(plan.numBatches, 0);
    assert.deepEqual(rankIds(plan, 2), []);
    assert.equal(plan.costReport().maxDeviation, 0);
  }
});
