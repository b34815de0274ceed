/** Shuffle `none`: the epoch visits samples in id order (shard by shard, as stored). */
import type { SampleOrder, Shuffle } from '../types.ts';

class IdentityOrder implements SampleOrder {
  readonly size: number;

  constructor(size: number) {
    this.size = size;
  }

  at(position: number): number {
    return position;
  }

  fill(start: number, out: Float64Array, offset: number, count: number): void {
    for (let i = 0; i < count; i++) out[offset + i] = start + i;
  }
}

/** The identity order over all samples. */
export const noShuffle: Shuffle = ({ shards }) => new IdentityOrder(shards.numSamples);
