import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import type { Label } from './arguments.ts';
import { StratifiedSampler } from './stratified.ts';

const argumentError = (argument: string) => (e: unknown) => e instanceof ArgumentError && e.argument === argument;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

/** Labels with a skewed class distribution (a few big classes, a tail of small ones). */
const labelsArb = fc
  .tuple(
    fc.integer({ min: 1, max: 30 }),
    fc.integer({ min: 1, max: 4 }),
    fc.array(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), { maxLength: 200 }),
  )
  .map(([classes, skew, us]) => us.map((u) => Math.floor(classes * u ** skew)));

/** Largest |count_c(m) − m·share_c| over every prefix m and class c. */
function worstPrefixError(pass: number[], labels: ArrayLike<Label>, share: Map<Label, number>): number {
  const counts = new Map<Label, number>();
  let worst = 0;
  pass.forEach((index, m) => {
    const label = labels[index]!;
    counts.set(label, (counts.get(label) ?? 0) + 1);
    for (const [c, s] of share) worst = Math.max(worst, Math.abs((counts.get(c) ?? 0) - (m + 1) * s));
  });
  return worst;
}

function shares(labels: ArrayLike<Label>): Map<Label, number> {
  const share = new Map<Label, number>();
  for (let i = 0; i < labels.length; i++) share.set(labels[i]!, (share.get(labels[i]!) ?? 0) + 1 / labels.length);
  return share;
}

test('a full pass yields every index once, each class within 1 − 1/(2(C−1)) of its share at every prefix', () => {
  fc.assert(
    fc.property(labelsArb, fc.nat(), fc.boolean(), (labels, seed, shuffle) => {
      const sampler = new StratifiedSampler(labels, { seed, shuffle });
      const pass = [...sampler];
      assert.equal(sampler.length, labels.length);
      assert.deepEqual(sorted(pass), range(labels.length));
      const share = shares(labels);
      const C = share.size;
      const bound = C > 1 ? 1 - 1 / (2 * (C - 1)) : 0;
      assert.ok(worstPrefixError(pass, labels, share) <= bound + 1e-9);
    }),
  );
});

test('one big class and many singletons: the singletons are spread out, not left to the end', () => {
  const labels = [...new Array<number>(100).fill(0), ...range(10).map((c) => c + 1)];
  for (const shuffle of [true, false]) {
    const pass = [...new StratifiedSampler(labels, { shuffle, seed: 1 })];
    const share = shares(labels);
    assert.ok(worstPrefixError(pass, labels, share) <= 1 - 1 / 20 + 1e-9);
    // About one singleton every 11 indices.
    assert.ok(pass.slice(0, 15).some((i) => labels[i] !== 0));
  }
});

test('a shuffled pass is not a class-by-class block order', () => {
  // 3 classes of 30: stratified means the first 9 indices hold 3 of each class.
  const labels = range(90).map((i) => Math.floor(i / 30));
  const pass = [...new StratifiedSampler(labels, { seed: 3 })];
  assert.deepEqual(
    sorted(pass.slice(0, 9).map((i) => labels[i]!)),
    [0, 0, 0, 1, 1, 1, 2, 2, 2],
  );
});

