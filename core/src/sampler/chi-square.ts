/**
 * Pearson's chi-square goodness-of-fit test, for the statistical tests of the samplers (counts
 * of draws against the probabilities they should follow). Test support: not exported.
 */

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits). */
function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const logPrefix = a * Math.log(x) - x - lnGamma(a);
  if (x < a + 1) {
    // Series for P(a, x).
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 10_000 && Math.abs(term) > Math.abs(sum) * 1e-15; n++) {
      term *= x / (a + n);
      sum += term;
    }
    return 1 - sum * Math.exp(logPrefix);
  }
  // Continued fraction for Q(a, x) (modified Lentz).
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return Math.exp(logPrefix) * h;
}

/** P(X ≥ statistic) for X chi-square distributed with `df` degrees of freedom. */
export function chiSquareSurvival(statistic: number, df: number): number {
  return gammaQ(df / 2, statistic / 2);
}

/**
 * Pearson's test of `counts` (observed) against `probabilities` (expected shares, summing to
 * 1). Categories with probability 0 are left out of the statistic, and must have count 0.
 * Returns the statistic, the degrees of freedom and the p-value.
 */
export function chiSquareTest(
  counts: ArrayLike<number>,
  probabilities: ArrayLike<number>,
): { statistic: number; df: number; pValue: number } {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  let statistic = 0;
  let categories = 0;
  for (let i = 0; i < counts.length; i++) {
    const p = probabilities[i]!;
    if (p === 0) {
      if (counts[i]! !== 0) return { statistic: Infinity, df: 0, pValue: 0 };
      continue;
    }
    const expected = total * p;
    statistic += (counts[i]! - expected) ** 2 / expected;
    categories++;
  }
  const df = Math.max(1, categories - 1);
  return { statistic, df, pValue: chiSquareSurvival(statistic, df) };
}
