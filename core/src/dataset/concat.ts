/**
 * ConcatDataset: several datasets seen as one, in order. Global index → (dataset, offset) by a
 * binary search over cumulative sizes, O(log d) for d datasets; the same rule maps a global
 * sample id to a shard.
 */
import { ArgumentError } from '../errors.ts';
import { normalizeIndex, requireInt } from '../validate.ts';
import type { Dataset } from './dataset.ts';
import { isDataset } from './dataset.ts';

/** Where a global index lands: the position of the dataset in the list, and the index inside it. */
export interface DatasetLocation {
  readonly dataset: number;
  readonly offset: number;
}

/**
 * The concatenation of datasets. Lengths are read once, at construction; empty datasets are
 * allowed anywhere.
 *
 * @example
 * const ds = new ConcatDataset([new ListDataset([1, 2]), new ListDataset([]), new ListDataset([3])]);
 * ds.get(2);          // 3
 * ds.datasetIndex(-1); // { dataset: 2, offset: 0 }
 */
export class ConcatDataset<T> implements Dataset<T> {
  readonly datasets: readonly Dataset<T>[];
  /** `cumulativeSizes[k]` = total length of datasets 0..k. */
  readonly cumulativeSizes: Float64Array;
  readonly length: number;

  constructor(datasets: readonly Dataset<T>[]) {
    if (!Array.isArray(datasets)) throw new ArgumentError('datasets', 'must be an array of datasets');
    if (datasets.length === 0) throw new ArgumentError('datasets', 'must not be empty');
    const sizes = new Float64Array(datasets.length);
    let total = 0;
    datasets.forEach((d, k) => {
      if (!isDataset(d)) throw new ArgumentError(`datasets[${k}]`, 'must be a Dataset (with length and get)');
      total += requireInt(`datasets[${k}].length`, d.length);
      sizes[k] = total;
    });
    if (!Number.isSafeInteger(total)) throw new ArgumentError('datasets', `total length ${total} is not a safe integer`);
    this.datasets = [...datasets];
    this.cumulativeSizes = sizes;
    this.length = total;
  }

  /** Maps a global index (negative allowed) to its dataset and offset. */
  datasetIndex(index: number): DatasetLocation {
    const i = normalizeIndex(index, this.length);
    // bisect_right: the first dataset whose cumulative size exceeds i; this skips empty ones.
    const cum = this.cumulativeSizes;
    let lo = 0;
    let hi = cum.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cum[mid]! <= i) lo = mid + 1;
      else hi = mid;
    }
    return { dataset: lo, offset: lo === 0 ? i : i - cum[lo - 1]! };
  }

  get(index: number): T | Promise<T> {
    const { dataset, offset } = this.datasetIndex(index);
    return this.datasets[dataset]!.get(offset);
  }
}
