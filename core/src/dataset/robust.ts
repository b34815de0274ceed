/**
 * RobustDataset: survives samples that fail to load. Each get is retried; a sample that still
 * fails is replaced by another one (skip to the next, a seeded random one, or the previous good
 * one) or raised. Unlike the PyTorch guide's version, the length never changes: shrinking a
 * dataset mid-epoch breaks samplers and makes ranks disagree on their batch counts.
 */
import { ArgumentError, DatasetError } from '../errors.ts';
import { Generator } from '../random.ts';
import { normalizeIndex, requireInt, requireSeed } from '../validate.ts';
import type { Dataset } from './dataset.ts';
import { isDataset } from './dataset.ts';

/** What to return for a sample that failed every attempt. */
export const RobustFallback = {
  /** The next index (wrapping around) that loads. */
  skip: 'skip',
  /** A seeded random other index that loads. */
  random: 'random',
  /** The last sample that loaded (or, before any did, the next one that loads). */
  previous: 'previous',
  /** Throw a DatasetError. */
  raise: 'raise',
} as const;
export type RobustFallback = (typeof RobustFallback)[keyof typeof RobustFallback];

/** A failed attempt, as passed to `onError`. */
export interface LoadAttempt {
  index: number;
  /** 1 for the first try. */
  attempt: number;
  error: unknown;
}

/** What `failures()` reports for an index that failed all its attempts at least once. */
export interface SampleFailure {
  index: number;
  /** Failed attempts so far, over all gets. */
  attempts: number;
  /** The last error's message. */
  message: string;
}

export interface RobustDatasetOptions {
  /** Extra attempts after a failed first one (default 3). */
  maxRetries?: number;
  /** What to return when every attempt failed (default 'skip'). */
  fallback?: RobustFallback;
  /** Seed of the 'random' fallback (default 0). */
  seed?: number;
  /** Called on every failed attempt (for logs and metrics). */
  onError?: (attempt: LoadAttempt) => void;
}

/**
 * Wraps a dataset so that a failing sample is retried, then substituted. The substitute is a
 * deterministic function of the index (and the seed), except where failures are transient.
 * When no sample at all can be loaded, `get` throws a DatasetError instead of looping.
 *
 * @example
 * const ds = new RobustDataset(images, { maxRetries: 2, fallback: 'random', seed: 1,
 *   onError: ({ index, error }) => log.warn({ index, error }) });
 */
export class RobustDataset<T> implements Dataset<T> {
  readonly dataset: Dataset<T>;
  readonly length: number;
  readonly maxRetries: number;
  readonly fallback: RobustFallback;
  readonly seed: number;
  readonly #onError: ((attempt: LoadAttempt) => void) | undefined;
  readonly #failures = new Map<number, SampleFailure>();
  /** Indices that failed all their attempts: never tried again as a substitute. */
  readonly #bad = new Set<number>();
  #previous: { sample: T } | undefined;

  constructor(dataset: Dataset<T>, options: RobustDatasetOptions = {}) {
    if (!isDataset(dataset)) throw new ArgumentError('dataset', 'must be a Dataset (with length and get)');
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object');
    this.dataset = dataset;
    this.length = requireInt('dataset.length', dataset.length);
    this.maxRetries = requireInt('maxRetries', options.maxRetries ?? 3, { max: 1000 });
    const fallback = options.fallback ?? 'skip';
    if (!Object.values(RobustFallback).includes(fallback)) {
      throw new ArgumentError('fallback', `must be one of ${Object.values(RobustFallback).join(', ')}, got ${JSON.stringify(fallback)}`);
    }
    this.fallback = fallback;
    this.seed = requireSeed('seed', options.seed ?? 0);
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw new ArgumentError('onError', `must be a function, got ${typeof options.onError}`);
    }
    this.#onError = options.onError;
  }

  /** Sample `index`, or its substitute if it cannot be loaded. */
  async get(index: number): Promise<T> {
    const i = normalizeIndex(index, this.length);
    const first = await this.#load(i);
    if (first.ok) return first.sample;
    if (this.fallback === 'raise') {
      throw new DatasetError(`sample ${i} failed ${this.maxRetries + 1} attempts: ${message(first.error)}`, {
        cause: first.error,
        index: i,
      });
    }
    if (this.fallback === 'previous' && this.#previous !== undefined) return this.#previous.sample;
    const candidates = this.fallback === 'random' ? this.#randomOthers(i) : this.#nextOthers(i, i + 1);
    for (const j of candidates) {
      if (this.#bad.has(j)) continue;
      const substitute = await this.#load(j);
      if (substitute.ok) return substitute.sample;
    }
    throw new DatasetError(
      `sample ${i} failed ${this.maxRetries + 1} attempts (${message(first.error)}) and no other sample of the ${this.length} could be loaded`,
      { cause: first.error, index: i },
    );
  }

  /** Indices that failed all the attempts of at least one get, in index order. */
  failures(): SampleFailure[] {
    return [...this.#failures.values()].sort((a, b) => a.index - b.index).map((f) => ({ ...f }));
  }

  async #load(i: number): Promise<{ ok: true; sample: T } | { ok: false; error: unknown }> {
    let error: unknown;
    for (let attempt = 1; attempt <= this.maxRetries + 1; attempt++) {
      try {
        const sample = await this.dataset.get(i);
        this.#bad.delete(i);
        this.#previous = { sample };
        return { ok: true, sample };
      } catch (e) {
        error = e;
        this.#onError?.({ index: i, attempt, error: e });
      }
    }
    this.#bad.add(i);
    const known = this.#failures.get(i);
    this.#failures.set(i, { index: i, attempts: (known?.attempts ?? 0) + this.maxRetries + 1, message: message(error) });
    return { ok: false, error };
  }

  /** Every other index, starting at `start` and wrapping around. */
  *#nextOthers(i: number, start: number): IterableIterator<number> {
    const n = this.length;
    for (let k = 0; k < n; k++) {
      const j = (start + k) % n;
      if (j !== i) yield j;
    }
  }

  /** A few seeded random draws among the other indices, then all the others from the last draw. */
  *#randomOthers(i: number): IterableIterator<number> {
    const n = this.length;
    if (n < 2) return;
    const g = new Generator(this.seed, i);
    let last = i;
    for (let draw = 0; draw < Math.min(n - 1, 16); draw++) {
      const r = g.int(n - 1);
      last = r >= i ? r + 1 : r;
      yield last;
    }
    // Bounded: after the draws, a wrapping scan visits every index once, so a dataset where
    // nothing loads ends in an error instead of drawing forever.
    yield* this.#nextOthers(i, last);
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
