/**
 * PrioritySampler: draws index i with probability ∝ (p_i^alpha)^(1/temperature), prioritized
 * experience replay style, with priorities that change while training (`updatePriorities`, for
 * example with the latest loss of each sample). A sum tree makes both an update and a draw
 * O(log n), and every draw reads the current priorities.
 */
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { Generator } from '../random.ts';
import { requireFinite, requireInt, requireSeed } from '../validate.ts';
import { readOptions, requireArrayLike, requireBoolean } from './arguments.ts';
import type { Sampler } from './sampler.ts';
import { SumTree } from './sum-tree.ts';

export interface PrioritySamplerOptions {
  /** How many indices a pass yields (default: the number of priorities). */
  numSamples?: number;
  /** Prioritization exponent, ≥ 0: 0 is uniform, 1 is proportional to the priority (default 0.7). */
  alpha?: number;
  /** Temperature, > 0: above 1 flattens the distribution, below 1 sharpens it (default 1). */
  temperature?: number;
  /** Draw with replacement (default true). */
  replacement?: boolean;
  /** Seed of the generator (default 0). */
  seed?: number;
  /** Epoch of the first pass (default 0). */
  epoch?: number;
}

/** The live state of a pass without replacement: what it has drawn, and what is left to draw. */
interface PassState {
  readonly tree: SumTree;
  readonly drawn: Uint8Array;
}

/**
 * Samples in proportion to priorities. The weight of index i is
 * `w_i = p_i^(alpha / temperature)` and `P(i) = w_i / Σ w` (so with alpha = 0 every index,
 * zero priorities included, is equally likely, since 0^0 = 1; otherwise a zero priority is
 * never drawn).
 *
 * `updatePriorities` takes effect at the next draw, including in a pass already under way.
 * Without replacement a pass draws successively from the indices it has not drawn yet, under
 * the current priorities; it refuses updates that would leave fewer than `numSamples` positive
 * weights.
 *
 * @example
 * ```ts
 * const sampler = new PrioritySampler(new Array(n).fill(1), { numSamples: 256, seed: 0 });
 * for (const batch of new BatchSampler(sampler, { batchSize: 32 })) {
 *   const losses = train(batch);
 *   sampler.updatePriorities(batch, losses);
 * }
 * ```
 */
export class PrioritySampler implements Sampler {
  readonly length: number;
  /** Number of priorities: indices are in [0, size). */
  readonly size: number;
  readonly alpha: number;
  readonly temperature: number;
  readonly replacement: boolean;
  readonly seed: number;
  #epoch: number;
  readonly #exponent: number;
  readonly #priorities: Float64Array;
  readonly #tree: SumTree;
  #positive = 0;
  /** Passes without replacement under way; weak so an abandoned iterator can be collected. */
  readonly #passes = new Set<WeakRef<PassState>>();

  constructor(priorities: ArrayLike<number>, options: PrioritySamplerOptions = {}) {
    const o = readOptions(options);
    const n = requireArrayLike('priorities', priorities);
    this.size = n;
    this.alpha = requireFinite('alpha', o.alpha ?? 0.7, { min: 0 });
    this.temperature = requireFinite('temperature', o.temperature ?? 1, { min: Number.MIN_VALUE });
    this.#exponent = this.alpha / this.temperature;
    if (!Number.isFinite(this.#exponent)) {
      throw new ArgumentError('temperature', `is too small for alpha ${this.alpha}: alpha / temperature overflows`);
    }
    this.replacement = requireBoolean('replacement', o.replacement, true);
    this.length = o.numSamples === undefined ? n : requireInt('numSamples', o.numSamples);
    this.seed = requireSeed('seed', o.seed ?? 0);
    this.#epoch = requireInt('epoch', o.epoch ?? 0);

    this.#priorities = new Float64Array(n);
    const weights = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const p = priorities[i];
      weights[i] = this.#weightOf(`priorities[${i}]`, p);
      this.#priorities[i] = p as number;
      if (weights[i]! > 0) this.#positive++;
    }
    this.#tree = new SumTree(weights);
    this.#checkDrawable('priorities', this.#tree.total, this.#positive);
  }

  /** The epoch the next pass uses. */
  get epoch(): number {
    return this.#epoch;
  }

  setEpoch(epoch: number): void {
    this.#epoch = requireInt('epoch', epoch);
  }

  /** The current priority of `index`. */
  priority(index: number): number {
    return this.#priorities[this.#requireIndex('index', index)]!;
  }

