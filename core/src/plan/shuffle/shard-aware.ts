/**
 * Shuffle `shard-aware`: permute the shards, cut the permuted shard list into windows of k
 * consecutive shards, and permute the samples inside each window. Consecutive positions then
 * stay inside one window, touching at most k shards, so a loader's shard cache stays hot, while
 * the epoch still mixes samples across shards (Mosaic streaming's idea).
 *
 * Memory O(shards): the permuted shard list and its prefix sums. A position is found by binary
 * search over the windows, then over the ≤ k shards of its window.
 */
import { SeededPermutation } from '../permutation.ts';
import { hashSeed } from '../../random.ts';
import type { ShardTable } from '../shards.ts';
import type { SampleOrder, Shuffle } from '../types.ts';

const SHARDS_TAG = 0x73686172;
const WINDOW_TAG = 0x77696e64;

class ShardAwareOrder implements SampleOrder {
  readonly size: number;
  readonly #shards: ShardTable;
  readonly #k: number;
  readonly #windows: number;
  /** order[i] = the shard at slot i of the permuted shard list. */
  readonly #order: Uint32Array;
  /** starts[i] = first position of slot i (prefix sums of the permuted sizes); starts[S] = N. */
  readonly #starts: Float64Array;
  readonly #seed: number;
  readonly #epoch: number;
  /** The samples of the current window, permuted; rekeyed on every window change. */
  readonly #perm = new SeededPermutation(0);
  #window = -1;
  #windowStart = 0;

  constructor(seed: number, epoch: number, shards: ShardTable, k: number) {
    const count = shards.count;
    this.size = shards.numSamples;
    this.#shards = shards;
    this.#k = k;
    this.#windows = Math.ceil(count / k);
    this.#seed = seed;
    this.#epoch = epoch;
    const shardPerm = new SeededPermutation(count, seed, epoch, SHARDS_TAG);
    this.#order = new Uint32Array(count);
    this.#starts = new Float64Array(count + 1);
    let total = 0;
    for (let i = 0; i < count; i++) {
      const s = shardPerm.atUnchecked(i);
      this.#order[i] = s;
      this.#starts[i] = total;
      total += shards.size(s);
    }
    this.#starts[count] = total;
  }

  at(position: number): number {
    this.#enter(this.#windowOf(position));
    return this.#idAt(this.#perm.atUnchecked(position - this.#windowStart) + this.#windowStart);
  }

  fill(start: number, out: Float64Array, offset: number, count: number): void {
    let done = 0;
    while (done < count) {
      const p = start + done;
      const g = this.#windowOf(p);
      this.#enter(g);
      const windowEnd = this.#starts[Math.min((g + 1) * this.#k, this.#order.length)]!;
      const run = Math.min(count - done, windowEnd - p);
      const o = offset + done;
      this.#perm.fillUnchecked(p - this.#windowStart, out, o, run);
      for (let i = o, end = o + run; i < end; i++) out[i] = this.#idAt(out[i]! + this.#windowStart);
      done += run;
    }
  }

  /** The window holding position p: the largest g with starts[g·k] ≤ p. */
  #windowOf(p: number): number {
    const starts = this.#starts;
    const k = this.#k;
    let lo = 0;
    let hi = this.#windows - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid * k]! <= p) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  #enter(g: number): void {
    if (g === this.#window) return;
    const first = g * this.#k;
    const start = this.#starts[first]!;
    const end = this.#starts[Math.min(first + this.#k, this.#order.length)]!;
    this.#perm.rekey(end - start, hashSeed(this.#seed, this.#epoch, WINDOW_TAG, g));
    this.#window = g;
    this.#windowStart = start;
  }

  /** The global id at (unpermuted) position q of the current window's shard list. */
  #idAt(q: number): number {
    const starts = this.#starts;
    let lo = this.#window * this.#k;
    let hi = Math.min(lo + this.#k, this.#order.length) - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid]! <= q) lo = mid;
      else hi = mid - 1;
    }
    return this.#shards.start(this.#order[lo]!) + (q - starts[lo]!);
  }
}

/** Shards permuted, then samples permuted within windows of `shardWindow` shards. */
export const shardAwareShuffle: Shuffle = ({ seed, epoch, shards, shardWindow }) =>
  new ShardAwareOrder(seed, epoch, shards, shardWindow);
