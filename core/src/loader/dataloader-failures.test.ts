import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataLoader } from './dataloader.ts';
import { liveWorkerCount } from './worker-pool.ts';
import { WorkerError } from './worker-error.ts';
import { range } from './fixtures/datasets.ts';
import type { RangeBatch } from './fixtures/test-helpers.ts';
import { collect, indicesOf, noWorkersLeft, rangeSpec, rejectsWith, spec } from './fixtures/test-helpers.ts';
import { AbortError, ArgumentError, ClosedError, DatasetError, ShardlineError, TimeoutError } from '../errors.ts';

test('a worker that throws: WorkerError with the worker stack, worker id, sample index and batch', async () => {
  const loader = new DataLoader(rangeSpec({ length: 20, failAt: [13] }), { batchSize: 4, numWorkers: 2 });
  const seen: number[] = [];
  const consume = async () => {
    for await (const b of loader as AsyncIterable<RangeBatch>) seen.push(...indicesOf(b));
  };
  const err = await rejectsWith(consume(), WorkerError, (e) => {
    assert.equal(e.code, 'ERR_WORKER');
    assert.equal(e.workerId, 1);
    assert.equal(e.batch, 3);
    assert.equal(e.sampleIndex, 13);
    assert.deepEqual(e.indices, [12, 13, 14, 15]);
    assert.equal(e.causeCode, 'ERR_DATASET');
    assert.match(e.message, /worker 1 failed on sample 13 of batch 3 with indices \[12, 13, 14, 15\]: DatasetError: sample 13 is corrupt/);
  });
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 'every batch before the failing one, in order');
  assert.match(err.workerStack ?? '', /fixtures\/datasets\.ts/);
  assert.match(err.stack ?? '', /--- in worker 1 ---/);
  await noWorkersLeft();
});

test('a failing async sample is named too, and in-process errors pass through unchanged', async () => {
  const loader = new DataLoader(rangeSpec({ length: 8, failAt: [6], async: true }), { batchSize: 4, numWorkers: 1 });
  await rejectsWith(collect(loader), WorkerError, (e) => assert.equal(e.sampleIndex, 6));
  await rejectsWith(collect(new DataLoader(range({ length: 8, failAt: [6] }), { batchSize: 4 })), DatasetError);
  await noWorkersLeft();
});

test('a collate error in a worker names the field and the sample', async () => {
  const loader = new DataLoader(spec('whoAmI', { length: 4 }), {
    batchSize: 4,
    numWorkers: 1,
    collate: { module: new URL('../collate/pad-sequence.ts', import.meta.url), export: 'padSequenceCollate', args: { fields: ['tokens'] } },
  });
  await rejectsWith(collect(loader), WorkerError, (e) => {
    assert.match(e.message, /ShapeMismatchError: field "tokens": missing in sample 0/);
    assert.equal(e.causeCode, 'ERR_SHAPE_MISMATCH');
  });
  await noWorkersLeft();
});

test('a worker that hangs: TimeoutError naming the batch and the worker', async () => {
  const loader = new DataLoader(rangeSpec({ length: 12, hangAt: 9 }), { batchSize: 2, numWorkers: 2, timeout: 1000 });
  const seen: number[] = [];
  await rejectsWith(
    (async () => {
      for await (const b of loader as AsyncIterable<RangeBatch>) seen.push(...indicesOf(b));
    })(),
    TimeoutError,
    (e) => assert.match(e.message, /batch 4 \(indices \[8, 9\]\) from worker 0 was not loaded within 1000 ms/),
  );
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7]);
  await noWorkersLeft();
});

test('a worker thread that exits is an error, not a hang', async () => {
  const loader = new DataLoader(rangeSpec({ length: 8, exitAt: 5 }), { batchSize: 2, numWorkers: 2 });
  await rejectsWith(collect(loader), WorkerError, (e) => {
    assert.equal(e.workerId, 0);
    // it had batch 2 (indices 4, 5) and perhaps already the next one
    assert.match(e.message, /worker 0 exited unexpectedly with code 3 while loading batch(es)? 2\b/);
  });
  await noWorkersLeft();
});

