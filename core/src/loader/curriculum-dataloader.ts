/**
 * Curriculum learning: train on the easiest samples first and widen the pool each epoch. Each
 * sample has a difficulty; a pacing function says what fraction of the easiest samples epoch e
 * may use (from `initialDifficulty` up to 1 after `epochsToFull` epochs), and that subset is
 * shuffled deterministically from (seed, epoch).
 */
import type { Collated } from '../collate/default-collate.ts';
import type { Dataset } from '../dataset/dataset.ts';
import { isDataset } from '../dataset/dataset.ts';
import { ArgumentError } from '../errors.ts';
import { Generator } from '../random.ts';
import type { Sampler } from '../sampler/sampler.ts';
import { requireFinite, requireInt, requireSeed } from '../validate.ts';
import type { DataLoaderOptions, DataSource } from './dataloader.ts';
import { DataLoader } from './dataloader.ts';

export const Pacing = { linear: 'linear', root: 'root' } as const;

/**
 * How the available fraction grows with the epoch: `linear` (c0 + (1 − c0)·e/E), `root`
 * (√(c0² + (1 − c0²)·e/E), competence-based curriculum: fast at first, then slower), or a
 * function of the epoch returning a fraction in (0, 1].
 */
export type PacingFn = (epoch: number, context: { initialDifficulty: number; epochsToFull: number }) => number;
export type Pacing = (typeof Pacing)[keyof typeof Pacing] | PacingFn;

/** Difficulty per sample: an array (index → difficulty) or a function of the sample (async allowed). */
export type Difficulty<T> = ArrayLike<number> | ((sample: T, index: number) => number | Promise<number>);

export interface CurriculumOptions<T = unknown, B = Collated<T>>
  extends Omit<DataLoaderOptions<T, B>, 'sampler' | 'batchSampler' | 'shuffle'> {
  /**
   * Lower is easier. A function is evaluated once on every sample, in this thread, before the
   * first epoch; it needs the dataset as an object. With a module spec, give an array.
   */
  difficulty: Difficulty<T>;
  /** Fraction of the easiest samples available in epoch 0 (default 0.1). */
  initialDifficulty?: number;
  /** Epochs until every sample is available (default 10). */
  epochsToFull?: number;
  /** Default `linear`. */
  pacing?: Pacing;
  /** Keep the subset in difficulty order instead of shuffling it (default false). */
  ordered?: boolean;
}

/** The fraction of samples available in `epoch` under a pacing. */
export function curriculumFraction(epoch: number, pacing: Pacing, initialDifficulty: number, epochsToFull: number): number {
  requireInt('epoch', epoch);
  const t = epochsToFull === 0 ? 1 : Math.min(1, epoch / epochsToFull);
  if (pacing === 'linear') return initialDifficulty + (1 - initialDifficulty) * t;
  if (pacing === 'root') return Math.min(1, Math.sqrt(initialDifficulty ** 2 + (1 - initialDifficulty ** 2) * t));
  const f = pacing(epoch, { initialDifficulty, epochsToFull });
  if (typeof f !== 'number' || !Number.isFinite(f) || f <= 0 || f > 1) {
    throw new ArgumentError('pacing', `returned ${String(f)} for epoch ${epoch}; must be a number in (0, 1]`);
  }
  return f;
}

/**
 * The sampler of a curriculum: epoch e yields the `count(e)` easiest samples, shuffled with
 * Generator(seed, e) (or in difficulty order). Like every randomized sampler, each pass uses the
 * current epoch and then advances it.
 */
export class CurriculumSampler implements Sampler {
  readonly size: number;
  readonly seed: number;
  readonly ordered: boolean;
  readonly #count: (epoch: number) => number;
  #order: Uint32Array | null = null;
  #epoch: number;

  constructor(size: number, count: (epoch: number) => number, options: { seed?: number; epoch?: number; ordered?: boolean } = {}) {
    this.size = requireInt('size', size);
    this.#count = count;
    this.seed = requireSeed('seed', options.seed ?? 0);
    this.#epoch = requireInt('epoch', options.epoch ?? 0);
    this.ordered = options.ordered ?? false;
  }

  /** Sets the easiest-first order of all samples (indices sorted by difficulty). */
  setOrder(order: Uint32Array): void {
    if (order.length !== this.size) throw new ArgumentError('order', `must have ${this.size} indices, got ${order.length}`);
    this.#order = order;
  }

  get epoch(): number {
    return this.#epoch;
  }

  setEpoch(epoch: number): void {
    this.#epoch = requireInt('epoch', epoch);
  }

  /** Samples available in the current epoch. */
  get length(): number {
    return this.#count(this.#epoch);
  }

