import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import { CostTable } from './costs.ts';

test('validates once and keeps the caller array (no copy), with total, min, max', () => {
  const costs = new Float32Array([3, 0, 2.5, 7]);
  const t = new CostTable(costs, 4);
  assert.equal(t.values, costs);
  assert.deepEqual([t.total, t.min, t.max, t.length], [12.5, 0, 7, 4]);
  assert.equal(t.exactFloat32, true);
  assert.equal(new CostTable([0.1, 2], 2).exactFloat32, false);
  assert.equal(new CostTable([1, 2 ** 24], 2).exactFloat32, true);
  assert.deepEqual([new CostTable([], 0).min, new CostTable([], 0).max], [0, 0]);
});

test('sort keys order costs like their values (float32 rounding at most ties them)', () => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: 0, max: 1e30, noNaN: true }), { minLength: 1, maxLength: 50 }), (values) => {
      const t = new CostTable(values, values.length);
      const ids = Float64Array.from(values, (_, i) => i);
      const keys = new Uint32Array(values.length);
      t.fillKeys(ids, values.length, keys);
      for (let i = 0; i < values.length; i++) {
        for (let j = 0; j < values.length; j++) {
          if (values[i]! < values[j]!) assert.ok(keys[i]! <= keys[j]!);
        }
      }
    }),
  );
  const t = new CostTable(new Float32Array([-0, 0, 1]), 3);
  const keys = new Uint32Array(3);
  t.fillKeys(new Float64Array([0, 1, 2]), 3, keys);
  assert.equal(keys[0], keys[1], '−0 ranks as 0');
  assert.ok(keys[2]! > keys[1]!);
});

test('bad costs are refused, naming the element', () => {
  const argument = (name: string) => (e: unknown) => e instanceof ArgumentError && e.argument === name;
  assert.throws(() => new CostTable([1, 2], 3), /costs: length must equal the number of samples 3, got 2/);
  assert.throws(() => new CostTable([1, -1], 2), argument('costs[1]'));
  assert.throws(() => new CostTable([Number.NaN], 1), argument('costs[0]'));
  assert.throws(() => new CostTable([Infinity], 1), argument('costs[0]'));
  assert.throws(() => new CostTable(['3' as unknown as number], 1), argument('costs[0]'));
  assert.throws(() => new CostTable(null as unknown as number[], 0), argument('costs'));
});
