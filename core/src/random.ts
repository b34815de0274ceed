/**
 * Seeded randomness. `Generator` is xoshiro128** (fast, 2^128 − 1 period, good statistical
 * quality) seeded through SplitMix32 from any number of integer seed parts, so
 * `Generator.from(seed, epoch, worker)` gives independent, reproducible streams.
 * Nothing in Shardline uses Math.random: every random choice is a function of a seed.
 */
import { ArgumentError } from './errors.ts';

/** SplitMix32 finalizer: a good 32-bit integer hash (bijective on uint32). */
export function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x21f0aaad);
  x = Math.imul(x ^ (x >>> 15), 0x735a2d97);
  return (x ^ (x >>> 15)) >>> 0;
}

/** Hashes any number of non-negative safe integers (e.g. seed, epoch, rank) into one uint32. */
export function hashSeed(...parts: number[]): number {
  let h = 0x5eed1234;
  for (const part of parts) {
    if (!Number.isSafeInteger(part) || part < 0) {
      throw new ArgumentError('seed', `seed parts must be safe integers ≥ 0, got ${part}`);
    }
    const lo = part >>> 0;
    const hi = Math.floor(part / 0x1_0000_0000) >>> 0;
    h = mix32(h ^ lo);
    h = mix32(h ^ hi ^ 0x85ebca6b);
  }
  return h;
}

/** The 128-bit state of a Generator, for checkpoints. */
export type GeneratorState = readonly [number, number, number, number];

/** A seeded pseudo-random generator (xoshiro128**). Not for cryptography. */
export class Generator {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** Seeds from one or more non-negative safe integers. */
  constructor(...seed: number[]) {
    let s = hashSeed(...(seed.length === 0 ? [0] : seed));
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      return mix32(s);
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1;
  }

  /** Same as `new Generator(...seed)`. */
  static from(...seed: number[]): Generator {
    return new Generator(...seed);
  }

  /** Restores a generator from `state()`. */
  static fromState(state: GeneratorState): Generator {
    const g = new Generator(0);
    [g.#a, g.#b, g.#c, g.#d] = state.map((v) => v >>> 0) as [number, number, number, number];
    if ((g.#a | g.#b | g.#c | g.#d) === 0) throw new ArgumentError('state', 'must not be all zero');
    return g;
  }

  state(): GeneratorState {
    return [this.#a, this.#b, this.#c, this.#d];
  }

  /** A uniformly random uint32. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result;
  }

  /** A uniformly random float in [0, 1) with 53 bits of precision. */
  random(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniformly random float in (0, 1]: safe to take the logarithm of. */
  randomOpenZero(): number {
    return 1 - this.random();
  }

  /** A uniformly random integer in [0, n), without modulo bias. n ≤ 2^53. */
  int(n: number): number {
    if (!(n >= 1) || !Number.isSafeInteger(n)) {
      throw new ArgumentError('n', `must be a safe integer ≥ 1, got ${n}`);
    }
    if (n <= 0x1_0000_0000) {
      // Lemire's nearly-divisionless method on 32 bits, done in floating point (exact below 2^53).
      const threshold = (0x1_0000_0000 - n) % n;
      for (;;) {
        const x = this.nextUint32();
        const m = x * n;
        const lo = m % 0x1_0000_0000;
        if (lo >= threshold) return Math.floor(m / 0x1_0000_0000);
      }
    }
    const limit = Math.floor(9007199254740992 / n) * n;
    for (;;) {
      const x = Math.floor(this.random() * 9007199254740992);
      if (x < limit) return x % n;
    }
  }

  /** Shuffles an array or typed array in place (Fisher–Yates) and returns it. */
  shuffle<A extends { length: number; [i: number]: unknown }>(array: A): A {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /** A random permutation of [0, n) (materialized: use the planner's permutation for large n). */
  permutation(n: number): Uint32Array {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
      throw new ArgumentError('n', `must be an integer in [0, 2^32), got ${n}`);
    }
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    return this.shuffle(out);
  }

  /** A standard normal variate (Box–Muller). */
  normal(): number {
    const u = this.randomOpenZero();
    const v = this.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
