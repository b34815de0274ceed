import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chiSquareSurvival, chiSquareTest } from './chi-square.ts';

test('chi-square survival matches tabulated critical values', () => {
  // (statistic, df, p) from the standard tables (scipy.stats.chi2.isf).
  const table: [number, number, number][] = [
    [3.841458820694124, 1, 0.05],
    [18.307038053275146, 10, 0.05],
    [29.58829844507442, 10, 0.001],
    [124.34211340400407, 100, 0.05],
  ];
  for (const [x, df, p] of table) assert.ok(Math.abs(chiSquareSurvival(x, df) - p) < 1e-9, `${x}, ${df}`);
  assert.ok(Math.abs(chiSquareSurvival(2, 2) - Math.exp(-1)) < 1e-12);
  assert.equal(chiSquareSurvival(0, 5), 1);
});

test('chiSquareTest accepts a fitting sample and rejects a wrong one', () => {
  assert.ok(chiSquareTest([250, 250, 500], [0.25, 0.25, 0.5]).pValue > 0.99);
  assert.ok(chiSquareTest([400, 100, 500], [0.25, 0.25, 0.5]).pValue < 1e-10);
  assert.equal(chiSquareTest([1, 0, 5], [0, 0.5, 0.5]).pValue, 0, 'a draw of a probability-0 category');
});
