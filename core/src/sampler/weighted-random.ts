/**
 * WeightedRandomSampler: index i is drawn with probability proportional to `weights[i]`.
 * With replacement it uses Vose's alias method (O(n) to build, O(1) per draw); without
 * replacement it uses Efraimidis–Spirakis keys (one key per positive weight, top-k).
 */
import { ArgumentError } from '../errors.ts';
import { Generator } from '../random.ts';
import { requireInt, requireSeed, requireWeights } from '../validate.ts';
import { readOptions, requireBoolean } from './arguments.ts';
import type { Sampler } from './sampler.ts';

export interface WeightedRandomSamplerOptions {
  /** How many indices a pass yields. Without replacement at most the number of positive weights. */
  numSamples: number;
  /** Draw with replacement (default true). */
  replacement?: boolean;
  /** Seed of the generator (default 0). */
  seed?: number;
  /** Epoch of the first pass (default 0). */
  epoch?: number;
}

/**
 * Draws `numSamples` indices of `weights` (finite, ≥ 0, not all zero), index i with probability
 * weights[i] / Σ weights. Zero weights are never drawn.
 *
 * Without replacement, a pass is the sequence of successive weighted draws from what is left:
 * the first index follows the weights, the second the weights of the others, and so on (the
 * Efraimidis–Spirakis keys log(u)/w sorted in decreasing order have exactly this law).
 *
 * @example
 * ```ts
 * // Rebalance two classes of 900 and 100 samples to half and half:
 * const weights = labels.map((y) => (y === 0 ? 1 / 900 : 1 / 100));
 * const sampler = new WeightedRandomSampler(weights, { numSamples: 1000, seed: 3 });
 * ```
 */
export class WeightedRandomSampler implements Sampler {
  readonly length: number;
  /** Number of weights: indices are in [0, size). */
  readonly size: number;
  readonly replacement: boolean;
  readonly seed: number;
  #epoch: number;
  /** Indices whose weight is positive; the alias table and the keys work over these only. */
  readonly #positive: Uint32Array;
  /** Positive weights divided by the largest one, so sums cannot overflow. */
  readonly #scaled: Float64Array;
  #prob: Float64Array | undefined;
  #alias: Uint32Array | undefined;

  constructor(weights: ArrayLike<number>, options: WeightedRandomSamplerOptions) {
    const o = readOptions(options);
    const w = requireWeights('weights', weights);
    this.size = w.length;
    this.length = requireInt('numSamples', o.numSamples);
    this.replacement = requireBoolean('replacement', o.replacement, true);
    this.seed = requireSeed('seed', o.seed ?? 0);
    this.#epoch = requireInt('epoch', o.epoch ?? 0);

    let count = 0;
    let max = 0;
    for (let i = 0; i < w.length; i++) {
      if (w[i]! > 0) count++;
      if (w[i]! > max) max = w[i]!;
    }
    this.#positive = new Uint32Array(count);
    this.#scaled = new Float64Array(count);
    for (let i = 0, k = 0; i < w.length; i++) {
      if (w[i]! > 0) {
        this.#positive[k] = i;
        this.#scaled[k++] = w[i]! / max;
      }
    }
    if (!this.replacement && this.length > count) {
      throw new ArgumentError(
        'numSamples',
        `is ${this.length} but only ${count} weights are positive: without replacement at most ${count} indices can be drawn`,
      );
    }
  }

  /** The epoch the next pass uses. */
  get epoch(): number {
    return this.#epoch;
  }

  setEpoch(epoch: number): void {
    this.#epoch = requireInt('epoch', epoch);
  }

