import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import { SequentialSampler } from './sequential.ts';

const argumentError = (argument: string) => (e: unknown) => e instanceof ArgumentError && e.argument === argument;

test('yields 0 … n − 1 in order, every pass, from a count or a dataset', () => {
  fc.assert(
    fc.property(fc.nat({ max: 300 }), (n) => {
      const sampler = new SequentialSampler(n);
      const expected = Array.from({ length: n }, (_, i) => i);
      assert.equal(sampler.length, n);
      assert.deepEqual([...sampler], expected);
      assert.deepEqual([...sampler], expected);
      assert.deepEqual([...new SequentialSampler({ length: n })], expected);
    }),
  );
});

test('refuses sizes that are not integers ≥ 0, naming them', () => {
  for (const bad of [-1, 1.5, NaN, Infinity]) {
    assert.throws(() => new SequentialSampler(bad), argumentError('source'));
    assert.throws(() => new SequentialSampler({ length: bad }), argumentError('source.length'));
  }
  assert.throws(() => new SequentialSampler(null as unknown as number), argumentError('source'));
  assert.throws(() => new SequentialSampler(-3), /source: must be in \[0, .*\], got -3/);
});
