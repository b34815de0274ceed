/**
 * The two kinds of dataset, as in PyTorch: map-style (`Dataset`: a length and random access by
 * index, sync or async) and iterable (`IterableDataset`: a stream of samples).
 */

/** A map-style dataset: `length` samples, each reachable by index in [0, length). */
export interface Dataset<T> {
  readonly length: number;
  get(index: number): T | Promise<T>;
}

/** A stream of samples. `length`, when known, is the number of samples one pass yields. */
export interface IterableDataset<T> {
  readonly length?: number;
  [Symbol.asyncIterator](): AsyncIterator<T>;
}

export function isDataset<T = unknown>(value: unknown): value is Dataset<T> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Dataset<T>).get === 'function' &&
    typeof (value as Dataset<T>).length === 'number'
  );
}

export function isIterableDataset<T = unknown>(value: unknown): value is IterableDataset<T> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as IterableDataset<T>)[Symbol.asyncIterator] === 'function'
  );
}
