/** BatchSampler: groups the indices of a sampler into batches of `batchSize`. */
import { requireInt, requirePositiveInt } from '../validate.ts';
import type { BatchSampler as BatchSamplerLike, Sampler } from './sampler.ts';
import { isSampler } from './sampler.ts';
import { ArgumentError } from '../errors.ts';

export interface BatchSamplerOptions {
  batchSize: number;
  /** Drop the last, incomplete batch (default false). */
  dropLast?: boolean;
}

export class BatchSampler implements BatchSamplerLike {
  readonly sampler: Sampler;
  readonly batchSize: number;
  readonly dropLast: boolean;

  constructor(sampler: Sampler, options: BatchSamplerOptions) {
    if (!isSampler(sampler)) throw new ArgumentError('sampler', 'must be a Sampler (iterable with a length)');
    this.sampler = sampler;
    this.batchSize = requirePositiveInt('batchSize', options?.batchSize);
    this.dropLast = options.dropLast ?? false;
  }

  get length(): number {
    const n = this.sampler.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  setEpoch(epoch: number): void {
    requireInt('epoch', epoch);
    this.sampler.setEpoch?.(epoch);
  }

  *[Symbol.iterator](): Iterator<number[]> {
    let batch: number[] = [];
    for (const index of this.sampler) {
      batch.push(index);
      if (batch.length === this.batchSize) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0 && !this.dropLast) yield batch;
  }
}
