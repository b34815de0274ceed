import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Generator, hashSeed } from './random.ts';

test('a generator is reproducible from its seed parts and its state', () => {
  const a = new Generator(42, 7);
  const b = Generator.from(42, 7);
  const xs = Array.from({ length: 100 }, () => a.nextUint32());
  assert.deepEqual(xs, Array.from({ length: 100 }, () => b.nextUint32()));
  const c = Generator.fromState(a.state());
  assert.equal(c.nextUint32(), a.nextUint32());
  assert.notEqual(new Generator(42, 8).nextUint32(), new Generator(42, 7).nextUint32());
});

test('int(n) stays in range and is close to uniform', () => {
  const g = new Generator(1);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 100_000; i++) counts[g.int(10)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10_000) < 600, `count ${c}`);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.nat(), (n, seed) => {
      const v = new Generator(seed).int(n);
      return Number.isInteger(v) && v >= 0 && v < n;
    }),
  );
});

test('random() is in [0, 1) and shuffle is a permutation', () => {
  const g = new Generator(3);
  for (let i = 0; i < 10_000; i++) {
    const x = g.random();
    assert.ok(x >= 0 && x < 1);
  }
  const p = g.permutation(1000);
  assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
});

test('bad seeds are refused with the argument named', () => {
  assert.throws(() => hashSeed(-1), /seed/);
  assert.throws(() => new Generator(1.5), /seed/);
  assert.throws(() => new Generator(1).int(0), /n: must be/);
});
