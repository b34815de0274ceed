import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { chiSquareTest } from './chi-square.ts';
import { PrioritySampler } from './priority.ts';

const argumentError = (argument: string) => (e: unknown) => e instanceof ArgumentError && e.argument === argument;

function expected(priorities: number[], alpha: number, temperature: number): number[] {
  const w = priorities.map((p) => Math.pow(Math.pow(p, alpha), 1 / temperature));
  const total = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / total);
}

function countDraws(iterator: Iterator<number>, draws: number, size: number): number[] {
  const counts = new Array<number>(size).fill(0);
  for (let k = 0; k < draws; k++) {
    const r = iterator.next();
    assert.ok(!r.done);
    counts[r.value]! += 1;
  }
  return counts;
}

test('probability(i) is (p_i^alpha)^(1/temperature), normalized', () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: 0.01, max: 100, noNaN: true }), { minLength: 1, maxLength: 30 }),
      fc.double({ min: 0, max: 2, noNaN: true }),
      fc.double({ min: 0.1, max: 5, noNaN: true }),
      (priorities, alpha, temperature) => {
        const sampler = new PrioritySampler(priorities, { alpha, temperature });
        const p = expected(priorities, alpha, temperature);
        p.forEach((pi, i) => assert.ok(Math.abs(sampler.probability(i) - pi) < 1e-9 * Math.max(1, pi), `${i}`));
      },
    ),
  );
});

test('draws follow the priorities, and after updatePriorities the new ones, at once (chi-square, fixed seed)', () => {
  const priorities = [1, 4, 0, 9, 2, 6, 0.5, 3];
  const sampler = new PrioritySampler(priorities, { numSamples: 120_000, alpha: 0.7, temperature: 1.5, seed: 21 });
  const pass = sampler[Symbol.iterator]();
  const before = countDraws(pass, 60_000, priorities.length);
  const fitBefore = chiSquareTest(before, expected(priorities, 0.7, 1.5));
  assert.ok(fitBefore.pValue > 1e-4, `before: p = ${fitBefore.pValue}, counts ${before}`);
  assert.equal(before[2], 0, 'a zero priority was drawn');

  // Mid-pass update: the same iterator must follow the new priorities from the next draw on.
  sampler.updatePriorities([0, 3, 2], [10, 0, 5]);
  const updated = [10, 4, 5, 0, 2, 6, 0.5, 3];
  assert.equal(sampler.priority(3), 0);
  const after = countDraws(pass, 60_000, priorities.length);
  const fitAfter = chiSquareTest(after, expected(updated, 0.7, 1.5));
  assert.ok(fitAfter.pValue > 1e-4, `after: p = ${fitAfter.pValue}, counts ${after}`);
  assert.equal(after[3], 0, 'an index whose priority became 0 was drawn');
  // The test can tell the two distributions apart.
  assert.ok(chiSquareTest(after, expected(priorities.map((p) => p || 1e-9), 0.7, 1.5)).pValue < 1e-6);
  assert.ok(pass.next().done === true);
});

test('alpha = 0 is uniform over every index, zero priorities included', () => {
  const sampler = new PrioritySampler([0, 5, 100, 0.1], { alpha: 0, numSamples: 40_000, seed: 3 });
  const counts = countDraws(sampler[Symbol.iterator](), 40_000, 4);
  assert.ok(chiSquareTest(counts, [0.25, 0.25, 0.25, 0.25]).pValue > 1e-4, `counts ${counts}`);
});

test('without replacement: distinct indices of positive priority, updates count inside the pass', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.constant(0), fc.double({ min: 0.01, max: 50, noNaN: true })), { minLength: 1, maxLength: 40 }),
      fc.nat(),
      (priorities, seed) => {
        const positive = priorities.filter((p) => p > 0).length;
        fc.pre(positive > 0);
        const numSamples = 1 + (seed % positive);
        const sampler = new PrioritySampler(priorities, { numSamples, replacement: false, seed });
        const pass = [...sampler];
        assert.equal(pass.length, numSamples);
        assert.equal(new Set(pass).size, numSamples);
        for (const i of pass) assert.ok(priorities[i]! > 0);
      },
    ),
  );
  // Zeroing an undrawn index mid-pass keeps it out of the rest of that pass.
  const sampler = new PrioritySampler([1, 1, 1, 1, 1, 1], { numSamples: 5, replacement: false, seed: 4 });
  const pass = sampler[Symbol.iterator]();
  const first = pass.next().value as number;
  const victim = (first + 1) % 6;
  sampler.updatePriorities([victim], [0]);
  const rest = [pass.next(), pass.next(), pass.next(), pass.next()].map((r) => r.value as number);
  assert.deepEqual([first, ...rest].sort(), [0, 1, 2, 3, 4, 5].filter((i) => i !== victim));
  assert.ok(pass.next().done);
  // Too few positive priorities left for a pass without replacement: refused, nothing changed.
  assert.throws(() => sampler.updatePriorities([0, 1], [0, 0]), argumentError('newPriorities'));
  assert.equal(sampler.priority(0), 1);
  assert.ok(sampler.probability(0) > 0);
});

