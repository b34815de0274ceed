/**
 * LoadBalancedDistributedSampler: like DistributedSampler (same count on every rank, so equal
 * batch counts), but samples are dealt so every rank carries about the same total cost (bytes,
 * tokens, …). It really balances, by sorting and snake-dealing inside windows of the shuffled
 * epoch (see plan/partition/load-balanced.ts), with a guaranteed bound:
 *
 *     |cost(rank) − mean| ≤ Σ over windows of (max − min cost in the window)
 *                        ≤ ⌈L / balanceWindow⌉ · (max cost − min cost)
 *
 * `costReport()` gives the actual per-rank totals, imbalance and that bound for the epoch.
 */
import type { EpochPlanOptions } from '../plan/epoch-plan.ts';
import { CostTable } from '../plan/costs.ts';
import type { CostReport } from '../plan/types.ts';
import { requirePositiveInt } from '../validate.ts';
import { DistributedSampler } from './distributed.ts';
import type { DistributedSamplerOptions } from './distributed.ts';

export interface LoadBalancedDistributedSamplerOptions extends DistributedSamplerOptions {
  /** One finite cost ≥ 0 per sample; its length must equal the dataset length. Not copied. */
  costs: ArrayLike<number>;
  /** Positions per rank in one balancing window (default max(8, ⌈2^17 / numReplicas⌉)). */
  balanceWindow?: number;
}

/**
 * One rank's cost-balanced share of every epoch.
 *
 * @example
 * const sampler = new LoadBalancedDistributedSampler(dataset, { costs: tokenCounts, numReplicas: 8, rank: 2 });
 * const report = sampler.costReport(); // report.imbalance, report.perRank, report.bound
 */
export class LoadBalancedDistributedSampler extends DistributedSampler {
  readonly costs: CostTable;
  readonly balanceWindow: number | undefined;

  constructor(source: number | { readonly length: number }, options: LoadBalancedDistributedSamplerOptions) {
    super(source, options);
    this.costs = new CostTable(options.costs, this.size);
    this.balanceWindow =
      options.balanceWindow === undefined ? undefined : requirePositiveInt('balanceWindow', options.balanceWindow);
  }

  protected override planOptions(epoch: number): EpochPlanOptions {
    return { ...super.planOptions(epoch), partition: 'load-balanced', costs: this.costs, balanceWindow: this.balanceWindow };
  }

  /** Per-rank cost totals, imbalance and guaranteed bound of the current epoch (`this.epoch`). */
  costReport(): CostReport {
    return this.plan.costReport();
  }
}
