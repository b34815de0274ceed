/**
 * The sampler conformance suite: one table of every sampler of the folder, each entry declaring
 * which properties it promises, and one set of shared tests run on every entry. A property an
 * entry does not promise is skipped with the entry's stated reason (node:test prints it), and
 * an entry that neither promises a property nor explains why fails the suite.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BalancedBatchSampler } from './balanced-batch.ts';
import { BatchSampler } from './batch.ts';
import { DistributedSampler } from './distributed.ts';
import { LoadBalancedDistributedSampler } from './load-balanced-distributed.ts';
import { PrioritySampler } from './priority.ts';
import { RandomSampler } from './random.ts';
import type { BatchSampler as BatchSamplerLike, Sampler } from './sampler.ts';
import { SequentialSampler } from './sequential.ts';
import { StratifiedSampler } from './stratified.ts';
import { SubsetRandomSampler } from './subset-random.ts';
import { WeightedRandomSampler } from './weighted-random.ts';

type AnySampler = Sampler | BatchSamplerLike;

/** What a sampler of the table is built from: dataset size, seed, epoch and (distributed) rank. */
interface Setup {
  n: number;
  seed: number;
  epoch: number;
  rank: number;
}

/** The optional properties, each either promised by an entry or skipped with a reason. */
type Property = 'randomized' | 'distinct' | 'permutation' | 'distributed';

