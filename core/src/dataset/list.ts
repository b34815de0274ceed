/** ListDataset: a map-style dataset over an in-memory array, with Python-style negative indices. */
import { ArgumentError } from '../errors.ts';
import { normalizeIndex } from '../validate.ts';
import type { Dataset } from './dataset.ts';

/**
 * An array-backed dataset. The array is held, not copied: a dataset's length must not change
 * while it is in use, so do not grow or shrink the array afterwards.
 *
 * @example
 * const ds = new ListDataset(['a', 'b', 'c']);
 * ds.get(-1); // 'c'
 */
export class ListDataset<T> implements Dataset<T> {
  readonly items: readonly T[];

  constructor(items: readonly T[]) {
    if (!Array.isArray(items)) {
      throw new ArgumentError('items', `must be an array, got ${items === null ? 'null' : typeof items}`);
    }
    this.items = items;
  }

  get length(): number {
    return this.items.length;
  }

  get(index: number): T {
    return this.items[normalizeIndex(index, this.items.length)] as T;
  }
}
