import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, DatasetError, IndexOutOfRangeError } from '../errors.ts';
import type { Dataset } from './dataset.ts';
import { ListDataset } from './list.ts';
import { RobustDataset } from './robust.ts';
import type { LoadAttempt } from './robust.ts';

/** Sample i is `i`, except the indices in `bad`, which always throw; `flaky` ones fail their first `times` gets. */
class Faulty implements Dataset<number> {
  readonly length: number;
  readonly bad: Set<number>;
  readonly flaky: Map<number, number>;
  calls = 0;

  constructor(length: number, bad: number[], flaky: Record<number, number> = {}) {
    this.length = length;
    this.bad = new Set(bad);
    this.flaky = new Map(Object.entries(flaky).map(([k, v]) => [Number(k), v]));
  }

  get(i: number): number {
    this.calls++;
    if (this.bad.has(i)) throw new Error(`sample ${i} is corrupt`);
    const left = this.flaky.get(i) ?? 0;
    if (left > 0) {
      this.flaky.set(i, left - 1);
      throw new Error(`sample ${i} timed out`);
    }
    return i;
  }
}

const all = async <T>(ds: Dataset<T>) => {
  const out: T[] = [];
  for (let i = 0; i < ds.length; i++) out.push(await ds.get(i));
  return out;
};

test('a good dataset passes through unchanged, including negative indices', async () => {
  const ds = new RobustDataset(new ListDataset([5, 6, 7]));
  assert.deepEqual(await all(ds), [5, 6, 7]);
  assert.equal(await ds.get(-1), 7);
  await assert.rejects(ds.get(3), IndexOutOfRangeError);
  await assert.rejects(ds.get(-4), IndexOutOfRangeError);
  assert.deepEqual(ds.failures(), []);
});

test('transient failures are retried and do not trigger the fallback', async () => {
  const attempts: LoadAttempt[] = [];
  const inner = new Faulty(4, [], { 2: 2 });
  const ds = new RobustDataset(inner, { maxRetries: 2, fallback: 'raise', onError: (a) => attempts.push(a) });
  assert.deepEqual(await all(ds), [0, 1, 2, 3]);
  assert.deepEqual(attempts.map((a) => [a.index, a.attempt]), [[2, 1], [2, 2]]);
  assert.match((attempts[0]!.error as Error).message, /timed out/);
  assert.deepEqual(ds.failures(), []);
});

test('skip: a failing sample is replaced by the next one that loads, wrapping around; length constant', async () => {
  const inner = new Faulty(6, [1, 2, 5]);
  const ds = new RobustDataset(inner, { maxRetries: 1, fallback: 'skip' });
  assert.deepEqual(await all(ds), [0, 3, 3, 3, 4, 0]);
  assert.equal(ds.length, 6);
  assert.deepEqual(ds.failures(), [
    { index: 1, attempts: 2, message: 'sample 1 is corrupt' },
    { index: 2, attempts: 4, message: 'sample 2 is corrupt' },
    { index: 5, attempts: 2, message: 'sample 5 is corrupt' },
  ]);
});

test('skip does not retry known-bad substitutes', async () => {
  const inner = new Faulty(5, [1, 2, 3]);
  const ds = new RobustDataset(inner, { maxRetries: 2, fallback: 'skip' });
  await ds.get(3); // 3 fails (3 calls), then 4 loads
  await ds.get(2); // 2 fails (3 calls), then 3 is known bad and skipped, 4 loads
  inner.calls = 0;
  assert.equal(await ds.get(1), 4); // 1 fails (3 calls); 2, 3 skipped; 4 loads (1 call)
  assert.equal(inner.calls, 4);
});

test('random: a seeded random other index that loads, the same for the same seed', async () => {
  const make = (seed: number) => new RobustDataset(new Faulty(50, [7, 8, 9]), { maxRetries: 0, fallback: 'random', seed });
  const a = await all(make(1));
  assert.equal(a.length, 50);
  for (const i of [7, 8, 9]) {
    assert.ok(![7, 8, 9].includes(a[i]!), `substitute ${a[i]} for ${i}`);
    assert.notEqual(a[i], i + 1, 'random should not always be the next index');
  }
  assert.deepEqual(await all(make(1)), a);
  const b = await all(make(2));
  assert.notDeepEqual([b[7], b[8], b[9]], [a[7], a[8], a[9]]);
  a.forEach((v, i) => ![7, 8, 9].includes(i) && assert.equal(v, i));
});

