import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import { BatchSampler } from './batch.ts';
import { RandomSampler } from './random.ts';
import type { Sampler } from './sampler.ts';
import { SequentialSampler } from './sequential.ts';

const argumentError = (argument: string) => (e: unknown) => e instanceof ArgumentError && e.argument === argument;

test('batches cut the sampler’s pass in order; length is ⌈n/b⌉, or ⌊n/b⌋ with dropLast', () => {
  fc.assert(
    fc.property(fc.nat({ max: 200 }), fc.integer({ min: 1, max: 40 }), fc.boolean(), fc.nat(), (n, batchSize, dropLast, seed) => {
      const batches = [...new BatchSampler(new RandomSampler(n, { seed }), { batchSize, dropLast })];
      const flat = batches.flat();
      const pass = [...new RandomSampler(n, { seed })];
      const expectedLength = dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
      assert.equal(new BatchSampler(new RandomSampler(n), { batchSize, dropLast }).length, expectedLength);
      assert.equal(batches.length, expectedLength);
      assert.deepEqual(flat, pass.slice(0, flat.length));
      batches.forEach((batch, k) => {
        if (k < batches.length - 1 || dropLast || n % batchSize === 0) assert.equal(batch.length, batchSize);
        else assert.equal(batch.length, n % batchSize);
      });
    }),
  );
  assert.deepEqual([...new BatchSampler(new SequentialSampler(5), { batchSize: 2 })], [[0, 1], [2, 3], [4]]);
});

test('each pass advances the inner sampler’s epoch, and setEpoch is forwarded', () => {
  const batches = new BatchSampler(new RandomSampler(30, { seed: 4 }), { batchSize: 8 });
  const first = [...batches];
  const second = [...batches];
  assert.notDeepEqual(first, second);
  batches.setEpoch(0);
  assert.deepEqual([...batches], first);
  assert.deepEqual([...batches], second);
  assert.throws(() => batches.setEpoch(-1), argumentError('epoch'));
});

test('stopping early closes the inner pass', () => {
  let closed = 0;
  const inner: Sampler = {
    length: 10,
    *[Symbol.iterator]() {
      try {
        for (let i = 0; i < 10; i++) yield i;
      } finally {
        closed++;
      }
    },
  };
  for (const batch of new BatchSampler(inner, { batchSize: 3 })) {
    assert.deepEqual(batch, [0, 1, 2]);
    break;
  }
  assert.equal(closed, 1);
});

test('refuses bad arguments, naming them', () => {
  const inner = new SequentialSampler(4);
  for (const bad of [0, -3, 2.5, NaN, undefined]) {
    assert.throws(() => new BatchSampler(inner, { batchSize: bad as number }), argumentError('batchSize'));
  }
  assert.throws(() => new BatchSampler(inner, { batchSize: -3 }), /batchSize: must be in \[1, .*\], got -3/);
  assert.throws(() => new BatchSampler({ length: 2 } as unknown as Sampler, { batchSize: 1 }), argumentError('sampler'));
  assert.throws(() => new BatchSampler(inner, { batchSize: 1, dropLast: 1 as unknown as boolean }), argumentError('dropLast'));
  assert.throws(() => new BatchSampler(inner, undefined as never), argumentError('batchSize'));
});
