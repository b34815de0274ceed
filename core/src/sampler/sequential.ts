/** SequentialSampler: 0, 1, …, n − 1. */
import { requireInt } from '../validate.ts';
import type { Sampler } from './sampler.ts';

export class SequentialSampler implements Sampler {
  readonly length: number;

  /** @param source a dataset (anything with a length) or the number of samples */
  constructor(source: number | { readonly length: number }) {
    this.length = requireInt('source.length', typeof source === 'number' ? source : source?.length);
  }

  *[Symbol.iterator](): Iterator<number> {
    for (let i = 0; i < this.length; i++) yield i;
  }
}
