/**
 * Partition `load-balanced`: every rank gets exactly L positions (L as in `distributed`, so batch
 * counts are equal and collectives never hang) and about the same total cost.
 *
 * The (padded) order is cut into balancing windows of W·R positions (R = `balanceWindow`; the
 * last window holds W·r, r = L − (K−1)·R ≤ R). Inside a window the samples are sorted by cost,
 * descending (a stable LSD radix sort on the float32 bits of the costs), and dealt in r rounds:
 * round t gives the block sorted[t·W, (t+1)·W) to the W slots, one each, largest cost to the
 * slot with the smallest load so far (LPT with equal counts; the slots are re-ranked by load
 * with a one-pass counting sort before each of the first 16 rounds, then every 4th). A seeded
 * permutation per window maps slots to ranks, and another spreads each rank's r samples over its
 * r positions (else every rank would see its window from heaviest to lightest sample).
 *
 * Tolerance (deterministic, whatever the dealing order): in one window every rank gets exactly
 * one sample of each block; the blocks are consecutive disjoint runs of a sorted list, so the
 * spread of the rank totals is at most the sum of the blocks' cost ranges, which telescopes to
 * at most (max − min) of the window's costs. The mean lies between the smallest and largest rank
 * total, so every rank is within that range of the window mean, and over the K = ⌈L/R⌉ windows:
 *
 *     |cost(rank) − mean| ≤ Σ_w (max_w − min_w) ≤ K · (max cost − min cost)
 *
 * exactly when the costs are float32 values (a Float32Array, or integers below 2^24); other
 * costs are ranked by their float32 rounding, which adds at most 2^−23 relative (the report's
 * `bound` includes it). In practice LPT dealing leaves a window's spread near the cost range of
 * its last blocks, far below the bound; `EpochPlan.costReport()` measures it.
 *
 * Rank r's position j lies in window ⌊j/R⌋: resuming anywhere computes that one window,
 * O(W·R) time and memory, never what comes before.
 */
import { ArgumentError } from '../../errors.ts';
import { SeededPermutation } from '../permutation.ts';
import { hashSeed } from '../../random.ts';
import type { CostTable } from '../costs.ts';
import { fillWrapped, perRankCount } from '../types.ts';
import type { CostReport, Partition, PartitionInput, RankSequences, SampleOrder } from '../types.ts';

const RELABEL_TAG = 0x72656c62;
const POSITION_TAG = 0x706f7369;
/**
 * Slots are re-ranked by load before every one of the first rounds (where the heavy blocks make
 * the differences) and every few rounds after; in between, the order of the last ranking holds,
 * so the lightest slots keep getting the largest samples.
 */
const RERANK_ALWAYS_BELOW = 16;
const RERANK_EVERY = 4;
const DIGIT_BITS = 11;
const DIGITS = 1 << DIGIT_BITS;
const DIGIT_MASK = DIGITS - 1;

class BalancedRanks implements RankSequences {
  readonly perRank: number;
  readonly #order: SampleOrder;
  readonly #costs: CostTable;
  readonly #worldSize: number;
  readonly #window: number;
  readonly #seed: number;
  readonly #epoch: number;
  readonly #relabelPerm = new SeededPermutation(0);
  readonly #positionPerm = new SeededPermutation(0);
  // Window buffers, allocated on first use: W·min(R, L) entries each.
  #ids = new Float64Array(0);
  #idsNext = new Float64Array(0);
  #keysA = new Uint32Array(0);
  #keysB = new Uint32Array(0);
  /** The same bytes as #keysA / #keysB: the keys are float32 bits, so these read the costs. */
  #costsA = new Float32Array(0);
  #costsB = new Float32Array(0);
  /**
   * The current window's ids, position-major: rank s's id at window position j is
   * dealt[j·(W + 1) + s], so dealing one round writes within one row. The row stride is W + 1,
   * not W, so a rank's column does not fall on one cache set when W is a power of two.
   */
  #dealt = new Float64Array(0);
  /** Per-window sums of each rank, for `costReport`. */
  #windowTotals: Float64Array | null = null;
  readonly #hist = new Uint32Array(3 * DIGITS);
  // Per-slot state of the dealing (W entries each).
  /** rankOf[slot]: the rank that slot stands for in the current window. */
  readonly #rankOf: Int32Array;
  readonly #loads: Float64Array;
  readonly #byLoad: Int32Array;
  readonly #loadKey: Uint16Array;
  readonly #loadHist: Uint32Array;
  /** spread[t] = the position (within the window) of each rank's round-t sample. */
  #spread = new Int32Array(0);
  /** Which window `#dealt` holds (−1: none) and its per-rank count r. */
  #current = -1;
  #currentPerRank = 0;

