import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { SeededPermutation } from './permutation.ts';

function image(p: SeededPermutation): number[] {
  return Array.from({ length: p.size }, (_, i) => p.at(i));
}

test('a bijection on [0, n) for every n up to 600 (tables) and around the Feistel threshold', () => {
  const sizes = Array.from({ length: 600 }, (_, i) => i + 1);
  for (let n = 4090; n <= 4110; n++) sizes.push(n);
  sizes.push(8191, 8192, 8193, 65_537);
  for (const n of sizes) {
    const p = new SeededPermutation(n, n * 31, 7);
    const seen = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = p.at(i);
      assert.ok(Number.isInteger(v) && v >= 0 && v < n, `n ${n}: at(${i}) = ${v}`);
      assert.equal(seen[v], 0, `n ${n}: ${v} hit twice`);
      seen[v] = 1;
      assert.equal(p.indexOf(v), i);
    }
  }
});

test('a bijection for random sizes and seeds (fast-check), and indexOf inverts at', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 20_000 }), fc.nat(), fc.nat(), (n, seed, epoch) => {
      const p = new SeededPermutation(n, seed, epoch);
      const values = image(p);
      assert.deepEqual([...values].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
      for (let i = 0; i < n; i += 97) assert.equal(p.indexOf(values[i]!), i);
    }),
    { numRuns: 60 },
  );
});

test('n = 1 maps 0 to 0; n = 0 has no positions', () => {
  assert.equal(new SeededPermutation(1, 5).at(0), 0);
  assert.throws(() => new SeededPermutation(0).at(0), IndexOutOfRangeError);
});

test('deterministic in the seed parts; other seeds give other orders', () => {
  const a = image(new SeededPermutation(1000, 42, 3));
  assert.deepEqual(a, image(new SeededPermutation(1000, 42, 3)));
  assert.notDeepEqual(a, image(new SeededPermutation(1000, 42, 4)));
  assert.notDeepEqual(a, image(new SeededPermutation(1000, 43, 3)));
  // Not the identity, and not a rotation of it.
  assert.notDeepEqual(a, Array.from({ length: 1000 }, (_, i) => i));
  assert.ok(a.some((v, i) => v !== (a[0]! + i) % 1000));
});

test('fillUnchecked writes exactly at(start + i), on the int32 path and above 2^31', () => {
  for (const n of [1, 2, 3, 1000, 4097, 2 ** 20 + 3, 2 ** 31 - 1, 2 ** 31 + 11, 10 ** 12]) {
    const p = new SeededPermutation(n, 9);
    const count = Math.min(n, 9000);
    const start = n - count;
    const out = new Float64Array(count + 2).fill(-1);
    p.fillUnchecked(start, out, 1, count);
    assert.equal(out[0], -1);
    assert.equal(out[count + 1], -1);
    for (let i = 0; i < count; i += 1 + (i % 7)) assert.equal(out[1 + i], p.at(start + i), `n ${n}, i ${i}`);
  }
});

test('positions of a 10^12 domain stay integers in range and invert', () => {
  const n = 10 ** 12;
  const p = new SeededPermutation(n, 2024, 1);
  const seen = new Set<number>();
  for (const i of [0, 1, 2, 999_999_999_999, 500_000_000_000, 2 ** 32, 2 ** 39 + 5, 123_456_789_012]) {
    const v = p.at(i);
    assert.ok(Number.isSafeInteger(v) && v >= 0 && v < n, `at(${i}) = ${v}`);
    assert.equal(p.indexOf(v), i);
    seen.add(v);
  }
  assert.equal(seen.size, 8);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: n - 1 }), (i) => p.indexOf(p.at(i)) === i),
    { numRuns: 200 },
  );
});

test('the largest domain, 2^53 − 1, works', () => {
  const n = Number.MAX_SAFE_INTEGER;
  const p = new SeededPermutation(n, 1);
  for (const i of [0, n - 1, 2 ** 52]) {
    const v = p.at(i);
    assert.ok(Number.isSafeInteger(v) && v >= 0 && v < n);
    assert.equal(p.indexOf(v), i);
  }
});

test('close to uniform: where position 0 lands over many seeds (n = 6)', () => {
  const counts = new Array(6).fill(0);
  const trials = 6000;
  for (let seed = 0; seed < trials; seed++) counts[new SeededPermutation(6, seed).at(0)]++;
  // Chi-square with 5 degrees of freedom; 20.5 is its 0.999 quantile.
  const chi = counts.reduce((s, c) => s + (c - trials / 6) ** 2 / (trials / 6), 0);
  assert.ok(chi < 20.5, `chi-square ${chi.toFixed(1)}, counts ${counts}`);
});

test('close to uniform on the Feistel path: where positions 0 and 1 land (n = 5000)', () => {
  const n = 5000;
  const counts = new Array(100).fill(0);
  const trials = 5000;
  for (let seed = 0; seed < trials; seed++) {
    const p = new SeededPermutation(n, seed);
    counts[Math.floor((p.at(0) * 10) / n) * 10 + Math.floor((p.at(1) * 10) / n)]++;
  }
  // Chi-square with 99 degrees of freedom; 148 is its 0.999 quantile.
  const chi = counts.reduce((s, c) => s + (c - trials / 100) ** 2 / (trials / 100), 0);
  assert.ok(chi < 148, `chi-square ${chi.toFixed(1)}`);
});

test('a large domain is a bijection (n = 10^6 + 3, bulk fill)', () => {
  const n = 1_000_003;
  const out = new Float64Array(n);
  new SeededPermutation(n, 5, 6).fillUnchecked(0, out, 0, n);
  const seen = new Uint8Array(n);
  for (const v of out) {
    assert.ok(seen[v] === 0);
    seen[v] = 1;
  }
});

test('neighbouring positions are not correlated (n = 10^6)', () => {
  const n = 1_000_000;
  const p = new SeededPermutation(n, 77);
  const out = new Float64Array(100_000);
  p.fillUnchecked(0, out, 0, out.length);
  let sx = 0;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i + 1 < out.length; i++) {
    const x = out[i]! / n - 0.5;
    const y = out[i + 1]! / n - 0.5;
    sx += x;
    sxx += x * x;
    sxy += x * y;
  }
  const m = out.length - 1;
  const r = (sxy / m - (sx / m) ** 2) / (sxx / m - (sx / m) ** 2);
  assert.ok(Math.abs(r) < 0.02, `lag-1 correlation ${r}`);
});

test('bad arguments are refused with the argument named', () => {
  assert.throws(() => new SeededPermutation(-1), (e: unknown) => e instanceof ArgumentError && e.argument === 'size');
  assert.throws(() => new SeededPermutation(1.5), /size/);
  assert.throws(() => new SeededPermutation(2 ** 53), /size/);
  assert.throws(() => new SeededPermutation(10, -3), /seed\[0\]/);
  assert.throws(() => new SeededPermutation(10, 1, 0.5), /seed\[1\]/);
  const p = new SeededPermutation(10, 1);
  assert.throws(() => p.at(10), IndexOutOfRangeError);
  assert.throws(() => p.at(-1), IndexOutOfRangeError);
  assert.throws(() => p.at(1.5), /index/);
  assert.throws(() => p.indexOf(10), IndexOutOfRangeError);
});
