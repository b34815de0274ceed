/**
 * DatasetValidator: checks a seeded random sample of a dataset against named rules and reports
 * per-rule pass and fail counts with examples, plus the samples that could not be loaded.
 */
import { ArgumentError } from '../errors.ts';
import { Generator } from '../random.ts';
import { requireFinite, requireInt, requireSeed } from '../validate.ts';
import type { Dataset } from './dataset.ts';
import { isDataset } from './dataset.ts';

/**
 * A rule: true (or a promise of it) when the sample is valid; false, or a message saying what
 * is wrong, when it is not. A rule that throws fails with the error's message.
 */
export type ValidationRule<T> = (sample: T, index: number) => boolean | string | Promise<boolean | string>;

export interface DatasetValidatorOptions<T> {
  /** Rules by name (more can be added with `addRule`). */
  rules?: Record<string, ValidationRule<T>>;
}

export interface ValidateOptions {
  /** Fraction of the samples to check, in (0, 1] (default 0.1); at least one sample is checked. */
  sampleFraction?: number;
  /** Seed of the choice of samples (default 0). */
  seed?: number;
  /** Examples kept per rule (default 5). */
  maxExamples?: number;
}

/** A sample that failed a rule, or could not be loaded. */
export interface ValidationExample {
  index: number;
  message: string;
}

export interface RuleSummary {
  passed: number;
  failed: number;
  /** The first failures (up to `maxExamples`), in index order. */
  examples: ValidationExample[];
}

export interface ValidationSummary {
  /** Samples visited: passed + failed + errors.length. */
  checked: number;
  /** Samples that passed every rule. */
  passed: number;
  /** Samples that failed at least one rule. */
  failed: number;
  byRule: Record<string, RuleSummary>;
  /** Samples whose `get` threw (they are counted in no rule). */
  errors: ValidationExample[];
}

/**
 * Validates a dataset by rules, on a seeded random fraction of its samples.
 *
 * @example
 * const v = new DatasetValidator(ds);
 * v.addRule('label in range', ({ label }) => (label >= 0 && label < 10) || `label ${label}`);
 * console.log(formatSummary(await v.validate({ sampleFraction: 0.05, seed: 1 })));
 */
export class DatasetValidator<T> {
  readonly dataset: Dataset<T>;
  readonly #rules = new Map<string, ValidationRule<T>>();

  constructor(dataset: Dataset<T>, options: DatasetValidatorOptions<T> = {}) {
    if (!isDataset(dataset)) throw new ArgumentError('dataset', 'must be a Dataset (with length and get)');
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object');
    this.dataset = dataset;
    if (options.rules !== undefined) {
      if (typeof options.rules !== 'object' || options.rules === null) {
        throw new ArgumentError('rules', 'must be an object mapping rule names to functions');
      }
      for (const [name, rule] of Object.entries(options.rules)) this.addRule(name, rule);
    }
  }

  /** The rule names, in the order they were added. */
  get rules(): string[] {
    return [...this.#rules.keys()];
  }

  /** Adds a rule; names must be unique. Returns this, for chaining. */
  addRule(name: string, rule: ValidationRule<T>): this {
    if (typeof name !== 'string' || name.length === 0) {
      throw new ArgumentError('name', `must be a non-empty string, got ${JSON.stringify(name) ?? String(name)}`);
    }
    if (this.#rules.has(name)) throw new ArgumentError('name', `a rule named ${JSON.stringify(name)} already exists`);
    if (typeof rule !== 'function') throw new ArgumentError('rule', `must be a function, got ${typeof rule}`);
    this.#rules.set(name, rule);
    return this;
  }

  /** Checks `ceil(sampleFraction · length)` distinct samples, chosen by the seed, in index order. */
  async validate(options: ValidateOptions = {}): Promise<ValidationSummary> {
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object');
    const fraction = requireFinite('sampleFraction', options.sampleFraction ?? 0.1, { min: 0, max: 1 });
    if (fraction === 0) throw new ArgumentError('sampleFraction', 'must be in (0, 1], got 0');
    const seed = requireSeed('seed', options.seed ?? 0);
    const maxExamples = requireInt('maxExamples', options.maxExamples ?? 5);
    const n = requireInt('dataset.length', this.dataset.length);
    const indices = sampleIndices(n, Math.min(n, Math.ceil(n * fraction)), new Generator(seed));

    const rules = [...this.#rules];
    const byRule: [string, RuleSummary][] = rules.map(([name]) => [name, { passed: 0, failed: 0, examples: [] }]);
    const summary: ValidationSummary = { checked: 0, passed: 0, failed: 0, byRule: {}, errors: [] };
    for (const index of indices) {
      summary.checked++;
      let sample: T;
      try {
        sample = await this.dataset.get(index);
      } catch (error) {
        summary.errors.push({ index, message: messageOf(error) });
        continue;
      }
      let ok = true;
      for (let r = 0; r < rules.length; r++) {
        const verdict = await judge(rules[r]![1], sample, index);
        const result = byRule[r]![1];
        if (verdict === true) {
          result.passed++;
          continue;
        }
        ok = false;
        result.failed++;
        if (result.examples.length < maxExamples) result.examples.push({ index, message: verdict });
      }
      if (ok) summary.passed++;
      else summary.failed++;
    }
    summary.byRule = Object.fromEntries(byRule);
    return summary;
  }
}

/** true, or the failure message. */
async function judge<T>(rule: ValidationRule<T>, sample: T, index: number): Promise<true | string> {
  try {
    const verdict = await rule(sample, index);
    if (verdict === true) return true;
    if (typeof verdict === 'string') return verdict;
    return verdict === false ? 'rule returned false' : `rule returned ${String(verdict)} instead of a boolean or a message`;
  } catch (error) {
    return `rule threw: ${messageOf(error)}`;
  }
}

/** `k` distinct indices of [0, n), sorted (Floyd's algorithm: O(k) memory, whatever n is). */
function sampleIndices(n: number, k: number, g: Generator): number[] {
  const chosen = new Set<number>();
  for (let j = n - k; j < n; j++) {
    const t = g.int(j + 1);
    chosen.add(chosen.has(t) ? j : t);
  }
  return [...chosen].sort((a, b) => a - b);
}

/**
 * A human-readable report of a summary.
 *
 * @example
 * formatSummary(summary);
 * // checked 100 samples: 97 passed, 2 failed, 1 could not be loaded
 * //   label in range: 98/100 passed (98.0%)
 * //     sample 17: label 12
 */
export function formatSummary(summary: ValidationSummary): string {
  const lines = [
    `checked ${summary.checked} samples: ${summary.passed} passed, ${summary.failed} failed, ` +
      `${summary.errors.length} could not be loaded`,
  ];
  for (const [name, rule] of Object.entries(summary.byRule)) {
    const total = rule.passed + rule.failed;
    const rate = total === 0 ? 'n/a' : `${((100 * rule.passed) / total).toFixed(1)}%`;
    lines.push(`  ${name}: ${rule.passed}/${total} passed (${rate})`);
    for (const e of rule.examples) lines.push(`    sample ${e.index}: ${e.message}`);
  }
  if (summary.errors.length > 0) {
    lines.push('  load errors:');
    for (const e of summary.errors.slice(0, 5)) lines.push(`    sample ${e.index}: ${e.message}`);
    if (summary.errors.length > 5) lines.push(`    … and ${summary.errors.length - 5} more`);
  }
  return lines.join('\n');
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
