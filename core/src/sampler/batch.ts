/** BatchSampler: groups the indices of a sampler into batches of `batchSize`. */
import { ArgumentError } from '../errors.ts';
import { requireInt, requirePositiveInt } from '../validate.ts';
import { readOptions, requireBoolean } from './arguments.ts';
import type { BatchSampler as BatchSamplerLike, Sampler } from './sampler.ts';
import { isSampler } from './sampler.ts';

export interface BatchSamplerOptions {
  /** Indices per batch, ≥ 1. */
  batchSize: number;
  /** Drop the last, incomplete batch (default false). */
  dropLast?: boolean;
}

/**
 * Cuts the indices of `sampler` into consecutive batches. `length` is ⌈n / batchSize⌉, or
 * ⌊n / batchSize⌋ with `dropLast`, where n is the sampler's length. `setEpoch` is forwarded.
 *
 * @example
 * ```ts
 * [...new BatchSampler(new SequentialSampler(5), { batchSize: 2 })]; // [[0, 1], [2, 3], [4]]
 * ```
 */
export class BatchSampler implements BatchSamplerLike {
  readonly sampler: Sampler;
  readonly batchSize: number;
  readonly dropLast: boolean;

  constructor(sampler: Sampler, options: BatchSamplerOptions) {
    if (!isSampler(sampler)) throw new ArgumentError('sampler', 'must be a Sampler (iterable with a length)');
    const o = readOptions(options);
    this.sampler = sampler;
    this.batchSize = requirePositiveInt('batchSize', o.batchSize);
    this.dropLast = requireBoolean('dropLast', o.dropLast, false);
  }

  get length(): number {
    const n = this.sampler.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  setEpoch(epoch: number): void {
    requireInt('epoch', epoch);
    this.sampler.setEpoch?.(epoch);
  }

  // Not a generator method, so the inner sampler starts its pass (and advances its epoch) now.
  [Symbol.iterator](): Iterator<number[]> {
    return this.#batches(this.sampler[Symbol.iterator]());
  }

  *#batches(indices: Iterator<number>): Iterator<number[]> {
    let batch: number[] = [];
    try {
      for (let r = indices.next(); !r.done; r = indices.next()) {
        batch.push(r.value);
        if (batch.length === this.batchSize) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length > 0 && !this.dropLast) yield batch;
    } finally {
      // A consumer that stops early closes the inner pass too, as for..of would.
      indices.return?.();
    }
  }
}
