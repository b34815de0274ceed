/**
 * BalancedBatchSampler: batches made of `samplesPerClass` samples from each of
 * `classesPerBatch` classes (the "P×K" batches of metric learning and of imbalanced data).
 */
import { ArgumentError } from '../errors.ts';
import { Generator } from '../random.ts';
import { requireInt, requirePositiveInt, requireSeed } from '../validate.ts';
import { groupByLabel, readOptions } from './arguments.ts';
import type { Label } from './arguments.ts';
import type { BatchSampler } from './sampler.ts';

export interface BalancedBatchSamplerOptions {
  /** Samples of each chosen class in a batch (K, ≥ 1). Every class must have at least K samples. */
  samplesPerClass: number;
  /** Classes in a batch (P, between 1 and the number of classes; default: all classes). */
  classesPerBatch?: number;
  /** Batches per pass (default ⌊labels.length / (P × K)⌋: about one dataset's worth of samples). */
  numBatches?: number;
  /** Seed of the generator (default 0). */
  seed?: number;
  /** Epoch of the first pass (default 0). */
  epoch?: number;
}

/**
 * Yields `length` batches of `batchSize = classesPerBatch × samplesPerClass` indices: for each
 * batch, P distinct classes drawn uniformly at random, then K distinct samples of each, grouped
 * by class. Within a class, samples are dealt in cycles, each a fresh permutation of the class:
 * every sample is used once per cycle, so over a pass the use counts of a class's samples differ
 * by at most one, and a batch never repeats an index.
 *
 * `length` is `numBatches` when given, else ⌊labels.length / batchSize⌋.
 * A class with fewer than K samples is refused (ArgumentError on `samplesPerClass`), not
 * sampled with replacement: a repeated sample in a P×K batch silently turns an anchor into its
 * own positive in contrastive and triplet losses.
 *
 * @example
 * ```ts
 * // 8 classes × 4 samples = batches of 32:
 * const batches = new BalancedBatchSampler(labels, { classesPerBatch: 8, samplesPerClass: 4, seed: 0 });
 * ```
 */
export class BalancedBatchSampler implements BatchSampler {
  readonly length: number;
  readonly batchSize: number;
  readonly classesPerBatch: number;
  readonly samplesPerClass: number;
  /** The classes, in order of first appearance in the labels. */
  readonly classes: readonly Label[];
  readonly seed: number;
  readonly #members: readonly Uint32Array[];
  #epoch: number;

  constructor(labels: ArrayLike<Label>, options: BalancedBatchSamplerOptions) {
    const o = readOptions(options);
    const groups = groupByLabel('labels', labels);
    if (groups.classes.length === 0) throw new ArgumentError('labels', 'must not be empty');
    this.classes = groups.classes;
    this.#members = groups.members;
    this.samplesPerClass = requirePositiveInt('samplesPerClass', o.samplesPerClass);
    this.classesPerBatch =
      o.classesPerBatch === undefined
        ? this.classes.length
        : requireInt('classesPerBatch', o.classesPerBatch, { min: 1, max: this.classes.length });
    this.seed = requireSeed('seed', o.seed ?? 0);
    this.#epoch = requireInt('epoch', o.epoch ?? 0);
    this.#members.forEach((members, c) => {
      if (members.length < this.samplesPerClass) {
        throw new ArgumentError(
          'samplesPerClass',
          `is ${this.samplesPerClass} but class ${JSON.stringify(this.classes[c])} has only ${members.length} samples`,
        );
      }
    });
    this.batchSize = this.classesPerBatch * this.samplesPerClass;
    this.length =
      o.numBatches === undefined ? Math.floor(labels.length / this.batchSize) : requireInt('numBatches', o.numBatches);
  }

  /** The epoch the next pass uses. */
  get epoch(): number {
    return this.#epoch;
  }

  setEpoch(epoch: number): void {
    this.#epoch = requireInt('epoch', epoch);
  }

  [Symbol.iterator](): Iterator<number[]> {
    return this.#pass(new Generator(this.seed, this.#epoch++));
  }

  *#pass(g: Generator): Iterator<number[]> {
    const P = this.classesPerBatch;
    const K = this.samplesPerClass;
    const C = this.classes.length;
    const decks = this.#members.map((members) => g.shuffle(members.slice()));
    const dealt = new Uint32Array(C);
    const classOrder = new Uint32Array(C);
    for (let c = 0; c < C; c++) classOrder[c] = c;

    for (let b = 0; b < this.length; b++) {
      const batch: number[] = [];
      for (let i = 0; i < P; i++) {
        // Partial Fisher–Yates: P distinct classes, uniformly.
        const j = i + g.int(C - i);
        const c = classOrder[j]!;
        classOrder[j] = classOrder[i]!;
        classOrder[i] = c;
        const deck = decks[c]!;
        const d = dealt[c]!;
        if (deck.length - d >= K) {
          for (let s = 0; s < K; s++) batch.push(deck[d + s]!);
          dealt[c] = d + K;
        } else {
          // The cycle through the class ends inside this batch: deal its last r samples, then
          // start the next cycle with K − r samples other than those r (a batch never repeats an
          // index), and shuffle the rest of the new cycle.
          const r = deck.length - d;
          for (let s = d; s < deck.length; s++) batch.push(deck[s]!);
          g.shuffle(deck.subarray(0, d));
          for (let s = 0; s < K - r; s++) batch.push(deck[s]!);
          g.shuffle(deck.subarray(K - r));
          dealt[c] = K - r;
        }
      }
      yield batch;
    }
  }
}
