import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import { chiSquareTest } from './chi-square.ts';
import { RandomSampler } from './random.ts';

const argumentError = (argument: string) => (e: unknown) => e instanceof ArgumentError && e.argument === argument;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

test('without replacement a pass is a permutation of [0, n)', () => {
  fc.assert(
    fc.property(fc.nat({ max: 200 }), fc.nat(), fc.nat({ max: 1000 }), (n, seed, epoch) => {
      const pass = [...new RandomSampler(n, { seed, epoch })];
      assert.deepEqual(sorted(pass), range(n));
    }),
  );
});

test('numSamples below n gives distinct indices, above n whole permutations and a part', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 50 }), fc.nat({ max: 200 }), fc.nat(), (n, numSamples, seed) => {
      const pass = [...new RandomSampler(n, { numSamples, seed })];
      assert.equal(pass.length, numSamples);
      const counts = new Array<number>(n).fill(0);
      for (const i of pass) counts[i]! += 1;
      const q = Math.floor(numSamples / n);
      // Each full permutation uses every index once; the partial one at most once more.
      for (const c of counts) assert.ok(c === q || c === q + 1, `count ${c}, expected ${q} or ${q + 1}`);
      assert.equal(counts.filter((c) => c === q + 1).length, numSamples % n);
    }),
  );
});

test('with replacement: numSamples draws in range, uniform', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 50 }), fc.nat({ max: 300 }), fc.nat(), (n, numSamples, seed) => {
      const pass = [...new RandomSampler(n, { replacement: true, numSamples, seed })];
      assert.equal(pass.length, numSamples);
      for (const i of pass) assert.ok(Number.isInteger(i) && i >= 0 && i < n);
    }),
  );
  const counts = new Array<number>(10).fill(0);
  for (const i of new RandomSampler(10, { replacement: true, numSamples: 50_000, seed: 5 })) counts[i]! += 1;
  assert.ok(chiSquareTest(counts, new Array(10).fill(0.1)).pValue > 1e-4, `counts ${counts}`);
  // Draws repeat, which a permutation never does.
  assert.ok(new Set(new RandomSampler(10, { replacement: true, numSamples: 10, seed: 1 })).size < 10);
});

test('a pass is a function of (seed, epoch); each pass advances the epoch; setEpoch sets it', () => {
  fc.assert(
    fc.property(fc.integer({ min: 20, max: 100 }), fc.nat(), fc.nat({ max: 1000 }), fc.boolean(), (n, seed, epoch, replacement) => {
      const sampler = new RandomSampler(n, { seed, epoch, replacement });
      const first = [...sampler];
      const second = [...sampler];
      assert.equal(sampler.epoch, epoch + 2);
      assert.deepEqual(first, [...new RandomSampler(n, { seed, epoch, replacement })]);
      assert.deepEqual(second, [...new RandomSampler(n, { seed, epoch: epoch + 1, replacement })]);
      assert.notDeepEqual(first, second);
      sampler.setEpoch(epoch);
      assert.deepEqual([...sampler], first);
      assert.notDeepEqual([...new RandomSampler(n, { seed: seed + 1, epoch, replacement })], first);
    }),
  );
});

test('the epoch advances when a pass starts, not at its first index', () => {
  const sampler = new RandomSampler(10, { seed: 1 });
  sampler[Symbol.iterator]();
  assert.equal(sampler.epoch, 1);
});

test('refuses bad arguments, naming them', () => {
  assert.throws(() => new RandomSampler(-1), argumentError('source'));
  assert.throws(() => new RandomSampler({ length: 2.5 }), argumentError('source.length'));
  assert.throws(() => new RandomSampler(5, { numSamples: -3 }), argumentError('numSamples'));
  assert.throws(() => new RandomSampler(5, { numSamples: NaN }), argumentError('numSamples'));
  assert.throws(() => new RandomSampler(0, { numSamples: 3 }), argumentError('numSamples'));
  assert.throws(() => new RandomSampler(5, { seed: -1 }), argumentError('seed'));
  assert.throws(() => new RandomSampler(5, { epoch: 0.5 }), argumentError('epoch'));
  assert.throws(() => new RandomSampler(5, { replacement: 'yes' as unknown as boolean }), argumentError('replacement'));
  assert.throws(() => new RandomSampler(5).setEpoch(-2), argumentError('epoch'));
  assert.deepEqual([...new RandomSampler(0)], []);
});