  [Symbol.iterator](): Iterator<number> {
    if (this.#order === null) throw new ArgumentError('order', 'is not set yet: the difficulties have not been computed');
    const epoch = this.#epoch++;
    const subset = this.#order.slice(0, this.#count(epoch));
    if (!this.ordered) new Generator(this.seed, epoch).shuffle(subset);
    return subset[Symbol.iterator]();
  }
}

/**
 * A DataLoader that follows a curriculum (pacing rules: `curriculumFraction`).
 *
 * @example
 * const loader = new CurriculumDataLoader(sentences, {
 *   difficulty: (s) => s.tokens.length, initialDifficulty: 0.2, epochsToFull: 5, batchSize: 32, seed: 1,
 * });
 * for (let e = 0; e < 8; e++) for await (const batch of loader) train(batch);
 */
export class CurriculumDataLoader<T = unknown, B = Collated<T>> implements AsyncIterable<B>, AsyncDisposable {
  readonly initialDifficulty: number;
  readonly epochsToFull: number;
  readonly pacing: Pacing;
  readonly sampler: CurriculumSampler;
  readonly #loader: DataLoader<T, B>;
  readonly #dataset: DataSource<T>;
  readonly #difficulty: Difficulty<T>;
  readonly #size: number;
  #scored: Promise<void> | null = null;

  constructor(dataset: DataSource<T>, options: CurriculumOptions<T, B>) {
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object');
    const { difficulty, initialDifficulty, epochsToFull, pacing, ordered, ...rest } = options;
    const size = (dataset as { length?: unknown }).length;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) {
      throw new ArgumentError('dataset', 'needs a known length (a Dataset, or a module spec with `length`)');
    }
    this.#size = size;
    this.initialDifficulty = requireFinite('initialDifficulty', initialDifficulty ?? 0.1, { min: 0, max: 1 });
    if (this.initialDifficulty === 0) throw new ArgumentError('initialDifficulty', 'must be in (0, 1], got 0');
    this.epochsToFull = requireInt('epochsToFull', epochsToFull ?? 10);
    this.pacing = pacing ?? 'linear';
    if (this.pacing !== 'linear' && this.pacing !== 'root' && typeof this.pacing !== 'function') {
      throw new ArgumentError('pacing', `must be "linear", "root" or a function, got ${JSON.stringify(this.pacing)}`);
    }
    if (typeof difficulty === 'function') {
      if (!isDataset(dataset)) {
        throw new ArgumentError('difficulty', 'a difficulty function needs the dataset as an object; with a module spec give an array');
      }
    } else if (difficulty == null || typeof difficulty.length !== 'number') {
      throw new ArgumentError('difficulty', 'must be an array of numbers or a function (sample, index) => number');
    } else if (difficulty.length !== size) {
      throw new ArgumentError('difficulty', `has ${difficulty.length} entries but the dataset has ${size} samples`);
    }
    this.#dataset = dataset;
    this.#difficulty = difficulty;
    const samplerOptions: { seed?: number; epoch?: number; ordered?: boolean } = { seed: rest.seed ?? 0, epoch: rest.epoch ?? 0 };
    if (ordered !== undefined) samplerOptions.ordered = ordered;
    this.sampler = new CurriculumSampler(size, (e) => this.availableCount(e), samplerOptions);
    this.#loader = new DataLoader(dataset, { ...rest, sampler: this.sampler });
    if (typeof difficulty !== 'function') this.sampler.setOrder(easiestFirst(checkScores(Array.from(difficulty))));
  }

  /** Fraction of the samples available in `epoch`. */
  fraction(epoch: number): number {
    return curriculumFraction(epoch, this.pacing, this.initialDifficulty, this.epochsToFull);
  }

  /** Number of (easiest) samples available in `epoch`: ⌈fraction × n⌉, at least 1 when n > 0. */
  availableCount(epoch: number): number {
    if (this.#size === 0) return 0;
    return Math.min(this.#size, Math.max(1, Math.ceil(this.fraction(epoch) * this.#size - 1e-9)));
  }

  /** The epoch of the next pass. */
  get epoch(): number {
    return this.#loader.epoch;
  }

  setEpoch(epoch: number): void {
    this.#loader.setEpoch(epoch);
    this.sampler.setEpoch(epoch);
  }

  /** Batches in the next epoch. */
  get length(): number {
    return this.#loader.length;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<B> {
    this.#scored ??= this.#score().catch((e: unknown) => {
      this.#scored = null; // a failed scoring (e.g. a flaky read) is retried by the next pass
      throw e;
    });
    await this.#scored;
    yield* this.#loader;
  }

  async #score(): Promise<void> {
    const fn = this.#difficulty;
    if (typeof fn !== 'function') return;
    const dataset = this.#dataset as Dataset<T>;
    const scores: number[] = [];
    for (let i = 0; i < this.#size; i++) scores.push(await fn(await dataset.get(i), i));
    this.sampler.setOrder(easiestFirst(checkScores(scores)));
  }

  close(): Promise<void> {
    return this.#loader.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function checkScores(scores: number[]): number[] {
  scores.forEach((s, i) => {
    if (typeof s !== 'number' || Number.isNaN(s)) {
      throw new ArgumentError(`difficulty[${i}]`, `must be a number, got ${String(s)}`);
    }
  });
  return scores;
}

/** Indices sorted by difficulty, ties by index, so the order is the same everywhere. */
function easiestFirst(scores: readonly number[]): Uint32Array {
  const order = Uint32Array.from(scores, (_, i) => i);
  order.sort((a, b) => scores[a]! - scores[b]! || a - b);
  return order;
}
