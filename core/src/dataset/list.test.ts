import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { ListDataset } from './list.ts';

test('ListDataset returns items by index, negative indices from the end', () => {
  const ds = new ListDataset(['a', 'b', 'c']);
  assert.equal(ds.length, 3);
  assert.deepEqual([0, 1, 2].map((i) => ds.get(i)), ['a', 'b', 'c']);
  assert.equal(ds.get(-1), 'c');
  assert.equal(ds.get(-3), 'a');
});

test('ListDataset refuses out-of-range and non-integer indices', () => {
  const ds = new ListDataset([1, 2, 3]);
  assert.throws(() => ds.get(3), IndexOutOfRangeError);
  assert.throws(() => ds.get(-4), IndexOutOfRangeError);
  assert.throws(() => ds.get(1.5), ArgumentError);
  assert.throws(() => new ListDataset([]).get(0), IndexOutOfRangeError);
});

test('ListDataset refuses a non-array, naming items', () => {
  for (const bad of [null, undefined, 'abc', { length: 1 }]) {
    assert.throws(
      () => new ListDataset(bad as never),
      (e: unknown) => e instanceof ArgumentError && e.argument === 'items' && /items: must be an array/.test(e.message),
    );
  }
});

test('ListDataset: get(i) and get(i - length) agree for every valid i', () => {
  fc.assert(
    fc.property(fc.array(fc.integer(), { minLength: 1 }), fc.nat(), (items, k) => {
      const ds = new ListDataset(items);
      const i = k % items.length;
      return ds.get(i) === items[i] && ds.get(i - items.length) === items[i];
    }),
  );
});
