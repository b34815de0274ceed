/**
 * The epoch plan: for each of W ranks, its sequence of global sample ids and its batches, as a
 * pure function of (seed, epoch, shard sizes, optional per-sample costs, W, batch size schedule,
 * shuffle mode, partition mode, dropLast). Nothing is materialized: memory is O(shards + W) (plus
 * one balancing window for the load-balanced partition), ids are safe integers up to 2^53 − 1,
 * and any position of any rank is reachable without computing what comes before, so the
 * coordinator can hand out (epoch, rank, range of positions) and every loader computes the same
 * ids.
 */
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { requireInt, requirePositiveInt, requireSeed } from '../validate.ts';
import { BatchLayout, normalizeSchedule } from './batches.ts';
import type { BatchRange, BatchSizeSchedule } from './batches.ts';
import { CostTable } from './costs.ts';
import { partitions } from './partition/index.ts';
import type { PartitionMode } from './partition/index.ts';
import { summarizeCosts } from './partition/load-balanced.ts';
import { ShardTable } from './shards.ts';
import { shuffles } from './shuffle/index.ts';
import type { ShuffleMode } from './shuffle/index.ts';
import type { CostReport, RankSequences, SampleOrder } from './types.ts';

/** Inputs of an epoch plan. Give exactly one of `shardSizes` and `numSamples`. */
export interface EpochPlanOptions {
  /** Samples per shard, in global id order (or a prepared ShardTable, shared between epochs). */
  shardSizes?: ArrayLike<number> | ShardTable;
  /** Shorthand for one shard of this many samples. */
  numSamples?: number;
  /** W, the number of ranks (≥ 1). */
  worldSize: number;
  /** Seed, a safe integer ≥ 0 (default 0). */
  seed?: number;
  /** Epoch, an integer ≥ 0 (default 0). */
  epoch?: number;
  /** `none`, `global` (default) or `shard-aware`. */
  shuffle?: ShuffleMode;
  /** Shards per window of the shard-aware shuffle, k (default 4). */
  shardWindow?: number;
  /** `distributed` (default) or `load-balanced`. */
  partition?: PartitionMode;
  /**
   * Per-sample cost (e.g. bytes or tokens), finite ≥ 0, one per sample (or a prepared
   * CostTable). Required by `load-balanced`; with `distributed` it only feeds `costReport`.
   * Held by reference, never copied: do not mutate it while plans use it.
   */
  costs?: ArrayLike<number> | CostTable;
  /**
   * R, positions per rank in one balancing window of `load-balanced` (default max(8, ⌈2^17 / W⌉)).
   * Larger R balances better (fewer windows; a window must hold several samples per rank to
   * even out a heavy one) but a resume computes one window: O(W·R) time, 32·W·R bytes.
   */
  balanceWindow?: number;
  /** Drop the tail so every rank gets ⌊N/W⌋ (default false: pad by wrapping to ⌈N/W⌉). */
  dropLast?: boolean;
  /** A constant batch size or a schedule of {fromStep, batchSize} (default 1). */
  batchSize?: BatchSizeSchedule;
  /** Drop each rank's last batch when it is short (default false). */
  dropLastBatch?: boolean;
  /** Global step of this epoch's first batch, for schedules that span epochs (default 0). */
  stepOffset?: number;
}

/** A batch with the ids of one rank. */
export interface PlannedBatch extends BatchRange {
  readonly rank: number;
  readonly ids: number[];
}

const DEFAULT_SHARD_WINDOW = 4;
/** Default W·R: big enough that K windows stay few, small enough to sort in cache. */
const DEFAULT_BALANCE_SPAN = 2 ** 17;
/** Default minimum R: a rank needs a few samples per window for the dealing to even them out. */
const MIN_DEFAULT_BALANCE_WINDOW = 8;
const CHUNK = 4096;

