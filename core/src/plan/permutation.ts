/**
 * A seeded bijection over [0, n) for any n up to 2^53 − 1, computed in O(1) time and memory per
 * element: a Feistel network over the next power of two ≥ n with cycle walking. This is what
 * lets a shuffled epoch over 10^10 samples exist without an 80 GB index: position i's sample is
 * `at(i)`, for any i, in any process. Domains of at most 4096 use a seeded Fisher–Yates table
 * instead: a Feistel network over a few bits has too few distinct round functions to be uniform.
 */
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { Generator, hashSeed, mix32 } from '../random.ts';
import { requireInt } from '../validate.ts';

/** The largest domain a permutation accepts: every id stays a safe integer. */
export const MAX_PERMUTATION_SIZE = Number.MAX_SAFE_INTEGER;

/** Elements per bulk pass, and the shared list of indices still walking (JS is single-threaded). */
const CHUNK = 4096;
const PENDING = new Int32Array(CHUNK);
/** Domains up to this size are a table (O(n) memory, but n ≤ 4096: at most 32 KiB). */
const TABLE_MAX = 4096;

/** Round function: a 32-bit avalanche of (half, round key); callers mask the low bits they need. */
function round(v: number, k: number): number {
  let h = Math.imul(v ^ k, 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca77);
  return h ^ (h >>> 13);
}

/**
 * A pseudo-random permutation of [0, size). Unbalanced Feistel network over `b = ⌈log2 size⌉`
 * bits (low half ⌈b/2⌉ bits, high half ⌊b/2⌋ bits; four alternating rounds, the Luby–Rackoff
 * count for a strong pseudo-random permutation, each a two-multiply avalanche hash of the other
 * half and a round key), made exact on [0, size) by cycle walking: re-encrypt while the value is
 * ≥ size. Since size > 2^(b−1), a walk takes fewer than 2 steps on average. No allocation per
 * call. Sizes up to 4096 are a Fisher–Yates table drawn from a Generator seeded with the key.
 *
 * @example
 * const p = new SeededPermutation(10, 42); // seed 42
 * const order = Array.from({ length: 10 }, (_, i) => p.at(i)); // a permutation of 0..9
 * p.indexOf(order[3]!) === 3;
 */
export class SeededPermutation {
  /** n: the permutation is over [0, size). */
  size = 0;
  #loBits = 0;
  #loMask = 0;
  #hiMask = 0;
  /** 2^loBits, for splitting values above 2^32 with float arithmetic. */
  #loScale = 1;
  /** Whether the whole domain fits in 31 bits (the int32 fast path). */
  #int32 = true;
  /** Small domains: the permutation and its inverse as tables. */
  #tabled = false;
  #table = new Int32Array(0);
  #inverse = new Int32Array(0);
  #k0 = 0;
  #k1 = 0;
  #k2 = 0;
  #k3 = 0;

  /**
   * @param size the domain size n, an integer in [0, 2^53 − 1]
   * @param seed one or more non-negative safe integers (e.g. seed, epoch): the same seed gives
   *   the same permutation in every process
   */
  constructor(size: number, ...seed: number[]) {
    requireInt('size', size, { max: MAX_PERMUTATION_SIZE });
    seed.forEach((s, i) => requireInt(`seed[${i}]`, s));
    this.rekey(size, hashSeed(...(seed.length === 0 ? [0] : seed)));
  }

  /**
   * Re-targets this object to another domain and 32-bit key without allocating (for callers that
   * step through many small permutations, like the shard-aware shuffle's windows). Arguments are
   * trusted: `size` a safe integer ≥ 0, `key` any number (its low 32 bits are used).
   */
  rekey(size: number, key: number): void {
    this.size = size;
    this.#tabled = size <= TABLE_MAX;
    if (this.#tabled) {
      if (this.#table.length < size) {
        this.#table = new Int32Array(size);
        this.#inverse = new Int32Array(size);
      }
      const table = this.#table;
      for (let i = 0; i < size; i++) table[i] = i;
      const g = new Generator(key >>> 0);
      for (let i = size - 1; i > 0; i--) {
        const j = g.int(i + 1);
        const t = table[i]!;
        table[i] = table[j]!;
        table[j] = t;
      }
      for (let i = 0; i < size; i++) this.#inverse[table[i]!] = i;
      return;
    }
    let bits = 0;
    while (2 ** bits < size) bits++;
    const loBits = Math.ceil(bits / 2);
    const hiBits = bits - loBits;
    this.#loBits = loBits;
    this.#loScale = 2 ** loBits;
    this.#loMask = loBits === 0 ? 0 : (0xffffffff >>> (32 - loBits)) | 0;
    this.#hiMask = hiBits === 0 ? 0 : (0xffffffff >>> (32 - hiBits)) | 0;
    this.#int32 = bits <= 31;
    let k = key | 0;
    k = mix32(k);
    this.#k0 = k;
    k = mix32(k ^ 0x2545f491);
    this.#k1 = k;
    k = mix32(k ^ 0x2545f491);
    this.#k2 = k;
    k = mix32(k ^ 0x2545f491);
    this.#k3 = k;
  }

  /** The image of `index` (an integer in [0, size)). */
  at(index: number): number {
    if (!Number.isInteger(index)) throw new ArgumentError('index', `must be an integer, got ${index}`);
    if (index < 0 || index >= this.size) throw new IndexOutOfRangeError(index, this.size);
    return this.atUnchecked(index);
  }

