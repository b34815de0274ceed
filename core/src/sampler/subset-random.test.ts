import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { SubsetRandomSampler } from './subset-random.ts';

const argumentError = (argument: string) => (e: unknown) => e instanceof ArgumentError && e.argument === argument;
const sorted = (xs: ArrayLike<number>) => Array.from(xs).sort((a, b) => a - b);

test('a pass is a permutation of the given indices, duplicates included', () => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 1000 }), { maxLength: 100 }), fc.nat(), fc.nat({ max: 1000 }), (indices, seed, epoch) => {
      const sampler = new SubsetRandomSampler(indices, { seed, epoch, size: 1001 });
      assert.equal(sampler.length, indices.length);
      assert.deepEqual(sorted([...sampler]), sorted(indices));
    }),
  );
});

test('a pass is a function of (seed, epoch) and each pass advances the epoch', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.nat({ max: 10_000 }), { minLength: 20, maxLength: 60 }), fc.nat(), (indices, seed) => {
      const sampler = new SubsetRandomSampler(indices, { seed, epoch: 3 });
      const first = [...sampler];
      const second = [...sampler];
      assert.deepEqual(first, [...new SubsetRandomSampler(indices, { seed, epoch: 3 })]);
      assert.deepEqual(second, [...new SubsetRandomSampler(indices, { seed, epoch: 4 })]);
      assert.notDeepEqual(first, second);
      sampler.setEpoch(3);
      assert.deepEqual([...sampler], first);
      assert.equal(sampler.epoch, 4);
    }),
  );
});

test('later changes to the caller’s array do not reach the sampler', () => {
  const indices = [1, 2, 3];
  const sampler = new SubsetRandomSampler(indices);
  indices[0] = 99;
  assert.deepEqual(sorted([...sampler]), [1, 2, 3]);
  assert.deepEqual(sorted([...new SubsetRandomSampler(new Uint32Array([7, 5]))]), [5, 7]);
});

test('refuses bad indices, naming the one at fault', () => {
  assert.throws(() => new SubsetRandomSampler([0, 1, 2.5]), argumentError('indices[2]'));
  assert.throws(() => new SubsetRandomSampler([0, NaN]), argumentError('indices[1]'));
  assert.throws(() => new SubsetRandomSampler([0, -1]), argumentError('indices[1]'));
  assert.throws(
    () => new SubsetRandomSampler([0, 4, 5], { size: 5 }),
    (e: unknown) => e instanceof IndexOutOfRangeError && e.index === 5 && e.length === 5 && /indices\[2\]/.test(e.message),
  );
  assert.throws(() => new SubsetRandomSampler([-1], { size: 5 }), IndexOutOfRangeError);
  assert.throws(() => new SubsetRandomSampler(5 as unknown as number[]), argumentError('indices'));
  assert.throws(() => new SubsetRandomSampler([1], { size: -2 }), argumentError('size'));
  assert.throws(() => new SubsetRandomSampler([1], { seed: 1.5 }), argumentError('seed'));
  assert.throws(() => new SubsetRandomSampler([1], { epoch: -1 }), argumentError('epoch'));
});
