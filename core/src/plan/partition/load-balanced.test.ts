import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Generator } from '../../random.ts';
import { EpochPlan } from '../epoch-plan.ts';
import type { ShuffleMode } from '../shuffle/index.ts';

const SHUFFLES: ShuffleMode[] = ['none', 'global', 'shard-aware'];

function rankIds(plan: EpochPlan, rank: number): number[] {
  return [...plan.ids(rank)];
}

test('load-balanced: equal counts, per-rank cost within the stated bound of the mean', () => {
  const arb = fc.record({
    n: fc.integer({ min: 1, max: 300 }),
    worldSize: fc.integer({ min: 1, max: 8 }),
    balanceWindow: fc.integer({ min: 1, max: 12 }),
    seed: fc.nat(),
    dropLast: fc.boolean(),
    costs: fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 300, maxLength: 300 }),
    shuffle: fc.constantFrom(...SHUFFLES),
  });
  fc.assert(
    fc.property(arb, ({ n, costs, ...o }) => {
      const c = new Float32Array(costs.slice(0, n));
      const plan = new EpochPlan({ ...o, numSamples: n, costs: c, partition: 'load-balanced' });
      const report = plan.costReport();
      const totals = Array.from({ length: plan.worldSize }, (_, r) => rankIds(plan, r).reduce((s, id) => s + c[id]!, 0));
      assert.deepEqual(Array.from(report.perRank), totals);
      const mean = totals.reduce((a, b) => a + b, 0) / totals.length;
      let lo = Infinity;
      let hi = -Infinity;
      for (const x of c) {
        lo = Math.min(lo, x);
        hi = Math.max(hi, x);
      }
      const windows = Math.ceil(plan.perRank / plan.balanceWindow);
      const eps = 1e-9 * (1 + mean);
      for (const t of totals) assert.ok(Math.abs(t - mean) <= report.bound! + eps, `|${t} − ${mean}| > ${report.bound}`);
      assert.ok(report.bound! <= windows * (hi - lo) + eps, `bound ${report.bound} > K·range ${windows * (hi - lo)}`);
      assert.ok(Math.abs(report.maxDeviation - Math.max(...totals.map((t) => Math.abs(t - mean)))) <= eps);
    }),
    { numRuns: 150 },
  );
});

test('load-balanced: one window bounds the spread by max − min cost (the telescoping bound)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 200 }),
      fc.integer({ min: 1, max: 7 }),
      fc.nat(),
      (costs, worldSize, seed) => {
        const plan = new EpochPlan({ numSamples: costs.length, costs, worldSize, seed, partition: 'load-balanced', balanceWindow: 1000 });
        const { max, min } = plan.costReport();
        assert.ok(max - min <= Math.max(...costs) - Math.min(...costs));
      },
    ),
  );
});

test('load-balanced really balances skewed costs: far below a plain distributed split', () => {
  const n = 50_000;
  const g = new Generator(11);
  const costs = new Float32Array(n);
  for (let i = 0; i < n; i++) costs[i] = Math.min(8192, Math.max(8, Math.round(600 * Math.exp(g.normal()))));
  for (const seed of [1, 2, 3]) {
    const o = { numSamples: n, costs, worldSize: 16, seed };
    const balanced = new EpochPlan({ ...o, partition: 'load-balanced' }).costReport();
    const plain = new EpochPlan({ ...o, partition: 'distributed' }).costReport();
    assert.equal(plain.bound, null);
    assert.ok(plain.imbalance > 0.005, `plain imbalance ${plain.imbalance}`);
    assert.ok(balanced.imbalance < plain.imbalance / 20, `balanced ${balanced.imbalance} vs plain ${plain.imbalance}`);
    assert.ok(balanced.imbalance < 0.001, `balanced imbalance ${balanced.imbalance}`);
  }
});

test('load-balanced: a rank does not see its window sorted by cost', () => {
  const n = 4000;
  const costs = Array.from({ length: n }, (_, i) => i % 97);
  const plan = new EpochPlan({ numSamples: n, costs, worldSize: 4, seed: 5, partition: 'load-balanced', balanceWindow: 100 });
  const seq = rankIds(plan, 1).slice(0, 100).map((id) => costs[id]!);
  let descents = 0;
  for (let i = 1; i < seq.length; i++) if (seq[i]! <= seq[i - 1]!) descents++;
  assert.ok(descents < 80, `${descents} of 99 steps are non-increasing: the window looks sorted`);
});