test('random falls back to a scan, so a dataset with one good sample still answers', async () => {
  const ds = new RobustDataset(new Faulty(200, Array.from({ length: 199 }, (_, k) => k + 1)), { maxRetries: 0, fallback: 'random' });
  assert.equal(await ds.get(150), 0);
});

test('previous: the last good sample, or the next good one before any', async () => {
  const ds = new RobustDataset(new Faulty(6, [0, 3, 4]), { maxRetries: 0, fallback: 'previous' });
  assert.deepEqual(await all(ds), [1, 1, 2, 2, 2, 5]);
  assert.equal(ds.length, 6);
});

test('raise: a DatasetError naming the index, with the cause', async () => {
  const ds = new RobustDataset(new Faulty(3, [1]), { maxRetries: 2, fallback: 'raise' });
  await assert.rejects(
    ds.get(-2),
    (e: unknown) =>
      e instanceof DatasetError && e.index === 1 && /sample 1 failed 3 attempts: sample 1 is corrupt/.test(e.message) && e.cause instanceof Error,
  );
  assert.equal(await ds.get(2), 2);
});

test('when nothing loads, every fallback ends in a DatasetError, no infinite loop', async () => {
  for (const fallback of ['skip', 'random', 'previous'] as const) {
    const inner = new Faulty(20, Array.from({ length: 20 }, (_, k) => k));
    const ds = new RobustDataset(inner, { maxRetries: 1, fallback });
    await assert.rejects(ds.get(4), (e: unknown) => e instanceof DatasetError && /no other sample of the 20/.test(e.message), fallback);
    assert.equal(inner.calls, 40, fallback);
    await assert.rejects(ds.get(5), DatasetError);
  }
  await assert.rejects(new RobustDataset(new Faulty(1, [0])).get(0), DatasetError);
});

test('async datasets that reject are handled like ones that throw', async () => {
  const inner: Dataset<string> = { length: 3, get: async (i) => (i === 1 ? Promise.reject(new Error('nope')) : `s${i}`) };
  const ds = new RobustDataset(inner, { fallback: 'skip' });
  assert.deepEqual(await all(ds), ['s0', 's2', 's2']);
});

test('every fallback keeps the length and returns only samples that loaded', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 2, max: 30 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.constantFrom('skip', 'random', 'previous') as fc.Arbitrary<'skip' | 'random' | 'previous'>,
      fc.nat(),
      async (n, rawBad, fallback, seed) => {
        const bad = [...new Set(rawBad.map((b) => b % n))].slice(0, n - 1);
        const ds = new RobustDataset(new Faulty(n, bad), { maxRetries: 0, fallback, seed });
        const out = await all(ds);
        assert.equal(ds.length, n);
        assert.equal(out.length, n);
        out.forEach((v, i) => (bad.includes(i) ? assert.ok(!bad.includes(v)) : assert.equal(v, i)));
        assert.deepEqual(ds.failures().map((f) => f.index), [...bad].sort((a, b) => a - b));
      },
    ),
    { numRuns: 80 },
  );
});

test('bad arguments are refused, naming them', () => {
  const isArg = (name: string) => (e: unknown) => e instanceof ArgumentError && e.argument === name;
  const inner = new ListDataset([1]);
  assert.throws(() => new RobustDataset({} as never), isArg('dataset'));
  assert.throws(() => new RobustDataset(inner, { maxRetries: -1 }), isArg('maxRetries'));
  assert.throws(() => new RobustDataset(inner, { maxRetries: 1.5 }), isArg('maxRetries'));
  assert.throws(() => new RobustDataset(inner, { fallback: 'ignore' as never }), isArg('fallback'));
  assert.throws(() => new RobustDataset(inner, { seed: -3 }), isArg('seed'));
  assert.throws(() => new RobustDataset(inner, { onError: 'log' as never }), isArg('onError'));
  assert.throws(() => new RobustDataset(inner, null as never), isArg('options'));
});