test('samplesPerClass: exactly k per class, distinct where the class is big enough, else evenly repeated', () => {
  fc.assert(
    fc.property(labelsArb.filter((l) => l.length > 0), fc.integer({ min: 1, max: 30 }), fc.nat(), fc.boolean(), (labels, k, seed, shuffle) => {
      const sampler = new StratifiedSampler(labels, { samplesPerClass: k, seed, shuffle });
      const pass = [...sampler];
      const members = new Map<number, number[]>();
      labels.forEach((label, i) => members.set(label, [...(members.get(label) ?? []), i]));
      assert.equal(sampler.length, k * members.size);
      assert.equal(pass.length, k * members.size);
      const uses = new Map<number, number>();
      for (const i of pass) uses.set(i, (uses.get(i) ?? 0) + 1);
      for (const [, idx] of members) {
        const counts = idx.map((i) => uses.get(i) ?? 0);
        assert.equal(counts.reduce((a, b) => a + b, 0), k);
        // From successive shuffles: ⌊k/n_c⌋ or ⌈k/n_c⌉ each, so distinct when n_c ≥ k.
        const q = Math.floor(k / idx.length);
        for (const c of counts) assert.ok(c === q || c === q + 1, `class of ${idx.length}, k ${k}, count ${c}`);
      }
      const equalShare = new Map([...members.keys()].map((c) => [c, 1 / members.size] as const));
      const C = members.size;
      assert.ok(worstPrefixError(pass, labels, equalShare) <= (C > 1 ? 1 - 1 / (2 * (C - 1)) : 0) + 1e-9);
    }),
  );
});

test('without shuffle there is no randomness: index order inside classes, the first k of each', () => {
  const labels = ['a', 'b', 'a', 'a', 'c', 'b', 'a', 'a'];
  const sampler = new StratifiedSampler(labels, { shuffle: false, seed: 5 });
  const pass = [...sampler];
  assert.deepEqual([...sampler], pass);
  for (const c of ['a', 'b', 'c']) {
    const ofClass = pass.filter((i) => labels[i] === c);
    assert.deepEqual(ofClass, sorted(ofClass));
  }
  const firstTwo = [...new StratifiedSampler(labels, { shuffle: false, samplesPerClass: 2 })];
  assert.deepEqual(sorted(firstTwo), [0, 1, 2, 4, 4, 5]);
});

test('labels may be strings, numbers or typed arrays; 1 and "1" are different classes', () => {
  const sampler = new StratifiedSampler([1, '1', 1, '1'], { samplesPerClass: 1, seed: 0 });
  assert.deepEqual(sampler.classes, [1, '1']);
  assert.equal(sampler.length, 2);
  assert.deepEqual(new StratifiedSampler(new Int32Array([3, 3, 7]), {}).classes, [3, 7]);
  assert.deepEqual([...new StratifiedSampler([])], []);
});

test('a pass is a function of (seed, epoch) and each pass advances the epoch', () => {
  const labels = range(60).map((i) => i % 4);
  for (const samplesPerClass of [undefined, 7]) {
    const make = (epoch: number) => new StratifiedSampler(labels, { seed: 11, epoch, samplesPerClass });
    const sampler = make(5);
    const first = [...sampler];
    const second = [...sampler];
    assert.deepEqual(first, [...make(5)]);
    assert.deepEqual(second, [...make(6)]);
    assert.notDeepEqual(first, second);
    sampler.setEpoch(5);
    assert.deepEqual([...sampler], first);
    assert.equal(sampler.epoch, 6);
  }
});

test('refuses bad labels and sizes, naming them', () => {
  assert.throws(() => new StratifiedSampler([0, 1, 2, NaN]), argumentError('labels[3]'));
  assert.throws(() => new StratifiedSampler([0, Infinity]), argumentError('labels[1]'));
  assert.throws(() => new StratifiedSampler([0, null as unknown as number]), argumentError('labels[1]'));
  assert.throws(() => new StratifiedSampler([{}] as unknown as number[]), argumentError('labels[0]'));
  assert.throws(() => new StratifiedSampler(3 as unknown as number[]), argumentError('labels'));
  for (const bad of [0, -1, 1.5]) {
    assert.throws(() => new StratifiedSampler([0, 1], { samplesPerClass: bad }), argumentError('samplesPerClass'));
  }
  assert.throws(() => new StratifiedSampler([0], { shuffle: 'no' as unknown as boolean }), argumentError('shuffle'));
  assert.throws(() => new StratifiedSampler([0], { seed: NaN }), argumentError('seed'));
  assert.throws(() => new StratifiedSampler([0], 'x' as never), argumentError('options'));
});
