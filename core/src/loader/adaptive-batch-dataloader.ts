/**
 * A DataLoader whose batch size moves within [min, max] from feedback: the trainer reports its
 * step time and memory use (or the loader measures them), and the batch size grows while that
 * buys throughput and memory allows, and halves under memory pressure. The epoch stays one sampler
 * order consumed in chunks of varying size, so every sample is still delivered exactly once.
 */
import { getHeapStatistics } from 'node:v8';
import type { Collated } from '../collate/default-collate.ts';
import { ArgumentError } from '../errors.ts';
import { RandomSampler } from '../sampler/random.ts';
import type { BatchSampler as BatchSamplerLike, Sampler } from '../sampler/sampler.ts';
import { isSampler } from '../sampler/sampler.ts';
import { SequentialSampler } from '../sampler/sequential.ts';
import { requireFinite, requireInt, requirePositiveInt } from '../validate.ts';
import type { DataLoaderOptions, DataSource } from './dataloader.ts';
import { DataLoader } from './dataloader.ts';

/** What a trainer reports after a step on the last batch it received. */
export interface StepFeedback {
  /** Wall time of the step in milliseconds (data wait included, if you want it to count). */
  stepMs?: number;
  /** Memory in use after the step (e.g. accelerator memory), in bytes. */
  memoryBytes?: number;
}

export interface BatchSizeControllerOptions {
  /** Starting batch size (default 32, clamped into [min, max]). */
  initialBatchSize?: number;
  minBatchSize?: number;
  maxBatchSize?: number;
  /** Memory that counts as 100 %; needed for memory rules given as bytes. Default: the V8 heap limit. */
  memoryLimitBytes?: number;
  /** Shrink when memory use reaches this fraction of the limit (default 0.9). */
  highMemory?: number;
  /** Grow only while memory use is below this fraction (default 0.75). */
  lowMemory?: number;
  /** Multiplier when growing (default 1.25; at least +1). */
  growFactor?: number;
  /** Multiplier under memory pressure (default 0.5). */
  shrinkFactor?: number;
  /** Step reports averaged before each throughput decision (default 4). */
  window?: number;
  /** Relative throughput change that counts as better or worse (default 0.02). */
  tolerance?: number;
}

/** One decision of the controller, for logs and tests. */
export interface BatchSizeDecision {
  action: 'grow' | 'shrink' | 'revert' | 'hold';
  from: number;
  to: number;
  /** Samples per second over the window, when the decision was about throughput. */
  throughput?: number;
  memoryFraction?: number;
}

/**
 * The batch-size rules, as a pure state machine:
 * 1. Memory pressure: a report with memory ≥ highMemory × limit shrinks the size at once
 *    (× shrinkFactor, not below min) and caps later growth below the size that hit pressure.
 * 2. Every `window` step reports, throughput (samples/s) over the window is compared with the
 *    throughput measured at the previous size:
 *    - memory below lowMemory (or unknown) and throughput better by more than `tolerance`
 *      (or nothing to compare yet): grow × growFactor (at least +1), up to max and the cap;
 *    - throughput worse by more than `tolerance` after a growth: go back to the previous size
 *      and stop growing there;
 *    - otherwise (no gain: a plateau, or no memory headroom): hold; a plateau stops growth.
 */
export class BatchSizeController {
  readonly minBatchSize: number;
  readonly maxBatchSize: number;
  readonly memoryLimitBytes: number;
  readonly highMemory: number;
  readonly lowMemory: number;
  readonly growFactor: number;
  readonly shrinkFactor: number;
  readonly window: number;
  readonly tolerance: number;
  #size: number;
  #cap: number;
  #baseline: { size: number; throughput: number } | null = null;
  #samples = 0;
  #ms = 0;
  #reports = 0;
  #memory: number | undefined;
  readonly history: BatchSizeDecision[] = [];

  constructor(options: BatchSizeControllerOptions = {}) {
    this.minBatchSize = requirePositiveInt('minBatchSize', options.minBatchSize ?? 1);
    this.maxBatchSize = requirePositiveInt('maxBatchSize', options.maxBatchSize ?? Math.max(1024, this.minBatchSize));
    if (this.maxBatchSize < this.minBatchSize) {
      throw new ArgumentError('maxBatchSize', `must be ≥ minBatchSize ${this.minBatchSize}, got ${this.maxBatchSize}`);
    }
    const initial = requirePositiveInt('initialBatchSize', options.initialBatchSize ?? 32);
    this.#size = Math.min(this.maxBatchSize, Math.max(this.minBatchSize, initial));
    this.#cap = this.maxBatchSize;
    this.memoryLimitBytes = requireFinite('memoryLimitBytes', options.memoryLimitBytes ?? getHeapStatistics().heap_size_limit, {
      min: 1,
    });
    this.highMemory = requireFinite('highMemory', options.highMemory ?? 0.9, { min: 0, max: 1 });
    this.lowMemory = requireFinite('lowMemory', options.lowMemory ?? 0.75, { min: 0, max: this.highMemory });
    this.growFactor = requireFinite('growFactor', options.growFactor ?? 1.25, { min: 1 });
    this.shrinkFactor = requireFinite('shrinkFactor', options.shrinkFactor ?? 0.5, { min: 0, max: 1 });
    if (this.shrinkFactor === 0 || this.shrinkFactor === 1) {
      throw new ArgumentError('shrinkFactor', `must be in (0, 1), got ${this.shrinkFactor}`);
    }
    this.window = requirePositiveInt('window', options.window ?? 4);
    this.tolerance = requireFinite('tolerance', options.tolerance ?? 0.02, { min: 0, max: 1 });
  }