  /** The probability that the next draw (with replacement) is `index`. */
  probability(index: number): number {
    return this.#tree.get(this.#requireIndex('index', index)) / this.#tree.total;
  }

  /**
   * Sets `priorities[indices[k]] = newPriorities[k]` for every k (the last one wins for a
   * repeated index). All arguments are validated before anything changes.
   */
  updatePriorities(indices: ArrayLike<number>, newPriorities: ArrayLike<number>): void {
    const m = requireArrayLike('indices', indices);
    const mp = requireArrayLike('newPriorities', newPriorities);
    if (m !== mp) {
      throw new ArgumentError('newPriorities', `has length ${mp} but indices has length ${m}: they must match`);
    }
    const at = new Uint32Array(m);
    const weights = new Float64Array(m);
    for (let k = 0; k < m; k++) {
      at[k] = this.#requireIndex(`indices[${k}]`, indices[k]);
      weights[k] = this.#weightOf(`newPriorities[${k}]`, newPriorities[k]);
    }
    // Apply to a copy of the affected leaves first so a refused update changes nothing.
    const before = new Map<number, number>();
    let positive = this.#positive;
    for (let k = 0; k < m; k++) {
      const i = at[k]!;
      if (!before.has(i)) before.set(i, this.#tree.get(i));
      positive += (weights[k]! > 0 ? 1 : 0) - (this.#tree.get(i) > 0 ? 1 : 0);
      this.#tree.set(i, weights[k]!);
    }
    try {
      this.#checkDrawable('newPriorities', this.#tree.total, positive);
    } catch (error) {
      for (const [i, w] of before) this.#tree.set(i, w);
      throw error;
    }
    this.#positive = positive;
    for (let k = 0; k < m; k++) this.#priorities[at[k]!] = newPriorities[k]!;
    for (const ref of this.#passes) {
      const pass = ref.deref();
      if (pass === undefined) {
        this.#passes.delete(ref);
        continue;
      }
      for (let k = 0; k < m; k++) if (pass.drawn[at[k]!] === 0) pass.tree.set(at[k]!, weights[k]!);
    }
  }

  [Symbol.iterator](): Iterator<number> {
    const g = new Generator(this.seed, this.#epoch++);
    return this.replacement ? this.#withReplacement(g) : this.#withoutReplacement(g);
  }

  *#withReplacement(g: Generator): Iterator<number> {
    // The tree is read at every draw, so updates made between draws count at once.
    for (let i = 0; i < this.length; i++) yield this.#tree.find(g.random() * this.#tree.total);
  }

  *#withoutReplacement(g: Generator): Iterator<number> {
    if (this.length === 0) return;
    const pass: PassState = { tree: this.#tree.clone(), drawn: new Uint8Array(this.size) };
    const ref = new WeakRef(pass);
    this.#passes.add(ref);
    try {
      for (let i = 0; i < this.length; i++) {
        const index = pass.tree.find(g.random() * pass.tree.total);
        pass.drawn[index] = 1;
        pass.tree.set(index, 0);
        yield index;
      }
    } finally {
      this.#passes.delete(ref);
    }
  }

  #weightOf(name: string, priority: unknown): number {
    const p = requireFinite(name, priority, { min: 0 });
    const w = Math.pow(p, this.#exponent);
    if (!Number.isFinite(w)) {
      throw new ArgumentError(name, `${p}^(alpha / temperature = ${this.#exponent}) overflows: lower the priority or raise the temperature`);
    }
    return w;
  }

  #checkDrawable(name: string, total: number, positive: number): void {
    if (!Number.isFinite(total)) {
      throw new ArgumentError(name, 'the sum of the weights p^(alpha / temperature) overflows');
    }
    const needed = this.length === 0 ? 0 : this.replacement ? 1 : this.length;
    if (positive < needed) {
      throw new ArgumentError(
        name,
        this.replacement
          ? 'must leave at least one positive priority to draw from'
          : `must leave at least numSamples = ${this.length} positive priorities (without replacement), got ${positive}`,
      );
    }
  }

  #requireIndex(name: string, index: unknown): number {
    if (typeof index !== 'number' || !Number.isInteger(index)) {
      throw new ArgumentError(name, `must be an integer, got ${String(index)}`);
    }
    if (index < 0 || index >= this.size) throw new IndexOutOfRangeError(index, this.size, name);
    return index;
  }
}
