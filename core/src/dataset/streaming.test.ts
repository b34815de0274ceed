import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, ClosedError } from '../errors.ts';
import { StreamingDataset } from './streaming.ts';

const range = (n: number) => Array.from({ length: n }, (_, k) => k);

async function* numbers(n: number): AsyncGenerator<number> {
  for (let k = 0; k < n; k++) {
    if (k % 7 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    yield k;
  }
}

async function collect<T>(ds: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of ds) out.push(x);
  return out;
}

test('without a buffer, samples come in source order; sync iterables work too', async () => {
  assert.deepEqual(await collect(new StreamingDataset(() => numbers(20))), range(20));
  assert.deepEqual(await collect(new StreamingDataset([3, 1, 2])), [3, 1, 2]);
});

test('the shuffle buffer gives a permutation, deterministic for (seed, epoch), new each epoch', async () => {
  const ds = new StreamingDataset(() => numbers(100), { bufferSize: 16, seed: 5 });
  const epoch0 = await collect(ds);
  const epoch1 = await collect(ds);
  assert.equal(ds.epoch, 2);
  assert.deepEqual([...epoch0].sort((a, b) => a - b), range(100));
  assert.deepEqual([...epoch1].sort((a, b) => a - b), range(100));
  assert.notDeepEqual(epoch0, range(100));
  assert.notDeepEqual(epoch0, epoch1);
  ds.setEpoch(0);
  assert.deepEqual(await collect(ds), epoch0);
  assert.deepEqual(await collect(new StreamingDataset(() => numbers(100), { bufferSize: 16, seed: 5, epoch: 1 })), epoch1);
  assert.notDeepEqual(await collect(new StreamingDataset(() => numbers(100), { bufferSize: 16, seed: 6 })), epoch0);
});

test('a shuffle buffer only reorders locally: nothing leaves more than bufferSize places early', async () => {
  const out = await collect(new StreamingDataset(() => numbers(200), { bufferSize: 8, seed: 1 }));
  out.forEach((x, position) => assert.ok(x <= position + 8, `sample ${x} at position ${position}`));
});

test('shards keep every count-th sample, and together cover the stream once', async () => {
  const shards = await Promise.all(
    [0, 1, 2].map((index) => collect(new StreamingDataset(() => numbers(10), { shard: { index, count: 3 } }))),
  );
  assert.deepEqual(shards, [
    [0, 3, 6, 9],
    [1, 4, 7],
    [2, 5, 8],
  ]);
});

test('shards with shuffling partition the stream, for any sizes', async () => {
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: 60 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 10 }), fc.nat(), async (n, count, bufferSize, seed) => {
      const all: number[] = [];
      for (let index = 0; index < count; index++) {
        const ds = new StreamingDataset(() => numbers(n), { shard: { index, count }, bufferSize, seed, length: n });
        const part = await collect(ds);
        assert.equal(part.length, ds.length);
        all.push(...part);
      }
      assert.deepEqual(all.sort((a, b) => a - b), range(n));
    }),
    { numRuns: 60 },
  );
});

test('the length hint is this shard\'s share of the source length', () => {
  assert.equal(new StreamingDataset([], { length: 10 }).length, 10);
  assert.equal(new StreamingDataset([], { length: 10, shard: { index: 0, count: 3 } }).length, 4);
  assert.equal(new StreamingDataset([], { length: 10, shard: { index: 2, count: 3 } }).length, 3);
  assert.equal(new StreamingDataset([], { length: 1, shard: { index: 1, count: 2 } }).length, 0);
  assert.equal(new StreamingDataset([]).length, undefined);
});

test('a one-shot source can be read once; a second pass is a ClosedError, not silence', async () => {
  const ds = new StreamingDataset(numbers(5));
  assert.deepEqual(await collect(ds), range(5));
  await assert.rejects(collect(ds), ClosedError);
  const reusable = new StreamingDataset([1, 2]);
  assert.deepEqual(await collect(reusable), [1, 2]);
  assert.deepEqual(await collect(reusable), [1, 2]);
});

test('breaking out early closes the source; source errors reach the consumer', async () => {
  let finished = false;
  async function* tracked(): AsyncGenerator<number> {
    try {
      for (let k = 0; ; k++) yield k;
    } finally {
      finished = true;
    }
  }
  for await (const x of new StreamingDataset(tracked)) if (x === 3) break;
  assert.equal(finished, true);
  async function* failing(): AsyncGenerator<number> {
    yield 1;
    throw new Error('disk on fire');
  }
  await assert.rejects(collect(new StreamingDataset(failing, { bufferSize: 4 })), /disk on fire/);
});

test('bad arguments are refused, naming them', () => {
  const isArg = (name: string) => (e: unknown) => e instanceof ArgumentError && e.argument === name;
  assert.throws(() => new StreamingDataset(42 as never), isArg('source'));
  assert.throws(() => new StreamingDataset(null as never), isArg('source'));
  assert.throws(() => new StreamingDataset([], { bufferSize: 0 }), isArg('bufferSize'));
  assert.throws(() => new StreamingDataset([], { bufferSize: 2.5 }), isArg('bufferSize'));
  assert.throws(() => new StreamingDataset([], { seed: -1 }), isArg('seed'));
  assert.throws(() => new StreamingDataset([], { epoch: -1 }), isArg('epoch'));
  assert.throws(() => new StreamingDataset([], { length: -2 }), isArg('length'));
  assert.throws(() => new StreamingDataset([], { shard: { index: 3, count: 3 } }), isArg('shard.index'));
  assert.throws(() => new StreamingDataset([], { shard: { index: 0, count: 0 } }), isArg('shard.count'));
  assert.throws(() => new StreamingDataset([], { shard: 'x' as never }), isArg('shard'));
  assert.throws(() => new StreamingDataset([]).setEpoch(-1), isArg('epoch'));
  assert.throws(() => new StreamingDataset((() => 5) as never)[Symbol.asyncIterator](), isArg('source'));
});