  /** The batch size to use now. */
  get batchSize(): number {
    return this.#size;
  }

  /**
   * Feeds one step: `samples` is the size of the batch the step processed. Returns the decision
   * taken, or undefined while the window is still filling.
   */
  observe(samples: number, feedback: StepFeedback): BatchSizeDecision | undefined {
    requireInt('samples', samples);
    if (typeof feedback !== 'object' || feedback === null) throw new ArgumentError('feedback', 'must be an object');
    const { stepMs, memoryBytes } = feedback;
    if (stepMs !== undefined) requireFinite('stepMs', stepMs, { min: 0 });
    if (memoryBytes !== undefined) {
      requireFinite('memoryBytes', memoryBytes, { min: 0 });
      this.#memory = memoryBytes / this.memoryLimitBytes;
    }
    const memoryFraction = this.#memory;

    if (memoryFraction !== undefined && memoryBytes !== undefined && memoryFraction >= this.highMemory) {
      const from = this.#size;
      this.#size = Math.max(this.minBatchSize, Math.floor(from * this.shrinkFactor));
      this.#cap = Math.max(this.minBatchSize, Math.min(this.#cap, from - 1));
      this.#baseline = null;
      this.#resetWindow();
      return this.#decide({ action: from === this.#size ? 'hold' : 'shrink', from, to: this.#size, memoryFraction });
    }
    if (stepMs === undefined) return undefined;
    this.#samples += samples;
    this.#ms += stepMs;
    if (++this.#reports < this.window) return undefined;

    const throughput = this.#ms > 0 ? (this.#samples / this.#ms) * 1000 : Infinity;
    this.#resetWindow();
    const from = this.#size;
    const base = this.#baseline;
    const headroom = memoryFraction === undefined || memoryFraction < this.lowMemory;
    const decision: BatchSizeDecision = { action: 'hold', from, to: from, throughput };
    if (memoryFraction !== undefined) decision.memoryFraction = memoryFraction;
    if (base !== null && base.size < from && throughput < base.throughput * (1 - this.tolerance)) {
      this.#size = base.size;
      this.#cap = base.size;
      this.#baseline = null;
      return this.#decide({ ...decision, action: 'revert', to: this.#size });
    }
    if (headroom && (base === null || throughput > base.throughput * (1 + this.tolerance)) && from < this.#cap) {
      this.#baseline = { size: from, throughput };
      this.#size = Math.min(this.#cap, Math.max(from + 1, Math.round(from * this.growFactor)));
      return this.#decide({ ...decision, action: 'grow', to: this.#size });
    }
    if (headroom && base !== null) this.#cap = from; // a plateau: more samples per step buy nothing
    return this.#decide(decision);
  }

  #resetWindow(): void {
    this.#samples = 0;
    this.#ms = 0;
    this.#reports = 0;
  }

  #decide(d: BatchSizeDecision): BatchSizeDecision {
    this.history.push(d);
    if (this.history.length > 1000) this.history.splice(0, this.history.length - 1000);
    return d;
  }
}

/**
 * A batch sampler whose batch size is read before each batch: one pass of `sampler` cut into
 * chunks of whatever size `size()` says at that moment. `length` is an estimate at the current
 * size. The sizes it yields are recorded in order, so the loader can tell which batch a report is about.
 */
export class AdaptiveBatchSampler implements BatchSamplerLike {
  readonly sampler: Sampler;
  readonly dropLast: boolean;
  readonly #size: () => number;
  /** Sizes of batches yielded and not yet delivered, oldest first. */
  readonly yielded: number[] = [];

  constructor(sampler: Sampler, size: () => number, dropLast = false) {
    if (!isSampler(sampler)) throw new ArgumentError('sampler', 'must be a Sampler (iterable of indices with a length)');
    this.sampler = sampler;
    this.#size = size;
    this.dropLast = dropLast;
  }

  get length(): number {
    const n = this.sampler.length;
    const b = this.#size();
    return this.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  }

  setEpoch(epoch: number): void {
    this.sampler.setEpoch?.(epoch);
  }

