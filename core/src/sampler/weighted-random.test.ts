import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import { chiSquareTest } from './chi-square.ts';
import { WeightedRandomSampler } from './weighted-random.ts';

const argumentError = (argument: string) => (e: unknown) => e instanceof ArgumentError && e.argument === argument;

/** Weights with some zeros and at least one positive weight. */
const weightsArb = fc
  .array(fc.oneof(fc.constant(0), fc.double({ min: 1e-6, max: 1e6, noNaN: true })), { minLength: 1, maxLength: 60 })
  .filter((ws) => ws.some((w) => w > 0));

function normalized(weights: number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / total);
}

test('with replacement: numSamples indices in range, never a zero weight', () => {
  fc.assert(
    fc.property(weightsArb, fc.nat({ max: 300 }), fc.nat(), (weights, numSamples, seed) => {
      const pass = [...new WeightedRandomSampler(weights, { numSamples, seed })];
      assert.equal(pass.length, numSamples);
      for (const i of pass) assert.ok(Number.isInteger(i) && i >= 0 && i < weights.length && weights[i]! > 0, `drew ${i}`);
    }),
  );
});

test('without replacement: distinct indices of positive weight; all of them when numSamples is their count', () => {
  fc.assert(
    fc.property(weightsArb, fc.nat(), fc.nat({ max: 1000 }), (weights, seed, epoch) => {
      const positive = weights.flatMap((w, i) => (w > 0 ? [i] : []));
      const numSamples = seed % (positive.length + 1);
      const pass = [...new WeightedRandomSampler(weights, { numSamples, replacement: false, seed, epoch })];
      assert.equal(pass.length, numSamples);
      assert.equal(new Set(pass).size, numSamples);
      for (const i of pass) assert.ok(weights[i]! > 0, `drew ${i} of weight ${weights[i]}`);
      const all = [...new WeightedRandomSampler(weights, { numSamples: positive.length, replacement: false, seed })];
      assert.deepEqual([...all].sort((a, b) => a - b), positive);
    }),
  );
});

test('with replacement, counts follow the weights (chi-square, fixed seed)', () => {
  const weights = [1, 2, 3, 4, 0, 10, 0.5, 0, 7, 2.5];
  const draws = 200_000;
  const counts = new Array<number>(weights.length).fill(0);
  for (const i of new WeightedRandomSampler(weights, { numSamples: draws, seed: 12 })) counts[i]! += 1;
  assert.equal(counts[4], 0);
  assert.equal(counts[7], 0);
  const fit = chiSquareTest(counts, normalized(weights));
  assert.ok(fit.pValue > 1e-4, `chi-square ${fit.statistic} on ${fit.df} df, p = ${fit.pValue}; counts ${counts}`);
  // The same test has the power to see a small error: weight 10 read as 9.5 is rejected.
  const wrong = weights.map((w) => (w === 10 ? 9.5 : w));
  assert.ok(chiSquareTest(counts, normalized(wrong)).pValue < 1e-6);
});

test('with replacement, extreme weight ratios and a single positive weight', () => {
  const weights = [1e-300, 1e300, 0];
  for (const i of new WeightedRandomSampler(weights, { numSamples: 1000, seed: 1 })) assert.equal(i, 1);
  assert.deepEqual([...new WeightedRandomSampler([0, 0, 3], { numSamples: 4 })], [2, 2, 2, 2]);
});

test('without replacement, the first draw follows the weights and the second the weights of the rest', () => {
  const weights = [5, 1, 0, 2, 8, 4];
  const p = normalized(weights);
  const passes = 20_000;
  const first = new Array<number>(weights.length).fill(0);
  const second = new Array<number>(weights.length).fill(0);
  const sampler = new WeightedRandomSampler(weights, { numSamples: 2, replacement: false, seed: 99 });
  for (let e = 0; e < passes; e++) {
    const [a, b] = [...sampler];
    first[a!]! += 1;
    second[b!]! += 1;
  }
  const fitFirst = chiSquareTest(first, p);
  assert.ok(fitFirst.pValue > 1e-4, `first draw: p = ${fitFirst.pValue}, counts ${first}`);
  // P(second = j) = Σ_{i≠j} p_i · p_j / (1 − p_i): successive draws without replacement.
  const pSecond = p.map((pj, j) => p.reduce((sum, pi, i) => (i === j ? sum : sum + (pi * pj) / (1 - pi)), 0));
  const fitSecond = chiSquareTest(second, pSecond);
  assert.ok(fitSecond.pValue > 1e-4, `second draw: p = ${fitSecond.pValue}, counts ${second}`);
  // Drawing the second index by the plain weights (as with replacement) would be rejected.
  assert.ok(chiSquareTest(second, p).pValue < 1e-6);
  assert.equal(first[2], 0);
  assert.equal(second[2], 0);
});

test('a pass is a function of (seed, epoch) and each pass advances the epoch', () => {
  for (const replacement of [true, false]) {
    const weights = Array.from({ length: 40 }, (_, i) => 1 + (i % 7));
    const make = (epoch: number) => new WeightedRandomSampler(weights, { numSamples: 30, replacement, seed: 8, epoch });
    const sampler = make(2);
    const first = [...sampler];
    const second = [...sampler];
    assert.deepEqual(first, [...make(2)]);
    assert.deepEqual(second, [...make(3)]);
    assert.notDeepEqual(first, second);
    sampler.setEpoch(2);
    assert.deepEqual([...sampler], first);
  }
});

test('refuses bad weights and sizes, naming them', () => {
  assert.throws(() => new WeightedRandomSampler([1, NaN, 2], { numSamples: 2 }), argumentError('weights[1]'));
  assert.throws(() => new WeightedRandomSampler([1, 2, -1], { numSamples: 2 }), argumentError('weights[2]'));
  assert.throws(() => new WeightedRandomSampler([Infinity], { numSamples: 2 }), argumentError('weights[0]'));
  assert.throws(() => new WeightedRandomSampler([1, 2, -1], { numSamples: 2 }), /weights\[2\]: must be a finite number ≥ 0, got -1/);
  assert.throws(() => new WeightedRandomSampler([0, 0], { numSamples: 2 }), argumentError('weights'));
  assert.throws(() => new WeightedRandomSampler([], { numSamples: 0 }), argumentError('weights'));
  assert.throws(() => new WeightedRandomSampler([1], { numSamples: -1 }), argumentError('numSamples'));
  assert.throws(() => new WeightedRandomSampler([1], {} as never), argumentError('numSamples'));
  assert.throws(() => new WeightedRandomSampler([1, 0, 2], { numSamples: 3, replacement: false }), argumentError('numSamples'));
  assert.throws(() => new WeightedRandomSampler([1], { numSamples: 1, replacement: 0 as unknown as boolean }), argumentError('replacement'));
  assert.throws(() => new WeightedRandomSampler([1], { numSamples: 1, seed: -5 }), argumentError('seed'));
});