test('a dataset module that fails to load, lacks the export or builds no dataset: clear errors', async () => {
  const broken = new DataLoader({ module: new URL('./fixtures/broken-module.ts', import.meta.url) }, { numWorkers: 2 });
  await rejectsWith(collect(broken), ArgumentError, (e) => {
    assert.equal(e.argument, 'dataset.module');
    assert.match(e.message, /broken-module\.ts" failed to load: broken fixture: this module throws at import/);
  });
  const missing = new DataLoader({ module: new URL('./fixtures/no-such-file.ts', import.meta.url) }, { numWorkers: 1 });
  await rejectsWith(collect(missing), ArgumentError, (e) => assert.equal(e.argument, 'dataset.module'));
  await rejectsWith(collect(new DataLoader(spec('nope', {}), { numWorkers: 1 })), ArgumentError, (e) => {
    assert.equal(e.argument, 'dataset.export');
    assert.match(e.message, /has no export "nope" \(it exports: .*range/);
  });
  await rejectsWith(collect(new DataLoader(spec('notADataset', {}), { numWorkers: 1 })), ArgumentError, (e) =>
    assert.match(e.message, /returned an object with keys \[hello\], not a Dataset/),
  );
  await rejectsWith(collect(new DataLoader(spec('brokenFactory', { root: '/nowhere' }), { numWorkers: 1 })), WorkerError, (e) =>
    assert.match(e.message, /worker 0 failed to start: DatasetError: no dataset at \/nowhere/),
  );
  // the same spec errors in-process
  await rejectsWith(collect(new DataLoader(spec('nope', {}))), ArgumentError, (e) => assert.equal(e.argument, 'dataset.export'));
  await noWorkersLeft();
});

test('abort mid-epoch: AbortError, workers ended; an aborted signal refuses new passes', async () => {
  const controller = new AbortController();
  const loader = new DataLoader(rangeSpec({ length: 40 }), { batchSize: 2, numWorkers: 2, signal: controller.signal });
  let got = 0;
  await rejectsWith(
    (async () => {
      for await (const _ of loader) if (++got === 3) controller.abort(new Error('user stop'));
    })(),
    AbortError,
    (e) => assert.equal((e.cause as Error).message, 'user stop'),
  );
  assert.equal(got, 3);
  await noWorkersLeft();
  await rejectsWith(collect(loader), AbortError);
  await noWorkersLeft();

  // aborted while the consumer holds a batch and is not waiting on the loader: the threads end anyway
  const later = new AbortController();
  const held = new DataLoader(rangeSpec({ length: 40 }), { batchSize: 2, numWorkers: 2, signal: later.signal });
  const it = held[Symbol.asyncIterator]();
  await it.next();
  assert.equal(liveWorkerCount(), 2);
  later.abort();
  await noWorkersLeft(5000);
  await rejectsWith(it.next(), AbortError);
});

test('abort while waiting on a hung worker, and while a persistent pool is idle', async () => {
  const controller = new AbortController();
  const loader = new DataLoader(rangeSpec({ length: 4, hangAt: 0 }), { batchSize: 2, numWorkers: 1, signal: controller.signal });
  setTimeout(() => controller.abort(), 300);
  await rejectsWith(collect(loader), AbortError);
  await noWorkersLeft();

  const idle = new AbortController();
  const persistent = new DataLoader(rangeSpec({ length: 4 }), { batchSize: 2, numWorkers: 1, persistentWorkers: true, signal: idle.signal });
  await collect(persistent);
  assert.equal(liveWorkerCount(), 1);
  idle.abort();
  await noWorkersLeft(5000); // the idle pool is ended asynchronously by the abort listener
});

test('break mid-epoch ends the workers; so does close() during a pass', async () => {
  const loader = new DataLoader(rangeSpec({ length: 40 }), { batchSize: 2, numWorkers: 2 });
  let got = 0;
  for await (const _ of loader) if (++got === 2) break;
  await noWorkersLeft();
  // the loader is still usable: the next pass is complete
  assert.equal((await collect(loader)).length, 20);

  const closing = new DataLoader(rangeSpec({ length: 40 }), { batchSize: 2, numWorkers: 2 });
  await rejectsWith(
    (async () => {
      for await (const _ of closing) await closing.close();
    })(),
    ClosedError,
  );
  await noWorkersLeft();
});

test('in-process: timeout, abort and close reach an async dataset; one pass at a time', async () => {
  const hung = { length: 4, get: (i: number) => (i === 2 ? new Promise<never>(() => {}) : i) };
  await rejectsWith(collect(new DataLoader(hung, { batchSize: 2, timeout: 100 })), TimeoutError, (e) =>
    assert.match(e.message, /batch 1 \(indices \[2, 3\]\) was not loaded within 100 ms/),
  );
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  await rejectsWith(collect(new DataLoader(hung, { batchSize: 2, signal: controller.signal })), AbortError);

  const loader = new DataLoader(range({ length: 4 }), { batchSize: 1 });
  const it = loader[Symbol.asyncIterator]();
  await it.next();
  await rejectsWith(loader[Symbol.asyncIterator]().next(), ShardlineError, (e) => assert.match(e.message, /already in progress/));
  await it.return!();
  assert.equal((await collect(loader)).length, 4);
  await loader[Symbol.asyncDispose]();
  await rejectsWith(collect(loader), ClosedError);
});