interface Entry {
  name: string;
  make(s: Setup): AnySampler;
  /** Smallest and largest dataset size to try (default 0 and 80). */
  sizes?: { min: number; max: number };
  /** Size for the "different epochs differ" check: big enough that two passes cannot agree by chance. */
  orderSize?: number;
  /** Yields batches (number[]) rather than indices: `size` per batch, the last one shorter only if `shortLast`. */
  batches?: { size: number; shortLast: boolean };
  /** The order is a function of (seed, epoch) and changes with the epoch. */
  randomized?: true;
  /** No index twice in one pass. */
  distinct?: true;
  /** Each pass yields each index of `covers(n)` (default [0, n)) exactly once. */
  permutation?: true;
  covers?: (n: number) => number[];
  /** One sampler per rank; the union over ranks covers [0, n) (or all but n mod W with dropLast). */
  distributed?: { numReplicas: number; dropLast?: boolean };
  /** Why each property the entry does not promise does not apply. */
  skip?: Partial<Record<Property, string>>;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
/** Mixed string and number labels with an uneven class distribution. */
const mixedLabels = (n: number) => range(n).map((i) => ((i * 7) % 10 === 3 ? 'rare' : i % 3));
const weightsOf = (n: number) => range(n).map((i) => i % 4); // every 4th weight is zero
const positiveOf = (n: number) => range(n).filter((i) => i % 4 !== 0);
const prioritiesOf = (n: number) => range(n).map((i) => (i % 5) * 0.5);
const costsOf = (n: number) => range(n).map((i) => 1 + ((i * 37) % 11));

const REPLACEMENT = 'draws with replacement: an index may repeat or be missed in a pass';
const NOT_RANDOM = 'not randomized: every pass is the same order, whatever the epoch';
const SINGLE_PROCESS = 'a single-process sampler: there are no ranks to cover the dataset together';

const table: Entry[] = [
  {
    name: 'SequentialSampler',
    make: ({ n }) => new SequentialSampler(n),
    distinct: true,
    permutation: true,
    skip: { randomized: NOT_RANDOM, distributed: SINGLE_PROCESS },
  },
  {
    name: 'RandomSampler',
    make: ({ n, seed, epoch }) => new RandomSampler(n, { seed, epoch }),
    randomized: true,
    distinct: true,
    permutation: true,
    skip: { distributed: SINGLE_PROCESS },
  },
  {
    name: 'RandomSampler (replacement)',
    make: ({ n, seed, epoch }) => new RandomSampler(n, { replacement: true, seed, epoch }),
    randomized: true,
    skip: { distinct: REPLACEMENT, permutation: REPLACEMENT, distributed: SINGLE_PROCESS },
  },
  {
    name: 'RandomSampler (numSamples = n/2)',
    make: ({ n, seed, epoch }) => new RandomSampler(n, { numSamples: Math.floor(n / 2), seed, epoch }),
    randomized: true,
    distinct: true,
    skip: { permutation: 'yields only half of the indices by design', distributed: SINGLE_PROCESS },
  },
  {
    name: 'SubsetRandomSampler',
    make: ({ n, seed, epoch }) => new SubsetRandomSampler(range(n).filter((i) => i % 3 !== 1), { seed, epoch, size: n }),
    randomized: true,
    distinct: true,
    permutation: true,
    covers: (n) => range(n).filter((i) => i % 3 !== 1),
    skip: { distributed: SINGLE_PROCESS },
  },
  {
    name: 'WeightedRandomSampler (replacement)',
    make: ({ n, seed, epoch }) => new WeightedRandomSampler(weightsOf(n), { numSamples: n, seed, epoch }),
    sizes: { min: 2, max: 80 },
    randomized: true,
    skip: { distinct: REPLACEMENT, permutation: REPLACEMENT, distributed: SINGLE_PROCESS },
  },
  {
    name: 'WeightedRandomSampler (no replacement, every positive weight)',
    make: ({ n, seed, epoch }) =>
      new WeightedRandomSampler(weightsOf(n), { numSamples: positiveOf(n).length, replacement: false, seed, epoch }),
    sizes: { min: 2, max: 80 },
    randomized: true,
    distinct: true,
    permutation: true,
    covers: positiveOf,
    skip: { distributed: SINGLE_PROCESS },
  },
  {
    name: 'StratifiedSampler',
    make: ({ n, seed, epoch }) => new StratifiedSampler(mixedLabels(n), { seed, epoch }),
    randomized: true,
    distinct: true,
    permutation: true,
    skip: { distributed: SINGLE_PROCESS },
  },
  {
    name: 'StratifiedSampler (shuffle: false)',
    make: ({ n, seed, epoch }) => new StratifiedSampler(mixedLabels(n), { shuffle: false, seed, epoch }),
    distinct: true,
    permutation: true,
    skip: { randomized: NOT_RANDOM, distributed: SINGLE_PROCESS },
  },
  {
    name: 'StratifiedSampler (samplesPerClass)',
    make: ({ n, seed, epoch }) => new StratifiedSampler(mixedLabels(n), { samplesPerClass: 4, seed, epoch }),
    randomized: true,
    skip: {
      distinct: 'a class smaller than samplesPerClass repeats its samples',
      permutation: 'yields samplesPerClass per class, not every index',
      distributed: SINGLE_PROCESS,
    },
  },
  {
    name: 'BatchSampler(RandomSampler)',
    make: ({ n, seed, epoch }) => new BatchSampler(new RandomSampler(n, { seed, epoch }), { batchSize: 7 }),
    batches: { size: 7, shortLast: true },
    randomized: true,
    distinct: true,
    permutation: true,
    skip: { distributed: SINGLE_PROCESS },
  },
  {
    name: 'BatchSampler(SequentialSampler, dropLast)',
    make: ({ n }) => new BatchSampler(new SequentialSampler(n), { batchSize: 4, dropLast: true }),
    batches: { size: 4, shortLast: false },
    distinct: true,
    skip: {
      randomized: NOT_RANDOM,
      permutation: 'dropLast drops the last n mod batchSize indices',
      distributed: SINGLE_PROCESS,
    },
  },
  {
    name: 'BalancedBatchSampler',
    make: ({ n, seed, epoch }) =>
      new BalancedBatchSampler(range(n).map((i) => i % 4), { samplesPerClass: 2, classesPerBatch: 3, seed, epoch }),
    sizes: { min: 8, max: 80 },
    batches: { size: 6, shortLast: false },
    randomized: true,
    skip: {
      distinct: 'batches are drawn independently: a sample may come back in a later batch of the pass',
      permutation: 'batches are drawn with class balance, not as a cover of the dataset',
      distributed: SINGLE_PROCESS,
    },
  },
  {
    name: 'PrioritySampler (replacement)',
    make: ({ n, seed, epoch }) => new PrioritySampler(prioritiesOf(n), { seed, epoch }),
    sizes: { min: 2, max: 80 },
    randomized: true,
    skip: { distinct: REPLACEMENT, permutation: REPLACEMENT, distributed: SINGLE_PROCESS },
  },
  {
    name: 'PrioritySampler (no replacement, every positive priority)',
    make: ({ n, seed, epoch }) => {
      const priorities = prioritiesOf(n);
      const numSamples = priorities.filter((p) => p > 0).length;
      return new PrioritySampler(priorities, { numSamples, replacement: false, seed, epoch });
    },
    sizes: { min: 2, max: 80 },
    randomized: true,
    distinct: true,
    permutation: true,
    covers: (n) => range(n).filter((i) => i % 5 !== 0),
    skip: { distributed: SINGLE_PROCESS },
  },
  {
    name: 'DistributedSampler',
    make: ({ n, seed, epoch, rank }) => new DistributedSampler(n, { numReplicas: 3, rank, seed, epoch }),
    sizes: { min: 1, max: 80 },
    randomized: true,
    distinct: true,
    distributed: { numReplicas: 3 },
    skip: { permutation: 'one rank sees only its share of the dataset; the union is checked instead' },
  },
  {
    name: 'DistributedSampler (shuffle: false, dropLast)',
    make: ({ n, seed, epoch, rank }) =>
      new DistributedSampler(n, { numReplicas: 4, rank, shuffle: false, dropLast: true, seed, epoch }),
    distinct: true,
    distributed: { numReplicas: 4, dropLast: true },
    skip: {
      randomized: NOT_RANDOM,
      permutation: 'one rank sees only its share of the dataset; the union is checked instead',
    },
  },
  {
    name: 'LoadBalancedDistributedSampler',
    make: ({ n, seed, epoch, rank }) =>
      new LoadBalancedDistributedSampler(n, { costs: costsOf(n), numReplicas: 3, rank, seed, epoch }),
    sizes: { min: 1, max: 80 },
    randomized: true,
    distributed: { numReplicas: 3 },
    skip: {
      distinct: 'a rank may be padded with repeats so every rank has the same count',
      permutation: 'one rank sees only its share of the dataset; the union is checked instead',
    },
  },
];

/** One pass, flattened to indices, plus its batches for batch samplers. */
function pass(sampler: AnySampler): { indices: number[]; batches: number[][] | undefined; yielded: number } {
  const items = [...(sampler as Iterable<number | number[]>)];
  if (items.length > 0 && Array.isArray(items[0])) {
    const batches = items as number[][];
    return { indices: batches.flat(), batches, yielded: batches.length };
  }
  return { indices: items as number[], batches: undefined, yielded: items.length };
}

const runs = { numRuns: 25 };

function setupArb(entry: Entry): fc.Arbitrary<Setup> {
  const { min, max } = entry.sizes ?? { min: 0, max: 80 };
  return fc.record({
    n: fc.integer({ min, max }),
    seed: fc.nat(),
    epoch: fc.nat({ max: 1_000_000 }),
    rank: fc.nat({ max: (entry.distributed?.numReplicas ?? 1) - 1 }),
  });
}

/** Runs `body` when the entry promises `property`, else skips with the entry's reason. */
function conformance(entry: Entry, property: Property, title: string, body: () => void): void {
  if (entry[property] !== undefined) {
    test(title, body);
    return;
  }
  const reason = entry.skip?.[property];
  if (reason === undefined) {
    test(title, () => assert.fail(`${entry.name} neither promises "${property}" nor says in skip.${property} why not`));
  } else {
    test(title, { skip: reason }, () => {});
  }
}

for (const entry of table) {
  describe(entry.name, () => {
    test('length equals the number of items a pass yields, pass after pass', () => {
      fc.assert(
        fc.property(setupArb(entry), (s) => {
          const sampler = entry.make(s);
          for (let k = 0; k < 3; k++) assert.equal(pass(sampler).yielded, sampler.length);
        }),
        runs,
      );
    });

    test('indices are integers in [0, n)', () => {
      fc.assert(
        fc.property(setupArb(entry), (s) => {
          for (const i of pass(entry.make(s)).indices) assert.ok(Number.isInteger(i) && i >= 0 && i < s.n, `index ${i}, n ${s.n}`);
        }),
        runs,
      );
    });

    test('a pass is a function of (seed, epoch); each pass advances the epoch; setEpoch rewinds', () => {
      fc.assert(
        fc.property(setupArb(entry), (s) => {
          const sampler = entry.make(s);
          const first = pass(sampler).indices;
          const second = pass(sampler).indices;
          assert.deepEqual(first, pass(entry.make(s)).indices);
          assert.deepEqual(second, pass(entry.make({ ...s, epoch: s.epoch + 1 })).indices);
          sampler.setEpoch?.(s.epoch);
          assert.deepEqual(pass(sampler).indices, first);
        }),
        runs,
      );
    });

    test('a pass stopped after its first item still advances the epoch', () => {
      fc.assert(
        fc.property(setupArb(entry), (s) => {
          const sampler = entry.make(s);
          for (const _ of sampler as Iterable<unknown>) break;
          assert.deepEqual(pass(sampler).indices, pass(entry.make({ ...s, epoch: s.epoch + 1 })).indices);
        }),
        runs,
      );
    });

    if (entry.batches !== undefined) {
      const { size, shortLast } = entry.batches;
      test(`batches hold ${size} indices${shortLast ? ' (the last one may be shorter)' : ''}`, () => {
        fc.assert(
          fc.property(setupArb(entry), (s) => {
            const batches = pass(entry.make(s)).batches ?? [];
            batches.forEach((batch, k) => {
              if (shortLast && k === batches.length - 1) assert.ok(batch.length >= 1 && batch.length <= size);
              else assert.equal(batch.length, size);
            });
          }),
          runs,
        );
      });
    }

    conformance(entry, 'randomized', 'different epochs give different orders', () => {
      const n = entry.orderSize ?? 64;
      for (let seed = 0; seed < 5; seed++) {
        const sampler = entry.make({ n, seed, epoch: 10, rank: 0 });
        const a = pass(sampler).indices;
        const b = pass(sampler).indices;
        assert.notDeepEqual(a, b, `seed ${seed}: epochs 10 and 11 gave the same pass`);
        sampler.setEpoch?.(500);
        assert.notDeepEqual(pass(sampler).indices, a, `seed ${seed}: epochs 10 and 500 gave the same pass`);
      }
    });

    conformance(entry, 'distinct', 'no index repeats within a pass', () => {
      fc.assert(
        fc.property(setupArb(entry), (s) => {
          const { indices } = pass(entry.make(s));
          assert.equal(new Set(indices).size, indices.length);
        }),
        runs,
      );
    });

    conformance(entry, 'permutation', 'a pass yields each index exactly once', () => {
      fc.assert(
        fc.property(setupArb(entry), (s) => {
          assert.deepEqual(sorted(pass(entry.make(s)).indices), sorted(entry.covers?.(s.n) ?? range(s.n)));
        }),
        runs,
      );
    });

    conformance(entry, 'distributed', 'ranks have equal lengths and together cover the dataset', () => {
      const W = entry.distributed?.numReplicas ?? 1;
      const dropLast = entry.distributed?.dropLast ?? false;
      fc.assert(
        fc.property(setupArb(entry), (s) => {
          const ranks = range(W).map((rank) => pass(entry.make({ ...s, rank })));
          const lengths = range(W).map((rank) => entry.make({ ...s, rank }).length);
          for (let r = 0; r < W; r++) {
            assert.equal(lengths[r], lengths[0], `rank ${r} has length ${lengths[r]}, rank 0 ${lengths[0]}`);
            assert.equal(ranks[r]!.yielded, lengths[r]);
          }
          const union = new Set(ranks.flatMap((r) => r.indices));
          if (dropLast) {
            // Dropping keeps ⌊n/W⌋ per rank, all distinct: n mod W samples sit this epoch out.
            assert.equal(lengths[0], Math.floor(s.n / W));
            assert.equal(union.size, W * lengths[0]!);
          } else {
            assert.deepEqual(sorted([...union]), range(s.n));
          }
        }),
        runs,
      );
    });
  });
}
