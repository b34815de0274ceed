import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import { Generator } from '../random.ts';
import { BalancedBatchSampler } from './balanced-batch.ts';

const argumentError = (argument: string) => (e: unknown) => e instanceof ArgumentError && e.argument === argument;

/** Labels whose every class has at least `min` members, plus P and K that fit them. */
const caseArb = fc
  .record({
    sizes: fc.array(fc.integer({ min: 1, max: 25 }), { minLength: 1, maxLength: 8 }),
    k: fc.integer({ min: 1, max: 6 }),
    seed: fc.nat(),
    numBatches: fc.option(fc.nat({ max: 40 }), { nil: undefined }),
    p: fc.nat(),
  })
  .map(({ sizes, k, seed, numBatches, p }) => {
    // Shuffled, so a class is not a contiguous block of indices.
    const labels = new Generator(seed).shuffle(sizes.flatMap((size, c) => new Array<number>(Math.max(size, k)).fill(c)));
    return { labels, k, seed, numBatches, classesPerBatch: 1 + (p % sizes.length) };
  });

test('every batch has P distinct classes with K distinct samples each; length is as declared', () => {
  fc.assert(
    fc.property(caseArb, ({ labels, k, seed, numBatches, classesPerBatch }) => {
      const sampler = new BalancedBatchSampler(labels, { samplesPerClass: k, classesPerBatch, seed, numBatches });
      const batches = [...sampler];
      const batchSize = classesPerBatch * k;
      assert.equal(sampler.batchSize, batchSize);
      assert.equal(sampler.length, numBatches ?? Math.floor(labels.length / batchSize));
      assert.equal(batches.length, sampler.length);
      for (const batch of batches) {
        assert.equal(batch.length, batchSize);
        assert.equal(new Set(batch).size, batchSize, 'a batch repeats an index');
        const perClass = new Map<number, number>();
        for (const i of batch) {
          assert.ok(Number.isInteger(i) && i >= 0 && i < labels.length);
          perClass.set(labels[i]!, (perClass.get(labels[i]!) ?? 0) + 1);
        }
        assert.equal(perClass.size, classesPerBatch);
        for (const count of perClass.values()) assert.equal(count, k);
        // Grouped by class: K consecutive indices of one class, then the next class.
        for (let s = 0; s < batchSize; s++) assert.equal(labels[batch[s]!], labels[batch[s - (s % k)]!]);
      }
    }),
  );
});

test('within a class, use counts over a pass differ by at most one', () => {
  fc.assert(
    fc.property(caseArb, ({ labels, k, seed, classesPerBatch }) => {
      const batches = [...new BalancedBatchSampler(labels, { samplesPerClass: k, classesPerBatch, seed, numBatches: 30 })];
      const uses = new Array<number>(labels.length).fill(0);
      for (const i of batches.flat()) uses[i]! += 1;
      const byClass = new Map<number, number[]>();
      labels.forEach((c, i) => byClass.set(c, [...(byClass.get(c) ?? []), uses[i]!]));
      for (const counts of byClass.values()) assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `uses ${counts}`);
    }),
  );
});

test('every class is chosen about P/C of the time', () => {
  const labels = Array.from({ length: 400 }, (_, i) => i % 8);
  const sampler = new BalancedBatchSampler(labels, { samplesPerClass: 2, classesPerBatch: 2, numBatches: 4000, seed: 6 });
  const chosen = new Array<number>(8).fill(0);
  for (const batch of sampler) for (const i of [batch[0]!, batch[2]!]) chosen[labels[i]!]! += 1;
  // 8000 picks, 1000 expected per class; a binomial sd is about 30.
  for (const c of chosen) assert.ok(Math.abs(c - 1000) < 150, `picks ${chosen}`);
});

test('a pass is a function of (seed, epoch) and each pass advances the epoch', () => {
  const labels = Array.from({ length: 60 }, (_, i) => i % 5);
  const make = (epoch: number) => new BalancedBatchSampler(labels, { samplesPerClass: 3, classesPerBatch: 2, seed: 2, epoch });
  const sampler = make(0);
  const first = [...sampler];
  const second = [...sampler];
  assert.deepEqual(first, [...make(0)]);
  assert.deepEqual(second, [...make(1)]);
  assert.notDeepEqual(first, second);
  sampler.setEpoch(0);
  assert.deepEqual([...sampler], first);
});

test('a class smaller than samplesPerClass is refused, as are other bad arguments', () => {
  assert.throws(
    () => new BalancedBatchSampler(['a', 'a', 'a', 'b', 'b'], { samplesPerClass: 3 }),
    (e: unknown) => e instanceof ArgumentError && e.argument === 'samplesPerClass' && /class "b" has only 2 samples/.test(e.message),
  );
  const labels = [0, 0, 1, 1, 2, 2];
  for (const bad of [0, -1, 1.5, undefined]) {
    assert.throws(() => new BalancedBatchSampler(labels, { samplesPerClass: bad as number }), argumentError('samplesPerClass'));
  }
  assert.throws(() => new BalancedBatchSampler(labels, { samplesPerClass: 1, classesPerBatch: 4 }), argumentError('classesPerBatch'));
  assert.throws(() => new BalancedBatchSampler(labels, { samplesPerClass: 1, classesPerBatch: 0 }), argumentError('classesPerBatch'));
  assert.throws(() => new BalancedBatchSampler(labels, { samplesPerClass: 1, numBatches: -2 }), argumentError('numBatches'));
  assert.throws(() => new BalancedBatchSampler([], { samplesPerClass: 1 }), argumentError('labels'));
  assert.throws(() => new BalancedBatchSampler([0, NaN], { samplesPerClass: 1 }), argumentError('labels[1]'));
  assert.throws(() => new BalancedBatchSampler(labels, { samplesPerClass: 1, seed: -1 }), argumentError('seed'));
  assert.throws(() => new BalancedBatchSampler(labels, { samplesPerClass: 1 }).setEpoch(NaN), argumentError('epoch'));
});
