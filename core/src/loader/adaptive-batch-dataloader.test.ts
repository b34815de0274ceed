import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AdaptiveBatchDataLoader, AdaptiveBatchSampler, BatchSizeController } from './adaptive-batch-dataloader.ts';
import { range } from './fixtures/datasets.ts';
import { liveWorkerCount } from './worker-pool.ts';
import { ArgumentError } from '../errors.ts';
import { SequentialSampler } from '../sampler/sequential.ts';
import type { Tensor } from '../tensor.ts';

type RangeBatch = { index: Tensor };
const indicesOf = (b: RangeBatch): number[] => [...(b.index.data as Float64Array)];

/** Feeds `window` steps of `size` samples at `msPerSample`, returns the last decision. */
function feed(c: BatchSizeController, msPerSample: number, memoryBytes?: number) {
  let d;
  for (let i = 0; i < c.window; i++) {
    const fb = memoryBytes === undefined ? { stepMs: c.batchSize * msPerSample } : { stepMs: c.batchSize * msPerSample, memoryBytes };
    d = c.observe(c.batchSize, fb);
  }
  return d!;
}

test('controller: grows ×1.25 while throughput improves, reverts when it drops, holds on a plateau', () => {
  const c = new BatchSizeController({ initialBatchSize: 16, maxBatchSize: 64, memoryLimitBytes: 1000, window: 2 });
  assert.equal(c.observe(16, { stepMs: 10 }), undefined, 'window still filling');
  assert.deepEqual(c.observe(16, { stepMs: 10 }), { action: 'grow', from: 16, to: 20, throughput: 1600 });
  // faster per sample at 20: grow again
  assert.equal(feed(c, 0.5).action, 'grow');
  assert.equal(c.batchSize, 25);
  // slower per sample at 25: back to 20, and no more growth
  assert.deepEqual(
    { ...feed(c, 0.8), throughput: 0 },
    { action: 'revert', from: 25, to: 20, throughput: 0 },
  );
  assert.equal(feed(c, 0.1).action, 'hold', 'capped at the size that was best');
  assert.equal(c.batchSize, 20);

  const plateau = new BatchSizeController({ initialBatchSize: 8, window: 1 });
  assert.equal(feed(plateau, 1).action, 'grow');
  assert.equal(feed(plateau, 1).action, 'hold', 'same samples/s: no gain');
  assert.equal(feed(plateau, 0.5).action, 'hold', 'growth stopped at the plateau');
  assert.equal(plateau.batchSize, 10);
});

test('controller: halves under memory pressure, never below min, and does not grow back into it', () => {
  const c = new BatchSizeController({ initialBatchSize: 40, minBatchSize: 8, maxBatchSize: 100, memoryLimitBytes: 1000, window: 1 });
  assert.deepEqual(c.observe(40, { memoryBytes: 950 }), { action: 'shrink', from: 40, to: 20, memoryFraction: 0.95 });
  assert.equal(c.observe(20, { memoryBytes: 920 })!.to, 10);
  assert.equal(c.observe(10, { memoryBytes: 990 })!.to, 8, 'clamped to min');
  const atMin = new BatchSizeController({ initialBatchSize: 1, memoryLimitBytes: 10 });
  assert.equal(atMin.observe(1, { memoryBytes: 10 })!.action, 'hold');
  // memory between low and high: no growth
  assert.equal(c.observe(8, { stepMs: 8, memoryBytes: 800 })!.action, 'hold');
  // headroom again: grows, but only up to below the size that hit pressure last (9 < 10)
  for (let i = 0; i < 10; i++) c.observe(c.batchSize, { stepMs: c.batchSize / (i + 2), memoryBytes: 100 });
  assert.equal(c.batchSize, 9);
  assert.ok(c.history.some((d) => d.action === 'shrink'));
});

