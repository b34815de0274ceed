/**
 * RandomSampler: a seeded permutation of [0, n) (or, with replacement, independent uniform draws).
 * `numSamples` may exceed n without replacement: the sampler then concatenates permutations.
 */
import { ArgumentError } from '../errors.ts';
import { Generator } from '../random.ts';
import { requireInt, requireSeed } from '../validate.ts';
import { readOptions, requireBoolean, sourceLength } from './arguments.ts';
import type { Sampler } from './sampler.ts';

export interface RandomSamplerOptions {
  /** Draw with replacement (default false). */
  replacement?: boolean;
  /** How many indices a pass yields (default: the dataset length). */
  numSamples?: number;
  /** Seed of the generator (default 0). */
  seed?: number;
  /** Epoch of the first pass (default 0). */
  epoch?: number;
}

/**
 * Uniform random order over a dataset, a pure function of (seed, epoch). Without replacement a
 * pass of n samples is a permutation of [0, n); with replacement every draw is independent.
 *
 * @example
 * ```ts
 * const sampler = new RandomSampler(dataset, { seed: 7 });
 * for (const i of sampler) {} // epoch 0
 * for (const i of sampler) {} // epoch 1: another permutation
 * ```
 */
export class RandomSampler implements Sampler {
  readonly length: number;
  /** Number of samples of the source: indices are in [0, size). */
  readonly size: number;
  readonly replacement: boolean;
  readonly seed: number;
  #epoch: number;

  constructor(source: number | { readonly length: number }, options: RandomSamplerOptions = {}) {
    const o = readOptions(options);
    this.size = sourceLength(source);
    this.replacement = requireBoolean('replacement', o.replacement, false);
    this.length = o.numSamples === undefined ? this.size : requireInt('numSamples', o.numSamples);
    this.seed = requireSeed('seed', o.seed ?? 0);
    this.#epoch = requireInt('epoch', o.epoch ?? 0);
    if (this.size === 0 && this.length > 0) {
      throw new ArgumentError('numSamples', `is ${this.length} but the dataset is empty`);
    }
    if (this.size > 0xffffffff && !this.replacement) {
      throw new ArgumentError('source.length', `must be below 2^32 without replacement, got ${this.size}`);
    }
  }

  /** The epoch the next pass uses. */
  get epoch(): number {
    return this.#epoch;
  }

  setEpoch(epoch: number): void {
    this.#epoch = requireInt('epoch', epoch);
  }

  // Not a generator method: the epoch must advance when the pass starts, not at its first next().
  [Symbol.iterator](): Iterator<number> {
    const g = new Generator(this.seed, this.#epoch++);
    return this.#indices(g);
  }

  *#indices(g: Generator): Iterator<number> {
    const n = this.size;
    if (this.replacement) {
      for (let i = 0; i < this.length; i++) yield g.int(n);
      return;
    }
    let left = this.length;
    while (left > 0) {
      // Lazy Fisher–Yates: the permutation is produced front to back, so a short pass costs
      // only what it yields (plus the n-element array).
      const perm = new Uint32Array(n);
      for (let i = 0; i < n; i++) perm[i] = i;
      const take = Math.min(left, n);
      for (let i = 0; i < take; i++) {
        const j = i + g.int(n - i);
        const v = perm[j]!;
        perm[j] = perm[i]!;
        perm[i] = v;
        yield v;
      }
      left -= take;
    }
  }
}
