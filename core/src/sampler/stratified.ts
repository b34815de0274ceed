/**
 * StratifiedSampler: spreads every class evenly along the pass, so that every prefix of the
 * stream (hence every batch) holds the classes in the proportions of the whole.
 */
import { Generator } from '../random.ts';
import { requireInt, requirePositiveInt, requireSeed } from '../validate.ts';
import { groupByLabel, readOptions, requireBoolean } from './arguments.ts';
import type { Label } from './arguments.ts';
import type { Sampler } from './sampler.ts';

export type { Label } from './arguments.ts';

export interface StratifiedSamplerOptions {
  /**
   * Yield exactly this many indices of every class per pass (≥ 1). Default: every index once,
   * each class in its own proportion.
   */
  samplesPerClass?: number;
  /** Random order inside each class and random tie-breaks between classes (default true). */
  shuffle?: boolean;
  /** Seed of the generator (default 0). */
  seed?: number;
  /** Epoch of the first pass (default 0). */
  epoch?: number;
}

/**
 * Interleaves the classes of `labels` (numbers or strings, classes in order of first
 * appearance) so each keeps its share all along the pass.
 *
 * - Without `samplesPerClass` a pass yields every index exactly once (`length` = labels.length),
 *   and after any m indices each class c has m·n_c/n of them rounded up or down: the error is
 *   at most 1 − 1/(2(C − 1)) for C classes, at every m.
 * - With `samplesPerClass = k` a pass yields k indices of every class (`length` = k × classes),
 *   round-robin over the classes. The k indices of a class come from successive shuffles of
 *   the class: a class of at least k samples gives k distinct indices; a smaller class gives
 *   every sample ⌊k/n_c⌋ or ⌈k/n_c⌉ times (replacement only where the class is too small).
 * - With `shuffle: false` there is no randomness: classes keep index order, and the k samples
 *   of a class are its first k (cycling through a small class).
 *
 * How: Tijdeman's solution of the chairman assignment problem decides which class each step
 * serves (O(log C) per step); shuffling randomizes the order inside each class and how ties
 * between classes are broken.
 *
 * @example
 * ```ts
 * const sampler = new StratifiedSampler(['cat', 'cat', 'cat', 'dog'], { seed: 1 });
 * [...sampler]; // [0, 3, 1, 2]: the dog comes among the cats, not at an end
 * ```
 */
export class StratifiedSampler implements Sampler {
  readonly length: number;
  /** The classes, in order of first appearance in the labels. */
  readonly classes: readonly Label[];
  readonly samplesPerClass: number | undefined;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly #members: readonly Uint32Array[];
  #epoch: number;

  constructor(labels: ArrayLike<Label>, options: StratifiedSamplerOptions = {}) {
    const o = readOptions(options);
    const groups = groupByLabel('labels', labels);
    this.classes = groups.classes;
    this.#members = groups.members;
    this.samplesPerClass = o.samplesPerClass === undefined ? undefined : requirePositiveInt('samplesPerClass', o.samplesPerClass);
    this.shuffle = requireBoolean('shuffle', o.shuffle, true);
    this.seed = requireSeed('seed', o.seed ?? 0);
    this.#epoch = requireInt('epoch', o.epoch ?? 0);
    this.length = this.samplesPerClass === undefined ? labels.length : this.samplesPerClass * this.classes.length;
  }

  /** The epoch the next pass uses. */
  get epoch(): number {
    return this.#epoch;
  }

  setEpoch(epoch: number): void {
    this.#epoch = requireInt('epoch', epoch);
  }

  [Symbol.iterator](): Iterator<number> {
    const g = this.shuffle ? new Generator(this.seed, this.#epoch) : undefined;
    this.#epoch++;
    return this.#pass(g);
  }

  *#pass(g: Generator | undefined): Iterator<number> {
    const k = this.samplesPerClass;
    const lists = this.#members.map((members) => (k === undefined ? (g ? g.shuffle(members.slice()) : members) : take(members, k, g)));
    const classes = lists.length;
    let n = 0;
    for (const list of lists) n += list.length;
    // Ties between classes go by a rank, random per pass when shuffling.
    const rank = new Uint32Array(classes);
    for (let c = 0; c < classes; c++) rank[c] = c;
    if (g) g.shuffle(rank);

    // Tijdeman's chairman assignment: class c may take step m once m·p_c − count_c ≥ σ (else it
    // would run ahead by 1 − σ or more) and, among those, the earliest deadline goes first (the
    // step by which it must appear not to fall behind by 1 − σ). σ = 1 / (2(C − 1)).
    const sigma = classes > 1 ? 1 / (2 * classes - 2) : 0;
    const taken = new Uint32Array(classes);
    const release = new Float64Array(classes);
    const deadline = new Float64Array(classes);
    const waiting = new ClassQueue(release, rank);
    const ready = new ClassQueue(deadline, rank);
    const schedule = (c: number): void => {
      const share = n / lists[c]!.length;
      release[c] = (taken[c]! + sigma) * share;
      deadline[c] = (taken[c]! + 1 - sigma) * share;
      waiting.push(c);
    };
    for (let c = 0; c < classes; c++) schedule(c);
    for (let m = 1; m <= n; m++) {
      // The tolerance absorbs rounding where a release falls exactly on step m.
      while (waiting.size > 0 && release[waiting.peek()]! <= m * (1 + 1e-12)) ready.push(waiting.pop());
      // Tijdeman proves some class is always ready; the fallback only guards against rounding.
      const c = ready.size > 0 ? ready.pop() : waiting.pop();
      yield lists[c]![taken[c]!]!;
      taken[c]! += 1;
      if (taken[c]! < lists[c]!.length) schedule(c);
    }
  }
}

/** A binary min-heap of class ids ordered by `key[c]`, then by `rank[c]`. */
class ClassQueue {
  size = 0;
  readonly #heap: Uint32Array;
  readonly #key: Float64Array;
  readonly #rank: Uint32Array;

  constructor(key: Float64Array, rank: Uint32Array) {
    this.#heap = new Uint32Array(key.length);
    this.#key = key;
    this.#rank = rank;
  }

  #before(a: number, b: number): boolean {
    const ka = this.#key[a]!;
    const kb = this.#key[b]!;
    return ka < kb || (ka === kb && this.#rank[a]! < this.#rank[b]!);
  }

  peek(): number {
    return this.#heap[0]!;
  }

  push(c: number): void {
    const heap = this.#heap;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(c, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = c;
  }

  pop(): number {
    const heap = this.#heap;
    const top = heap[0]!;
    const last = heap[--this.size]!;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= this.size) break;
      const right = left + 1;
      const child = right < this.size && this.#before(heap[right]!, heap[left]!) ? right : left;
      if (!this.#before(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

/** `k` indices of a class, from successive shuffles of it (or from cycling it, without `g`). */
function take(members: Uint32Array, k: number, g: Generator | undefined): Uint32Array {
  const out = new Uint32Array(k);
  for (let filled = 0; filled < k; ) {
    const block = g ? g.shuffle(members.slice()) : members;
    const count = Math.min(block.length, k - filled);
    out.set(block.subarray(0, count), filled);
    filled += count;
  }
  return out;
}
