/** SubsetRandomSampler: a seeded permutation of a given list of dataset indices. */
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { Generator } from '../random.ts';
import { requireInt, requireSeed } from '../validate.ts';
import { readOptions, requireArrayLike } from './arguments.ts';
import type { Sampler } from './sampler.ts';

export interface SubsetRandomSamplerOptions {
  /** Seed of the generator (default 0). */
  seed?: number;
  /** Epoch of the first pass (default 0). */
  epoch?: number;
  /**
   * Length of the dataset the indices point into. When given, every index must be below it
   * (IndexOutOfRangeError otherwise); without it indices are only checked to be integers ≥ 0.
   */
  size?: number;
}

/**
 * Each pass yields the given indices once each, in a random order that is a pure function of
 * (seed, epoch). Duplicates in `indices` are kept (they are yielded as often as they appear).
 *
 * @example
 * ```ts
 * const validation = new SubsetRandomSampler([4, 8, 15, 16, 23, 42], { seed: 1, size: 50 });
 * ```
 */
export class SubsetRandomSampler implements Sampler {
  readonly length: number;
  readonly seed: number;
  readonly #indices: Float64Array;
  #epoch: number;

  constructor(indices: ArrayLike<number>, options: SubsetRandomSamplerOptions = {}) {
    const o = readOptions(options);
    const n = requireArrayLike('indices', indices);
    const size = o.size === undefined ? undefined : requireInt('size', o.size);
    this.seed = requireSeed('seed', o.seed ?? 0);
    this.#epoch = requireInt('epoch', o.epoch ?? 0);
    // Float64Array holds any safe integer index, and the copy protects the sampler from later
    // mutation of the caller's array.
    this.#indices = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const index = indices[k];
      if (typeof index !== 'number' || !Number.isSafeInteger(index)) {
        throw new ArgumentError(`indices[${k}]`, `must be an integer, got ${String(index)}`);
      }
      if (size !== undefined && (index < 0 || index >= size)) {
        throw new IndexOutOfRangeError(index, size, `indices[${k}]`);
      }
      if (index < 0) throw new ArgumentError(`indices[${k}]`, `must be an integer ≥ 0, got ${index}`);
      this.#indices[k] = index;
    }
    this.length = n;
  }

  /** The epoch the next pass uses. */
  get epoch(): number {
    return this.#epoch;
  }

  setEpoch(epoch: number): void {
    this.#epoch = requireInt('epoch', epoch);
  }

  [Symbol.iterator](): Iterator<number> {
    return this.#pass(new Generator(this.seed, this.#epoch++));
  }

  *#pass(g: Generator): Iterator<number> {
    const order = this.#indices.slice();
    const n = order.length;
    // Lazy Fisher–Yates, front to back: a pass that is stopped early draws only what it used.
    for (let i = 0; i < n; i++) {
      const j = i + g.int(n - i);
      const v = order[j]!;
      order[j] = order[i]!;
      order[i] = v;
      yield v;
    }
  }
}