  [Symbol.iterator](): Iterator<number> {
    const g = new Generator(this.seed, this.#epoch++);
    return this.replacement ? this.#withReplacement(g) : this.#withoutReplacement(g);
  }

  *#withReplacement(g: Generator): Iterator<number> {
    if (this.length === 0) return;
    if (this.#prob === undefined) this.#buildAliasTable();
    const prob = this.#prob!;
    const alias = this.#alias!;
    const positive = this.#positive;
    const m = positive.length;
    for (let i = 0; i < this.length; i++) {
      // One 53-bit draw gives both the column (integer part) and the coin (fraction); the
      // fraction keeps 53 − log2(m) bits, far more than the alias probabilities need.
      const u = g.random() * m;
      const column = Math.min(Math.floor(u), m - 1);
      yield u - column < prob[column]! ? positive[column]! : positive[alias[column]!]!;
    }
  }

  /** Vose's alias method over the positive weights. */
  #buildAliasTable(): void {
    const m = this.#positive.length;
    let total = 0;
    for (let k = 0; k < m; k++) total += this.#scaled[k]!;
    const p = new Float64Array(m);
    for (let k = 0; k < m; k++) p[k] = (this.#scaled[k]! * m) / total;
    const prob = new Float64Array(m);
    const alias = new Uint32Array(m);
    const small = new Uint32Array(m);
    const large = new Uint32Array(m);
    let ns = 0;
    let nl = 0;
    for (let k = 0; k < m; k++) {
      if (p[k]! < 1) small[ns++] = k;
      else large[nl++] = k;
    }
    while (ns > 0 && nl > 0) {
      const s = small[--ns]!;
      const l = large[--nl]!;
      prob[s] = p[s]!;
      alias[s] = l;
      p[l] = p[l]! + p[s]! - 1;
      if (p[l]! < 1) small[ns++] = l;
      else large[nl++] = l;
    }
    // What is left holds probability ~1 up to rounding. Every column is a positive weight, so
    // rounding can never make a zero weight drawable.
    while (nl > 0) prob[large[--nl]!] = 1;
    while (ns > 0) prob[small[--ns]!] = 1;
    this.#prob = prob;
    this.#alias = alias;
  }

  *#withoutReplacement(g: Generator): Iterator<number> {
    const k = this.length;
    if (k === 0) return;
    const scaled = this.#scaled;
    const m = scaled.length;
    // Min-heap of the k largest keys seen so far: O(m log k) for the pass.
    const heapKey = new Float64Array(k);
    const heapItem = new Uint32Array(k);
    let size = 0;
    for (let j = 0; j < m; j++) {
      // u in (0, 1], so log(u) ≤ 0 is finite and the key is never NaN.
      const key = Math.log(g.randomOpenZero()) / scaled[j]!;
      if (size < k) {
        let i = size++;
        while (i > 0) {
          const parent = (i - 1) >> 1;
          if (heapKey[parent]! <= key) break;
          heapKey[i] = heapKey[parent]!;
          heapItem[i] = heapItem[parent]!;
          i = parent;
        }
        heapKey[i] = key;
        heapItem[i] = j;
      } else if (key > heapKey[0]!) {
        siftDown(heapKey, heapItem, size, key, j);
      }
    }
    // Pop the minimum repeatedly, filling from the back: the result is in decreasing key order.
    const order = new Uint32Array(k);
    for (let out = k - 1; out >= 0; out--) {
      order[out] = heapItem[0]!;
      size--;
      if (size > 0) siftDown(heapKey, heapItem, size, heapKey[size]!, heapItem[size]!);
    }
    for (let i = 0; i < k; i++) yield this.#positive[order[i]!]!;
  }
}

/** Puts (key, item) at the root of a min-heap of `size` entries and restores the heap order. */
function siftDown(heapKey: Float64Array, heapItem: Uint32Array, size: number, key: number, item: number): void {
  let i = 0;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= size) break;
    const right = left + 1;
    const child = right < size && heapKey[right]! < heapKey[left]! ? right : left;
    if (heapKey[child]! >= key) break;
    heapKey[i] = heapKey[child]!;
    heapItem[i] = heapItem[child]!;
    i = child;
  }
  heapKey[i] = key;
  heapItem[i] = item;
}
