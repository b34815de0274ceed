/**
 * SumTree: non-negative weights in a complete binary tree of partial sums, so that changing a
 * weight and drawing an index in proportion to the weights both cost O(log n). The structure
 * behind prioritized experience replay, used by PrioritySampler.
 *
 * Unlike a Fenwick tree updated by deltas, each internal node is recomputed as the sum of its
 * two children, so millions of updates accumulate no rounding drift and a zero weight stays
 * exactly zero (and is never drawn).
 */
import { ArgumentError } from '../errors.ts';

export class SumTree {
  #size: number;
  /** Leaves live at [#base, #base + size); node k has children 2k and 2k + 1; the root is 1. */
  #base: number;
  #nodes: Float64Array;

  /** @param weights the initial weights (finite, ≥ 0; unchecked), or a count of zero weights */
  constructor(weights: ArrayLike<number> | number) {
    const n = typeof weights === 'number' ? weights : weights.length;
    if (!Number.isInteger(n) || n < 0 || n > 0x40000000) {
      throw new ArgumentError('weights.length', `must be an integer in [0, 2^30], got ${n}`);
    }
    this.#size = n;
    let base = 1;
    while (base < n) base *= 2;
    this.#base = base;
    this.#nodes = new Float64Array(2 * base);
    if (typeof weights !== 'number') {
      for (let i = 0; i < n; i++) this.#nodes[base + i] = weights[i]!;
      for (let k = base - 1; k >= 1; k--) this.#nodes[k] = this.#nodes[2 * k]! + this.#nodes[2 * k + 1]!;
    }
  }

  /** Number of leaves (weights). */
  get size(): number {
    return this.#size;
  }

  /** An independent copy. */
  clone(): SumTree {
    const copy = new SumTree(0);
    copy.#size = this.#size;
    copy.#base = this.#base;
    copy.#nodes = this.#nodes.slice();
    return copy;
  }

  /** Sum of all weights. */
  get total(): number {
    return this.#nodes[1] ?? 0;
  }

  /** The weight at leaf `i` (unchecked: callers validate indices). */
  get(i: number): number {
    return this.#nodes[this.#base + i]!;
  }

  /** Sets the weight at leaf `i` (unchecked: callers validate indices and weights). */
  set(i: number, weight: number): void {
    let k = this.#base + i;
    this.#nodes[k] = weight;
    for (k >>= 1; k >= 1; k >>= 1) this.#nodes[k] = this.#nodes[2 * k]! + this.#nodes[2 * k + 1]!;
  }

  /**
   * The leaf where the running sum crosses `u`, for `u` in [0, total): drawing `u` uniformly
   * draws leaf i with probability weight(i) / total. Requires total > 0.
   */
  find(u: number): number {
    const nodes = this.#nodes;
    let k = 1;
    while (k < this.#base) {
      const left = 2 * k;
      const leftSum = nodes[left]!;
      // Rounding can leave u ≥ leftSum when the right subtree is empty: stay left then, so a
      // zero-weight leaf (or a padding leaf past `size`) is never returned.
      if (u < leftSum || nodes[left + 1]! === 0) {
        k = left;
      } else {
        u -= leftSum;
        k = left + 1;
      }
    }
    return k - this.#base;
  }
}