  /** `at` without argument checks, for hot loops that already know `index` is in range. */
  atUnchecked(index: number): number {
    if (this.#tabled) return this.#table[index]!;
    const n = this.size;
    let x = index;
    do x = this.#encrypt(x);
    while (x >= n);
    return x;
  }

  /** The inverse: the index whose image is `value`, so `indexOf(at(i)) === i`. */
  indexOf(value: number): number {
    if (!Number.isInteger(value)) throw new ArgumentError('value', `must be an integer, got ${value}`);
    if (value < 0 || value >= this.size) throw new IndexOutOfRangeError(value, this.size, 'value');
    if (this.#tabled) return this.#inverse[value]!;
    const n = this.size;
    let x = value;
    do x = this.#decrypt(x);
    while (x >= n);
    return x;
  }

  /**
   * Writes `at(start + i)` to `out[offset + i]` for i in [0, count). Arguments are trusted (the
   * planner's bulk path): the range must lie inside [0, size).
   */
  fillUnchecked(start: number, out: Float64Array, offset: number, count: number): void {
    if (this.#tabled) {
      const table = this.#table;
      for (let i = 0; i < count; i++) out[offset + i] = table[start + i]!;
      return;
    }
    if (!this.#int32) {
      const n = this.size;
      for (let i = 0; i < count; i++) {
        let x = start + i;
        do x = this.#encrypt(x);
        while (x >= n);
        out[offset + i] = x;
      }
      return;
    }
    for (let done = 0; done < count; done += CHUNK) {
      this.#fillSmall(start + done, out, offset + done, Math.min(CHUNK, count - done));
    }
  }

  /**
   * The int32 bulk path. Walking each element in turn is latency-bound: the walk's branch is
   * mispredicted for ~1/4 of the elements and each miss throws away the overlapped work. So
   * encrypt every element once, two interleaved chains at a time and branch-free, note the ones
   * that left [0, n) in `PENDING` (a branch-free append), and re-encrypt those in further passes.
   */
  #fillSmall(start: number, out: Float64Array, offset: number, count: number): void {
    const n = this.size;
    const lb = this.#loBits;
    const lm = this.#loMask;
    const hm = this.#hiMask;
    const k0 = this.#k0;
    const k1 = this.#k1;
    const k2 = this.#k2;
    const k3 = this.#k3;
    const pending = PENDING;
    let m = 0;
    let i = 0;
    for (; i + 1 < count; i += 2) {
      const x = start + i;
      const y = x + 1;
      let xh = x >>> lb;
      let xl = x & lm;
      let yh = y >>> lb;
      let yl = y & lm;
      xh ^= round(xl, k0) & hm;
      yh ^= round(yl, k0) & hm;
      xl ^= round(xh, k1) & lm;
      yl ^= round(yh, k1) & lm;
      xh ^= round(xl, k2) & hm;
      yh ^= round(yl, k2) & hm;
      xl ^= round(xh, k3) & lm;
      yl ^= round(yh, k3) & lm;
      const ex = (xh << lb) | xl;
      const ey = (yh << lb) | yl;
      out[offset + i] = ex;
      out[offset + i + 1] = ey;
      // (n − 1 − e) >>> 31 is 1 exactly when e ≥ n (all values < 2^31).
      pending[m] = i;
      m += (n - 1 - ex) >>> 31;
      pending[m] = i + 1;
      m += (n - 1 - ey) >>> 31;
    }
    if (i < count) {
      const e = this.#encrypt(start + i);
      out[offset + i] = e;
      pending[m] = i;
      m += (n - 1 - e) >>> 31;
    }
    while (m > 0) {
      let still = 0;
      for (let j = 0; j < m; j++) {
        const at = pending[j]!;
        const e = this.#encrypt(out[offset + at]!);
        out[offset + at] = e;
        pending[still] = at;
        still += (n - 1 - e) >>> 31;
      }
      m = still;
    }
  }

  #encrypt(x: number): number {
    const lm = this.#loMask;
    const hm = this.#hiMask;
    let hi: number;
    let lo: number;
    if (this.#int32) {
      hi = x >>> this.#loBits;
      lo = x & lm;
    } else {
      hi = Math.floor(x / this.#loScale);
      lo = x - hi * this.#loScale;
    }
    hi ^= round(lo, this.#k0) & hm;
    lo ^= round(hi, this.#k1) & lm;
    hi ^= round(lo, this.#k2) & hm;
    lo ^= round(hi, this.#k3) & lm;
    // Both halves are non-negative (every mask has bit 31 clear); on the small path the result
    // stays below 2^31, so the int32 form is exact and keeps the JIT on integer registers.
    return this.#int32 ? (hi << this.#loBits) | lo : hi * this.#loScale + lo;
  }

  #decrypt(x: number): number {
    const lm = this.#loMask;
    const hm = this.#hiMask;
    let hi: number;
    let lo: number;
    if (this.#int32) {
      hi = x >>> this.#loBits;
      lo = x & lm;
    } else {
      hi = Math.floor(x / this.#loScale);
      lo = x - hi * this.#loScale;
    }
    lo ^= round(hi, this.#k3) & lm;
    hi ^= round(lo, this.#k2) & hm;
    lo ^= round(hi, this.#k1) & lm;
    hi ^= round(lo, this.#k0) & hm;
    return this.#int32 ? (hi << this.#loBits) | lo : hi * this.#loScale + lo;
  }
}
