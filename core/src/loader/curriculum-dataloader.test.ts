import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CurriculumDataLoader, CurriculumSampler, curriculumFraction } from './curriculum-dataloader.ts';
import { range } from './fixtures/datasets.ts';
import type { RangeSample } from './fixtures/datasets.ts';
import { liveWorkerCount } from './worker-pool.ts';
import { ArgumentError } from '../errors.ts';
import type { Tensor } from '../tensor.ts';

type RangeBatch = { index: Tensor };

async function epochIndices(loader: AsyncIterable<unknown>): Promise<number[]> {
  const out: number[] = [];
  for await (const b of loader as AsyncIterable<RangeBatch>) out.push(...(b.index.data as Float64Array));
  return out;
}

test('pacing: linear and root grow from the initial fraction to 1 in epochsToFull epochs; custom is checked', () => {
  assert.equal(curriculumFraction(0, 'linear', 0.2, 4), 0.2);
  assert.ok(Math.abs(curriculumFraction(2, 'linear', 0.2, 4) - 0.6) < 1e-12);
  assert.equal(curriculumFraction(4, 'linear', 0.2, 4), 1);
  assert.equal(curriculumFraction(9, 'linear', 0.2, 4), 1);
  assert.ok(Math.abs(curriculumFraction(0, 'root', 0.2, 4) - 0.2) < 1e-12);
  assert.ok(curriculumFraction(1, 'root', 0.2, 4) > curriculumFraction(1, 'linear', 0.2, 4), 'root is faster early');
  assert.equal(curriculumFraction(4, 'root', 0.2, 4), 1);
  assert.equal(curriculumFraction(3, (e) => (e + 1) / 10, 0.1, 10), 0.4);
  assert.throws(() => curriculumFraction(0, () => 0, 0.1, 10), (e: unknown) => e instanceof ArgumentError && e.argument === 'pacing');
  assert.throws(() => curriculumFraction(0, () => 1.5, 0.1, 10), ArgumentError);
});

test('each epoch yields exactly the easiest available samples, once, shuffled from seed and epoch', async () => {
  // difficulty of sample i: (i * 7) mod 20, so the easiest are not simply the first indices
  const difficulty = Array.from({ length: 20 }, (_, i) => (i * 7) % 20);
  const easiest = Array.from({ length: 20 }, (_, i) => i).sort((a, b) => difficulty[a]! - difficulty[b]!);
  const make = (seed: number) =>
    new CurriculumDataLoader(range({ length: 20 }), { difficulty, initialDifficulty: 0.25, epochsToFull: 3, batchSize: 4, seed });
  const loader = make(1);
  const epochs: number[][] = [];
  for (let e = 0; e < 5; e++) {
    const count = loader.availableCount(e);
    assert.equal(loader.length, Math.ceil(count / 4));
    const got = await epochIndices(loader);
    assert.equal(got.length, count);
    assert.deepEqual([...got].sort((a, b) => a - b), easiest.slice(0, count).sort((a, b) => a - b));
    epochs.push(got);
  }
  assert.deepEqual(epochs.map((e) => e.length), [5, 10, 15, 20, 20]);
  assert.notDeepEqual(epochs[3], epochs[4], 'reshuffled each epoch');
  const again = make(1);
  for (const e of epochs) assert.deepEqual(await epochIndices(again), e, 'deterministic from seed + epoch');
  assert.notDeepEqual(await epochIndices(make(2)), epochs[0]);
});

test('a difficulty function of the sample (async) is evaluated once; setEpoch jumps ahead', async () => {
  let calls = 0;
  const loader = new CurriculumDataLoader<RangeSample>(range({ length: 10 }), {
    difficulty: async (s) => {
      calls++;
      return -s.index; // the highest indices are the easiest
    },
    initialDifficulty: 0.3,
    epochsToFull: 2,
    batchSize: 10,
    ordered: true,
  });
  assert.deepEqual(await epochIndices(loader), [9, 8, 7]);
  assert.equal(calls, 10);
  loader.setEpoch(2);
  assert.equal(loader.length, 1);
  assert.deepEqual(await epochIndices(loader), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  assert.equal(calls, 10);
});

test('with worker threads, from an array of difficulties', async () => {
  const loader = new CurriculumDataLoader(
    { module: new URL('./fixtures/datasets.ts', import.meta.url), export: 'range', args: { length: 12 }, length: 12 },
    { difficulty: Array.from({ length: 12 }, (_, i) => i), initialDifficulty: 0.5, epochsToFull: 1, batchSize: 3, numWorkers: 2, seed: 4 },
  );
  assert.deepEqual((await epochIndices(loader)).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5]);
  assert.equal((await epochIndices(loader)).length, 12);
  await loader.close();
  assert.equal(liveWorkerCount(), 0);
});

test('property: the sampler yields min(n, ceil(f·n)) distinct easiest indices', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 200 }), fc.double({ min: 0.01, max: 1, noNaN: true }), fc.nat(), (n, f, seed) => {
      const count = Math.min(n, Math.max(1, Math.ceil(f * n)));
      const s = new CurriculumSampler(n, () => count, { seed });
      s.setOrder(Uint32Array.from({ length: n }, (_, i) => n - 1 - i));
      const got = [...s];
      assert.equal(got.length, count);
      assert.equal(new Set(got).size, count);
      assert.ok(got.every((i) => i >= n - count));
    }),
    { numRuns: 200 },
  );
});

test('arguments are validated', () => {
  const ds = range({ length: 4 });
  const argument = (fn: () => unknown, name: string) =>
    assert.throws(fn, (e: unknown) => e instanceof ArgumentError && e.argument === name, name);
  argument(() => new CurriculumDataLoader(ds, { difficulty: [1, 2, 3] }), 'difficulty');
  argument(() => new CurriculumDataLoader(ds, { difficulty: [1, 2, Number.NaN, 4] }), 'difficulty[2]');
  argument(() => new CurriculumDataLoader(ds, { difficulty: [1, 2, 3, 4], initialDifficulty: 0 }), 'initialDifficulty');
  argument(() => new CurriculumDataLoader(ds, { difficulty: [1, 2, 3, 4], epochsToFull: -1 }), 'epochsToFull');
  argument(() => new CurriculumDataLoader(ds, { difficulty: [1, 2, 3, 4], pacing: 'cubic' as never }), 'pacing');
  argument(
    () => new CurriculumDataLoader({ module: new URL('./fixtures/datasets.ts', import.meta.url), length: 4 }, { difficulty: () => 1 }),
    'difficulty',
  );
});
