/**
 * What a sampler is. A sampler yields dataset indices (or, for a batch sampler, arrays of
 * indices). Randomized samplers are pure functions of (seed, epoch): each iteration uses the
 * current epoch and then advances it by one, and `setEpoch(e)` sets it, so two passes differ
 * like PyTorch's, yet every pass can be reproduced. The epoch advances when the pass starts
 * (`[Symbol.iterator]()` is called), so a pass abandoned early still counts as a pass.
 *
 * Every sampler of this folder passes the shared suite in conformance.test.ts.
 */

export interface Sampler {
  /** How many indices one pass yields. */
  readonly length: number;
  [Symbol.iterator](): Iterator<number>;
  /** Sets the epoch the next pass uses (randomized samplers). */
  setEpoch?(epoch: number): void;
}

export interface BatchSampler {
  /** How many batches one pass yields. */
  readonly length: number;
  [Symbol.iterator](): Iterator<number[]>;
  setEpoch?(epoch: number): void;
}

export function isSampler(value: unknown): value is Sampler {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Sampler)[Symbol.iterator] === 'function' &&
    typeof (value as Sampler).length === 'number'
  );
}
