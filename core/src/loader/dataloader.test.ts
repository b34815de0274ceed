import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DataLoader } from './dataloader.ts';
import type { DataLoaderOptions } from './dataloader.ts';
import { liveWorkerCount } from './worker-pool.ts';
import { range, stream } from './fixtures/datasets.ts';
import type { RangeBatch } from './fixtures/test-helpers.ts';
import { collect, FIXTURES, indicesOf, noWorkersLeft, rangeSpec, rejectsWith, spec } from './fixtures/test-helpers.ts';
import { WorkerError } from './worker-error.ts';
import { ArgumentError, ClosedError, DatasetError } from '../errors.ts';
import { hashSeed } from '../random.ts';
import { BatchSampler } from '../sampler/batch.ts';
import { RandomSampler } from '../sampler/random.ts';
import { SequentialSampler } from '../sampler/sequential.ts';
import type { Tensor } from '../tensor.ts';

test('in-process: batches, collate, length and dropLast', async () => {
  const loader = new DataLoader(range({ length: 10 }), { batchSize: 4 });
  assert.equal(loader.length, 3);
  const batches = (await collect(loader)) as unknown as RangeBatch[];
  assert.deepEqual(batches.map(indicesOf), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  assert.deepEqual(batches[0]!.features.shape, [4, 3]);
  assert.equal(batches[0]!.features.dtype, 'float32');
  assert.deepEqual([...(batches[2]!.label.data as BigInt64Array)], [2n, 0n]);
  const dropped = new DataLoader(range({ length: 10, async: true }), { batchSize: 4, dropLast: true });
  assert.equal(dropped.length, 2);
  assert.equal((await collect(dropped)).length, 2);
});

test('property: every sample exactly once per epoch, with or without shuffle and dropLast', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 60 }),
      fc.integer({ min: 1, max: 12 }),
      fc.boolean(),
      fc.boolean(),
      fc.nat(),
      async (n, batchSize, shuffle, dropLast, seed) => {
        const loader = new DataLoader(range({ length: n }), { batchSize, shuffle, dropLast, seed });
        for (let epoch = 0; epoch < 2; epoch++) {
          const batches = (await collect(loader)) as unknown as RangeBatch[];
          assert.equal(batches.length, loader.length);
          const seen = batches.flatMap(indicesOf);
          assert.ok(batches.every((b) => indicesOf(b).length === batchSize || (!dropLast && b === batches.at(-1))));
          assert.equal(new Set(seen).size, seen.length, 'a sample came twice');
          assert.equal(seen.length, dropLast ? n - (n % batchSize) : n);
          if (!dropLast) assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
        }
      },
    ),
    { numRuns: 60 },
  );
});

test('shuffle reshuffles each epoch and is reproducible from the seed', async () => {
  const order = async (seed: number) => {
    const loader = new DataLoader(range({ length: 32 }), { batchSize: 32, shuffle: true, seed });
    const [a] = (await collect(loader)) as unknown as RangeBatch[];
    const [b] = (await collect(loader)) as unknown as RangeBatch[];
    return [indicesOf(a!), indicesOf(b!)];
  };
  const [e0, e1] = await order(7);
  assert.notDeepEqual(e0, e1);
  assert.deepEqual(await order(7), [e0, e1]);
  assert.notDeepEqual((await order(8))[0], e0);
});

test('0, 1 and 2 workers give identical batches for the same seed, in sampler order', async () => {
  const options: DataLoaderOptions = { batchSize: 5, shuffle: true, seed: 11, dropLast: true };
  const sampler = new RandomSampler(23, { seed: 11 });
  const expected = [0, 1].map(() => [...sampler]);
  const runs: number[][][][] = [];
  for (const numWorkers of [0, 1, 2]) {
    const loader = new DataLoader(rangeSpec({ length: 23 }), { ...options, numWorkers });
    const epochs: number[][][] = [];
    for (let e = 0; e < 2; e++) epochs.push(((await collect(loader)) as unknown as RangeBatch[]).map(indicesOf));
    await loader.close();
    runs.push(epochs);
    // in sampler order: the RandomSampler's permutation, cut into batches of 5 with the tail dropped
    epochs.forEach((batches, e) => assert.deepEqual(batches.flat(), expected[e]!.slice(0, 20)));
  }
  assert.deepEqual(runs[1], runs[0]);
  assert.deepEqual(runs[2], runs[0]);
  await noWorkersLeft();
});

test('workers: out-of-order delivery still yields every batch once; features arrive intact', async () => {
  const loader = new DataLoader(rangeSpec({ length: 40, async: true }), {
    batchSize: 3,
    numWorkers: 2,
    inOrder: false,
    prefetchFactor: 3,
  });
  assert.throws(() => loader.length, DatasetError, 'unknown until a worker has built the dataset');
  const batches = (await collect(loader)) as unknown as RangeBatch[];
  assert.equal(loader.length, 14);
  assert.equal(batches.length, 14);
  const seen = batches.flatMap(indicesOf).sort((a, b) => a - b);
  assert.deepEqual(seen, Array.from({ length: 40 }, (_, i) => i));
  for (const b of batches) {
    const idx = indicesOf(b);
    assert.deepEqual([...(b.features.data as Float32Array)], idx.flatMap((i) => [i, i * 0.5, -i]));
  }
  await noWorkersLeft();
});

