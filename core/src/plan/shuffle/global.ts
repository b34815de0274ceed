/**
 * Shuffle `global`: one seeded bijection over all N samples, keyed by hash(seed, epoch). Every
 * position is computed on its own in O(1), so resuming anywhere costs nothing.
 */
import { SeededPermutation } from '../permutation.ts';
import type { SampleOrder, Shuffle } from '../types.ts';

/** Domain-separation tag, so this key never collides with the planner's other seeded streams. */
const GLOBAL_TAG = 0x676c6f62;

class PermutedOrder implements SampleOrder {
  readonly size: number;
  readonly #perm: SeededPermutation;

  constructor(perm: SeededPermutation) {
    this.size = perm.size;
    this.#perm = perm;
  }

  at(position: number): number {
    return this.#perm.atUnchecked(position);
  }

  fill(start: number, out: Float64Array, offset: number, count: number): void {
    this.#perm.fillUnchecked(start, out, offset, count);
  }
}

/** A uniformly shuffled order of all samples, a function of (seed, epoch). */
export const globalShuffle: Shuffle = ({ seed, epoch, shards }) =>
  new PermutedOrder(new SeededPermutation(shards.numSamples, seed, epoch, GLOBAL_TAG));
