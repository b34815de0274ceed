/**
 * Subset and randomSplit: a view of a dataset through a list of indices, and a seeded split of a
 * dataset into disjoint subsets (train / validation / test).
 */
import { ArgumentError } from '../errors.ts';
import { Generator } from '../random.ts';
import { normalizeIndex, requireFinite, requireInt, requireSeed } from '../validate.ts';
import type { Dataset } from './dataset.ts';
import { isDataset } from './dataset.ts';

/**
 * The samples of `dataset` at `indices`, in that order. Indices are checked against the
 * dataset's length once, at construction (negative ones count from the end).
 *
 * @example
 * const evens = new Subset(ds, [0, 2, 4]);
 * evens.get(-1); // ds.get(4)
 */
export class Subset<T> implements Dataset<T> {
  readonly dataset: Dataset<T>;
  /** The indices into `dataset`, normalized to [0, dataset.length). */
  readonly indices: Float64Array;

  constructor(dataset: Dataset<T>, indices: ArrayLike<number>) {
    if (!isDataset(dataset)) throw new ArgumentError('dataset', 'must be a Dataset (with length and get)');
    if (indices == null || typeof indices !== 'object' || typeof indices.length !== 'number') {
      throw new ArgumentError('indices', 'must be an array of integers');
    }
    const n = dataset.length;
    const out = new Float64Array(indices.length);
    for (let k = 0; k < indices.length; k++) out[k] = normalizeIndex(indices[k]!, n, `indices[${k}]`);
    this.dataset = dataset;
    this.indices = out;
  }

  get length(): number {
    return this.indices.length;
  }

  get(index: number): T | Promise<T> {
    return this.dataset.get(this.indices[normalizeIndex(index, this.indices.length)]!);
  }
}

export interface RandomSplitOptions {
  /** Seed of the permutation (default 0). */
  seed?: number;
}

/**
 * Splits a dataset into disjoint random subsets that together cover it exactly once.
 *
 * `lengths` are either integer lengths adding up to `dataset.length`, or fractions in [0, 1]
 * adding up to 1 (±1e-9); fractional lengths are floored and the remainder is handed out one
 * by one, round-robin from the first subset (PyTorch's rule).
 *
 * @example
 * const [train, val] = randomSplit(ds, [0.8, 0.2], { seed: 42 });
 */
export function randomSplit<T>(
  dataset: Dataset<T>,
  lengths: readonly number[],
  options: RandomSplitOptions = {},
): Subset<T>[] {
  if (!isDataset(dataset)) throw new ArgumentError('dataset', 'must be a Dataset (with length and get)');
  const seed = requireSeed('seed', options?.seed ?? 0);
  const n = requireInt('dataset.length', dataset.length, { max: 0xffffffff });
  const counts = splitLengths(n, lengths);
  const perm = new Generator(seed).permutation(n);
  const out: Subset<T>[] = [];
  let start = 0;
  for (const count of counts) {
    out.push(new Subset(dataset, perm.subarray(start, start + count)));
    start += count;
  }
  return out;
}

/** Resolves `lengths` (integer lengths or fractions) into integer lengths adding up to `n`. */
export function splitLengths(n: number, lengths: readonly number[]): number[] {
  if (!Array.isArray(lengths) || lengths.length === 0) {
    throw new ArgumentError('lengths', 'must be a non-empty array of lengths or fractions');
  }
  let sum = 0;
  lengths.forEach((x, k) => {
    requireFinite(`lengths[${k}]`, x, { min: 0 });
    sum += x;
  });
  const isFractions = Math.abs(sum - 1) <= 1e-9 && lengths.every((x) => x <= 1);
  if (isFractions) {
    const counts = lengths.map((f) => Math.floor(n * f));
    const remainder = n - counts.reduce((a, b) => a + b, 0);
    for (let k = 0; k < remainder; k++) counts[k % counts.length]! += 1;
    return counts;
  }
  const nonInteger = lengths.findIndex((x) => !Number.isInteger(x));
  if (nonInteger >= 0) {
    throw new ArgumentError(
      'lengths',
      `fractions must add up to 1 (±1e-9), got sum ${sum} (or give integer lengths adding up to ${n})`,
    );
  }
  if (sum !== n) {
    throw new ArgumentError('lengths', `must add up to the dataset length ${n}, got sum ${sum} of [${lengths.join(', ')}]`);
  }
  return [...lengths];
}
