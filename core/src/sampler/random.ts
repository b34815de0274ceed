/**
 * RandomSampler: a seeded permutation of [0, n) (or, with replacement, n independent draws).
 * `numSamples` may exceed n without replacement: the sampler then concatenates permutations.
 */
import { ArgumentError } from '../errors.ts';
import { Generator } from '../random.ts';
import { requireInt, requireSeed } from '../validate.ts';
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

export class RandomSampler implements Sampler {
  readonly length: number;
  readonly size: number;
  readonly replacement: boolean;
  readonly seed: number;
  #epoch: number;

  constructor(source: number | { readonly length: number }, options: RandomSamplerOptions = {}) {
    this.size = requireInt('source.length', typeof source === 'number' ? source : source?.length);
    this.replacement = options.replacement ?? false;
    this.length = options.numSamples === undefined ? this.size : requireInt('numSamples', options.numSamples);
    this.seed = requireSeed('seed', options.seed ?? 0);
    this.#epoch = requireInt('epoch', options.epoch ?? 0);
    if (this.size === 0 && this.length > 0) {
      throw new ArgumentError('numSamples', `is ${this.length} but the dataset is empty`);
    }
  }

  get epoch(): number {
    return this.#epoch;
  }

  setEpoch(epoch: number): void {
    this.#epoch = requireInt('epoch', epoch);
  }

  [Symbol.iterator](): Iterator<number> {
    const g = new Generator(this.seed, this.#epoch++);
    return this.#indices(g);
  }

  *#indices(g: Generator): Generator<number> {
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
