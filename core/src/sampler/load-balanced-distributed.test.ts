import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import { Generator } from '../random.ts';
import { DistributedSampler } from './distributed.ts';
import { LoadBalancedDistributedSampler } from './load-balanced-distributed.ts';

function skewedCosts(n: number, seed: number): Float32Array {
  const g = new Generator(seed);
  return Float32Array.from({ length: n }, () => Math.min(4096, Math.max(1, Math.round(300 * Math.exp(g.normal())))));
}

test('equal counts on every rank, the dataset covered, per-rank cost within the reported bound', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 150 }),
      fc.integer({ min: 1, max: 6 }),
      fc.boolean(),
      fc.nat(),
      fc.nat({ max: 50 }),
      (n, numReplicas, dropLast, seed, epoch) => {
        const costs = skewedCosts(n, seed);
        const samplers = Array.from(
          { length: numReplicas },
          (_, rank) => new LoadBalancedDistributedSampler(n, { costs, numReplicas, rank, dropLast, seed, epoch }),
        );
        const report = samplers[0]!.costReport();
        const ranks = samplers.map((s) => [...s]);
        const L = dropLast ? Math.floor(n / numReplicas) : Math.ceil(n / numReplicas);
        ranks.forEach((ids, r) => {
          assert.equal(ids.length, L);
          const total = ids.reduce((sum, id) => sum + costs[id]!, 0);
          assert.equal(total, report.perRank[r]);
          assert.ok(Math.abs(total - report.mean) <= report.bound! + 1e-6, `rank ${r}: ${total} vs mean ${report.mean}, bound ${report.bound}`);
        });
        if (!dropLast) assert.equal(new Set(ranks.flat()).size, n);
      },
    ),
    { numRuns: 60 },
  );
});

test('it really balances: skewed costs end up far more even than with DistributedSampler', () => {
  const n = 20_000;
  const costs = skewedCosts(n, 7);
  const numReplicas = 8;
  const totals = (make: (rank: number) => Iterable<number>) =>
    Array.from({ length: numReplicas }, (_, rank) => [...make(rank)].reduce((s, id) => s + costs[id]!, 0));
  const spread = (xs: number[]) => (Math.max(...xs) - Math.min(...xs)) / (xs.reduce((a, b) => a + b, 0) / xs.length);
  const balanced = spread(totals((rank) => new LoadBalancedDistributedSampler(n, { costs, numReplicas, rank, seed: 1 })));
  const plain = spread(totals((rank) => new DistributedSampler(n, { numReplicas, rank, seed: 1 })));
  assert.ok(plain > 0.01, `plain spread ${plain}`);
  assert.ok(balanced < plain / 20, `balanced spread ${balanced}, plain ${plain}`);
});

test('costReport describes the current epoch', () => {
  const costs = skewedCosts(500, 3);
  const s = new LoadBalancedDistributedSampler(500, { costs, numReplicas: 4, rank: 2, seed: 9 });
  const r0 = s.costReport();
  s.setEpoch(5);
  const r5 = s.costReport();
  assert.notDeepEqual(Array.from(r0.perRank), Array.from(r5.perRank));
  assert.deepEqual(Array.from(r5.perRank), Array.from(s.plan.costReport().perRank));
  assert.ok(r5.imbalance >= 0 && r5.imbalance < 0.05);
  const ids = [...s];
  assert.equal(ids.reduce((sum, id) => sum + costs[id]!, 0), r5.perRank[2]);
});

test('bad costs are refused with the element named', () => {
  const argument = (name: string) => (e: unknown) => e instanceof ArgumentError && e.argument === name;
  const o = { numReplicas: 2, rank: 0 };
  assert.throws(() => new LoadBalancedDistributedSampler(3, { ...o, costs: [1, 2] }), /costs: length must equal the number of samples 3, got 2/);
  assert.throws(() => new LoadBalancedDistributedSampler(3, { ...o, costs: [1, Number.NaN, 2] }), argument('costs[1]'));
  assert.throws(() => new LoadBalancedDistributedSampler(3, { ...o, costs: [1, 2, -0.5] }), argument('costs[2]'));
  assert.throws(() => new LoadBalancedDistributedSampler(3, { ...o, costs: undefined as never }), argument('costs'));
  assert.throws(() => new LoadBalancedDistributedSampler(3, { ...o, costs: [1, 2, 3], balanceWindow: 0 }), argument('balanceWindow'));
  assert.throws(() => new LoadBalancedDistributedSampler(3, { numReplicas: 2, rank: 3, costs: [1, 2, 3] }), argument('rank'));
});
