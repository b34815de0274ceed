import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { ListDataset } from './list.ts';
import { Subset, randomSplit, splitLengths } from './subset.ts';

const range = (n: number) => Array.from({ length: n }, (_, k) => k);

test('Subset maps its indices (negative ones normalized) onto the dataset', () => {
  const ds = new ListDataset(['a', 'b', 'c', 'd']);
  const sub = new Subset(ds, [3, 0, -3]);
  assert.equal(sub.length, 3);
  assert.deepEqual([0, 1, 2].map((i) => sub.get(i)), ['d', 'a', 'b']);
  assert.equal(sub.get(-1), 'b');
  assert.deepEqual([...sub.indices], [3, 0, 1]);
  assert.throws(() => sub.get(3), IndexOutOfRangeError);
  assert.throws(() => sub.get(-4), IndexOutOfRangeError);
});

test('Subset checks its indices at construction, naming the bad one', () => {
  const ds = new ListDataset([1, 2, 3]);
  assert.throws(
    () => new Subset(ds, [0, 5]),
    (e: unknown) => e instanceof IndexOutOfRangeError && /indices\[1\] 5 is out of range for length 3/.test(e.message),
  );
  assert.throws(() => new Subset(ds, [0.5]), (e: unknown) => e instanceof ArgumentError && e.argument === 'indices[0]');
  assert.throws(() => new Subset(ds, null as never), (e: unknown) => e instanceof ArgumentError && e.argument === 'indices');
  assert.throws(() => new Subset({} as never, [0]), (e: unknown) => e instanceof ArgumentError && e.argument === 'dataset');
});

test('Subset maps correctly for arbitrary index lists', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer(), { minLength: 1, maxLength: 50 }),
      fc.array(fc.nat(), { maxLength: 50 }),
      (items, raw) => {
        const ds = new ListDataset(items);
        const indices = raw.map((k) => (k % (2 * items.length)) - items.length); // both signs
        const sub = new Subset(ds, indices);
        return indices.every((idx, k) => sub.get(k) === items.at(idx));
      },
    ),
  );
});

test('randomSplit with lengths partitions the dataset, deterministically from the seed', () => {
  const ds = new ListDataset(range(10));
  const [a, b, c] = randomSplit(ds, [5, 3, 2], { seed: 7 });
  assert.deepEqual([a!.length, b!.length, c!.length], [5, 3, 2]);
  const all = [a!, b!, c!].flatMap((s) => range(s.length).map((i) => s.get(i) as number));
  assert.deepEqual([...all].sort((x, y) => x - y), range(10));
  const again = randomSplit(ds, [5, 3, 2], { seed: 7 });
  assert.deepEqual([...again[0]!.indices], [...a!.indices]);
  const other = randomSplit(ds, [5, 3, 2], { seed: 8 });
  assert.notDeepEqual([...other[0]!.indices], [...a!.indices]);
});

test('randomSplit with fractions hands out the remainder round-robin, like PyTorch', () => {
  assert.deepEqual(splitLengths(10, [0.34, 0.33, 0.33]), [4, 3, 3]);
  assert.deepEqual(splitLengths(11, [0.25, 0.25, 0.25, 0.25]), [3, 3, 3, 2]);
  assert.deepEqual(splitLengths(5, [1, 0]), [5, 0]);
  assert.deepEqual(splitLengths(3, [0.1, 0.1, 0.8]), [1, 0, 2]);
  assert.deepEqual(splitLengths(7, [0.7 + 1e-10, 0.3]), [5, 2]);
  const parts = randomSplit(new ListDataset(range(10)), [0.5, 0.5], { seed: 1 });
  assert.deepEqual(
    parts.map((p) => p.length),
    [5, 5],
  );
});

test('randomSplit refuses lengths that do not add up, showing the sum', () => {
  const ds = new ListDataset(range(10));
  assert.throws(
    () => randomSplit(ds, [5, 4]),
    (e: unknown) => e instanceof ArgumentError && e.argument === 'lengths' && /got sum 9/.test(e.message),
  );
  assert.throws(
    () => randomSplit(ds, [0.5, 0.4]),
    (e: unknown) => e instanceof ArgumentError && /fractions must add up to 1.*got sum 0\.9/.test(e.message),
  );
  assert.throws(() => randomSplit(ds, [-1, 11]), (e: unknown) => e instanceof ArgumentError && e.argument === 'lengths[0]');
  assert.throws(() => randomSplit(ds, [Number.NaN, 10]), (e: unknown) => e instanceof ArgumentError && e.argument === 'lengths[0]');
  assert.throws(() => randomSplit(ds, []), (e: unknown) => e instanceof ArgumentError && e.argument === 'lengths');
  assert.throws(() => randomSplit(ds, [10], { seed: -1 }), (e: unknown) => e instanceof ArgumentError && e.argument === 'seed');
  assert.throws(() => randomSplit({} as never, [1]), (e: unknown) => e instanceof ArgumentError && e.argument === 'dataset');
});

test('randomSplit is a partition of [0, n) for any lengths or fractions', () => {
  const lengthsArb = fc.array(fc.nat({ max: 20 }), { minLength: 1, maxLength: 6 });
  fc.assert(
    fc.property(lengthsArb, fc.nat(), fc.boolean(), (lengths, seed, asFractions) => {
      const n = lengths.reduce((a, b) => a + b, 0);
      const ds = new ListDataset(range(n));
      const spec = asFractions && n > 0 ? lengths.map((l) => l / n) : lengths;
      if (asFractions && n > 0 && Math.abs(spec.reduce((a, b) => a + b, 0) - 1) > 1e-9) return;
      const parts = randomSplit(ds, spec, { seed });
      const seen = parts.flatMap((p) => range(p.length).map((i) => p.get(i) as number));
      assert.equal(parts.length, lengths.length);
      assert.deepEqual(seen.sort((x, y) => x - y), range(n));
      if (!asFractions) assert.deepEqual(parts.map((p) => p.length), lengths);
    }),
  );
});