test('a pass is a function of (seed, epoch) and each pass advances the epoch', () => {
  for (const replacement of [true, false]) {
    const priorities = Array.from({ length: 50 }, (_, i) => 1 + (i % 5));
    const make = (epoch: number) => new PrioritySampler(priorities, { numSamples: 40, seed: 9, epoch, replacement });
    const sampler = make(1);
    const first = [...sampler];
    const second = [...sampler];
    assert.deepEqual(first, [...make(1)]);
    assert.deepEqual(second, [...make(2)]);
    assert.notDeepEqual(first, second);
    sampler.setEpoch(1);
    assert.deepEqual([...sampler], first);
  }
});

test('refuses bad priorities, options and updates, naming them; a refused update changes nothing', () => {
  assert.throws(() => new PrioritySampler([1, NaN]), argumentError('priorities[1]'));
  assert.throws(() => new PrioritySampler([1, -2]), argumentError('priorities[1]'));
  assert.throws(() => new PrioritySampler([Infinity]), argumentError('priorities[0]'));
  assert.throws(() => new PrioritySampler([0, 0]), argumentError('priorities'));
  assert.throws(() => new PrioritySampler([1e300], { alpha: 1, temperature: 0.1 }), argumentError('priorities[0]'));
  assert.throws(() => new PrioritySampler([1], { alpha: -0.1 }), argumentError('alpha'));
  assert.throws(() => new PrioritySampler([1], { alpha: NaN }), argumentError('alpha'));
  assert.throws(() => new PrioritySampler([1], { temperature: 0 }), argumentError('temperature'));
  assert.throws(() => new PrioritySampler([1], { temperature: -1 }), argumentError('temperature'));
  assert.throws(() => new PrioritySampler([1], { temperature: 1e-320 }), argumentError('temperature'));
  assert.throws(() => new PrioritySampler([1], { numSamples: -1 }), argumentError('numSamples'));
  assert.throws(() => new PrioritySampler([1, 0], { numSamples: 2, replacement: false }), argumentError('priorities'));
  assert.throws(() => new PrioritySampler(null as unknown as number[]), argumentError('priorities'));

  const sampler = new PrioritySampler([1, 2, 3]);
  const snapshot = [0, 1, 2].map((i) => sampler.probability(i));
  assert.throws(() => sampler.updatePriorities([0, 1], [1]), argumentError('newPriorities'));
  assert.throws(
    () => sampler.updatePriorities([0, 3], [1, 1]),
    (e: unknown) => e instanceof IndexOutOfRangeError && e.index === 3 && /indices\[1\]/.test(e.message),
  );
  assert.throws(() => sampler.updatePriorities([-1], [1]), IndexOutOfRangeError);
  assert.throws(() => sampler.updatePriorities([0.5], [1]), argumentError('indices[0]'));
  assert.throws(() => sampler.updatePriorities([0, 1], [5, NaN]), argumentError('newPriorities[1]'));
  assert.throws(() => sampler.updatePriorities([0, 1], [5, -1]), argumentError('newPriorities[1]'));
  assert.throws(() => sampler.updatePriorities([0, 1, 2], [0, 0, 0]), argumentError('newPriorities'));
  assert.deepEqual([0, 1, 2].map((i) => sampler.probability(i)), snapshot);
  assert.throws(() => sampler.probability(3), IndexOutOfRangeError);
  // A repeated index: the last value wins.
  sampler.updatePriorities([0, 0], [7, 2]);
  assert.equal(sampler.priority(0), 2);
});
