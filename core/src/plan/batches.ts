/**
 * Batches of an epoch plan: a batch is a range of positions of a rank's sequence, cut by a batch
 * size schedule (a constant, or sizes that change at given global steps, as the adaptive batch
 * controller announces them). Every rank has the same L positions, hence the same batches: batch
 * k is step `stepOffset + k` on every rank, which keeps data-parallel collectives in lockstep.
 */
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { requireInt, requirePositiveInt } from '../validate.ts';

/** From global step `fromStep` on (inclusive), batches hold `batchSize` samples. */
export interface BatchSizeStep {
  readonly fromStep: number;
  readonly batchSize: number;
}

/** A constant batch size, or steps sorted by `fromStep`, the first at step 0. */
export type BatchSizeSchedule = number | readonly BatchSizeStep[];

/** Batch `index` of the epoch: positions [start, start + size) of every rank. */
export interface BatchRange {
  /** Batch number within the epoch (0-based). */
  readonly index: number;
  /** Global step: stepOffset + index. */
  readonly step: number;
  /** First position (in each rank's sequence). */
  readonly start: number;
  /** Number of samples; only the last batch may be short (and not with dropLast). */
  readonly size: number;
}

/** Validates a schedule and returns it as steps. */
export function normalizeSchedule(schedule: BatchSizeSchedule): BatchSizeStep[] {
  if (typeof schedule === 'number') return [{ fromStep: 0, batchSize: requirePositiveInt('batchSize', schedule) }];
  if (!Array.isArray(schedule) || schedule.length === 0) {
    throw new ArgumentError('batchSize', `must be an integer ≥ 1 or a non-empty list of {fromStep, batchSize}, got ${String(schedule)}`);
  }
  const steps: BatchSizeStep[] = [];
  schedule.forEach((entry: BatchSizeStep, i: number) => {
    if (typeof entry !== 'object' || entry === null) {
      throw new ArgumentError(`batchSize[${i}]`, `must be an object {fromStep, batchSize}, got ${String(entry)}`);
    }
    const fromStep = requireInt(`batchSize[${i}].fromStep`, entry.fromStep);
    const batchSize = requirePositiveInt(`batchSize[${i}].batchSize`, entry.batchSize);
    if (i === 0 && fromStep !== 0) throw new ArgumentError('batchSize[0].fromStep', `must be 0, got ${fromStep}`);
    const previous = steps[i - 1];
    if (previous !== undefined && fromStep <= previous.fromStep) {
      throw new ArgumentError(`batchSize[${i}].fromStep`, `must be greater than ${previous.fromStep}, got ${fromStep}`);
    }
    steps.push({ fromStep, batchSize });
  });
  return steps;
}

/**
 * The batches of a sequence of `perRank` positions.
 *
 * @example
 * const b = new BatchLayout(10, [{ fromStep: 0, batchSize: 4 }, { fromStep: 1, batchSize: 3 }]);
 * b.count; // 3: [0, 4), [4, 7), [7, 10)
 */
export class BatchLayout {
  readonly perRank: number;
  readonly count: number;
  readonly dropLast: boolean;
  readonly stepOffset: number;
  /** Per segment (a run of batches of one size): first batch index, size, first position. */
  readonly #from: number[] = [];
  readonly #size: number[] = [];
  readonly #start: number[] = [];

  constructor(
    perRank: number,
    schedule: BatchSizeSchedule,
    { dropLast = false, stepOffset = 0 }: { dropLast?: boolean; stepOffset?: number } = {},
  ) {
    this.perRank = requireInt('perRank', perRank);
    this.stepOffset = requireInt('stepOffset', stepOffset);
    this.dropLast = dropLast;
    const steps = normalizeSchedule(schedule);
    // Segments relative to this epoch: the one in force at stepOffset, then the later ones, up
    // to the one that reaches the end of the sequence.
    let first = 0;
    while (first + 1 < steps.length && steps[first + 1]!.fromStep <= stepOffset) first++;
    let position = 0;
    for (let i = first; i < steps.length; i++) {
      const from = Math.max(0, steps[i]!.fromStep - stepOffset);
      if (i > first) {
        position += (from - this.#from[this.#from.length - 1]!) * this.#size[this.#size.length - 1]!;
        if (position >= perRank) break;
      }
      this.#from.push(from);
      this.#size.push(steps[i]!.batchSize);
      this.#start.push(position);
    }
    const last = this.#from.length - 1;
    const rest = perRank - this.#start[last]!;
    const size = this.#size[last]!;
    const partial = rest % size > 0 && !dropLast ? 1 : 0;
    this.count = perRank === 0 ? 0 : this.#from[last]! + Math.floor(rest / size) + partial;
  }

  /** Batch k (0 ≤ k < count). */
  batch(k: number): BatchRange {
    if (!Number.isInteger(k) || k < 0 || k >= this.count) throw new IndexOutOfRangeError(k, this.count, 'batch');
    let seg = this.#from.length - 1;
    while (this.#from[seg]! > k) seg--;
    const size = this.#size[seg]!;
    const start = this.#start[seg]! + (k - this.#from[seg]!) * size;
    return { index: k, step: this.stepOffset + k, start, size: Math.min(size, this.perRank - start) };
  }
}