  constructor(input: PartitionInput, costs: CostTable) {
    const W = input.worldSize;
    this.perRank = perRankCount(input.order.size, W, input.dropLast);
    this.#order = input.order;
    this.#costs = costs;
    this.#worldSize = W;
    this.#window = input.balanceWindow;
    this.#seed = input.seed;
    this.#epoch = input.epoch;
    this.#rankOf = new Int32Array(W);
    this.#loads = new Float64Array(W);
    this.#byLoad = new Int32Array(W);
    this.#loadKey = new Uint16Array(W);
    // Enough buckets to tell W loads apart, at most 2^11 (a bucket is 1/2048 of the load spread).
    let buckets = 2;
    while (buckets < 2 * W && buckets < DIGITS) buckets *= 2;
    this.#loadHist = new Uint32Array(buckets);
  }

  /** Number of balancing windows K. */
  get windows(): number {
    return Math.ceil(this.perRank / this.#window);
  }

  at(rank: number, position: number): number {
    const w = Math.floor(position / this.#window);
    this.#compute(w);
    return this.#dealt[(position - w * this.#window) * (this.#worldSize + 1) + rank]!;
  }

  fill(rank: number, start: number, out: Float64Array, offset: number, count: number): void {
    const R = this.#window;
    let done = 0;
    while (done < count) {
      const j = start + done;
      const w = Math.floor(j / R);
      this.#compute(w);
      const within = j - w * R;
      const run = Math.min(count - done, this.#currentPerRank - within);
      const dealt = this.#dealt;
      const stride = this.#worldSize + 1;
      for (let i = 0, from = within * stride + rank, to = offset + done; i < run; i++, from += stride, to++) {
        out[to] = dealt[from]!;
      }
      done += run;
    }
  }

  costReport(): CostReport {
    const W = this.#worldSize;
    const perRank = new Float64Array(W);
    const costs = this.#costs;
    const exact = costs.exactFloat32;
    let bound = 0;
    const sums = (this.#windowTotals ??= new Float64Array(W));
    for (let w = 0, K = this.windows; w < K; w++) {
      this.#compute(w);
      const dealt = this.#dealt;
      let lo = Infinity;
      let hi = -Infinity;
      sums.fill(0);
      for (let j = 0, r = this.#currentPerRank; j < r; j++) {
        for (let rank = 0, i = j * (W + 1); rank < W; rank++, i++) {
          const c = costs.cost(dealt[i]!);
          sums[rank]! += c;
          if (c < lo) lo = c;
          if (c > hi) hi = c;
        }
      }
      let heaviest = 0;
      for (let rank = 0; rank < W; rank++) {
        perRank[rank]! += sums[rank]!;
        if (sums[rank]! > heaviest) heaviest = sums[rank]!;
      }
      // Costs that are not float32 were ranked by their float32 rounding (relative error 2^−24
      // per cost): widen the window's bound by that much for its largest cost and rank total.
      bound += hi - lo + (exact ? 0 : 2 ** -23 * (hi + heaviest));
    }
    return summarizeCosts(perRank, bound);
  }

  /** Makes `#dealt` hold window w. */
  #compute(w: number): void {
    if (w === this.#current) return;
    const W = this.#worldSize;
    const R = this.#window;
    const r = Math.min(R, this.perRank - w * R);
    const m = W * r;
    if (this.#ids.length < m) this.#allocate(W * Math.min(R, this.perRank));
    fillWrapped(this.#order, w * W * R, this.#ids, 0, m);
    const sortedCosts = this.#sortByCostDescending(m);
    const sorted = this.#ids;

    const rankOf = this.#rankOf;
    const relabel = this.#relabelPerm;
    relabel.rekey(W, hashSeed(this.#seed, this.#epoch, RELABEL_TAG, w));
    for (let c = 0; c < W; c++) rankOf[c] = relabel.atUnchecked(c);
    const spread = this.#spread;
    const positions = this.#positionPerm;
    positions.rekey(r, hashSeed(this.#seed, this.#epoch, POSITION_TAG, w));
    for (let t = 0; t < r; t++) spread[t] = positions.atUnchecked(t);

    const loads = this.#loads;
    const byLoad = this.#byLoad;
    loads.fill(0);
    for (let c = 0; c < W; c++) byLoad[c] = c;
    const dealt = this.#dealt;
    let s = 0;
    for (let t = 0; t < r; t++) {
      if (t > 0 && (t < RERANK_ALWAYS_BELOW || t % RERANK_EVERY === 0)) this.#rankSlotsByLoad();
      const row = spread[t]! * (W + 1);
      for (let c = 0; c < W; c++, s++) {
        const slot = byLoad[c]!;
        dealt[row + rankOf[slot]!] = sorted[s]!;
        loads[slot]! += sortedCosts[s]!;
      }
    }
    this.#current = w;
    this.#currentPerRank = r;
  }

  /** byLoad = the slots by load, lightest first (a counting sort on the load quantized to the spread). */
  #rankSlotsByLoad(): void {
    const W = this.#worldSize;
    const loads = this.#loads;
    let lo = Infinity;
    let hi = -Infinity;
    for (let c = 0; c < W; c++) {
      const v = loads[c]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!(hi > lo)) return;
    const hist = this.#loadHist;
    const top = hist.length - 1;
    const scale = top / (hi - lo);
    const key = this.#loadKey;
    hist.fill(0);
    for (let c = 0; c < W; c++) {
      const q = Math.min(top, Math.floor((loads[c]! - lo) * scale));
      key[c] = q;
      hist[q]!++;
    }
    let sum = 0;
    for (let q = 0; q <= top; q++) {
      const n = hist[q]!;
      hist[q] = sum;
      sum += n;
    }
    const byLoad = this.#byLoad;
    for (let c = 0; c < W; c++) byLoad[hist[key[c]!]!++] = c;
  }

  #allocate(size: number): void {
    this.#ids = new Float64Array(size);
    this.#keysA = new Uint32Array(size);
    this.#keysB = new Uint32Array(size);
    this.#costsA = new Float32Array(this.#keysA.buffer);
    this.#costsB = new Float32Array(this.#keysB.buffer);
    this.#idsNext = new Float64Array(size);
    this.#dealt = new Float64Array(size + Math.min(this.#window, this.perRank));
    this.#spread = new Int32Array(Math.min(this.#window, this.perRank));
  }

  /**
   * Sorts `#ids[0, m)` by cost, largest first, ties in position order: a stable LSD radix sort
   * (3 passes of 11 bits, buckets laid out from the largest digit down, a pass skipped when every
   * key shares its digit) on the costs' float32 bits, moving the ids along. Returns the sorted
   * costs (a float view of the key buffer).
   */
  #sortByCostDescending(m: number): Float32Array {
    let keys = this.#keysA;
    let keysNext = this.#keysB;
    let costs = this.#costsA;
    let costsNext = this.#costsB;
    let ids = this.#ids;
    let idsNext = this.#idsNext;
    const hist = this.#hist;
    hist.fill(0);
    // The gather misses cache on almost every sample: keep its loop free of anything that could
    // serialize those misses (the histogram's read-modify-writes did, when fused in).
    this.#costs.fillKeys(ids, m, keys);
    for (let i = 0; i < m; i++) {
      const k = keys[i]!;
      hist[k & DIGIT_MASK]!++;
      hist[DIGITS + ((k >>> DIGIT_BITS) & DIGIT_MASK)]!++;
      hist[2 * DIGITS + (k >>> (2 * DIGIT_BITS))]!++;
    }
    for (let pass = 0; pass < 3; pass++) {
      const base = pass * DIGITS;
      const shift = pass * DIGIT_BITS;
      let sum = 0;
      let trivial = false;
      for (let d = DIGITS - 1; d >= 0; d--) {
        const c = hist[base + d]!;
        if (c === m) trivial = true;
        hist[base + d] = sum;
        sum += c;
      }
      if (trivial) continue;
      for (let i = 0; i < m; i++) {
        const k = keys[i]!;
        const at = hist[base + ((k >>> shift) & DIGIT_MASK)]!++;
        keysNext[at] = k;
        idsNext[at] = ids[i]!;
      }
      const k = keys;
      keys = keysNext;
      keysNext = k;
      const c = costs;
      costs = costsNext;
      costsNext = c;
      const x = ids;
      ids = idsNext;
      idsNext = x;
    }
    this.#ids = ids;
    this.#idsNext = idsNext;
    return costs;
  }
}

/** Mean, spread and imbalance of per-rank cost totals. */
export function summarizeCosts(perRank: Float64Array, bound: number | null): CostReport {
  const W = perRank.length;
  let total = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let r = 0; r < W; r++) {
    const v = perRank[r]!;
    total += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = W === 0 ? 0 : total / W;
  const maxDeviation = W === 0 ? 0 : Math.max(max - mean, mean - min);
  return { perRank, mean, min, max, maxDeviation, imbalance: mean > 0 ? maxDeviation / mean : 0, bound };
}

/** Equal counts per rank, cost balanced by sorting and snake-dealing inside windows of W·R. */
export const loadBalancedPartition: Partition = (input) => {
  if (input.costs === undefined) throw new ArgumentError('costs', 'are required by the load-balanced partition');
  return new BalancedRanks(input, input.costs);
};
