import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import type { Dataset } from './dataset.ts';
import { ListDataset } from './list.ts';
import { DatasetValidator, formatSummary } from './validator.ts';

const range = (n: number) => Array.from({ length: n }, (_, k) => k);
/** Sample i is {x: i}; loading a multiple of 10 throws. */
const numbers = (n: number): Dataset<{ x: number }> => ({
  length: n,
  get: (i) => {
    if (i % 10 === 0) throw new Error(`cannot read ${i}`);
    return { x: i };
  },
});

test('validating everything counts each rule and each sample', async () => {
  const v = new DatasetValidator(numbers(20), {
    rules: { even: ({ x }) => x % 2 === 0 || `x = ${x} is odd` },
  });
  v.addRule('small', async ({ x }) => x < 15);
  v.addRule('throws', ({ x }) => {
    if (x === 7) throw new Error('boom');
    return true;
  });
  assert.deepEqual(v.rules, ['even', 'small', 'throws']);
  const s = await v.validate({ sampleFraction: 1, maxExamples: 2 });
  assert.equal(s.checked, 20);
  assert.deepEqual(s.errors, [
    { index: 0, message: 'cannot read 0' },
    { index: 10, message: 'cannot read 10' },
  ]);
  // Loaded: 1..9, 11..19 (18 samples). Passing all rules: even, < 15, not 7 → 2, 4, 6, 8, 12, 14.
  assert.equal(s.passed, 6);
  assert.equal(s.failed, 12);
  assert.equal(s.checked, s.passed + s.failed + s.errors.length);
  assert.deepEqual(s.byRule.even, {
    passed: 8,
    failed: 10,
    examples: [
      { index: 1, message: 'x = 1 is odd' },
      { index: 3, message: 'x = 3 is odd' },
    ],
  });
  assert.deepEqual(s.byRule.small, {
    passed: 13,
    failed: 5,
    examples: [
      { index: 15, message: 'rule returned false' },
      { index: 16, message: 'rule returned false' },
    ],
  });
  assert.deepEqual(s.byRule.throws, { passed: 17, failed: 1, examples: [{ index: 7, message: 'rule threw: boom' }] });
});

test('a fraction visits a seeded, reproducible subset of distinct samples', async () => {
  const seen: number[][] = [];
  const make = () => {
    const visited: number[] = [];
    seen.push(visited);
    return new DatasetValidator(new ListDataset(range(1000)), { rules: { track: (_, i) => (visited.push(i), true) } });
  };
  const s = await make().validate({ sampleFraction: 0.05, seed: 3 });
  assert.equal(s.checked, 50);
  assert.equal(s.passed, 50);
  await make().validate({ sampleFraction: 0.05, seed: 3 });
  await make().validate({ sampleFraction: 0.05, seed: 4 });
  const [a, b, c] = seen;
  assert.equal(new Set(a).size, 50);
  assert.deepEqual(a, [...a!].sort((x, y) => x - y));
  assert.deepEqual(b, a);
  assert.notDeepEqual(c, a);
  assert.ok(a!.at(-1)! > 500, 'the subset spans the dataset');
});

test('the subset size is ceil(fraction · n) distinct indices, for any n and fraction', async () => {
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: 200 }), fc.double({ min: 0.001, max: 1, noNaN: true }), fc.nat(), async (n, fraction, seed) => {
      const visited: number[] = [];
      const v = new DatasetValidator(new ListDataset(range(n)), { rules: { r: (x) => (visited.push(x), true) } });
      const s = await v.validate({ sampleFraction: fraction, seed });
      const k = Math.min(n, Math.ceil(n * fraction));
      assert.equal(s.checked, k);
      assert.equal(new Set(visited).size, k);
      assert.ok(visited.every((i) => i >= 0 && i < n));
    }),
    { numRuns: 100 },
  );
});

test('formatSummary is readable', async () => {
  const v = new DatasetValidator(numbers(20), { rules: { even: ({ x }) => x % 2 === 0 || `x = ${x} is odd` } });
  const text = formatSummary(await v.validate({ sampleFraction: 1, maxExamples: 1 }));
  assert.equal(
    text,
    [
      'checked 20 samples: 8 passed, 10 failed, 2 could not be loaded',
      '  even: 8/18 passed (44.4%)',
      '    sample 1: x = 1 is odd',
      '  load errors:',
      '    sample 0: cannot read 0',
      '    sample 10: cannot read 10',
    ].join('\n'),
  );
});

test('bad arguments are refused, naming them', async () => {
  const isArg = (name: string) => (e: unknown) => e instanceof ArgumentError && e.argument === name;
  assert.throws(() => new DatasetValidator({} as never), isArg('dataset'));
  assert.throws(() => new DatasetValidator(new ListDataset([1]), { rules: 5 as never }), isArg('rules'));
  const v = new DatasetValidator(new ListDataset([1]), { rules: { a: () => true } });
  assert.throws(() => v.addRule('a', () => true), isArg('name'));
  assert.throws(() => v.addRule('', () => true), isArg('name'));
  assert.throws(() => v.addRule('b', 'yes' as never), isArg('rule'));
  await assert.rejects(v.validate({ sampleFraction: 0 }), isArg('sampleFraction'));
  await assert.rejects(v.validate({ sampleFraction: 1.5 }), isArg('sampleFraction'));
  await assert.rejects(v.validate({ sampleFraction: Number.NaN }), isArg('sampleFraction'));
  await assert.rejects(v.validate({ seed: -1 }), isArg('seed'));
  await assert.rejects(v.validate({ maxExamples: -1 }), isArg('maxExamples'));
});