test('controller: options are validated', () => {
  const argument = (fn: () => unknown, name: string) =>
    assert.throws(fn, (e: unknown) => e instanceof ArgumentError && e.argument === name);
  argument(() => new BatchSizeController({ minBatchSize: 0 }), 'minBatchSize');
  argument(() => new BatchSizeController({ minBatchSize: 10, maxBatchSize: 5 }), 'maxBatchSize');
  argument(() => new BatchSizeController({ highMemory: 1.5 }), 'highMemory');
  argument(() => new BatchSizeController({ lowMemory: 0.95 }), 'lowMemory');
  argument(() => new BatchSizeController({ shrinkFactor: 1 }), 'shrinkFactor');
  argument(() => new BatchSizeController({ growFactor: 0.5 }), 'growFactor');
  argument(() => new BatchSizeController().observe(4, { stepMs: -1 }), 'stepMs');
  argument(() => new BatchSizeController().observe(4, { memoryBytes: Number.NaN }), 'memoryBytes');
  assert.equal(new BatchSizeController({ initialBatchSize: 500, maxBatchSize: 64 }).batchSize, 64);
});

test('property: whatever the batch size does, every sample comes exactly once per epoch', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 80 }),
      fc.array(fc.record({ ms: fc.integer({ min: 1, max: 50 }), mem: fc.integer({ min: 0, max: 1000 }) }), { maxLength: 40 }),
      fc.boolean(),
      fc.nat(),
      async (n, reports, shuffle, seed) => {
        const loader = new AdaptiveBatchDataLoader(range({ length: n }), {
          initialBatchSize: 4,
          minBatchSize: 1,
          maxBatchSize: 16,
          memoryLimitBytes: 1000,
          window: 1,
          shuffle,
          seed,
        });
        for (let epoch = 0; epoch < 2; epoch++) {
          const seen: number[] = [];
          let k = 0;
          for await (const batch of loader as AsyncIterable<RangeBatch>) {
            const idx = indicesOf(batch);
            assert.ok(idx.length >= 1 && idx.length <= 16);
            seen.push(...idx);
            const r = reports[k++ % Math.max(1, reports.length)];
            if (r) loader.report({ stepMs: r.ms, memoryBytes: r.mem });
          }
          assert.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
        }
      },
    ),
    { numRuns: 60 },
  );
});

test('the size really changes mid-epoch, and with a worker thread too', async () => {
  for (const numWorkers of [0, 1]) {
    const dataset =
      numWorkers === 0
        ? range({ length: 60 })
        : { module: new URL('./fixtures/datasets.ts', import.meta.url), export: 'range', args: { length: 60 }, length: 60 };
    const loader = new AdaptiveBatchDataLoader(dataset, {
      initialBatchSize: 8,
      maxBatchSize: 32,
      memoryLimitBytes: 100,
      window: 1,
      numWorkers,
      ...(numWorkers > 0 ? { prefetchFactor: 1 } : {}),
    });
    const sizes: number[] = [];
    const seen: number[] = [];
    for await (const batch of loader as AsyncIterable<RangeBatch>) {
      sizes.push(indicesOf(batch).length);
      seen.push(...indicesOf(batch));
      // memory pressure after the third batch
      loader.report(sizes.length === 3 ? { memoryBytes: 95 } : { stepMs: 1 });
    }
    assert.ok(new Set(sizes).size > 1, `sizes ${sizes.join(',')}`);
    assert.ok(Math.max(...sizes) > 8 && Math.min(...sizes.slice(0, -1)) < 8, `sizes ${sizes.join(',')}`);
    assert.deepEqual(seen, Array.from({ length: 60 }, (_, i) => i));
    await loader.close();
  }
  assert.equal(liveWorkerCount(), 0);
});

test('autoMeasure reports by itself; the sampler cuts one pass into chunks; bad arguments', async () => {
  const loader = new AdaptiveBatchDataLoader(range({ length: 50 }), { initialBatchSize: 2, window: 1, autoMeasure: true });
  let count = 0;
  for await (const b of loader as AsyncIterable<RangeBatch>) count += indicesOf(b).length;
  assert.equal(count, 50);
  assert.ok(loader.controller.history.length > 0);

  let size = 1;
  const s = new AdaptiveBatchSampler(new SequentialSampler(10), () => size++);
  assert.deepEqual([...s], [[0], [1, 2], [3, 4, 5], [6, 7, 8, 9]]);
  assert.deepEqual(s.yielded, [1, 2, 3, 4]);

  assert.throws(() => new AdaptiveBatchDataLoader({ module: new URL('./fixtures/datasets.ts', import.meta.url) }), ArgumentError);
  assert.throws(() => new AdaptiveBatchDataLoader(range({ length: 2 })).report({ stepMs: 1 }), /no batch has been delivered/);
});