test('per-worker seeds are hashSeed(seed, epoch, id); workerInit runs with the worker info', async () => {
  const loader = new DataLoader(spec('whoAmI', { length: 8 }), {
    batchSize: 2,
    numWorkers: 2,
    seed: 99,
    workerInit: { module: FIXTURES, export: 'markInitialized', args: { expectWorkers: 2 } },
    collate: { module: new URL('../collate/metadata.ts', import.meta.url), export: 'collateWithMetadata', args: { metadataKeys: ['worker', 'seed', 'epoch', 'initialized', 'thread'] } },
  });
  for (let epoch = 0; epoch < 2; epoch++) {
    const batches = (await collect(loader)) as { metadata: { worker: number[]; seed: number[]; epoch: number[]; initialized: boolean[] } }[];
    batches.forEach((b, k) => {
      // round-robin dispatch: batch k goes to worker k mod 2
      assert.deepEqual(b.metadata.worker, [k % 2, k % 2]);
      assert.deepEqual(b.metadata.seed, [hashSeed(99, epoch, k % 2), hashSeed(99, epoch, k % 2)]);
      assert.deepEqual(b.metadata.epoch, [epoch, epoch]);
      assert.deepEqual(b.metadata.initialized, [true, true]);
    });
  }
  await noWorkersLeft();
});

test('persistent workers serve several epochs and end with close()', async () => {
  const loader = new DataLoader(spec('whoAmI', { length: 6 }, 6), {
    batchSize: 3,
    numWorkers: 2,
    persistentWorkers: true,
    collate: { module: new URL('../collate/metadata.ts', import.meta.url), export: 'collateWithMetadata', args: { metadataKeys: ['thread', 'epoch', 'seed'] } },
  });
  type Meta = { metadata: { thread: number[]; epoch: number[]; seed: number[] } };
  const e0 = (await collect(loader)) as Meta[];
  assert.equal(liveWorkerCount(), 2);
  // leaving a pass early keeps persistent workers; the next pass is complete and correct
  for await (const _ of loader) break;
  assert.equal(liveWorkerCount(), 2);
  const e2 = (await collect(loader)) as Meta[];
  assert.equal(liveWorkerCount(), 2);
  assert.deepEqual(e2.map((b) => b.metadata.thread), e0.map((b) => b.metadata.thread), 'the same threads');
  assert.deepEqual(e2.map((b) => b.metadata.epoch[0]), [2, 2]);
  assert.equal(e2[1]!.metadata.seed[0], hashSeed(0, 2, 1));
  await loader.close();
  await noWorkersLeft();
  await rejectsWith(collect(loader), ClosedError);
});

test('buffers that belong to the samples are copied, not moved: a caching dataset stays intact', async () => {
  const loader = new DataLoader(spec('cached', { length: 4 }), {
    batchSize: 2,
    numWorkers: 1,
    persistentWorkers: true,
    // passes the cached Float32Arrays through as metadata lists
    collate: { module: new URL('../collate/metadata.ts', import.meta.url), export: 'collateWithMetadata', args: { metadataKeys: ['features'] } },
  });
  for (let epoch = 0; epoch < 2; epoch++) {
    const batches = (await collect(loader)) as { metadata: { features: Float32Array[] } }[];
    assert.deepEqual(
      batches.flatMap((b) => b.metadata.features.map((f) => [...f])),
      [[0, 1], [1, 2], [2, 3], [3, 4]],
      `epoch ${epoch}`,
    );
  }
  await loader.close();
  await noWorkersLeft();
});

test('IterableDataset: sharded by getWorkerInfo, batched per worker, round-robin in order', async () => {
  const oneWorker = await collect(new DataLoader(spec('stream', { length: 10 }), { batchSize: 3 }));
  assert.deepEqual(
    (oneWorker as Tensor[]).map((t) => [...(t.data as Float64Array)]),
    [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]],
  );
  const loader = new DataLoader(spec('stream', { length: 10 }), { batchSize: 2, numWorkers: 2 });
  const batches = ((await collect(loader)) as Tensor[]).map((t) => [...(t.data as Float64Array)]);
  // worker 0 reads 0,2,4,6,8 and worker 1 reads 1,3,5,7,9; batches alternate between them
  assert.deepEqual(batches, [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9]]);
  // a dataset that does not shard itself is read once per worker (PyTorch semantics)
  const dup = ((await collect(new DataLoader(spec('stream', { length: 4, shard: false }), { batchSize: 4, numWorkers: 2 }))) as Tensor[]);
  assert.equal(dup.length, 2);
  const before: number[][] = [];
  const failing = new DataLoader(spec('stream', { length: 10, failAt: 7 }), { batchSize: 2, numWorkers: 2 });
  const consume = async () => {
    for await (const t of failing as AsyncIterable<Tensor>) before.push([...(t.data as Float64Array)]);
  };
  await rejectsWith(consume(), WorkerError, (e) => {
    assert.equal(e.workerId, 1);
    assert.equal(e.sampleIndex, 3); // the 4th record of worker 1's stream (1, 3, 5, 7)
  });
  // the error comes out in its round-robin turn, after the batches before it
  assert.deepEqual(before, [[0, 2], [1, 3], [4, 6]]);
  await rejectsWith(collect(new DataLoader(spec('stream', { length: 4 }), { numWorkers: 1, shuffle: true })), ArgumentError, (e) =>
    assert.equal(e.argument, 'shuffle'),
  );
  await noWorkersLeft();
});