  *[Symbol.iterator](): Iterator<number[]> {
    this.yielded.length = 0;
    let target = this.#size();
    let batch: number[] = [];
    for (const index of this.sampler) {
      batch.push(index);
      if (batch.length >= target) {
        this.yielded.push(batch.length);
        yield batch;
        batch = [];
        target = this.#size();
      }
    }
    if (batch.length > 0 && !this.dropLast) {
      this.yielded.push(batch.length);
      yield batch;
    }
  }
}

export interface AdaptiveBatchDataLoaderOptions<T = unknown, B = Collated<T>>
  extends Omit<DataLoaderOptions<T, B>, 'batchSize' | 'batchSampler' | 'inOrder'>,
    BatchSizeControllerOptions {
  /**
   * Measure instead of waiting for `report()`: each batch's step time is the time from its
   * delivery to the delivery of the next one (the step plus any data wait), memory is the V8
   * heap in use (default false).
   */
  autoMeasure?: boolean;
}

/**
 * A DataLoader with a feedback-driven batch size (rules: `BatchSizeController`). Call
 * `report({ stepMs, memoryBytes })` after each training step, or set `autoMeasure`. With workers,
 * a new size applies to batches not yet dispatched (up to numWorkers × prefetchFactor later).
 *
 * @example
 * const loader = new AdaptiveBatchDataLoader(dataset, { initialBatchSize: 32, maxBatchSize: 256,
 *   memoryLimitBytes: 16 * 2 ** 30, shuffle: true });
 * for await (const batch of loader) {
 *   const t0 = performance.now();
 *   await train(batch);
 *   loader.report({ stepMs: performance.now() - t0, memoryBytes: deviceMemoryInUse() });
 * }
 */
export class AdaptiveBatchDataLoader<T = unknown, B = Collated<T>> implements AsyncIterable<B>, AsyncDisposable {
  readonly controller: BatchSizeController;
  readonly batchSampler: AdaptiveBatchSampler;
  readonly autoMeasure: boolean;
  readonly #loader: DataLoader<T, B>;
  #lastSize: number | undefined;

  constructor(dataset: DataSource<T>, options: AdaptiveBatchDataLoaderOptions<T, B> = {}) {
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object');
    const { sampler, shuffle, dropLast, autoMeasure, ...rest } = options;
    this.controller = new BatchSizeController(options);
    this.autoMeasure = autoMeasure ?? false;
    let base: Sampler;
    if (sampler !== undefined) {
      if (shuffle) throw new ArgumentError('shuffle', 'is mutually exclusive with sampler');
      base = sampler;
    } else {
      const length = (dataset as { length?: unknown }).length;
      if (typeof length !== 'number') {
        throw new ArgumentError('dataset', 'needs a known length (a Dataset, or a module spec with `length`) or a sampler');
      }
      base = shuffle ? new RandomSampler(length, { seed: options.seed ?? 0 }) : new SequentialSampler(length);
    }
    this.batchSampler = new AdaptiveBatchSampler(base, () => this.controller.batchSize, dropLast ?? false);
    this.#loader = new DataLoader(dataset, stripControllerOptions({ ...rest, batchSampler: this.batchSampler }));
  }

  /** The batch size of the next batches. */
  get batchSize(): number {
    return this.controller.batchSize;
  }

  /** Batches per epoch at the current batch size (an estimate: the size may change). */
  get length(): number {
    return this.batchSampler.length;
  }

  get epoch(): number {
    return this.#loader.epoch;
  }

  setEpoch(epoch: number): void {
    this.#loader.setEpoch(epoch);
  }

  /** Feedback on the step that processed the last batch delivered. */
  report(feedback: StepFeedback): BatchSizeDecision | undefined {
    if (this.#lastSize === undefined) throw new ArgumentError('report', 'no batch has been delivered yet');
    return this.controller.observe(this.#lastSize, feedback);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<B> {
    let deliveredAt: number | undefined;
    for await (const batch of this.#loader) {
      if (this.autoMeasure && deliveredAt !== undefined) {
        this.report({ stepMs: performance.now() - deliveredAt, memoryBytes: process.memoryUsage().heapUsed });
      }
      this.#lastSize = this.batchSampler.yielded.shift();
      yield batch;
      deliveredAt = performance.now();
    }
  }

  close(): Promise<void> {
    return this.#loader.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

const CONTROLLER_KEYS = [
  'initialBatchSize',
  'minBatchSize',
  'maxBatchSize',
  'memoryLimitBytes',
  'highMemory',
  'lowMemory',
  'growFactor',
  'shrinkFactor',
  'window',
  'tolerance',
] as const;

function stripControllerOptions<T, B>(options: DataLoaderOptions<T, B> & BatchSizeControllerOptions): DataLoaderOptions<T, B> {
  const out: Record<string, unknown> = { ...options };
  for (const key of CONTROLLER_KEYS) delete out[key];
  return out as DataLoaderOptions<T, B>;
}