function requireMode<M extends string>(name: string, value: unknown, modes: Readonly<Record<M, unknown>>): M {
  if (typeof value !== 'string' || !Object.hasOwn(modes, value)) {
    const known = Object.keys(modes).join(', ');
    throw new ArgumentError(name, `must be one of ${known}, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
  }
  return value as M;
}

/**
 * One epoch's plan for every rank.
 *
 * @example
 * const plan = new EpochPlan({ shardSizes: [1000, 1000, 500], worldSize: 4, seed: 7, epoch: 2, batchSize: 32 });
 * plan.perRank;            // 625 = ⌈2500 / 4⌉
 * plan.numBatches;         // 20 on every rank
 * const ids = new Float64Array(100);
 * plan.fill(3, 500, ids);  // rank 3, positions 500..599, no matter what came before
 * plan.batchIds(3, 19);    // rank 3's last batch
 */
export class EpochPlan {
  readonly seed: number;
  readonly epoch: number;
  readonly worldSize: number;
  /** N, the number of samples. */
  readonly numSamples: number;
  /** L, positions per rank (the same on every rank). */
  readonly perRank: number;
  /** Batches per rank (the same on every rank). */
  readonly numBatches: number;
  readonly shuffle: ShuffleMode;
  readonly partition: PartitionMode;
  readonly shardWindow: number;
  readonly balanceWindow: number;
  readonly dropLast: boolean;
  readonly shards: ShardTable;
  readonly costs: CostTable | undefined;
  readonly batchSize: BatchSizeSchedule;
  readonly dropLastBatch: boolean;
  readonly stepOffset: number;
  /** The epoch's order of all N samples, before partitioning. */
  readonly order: SampleOrder;
  readonly #ranks: RankSequences;
  readonly #batches: BatchLayout;

  constructor(options: EpochPlanOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ArgumentError('options', `must be an object, got ${String(options)}`);
    }
    this.worldSize = requirePositiveInt('worldSize', options.worldSize, 2 ** 31 - 1);
    this.seed = requireSeed('seed', options.seed ?? 0);
    this.epoch = requireInt('epoch', options.epoch ?? 0);
    this.shuffle = requireMode('shuffle', options.shuffle ?? 'global', shuffles);
    this.partition = requireMode('partition', options.partition ?? 'distributed', partitions);
    this.shardWindow = requirePositiveInt('shardWindow', options.shardWindow ?? DEFAULT_SHARD_WINDOW);
    this.balanceWindow = requirePositiveInt(
      'balanceWindow',
      options.balanceWindow ?? Math.max(MIN_DEFAULT_BALANCE_WINDOW, Math.ceil(DEFAULT_BALANCE_SPAN / this.worldSize)),
    );
    this.dropLast = options.dropLast ?? false;
    this.dropLastBatch = options.dropLastBatch ?? false;
    this.stepOffset = requireInt('stepOffset', options.stepOffset ?? 0);
    const schedule = options.batchSize ?? 1;
    this.batchSize =
      typeof schedule === 'number' ? requirePositiveInt('batchSize', schedule) : Object.freeze(normalizeSchedule(schedule));

    if ((options.shardSizes === undefined) === (options.numSamples === undefined)) {
      throw new ArgumentError('shardSizes', 'give exactly one of shardSizes and numSamples');
    }
    this.shards =
      options.shardSizes instanceof ShardTable
        ? options.shardSizes
        : new ShardTable(options.shardSizes ?? [requireInt('numSamples', options.numSamples)]);
    this.numSamples = this.shards.numSamples;
    if (options.costs instanceof CostTable) {
      if (options.costs.length !== this.numSamples) {
        throw new ArgumentError('costs', `length must equal the number of samples ${this.numSamples}, got ${options.costs.length}`);
      }
      this.costs = options.costs;
    } else {
      this.costs = options.costs === undefined ? undefined : new CostTable(options.costs, this.numSamples);
    }
    if (this.partition === 'load-balanced' && this.costs === undefined) {
      throw new ArgumentError('costs', 'are required by partition "load-balanced" (one cost per sample)');
    }

    this.order = shuffles[this.shuffle]({
      seed: this.seed,
      epoch: this.epoch,
      shards: this.shards,
      shardWindow: this.shardWindow,
    });
    this.#ranks = partitions[this.partition]({
      seed: this.seed,
      epoch: this.epoch,
      order: this.order,
      worldSize: this.worldSize,
      dropLast: this.dropLast,
      costs: this.costs,
      balanceWindow: this.balanceWindow,
    });
    this.perRank = this.#ranks.perRank;
    this.#batches = new BatchLayout(this.perRank, this.batchSize, {
      dropLast: this.dropLastBatch,
      stepOffset: this.stepOffset,
    });
    this.numBatches = this.#batches.count;
  }

  /** The same plan for another epoch (shard and cost tables are shared, not re-validated). */
  withEpoch(epoch: number, stepOffset = this.stepOffset): EpochPlan {
    return new EpochPlan({
      shardSizes: this.shards,
      worldSize: this.worldSize,
      seed: this.seed,
      epoch,
      shuffle: this.shuffle,
      shardWindow: this.shardWindow,
      partition: this.partition,
      costs: this.costs,
      balanceWindow: this.balanceWindow,
      dropLast: this.dropLast,
      batchSize: this.batchSize,
      dropLastBatch: this.dropLastBatch,
      stepOffset,
    });
  }

  /** The global sample id at position `position` (in [0, perRank)) of rank `rank`. */
  at(rank: number, position: number): number {
    this.#requireRank(rank);
    if (!Number.isInteger(position) || position < 0 || position >= this.perRank) {
      throw new IndexOutOfRangeError(position, this.perRank, 'position');
    }
    return this.#ranks.at(rank, position);
  }

  /**
   * The bulk path: writes rank `rank`'s ids at positions start, start + 1, … to
   * out[offset, offset + count), stopping at the end of the rank's sequence. Returns how many
   * ids it wrote. No allocation.
   */
  fill(rank: number, start: number, out: Float64Array, offset = 0, count = out.length - offset): number {
    this.#requireRank(rank);
    requireInt('start', start, { max: this.perRank });
    if (!(out instanceof Float64Array)) throw new ArgumentError('out', 'must be a Float64Array');
    requireInt('offset', offset, { max: out.length });
    requireInt('count', count, { max: out.length - offset });
    const n = Math.min(count, this.perRank - start);
    if (n > 0) this.#ranks.fill(rank, start, out, offset, n);
    return n;
  }

  /** Rank `rank`'s ids from position `start` to the end. */
  *ids(rank: number, start = 0): Generator<number, void, undefined> {
    this.#requireRank(rank);
    requireInt('start', start, { max: this.perRank });
    const buffer = new Float64Array(Math.min(CHUNK, Math.max(1, this.perRank - start)));
    for (let p = start; p < this.perRank; ) {
      const n = Math.min(buffer.length, this.perRank - p);
      this.#ranks.fill(rank, p, buffer, 0, n);
      for (let i = 0; i < n; i++) yield buffer[i]!;
      p += n;
    }
  }

  /** Batch k's range of positions (the same for every rank) and global step. */
  batch(k: number): BatchRange {
    return this.#batches.batch(k);
  }

  /** Writes rank `rank`'s ids of batch k to `out` (from index 0) and returns the batch size. */
  fillBatch(rank: number, k: number, out: Float64Array): number {
    const b = this.#batches.batch(k);
    this.#requireRank(rank);
    if (!(out instanceof Float64Array) || out.length < b.size) {
      throw new ArgumentError('out', `must be a Float64Array of length ≥ ${b.size}`);
    }
    this.#ranks.fill(rank, b.start, out, 0, b.size);
    return b.size;
  }

  /** Rank `rank`'s ids of batch k. */
  batchIds(rank: number, k: number): number[] {
    const out = new Float64Array(this.#batches.batch(k).size);
    this.fillBatch(rank, k, out);
    return Array.from(out);
  }

  /** Rank `rank`'s batches from batch `from` to the end of the epoch. */
  *batches(rank: number, from = 0): Generator<PlannedBatch, void, undefined> {
    this.#requireRank(rank);
    requireInt('from', from, { max: this.numBatches });
    for (let k = from; k < this.numBatches; k++) {
      const b = this.#batches.batch(k);
      yield { ...b, rank, ids: this.batchIds(rank, k) };
    }
  }

  /**
   * Per-rank cost totals of this epoch, their spread, and (load-balanced) the guaranteed bound.
   * O(N) time, O(W) memory. Needs `costs`.
   */
  costReport(): CostReport {
    const costs = this.costs;
    if (costs === undefined) throw new ArgumentError('costs', 'the plan has no per-sample costs to report on');
    if (this.#ranks.costReport !== undefined) return this.#ranks.costReport();
    const perRank = new Float64Array(this.worldSize);
    const buffer = new Float64Array(Math.max(1, Math.min(CHUNK, this.perRank)));
    for (let rank = 0; rank < this.worldSize; rank++) {
      let sum = 0;
      for (let p = 0; p < this.perRank; p += buffer.length) {
        const n = Math.min(buffer.length, this.perRank - p);
        this.#ranks.fill(rank, p, buffer, 0, n);
        for (let i = 0; i < n; i++) sum += costs.cost(buffer[i]!);
      }
      perRank[rank] = sum;
    }
    return summarizeCosts(perRank, null);
  }

  #requireRank(rank: number): void {
    requireInt('rank', rank, { max: this.worldSize - 1 });
  }
}