test('collate as a module spec, a custom sampler and a batch sampler', async () => {
  const collate = { module: FIXTURES, export: 'sumIndices', args: { scale: 10 } };
  const sampler = new SequentialSampler(6);
  for (const numWorkers of [0, 1]) {
    const a = await collect(new DataLoader(rangeSpec({ length: 6 }), { batchSize: 4, numWorkers, collate, sampler }));
    assert.deepEqual(a, [{ sum: 60, size: 4 }, { sum: 90, size: 2 }]);
    const batchSampler = new BatchSampler(new SequentialSampler(6), { batchSize: 3 });
    const b = await collect(new DataLoader(rangeSpec({ length: 6 }), { batchSampler, numWorkers, collate }));
    assert.deepEqual(b, [{ sum: 30, size: 3 }, { sum: 120, size: 3 }]);
  }
  const fn = await collect(new DataLoader(range({ length: 3 }), { batchSize: 3, collate: (xs) => xs.length }));
  assert.deepEqual(fn, [3]);
  await noWorkersLeft();
});

test('sampler.setEpoch follows the loader epoch', async () => {
  const loader = new DataLoader(range({ length: 16 }), { batchSize: 16, sampler: new RandomSampler(16, { seed: 5 }), epoch: 3 });
  const [batch] = (await collect(loader)) as unknown as RangeBatch[];
  assert.deepEqual(indicesOf(batch!), [...new RandomSampler(16, { seed: 5, epoch: 3 })]);
  assert.equal(loader.epoch, 4);
  loader.setEpoch(3);
  const [again] = (await collect(loader)) as unknown as RangeBatch[];
  assert.deepEqual(indicesOf(again!), indicesOf(batch!));
});

test('constructor arguments are validated and named', () => {
  const ds = range({ length: 4 });
  const argument = (fn: () => unknown, name: string) =>
    assert.throws(fn, (e: unknown) => e instanceof ArgumentError && e.argument === name, `expected ArgumentError(${name})`);
  const batchSampler = new BatchSampler(new SequentialSampler(4), { batchSize: 2 });
  argument(() => new DataLoader(ds, { batchSampler, batchSize: 2 }), 'batchSampler');
  argument(() => new DataLoader(ds, { batchSampler, shuffle: true }), 'batchSampler');
  argument(() => new DataLoader(ds, { batchSampler, dropLast: true }), 'batchSampler');
  argument(() => new DataLoader(ds, { sampler: new SequentialSampler(4), shuffle: true }), 'shuffle');
  argument(() => new DataLoader(ds, { batchSize: 0 }), 'batchSize');
  argument(() => new DataLoader(ds, { batchSize: -3 }), 'batchSize');
  argument(() => new DataLoader(ds, { numWorkers: 1.5 }), 'numWorkers');
  argument(() => new DataLoader(ds, { numWorkers: 1 }), 'dataset');
  argument(() => new DataLoader(ds, { prefetchFactor: 2 }), 'prefetchFactor');
  argument(() => new DataLoader(ds, { persistentWorkers: true }), 'persistentWorkers');
  argument(() => new DataLoader(ds, { timeout: -1 }), 'timeout');
  argument(() => new DataLoader(ds, { seed: -1 }), 'seed');
  argument(() => new DataLoader(42 as never), 'dataset');
  argument(() => new DataLoader({ module: './fixtures/datasets.ts' }, { numWorkers: 1 }), 'dataset.module');
  argument(() => new DataLoader(rangeSpec({ length: 1 }), { numWorkers: 1, collate: (x) => x }), 'collate');
  argument(() => new DataLoader({ module: FIXTURES, args: { f: () => 1 } }), 'dataset.args');
  argument(() => new DataLoader(stream({ length: 3 }), { shuffle: true }), 'shuffle');
  assert.throws(() => new DataLoader(spec('range', { length: 4 })).length, DatasetError);
  assert.equal(new DataLoader(spec('range', { length: 4 }, 4), { batchSize: 3 }).length, 2);
});
