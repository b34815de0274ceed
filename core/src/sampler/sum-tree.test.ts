import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SumTree } from './sum-tree.ts';

test('after any updates, total is the sum and find(u) lands in the leaf whose interval holds u', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1000 })), { minLength: 1, maxLength: 70 }),
      fc.array(fc.tuple(fc.nat(), fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1000 }))), { maxLength: 40 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), { minLength: 1, maxLength: 20 }),
      (initial, updates, us) => {
        // Integer weights keep every partial sum exact, so the checks below can be exact too.
        const weights = [...initial];
        const tree = new SumTree(weights);
        for (const [at, w] of updates) {
          weights[at % weights.length] = w;
          tree.set(at % weights.length, w);
        }
        const total = weights.reduce((a, b) => a + b, 0);
        assert.equal(tree.total, total);
        weights.forEach((w, i) => assert.equal(tree.get(i), w));
        if (total === 0) return;
        for (const u of us) {
          const target = u * total;
          const i = tree.find(target);
          const before = weights.slice(0, i).reduce((a, b) => a + b, 0);
          assert.ok(weights[i]! > 0, `found leaf ${i} of weight 0`);
          assert.ok(before <= target && target < before + weights[i]!, `u·total ${target} not in leaf ${i}`);
        }
      },
    ),
  );
});

test('find never returns a zero leaf, even for u at the very top of the range', () => {
  const tree = new SumTree([0.1, 0.2, 0, 0, 0]);
  assert.equal(tree.find(tree.total), 1);
  assert.equal(tree.find(tree.total * (1 - Number.EPSILON)), 1);
  const single = new SumTree([5]);
  assert.equal(single.find(4.9), 0);
});

test('a clone is independent', () => {
  const tree = new SumTree([1, 2, 3]);
  const copy = tree.clone();
  copy.set(0, 10);
  assert.equal(tree.total, 6);
  assert.equal(copy.total, 15);
  assert.equal(copy.size, 3);
});
