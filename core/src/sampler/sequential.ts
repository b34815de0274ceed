/** SequentialSampler: the indices 0, 1, …, n − 1 in order, the same every pass. */
import { sourceLength } from './arguments.ts';
import type { Sampler } from './sampler.ts';

/**
 * Yields 0, 1, …, n − 1. Not randomized: every pass is the same, so it has no epoch.
 *
 * @example
 * ```ts
 * [...new SequentialSampler(3)]; // [0, 1, 2]
 * ```
 */
export class SequentialSampler implements Sampler {
  readonly length: number;

  /** @param source a dataset (anything with a length) or the number of samples */
  constructor(source: number | { readonly length: number }) {
    this.length = sourceLength(source);
  }

  *[Symbol.iterator](): Iterator<number> {
    for (let i = 0; i < this.length; i++) yield i;
  }
}
