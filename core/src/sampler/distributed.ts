/**
 * DistributedSampler: PyTorch's DistributedSampler on top of the epoch planner. Each of
 * `numReplicas` ranks gets the same number of indices: without dropLast the epoch is padded by
 * wrapping around to its start (⌈N/W⌉ per rank), with dropLast the tail is dropped (⌊N/W⌋).
 * Rank r reads the contiguous slice [r·L, (r + 1)·L) of the epoch's (shuffled) order.
 * Nothing is materialized: the order is a seeded Feistel permutation, so any N works.
 */
import { ArgumentError } from '../errors.ts';
import { EpochPlan, type EpochPlanOptions } from '../plan/epoch-plan.ts';
import { perRankCount } from '../plan/types.ts';
import { requireInt, requirePositiveInt, requireSeed } from '../validate.ts';
import type { Sampler } from './sampler.ts';

export interface DistributedSamplerOptions {
  /** W, the number of ranks (≥ 1). */
  numReplicas: number;
  /** This sampler's rank, in [0, numReplicas). */
  rank: number;
  /** Shuffle with the seeded permutation of (seed, epoch) (default true). */
  shuffle?: boolean;
  /** Seed, a safe integer ≥ 0 (default 0). */
  seed?: number;
  /** Drop the tail instead of padding (default false). */
  dropLast?: boolean;
  /** Epoch of the first pass (default 0). */
  epoch?: number;
}

/**
 * One rank's share of every epoch.
 *
 * @example
 * const sampler = new DistributedSampler(dataset, { numReplicas: 4, rank: 1, seed: 7 });
 * sampler.setEpoch(3);
 * for (const index of sampler) { ... } // rank 1's ⌈N/4⌉ indices of epoch 3
 */
export class DistributedSampler implements Sampler {
  /** N, the dataset length. */
  readonly size: number;
  readonly numReplicas: number;
  readonly rank: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  /** Indices per pass on this rank (the same on every rank). */
  readonly length: number;
  #epoch: number;
  #plan: EpochPlan | null = null;

  /** @param source a dataset (anything with a length) or the number of samples */
  constructor(source: number | { readonly length: number }, options: DistributedSamplerOptions) {
    this.size = requireInt('source.length', typeof source === 'number' ? source : source?.length);
    if (typeof options !== 'object' || options === null) {
      throw new ArgumentError('options', 'must be an object with numReplicas and rank');
    }
    this.numReplicas = requirePositiveInt('numReplicas', options.numReplicas, 2 ** 31 - 1);
    this.rank = requireInt('rank', options.rank, { max: this.numReplicas - 1 });
    this.shuffle = options.shuffle ?? true;
    this.seed = requireSeed('seed', options.seed ?? 0);
    this.dropLast = options.dropLast ?? false;
    this.#epoch = requireInt('epoch', options.epoch ?? 0);
    if (typeof this.shuffle !== 'boolean') throw new ArgumentError('shuffle', `must be a boolean, got ${String(this.shuffle)}`);
    if (typeof this.dropLast !== 'boolean') throw new ArgumentError('dropLast', `must be a boolean, got ${String(this.dropLast)}`);
    this.length = perRankCount(this.size, this.numReplicas, this.dropLast);
  }

  /** The epoch the next pass uses. */
  get epoch(): number {
    return this.#epoch;
  }

  setEpoch(epoch: number): void {
    this.#epoch = requireInt('epoch', epoch);
  }

  /** The plan of the current epoch (every rank's sequence, batches, resume by position). */
  get plan(): EpochPlan {
    if (this.#plan === null) this.#plan = this.createPlan(this.#epoch);
    else if (this.#plan.epoch !== this.#epoch) this.#plan = this.#plan.withEpoch(this.#epoch);
    return this.#plan;
  }

  /** The plan options of an epoch; subclasses choose the partition. */
  protected planOptions(epoch: number): EpochPlanOptions {
    return {
      numSamples: this.size,
      worldSize: this.numReplicas,
      seed: this.seed,
      epoch,
      shuffle: this.shuffle ? 'global' : 'none',
      partition: 'distributed',
      dropLast: this.dropLast,
    };
  }

  /** Builds the first plan (later epochs derive from it with `withEpoch`). */
  protected createPlan(epoch: number): EpochPlan {
    return new EpochPlan(this.planOptions(epoch));
  }

  /** This rank's indices of the current epoch; the epoch then advances by one. */
  [Symbol.iterator](): Iterator<number> {
    const plan = this.plan;
    this.#epoch++;
    return plan.ids(this.rank);
  }
}
