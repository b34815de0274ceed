/**
 * Per-sample costs (bytes, tokens, decode time…) for the load-balanced partition, validated once
 * and held by reference: the caller's array is the only O(N) memory, the planner copies nothing.
 * Costs are ranked through their float32 bit patterns, which order non-negative floats exactly
 * like their values, so a window sorts with a radix sort instead of a comparison sort.
 */
import { ArgumentError } from '../errors.ts';

/** Validated per-sample costs, indexed by global sample id. */
export class CostTable {
  /** The caller's costs (not copied). */
  readonly values: ArrayLike<number>;
  readonly length: number;
  readonly total: number;
  readonly min: number;
  readonly max: number;
  /** Whether every cost is a float32 value, so ranking by float32 bits is exact. */
  readonly exactFloat32: boolean;
  /** The float32 bit patterns of `values` when it is a Float32Array (a view, no copy). */
  readonly #bits: Uint32Array | null;
  readonly #f32 = new Float32Array(1);
  readonly #u32 = new Uint32Array(this.#f32.buffer);

  /**
   * @param costs one finite cost ≥ 0 per sample
   * @param numSamples the dataset length N that `costs.length` must equal
   */
  constructor(costs: ArrayLike<number>, numSamples: number) {
    if (costs == null || typeof costs.length !== 'number') {
      throw new ArgumentError('costs', `must be an array of per-sample costs, got ${String(costs)}`);
    }
    if (costs.length !== numSamples) {
      throw new ArgumentError('costs', `length must equal the number of samples ${numSamples}, got ${costs.length}`);
    }
    let total = 0;
    let min = Infinity;
    let max = -Infinity;
    let exact = true;
    for (let i = 0; i < costs.length; i++) {
      const c = costs[i];
      if (typeof c !== 'number' || !(c >= 0) || c === Infinity) {
        throw new ArgumentError(`costs[${i}]`, `must be a finite number ≥ 0, got ${String(c)}`);
      }
      total += c;
      if (c < min) min = c;
      if (c > max) max = c;
      if (exact && Math.fround(c) !== c) exact = false;
    }
    this.values = costs;
    this.length = costs.length;
    this.total = total;
    this.min = costs.length === 0 ? 0 : min;
    this.max = costs.length === 0 ? 0 : max;
    this.exactFloat32 = exact;
    this.#bits = costs instanceof Float32Array ? new Uint32Array(costs.buffer, costs.byteOffset, costs.length) : null;
  }

  /** The cost of global id `id` (trusted). */
  cost(id: number): number {
    return this.values[id]!;
  }

  /**
   * Writes the sort key of each of `ids[0, count)` to `keys`: the bits of the cost rounded to
   * float32 (monotone in the cost; the sign bit is cleared so −0 ranks as 0).
   */
  fillKeys(ids: Float64Array, count: number, keys: Uint32Array): void {
    const bits = this.#bits;
    if (bits !== null) {
      // `| 0` tells the JIT the index is an int32 (exact: every id is below length ≤ 2^31), which
      // makes this cache-missing gather markedly faster than indexing with a float64.
      if (bits.length <= 0x7fffffff) for (let i = 0; i < count; i++) keys[i] = bits[ids[i]! | 0]! & 0x7fffffff;
      else for (let i = 0; i < count; i++) keys[i] = bits[ids[i]!]! & 0x7fffffff;
      return;
    }
    const values = this.values;
    const f32 = this.#f32;
    const u32 = this.#u32;
    for (let i = 0; i < count; i++) {
      f32[0] = values[ids[i]!]!;
      keys[i] = u32[0]! & 0x7fffffff;
    }
  }
}
