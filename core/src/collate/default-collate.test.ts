import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { defaultCollate } from './default-collate.ts';
import { ArgumentError, ShapeMismatchError } from '../errors.ts';
import type { Tensor } from '../tensor.ts';
import { tensor } from '../tensor.ts';

test('numbers become a float64 tensor, bigints int64, booleans bool', () => {
  assert.deepEqual(defaultCollate([1, 2, 3]), { dtype: 'float64', shape: [3], data: new Float64Array([1, 2, 3]) });
  assert.deepEqual(defaultCollate([1.5, -2]), { dtype: 'float64', shape: [2], data: new Float64Array([1.5, -2]) });
  assert.deepEqual(defaultCollate([3n, -4n]), { dtype: 'int64', shape: [2], data: new BigInt64Array([3n, -4n]) });
  assert.deepEqual(defaultCollate([true, false]), { dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]) });
  assert.throws(() => defaultCollate([2n ** 63n]), ArgumentError);
});

test('typed arrays stack to [B, L] and tensors to [B, ...shape]', () => {
  const t = defaultCollate([new Int16Array([1, 2]), new Int16Array([3, 4]), new Int16Array([5, 6])]);
  assert.deepEqual(t, { dtype: 'int16', shape: [3, 2], data: new Int16Array([1, 2, 3, 4, 5, 6]) });
  const a = tensor('float32', [2, 2], new Float32Array([1, 2, 3, 4]));
  const b = tensor('float32', [2, 2], new Float32Array([5, 6, 7, 8]));
  const s = defaultCollate([a, b]);
  assert.equal(s.dtype, 'float32');
  assert.deepEqual(s.shape, [2, 2, 2]);
  assert.deepEqual([...s.data], [1, 2, 3, 4, 5, 6, 7, 8]);
  // a fresh buffer, not a view of a sample: safe to transfer
  assert.notEqual(s.data.buffer, a.data.buffer);
  assert.equal(s.data.byteOffset, 0);
  assert.equal(s.data.byteLength, s.data.buffer.byteLength);
});

test('tuples collate position-wise, objects key-wise, strings and others stay lists', () => {
  const batch = defaultCollate([
    { image: new Float32Array([1, 2]), label: 0n, name: 'a', extra: null, pair: [1, 'x'] as [number, string] },
    { image: new Float32Array([3, 4]), label: 1n, name: 'b', extra: null, pair: [2, 'y'] as [number, string] },
  ]);
  assert.deepEqual(batch.image, { dtype: 'float32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) });
  assert.deepEqual(batch.label.data, new BigInt64Array([0n, 1n]));
  assert.deepEqual(batch.name, ['a', 'b']);
  assert.deepEqual(batch.extra, [null, null]);
  assert.deepEqual(batch.pair[0], { dtype: 'float64', shape: [2], data: new Float64Array([1, 2]) });
  assert.deepEqual(batch.pair[1], ['x', 'y']);
});

test('a tensor shape mismatch names the field and the sample', () => {
  const ok = tensor('float32', [3, 32, 32]);
  const bad = tensor('float32', [3, 32, 31]);
  assert.throws(
    () => defaultCollate([{ image: ok }, { image: ok }, { image: ok }, { image: bad }]),
    (e: unknown) =>
      e instanceof ShapeMismatchError &&
      e.message === 'field "image": sample 3 has shape [3,32,31], expected [3,32,32] (from sample 0)',
  );
});

test('mismatches in nested fields give the field path', () => {
  assert.throws(
    () => defaultCollate([[{ label: new Uint8Array(2) }], [{ label: new Uint8Array(3) }]]),
    /field "0\.label": sample 1 has length 3, expected 2/,
  );
  assert.throws(() => defaultCollate([{ a: 1 }, { a: 'x' }]), /field "a": sample 1 is a string, expected a number/);
  assert.throws(() => defaultCollate([{ a: 1, b: 2 }, { a: 1 }]), /field "b": missing in sample 1/);
  assert.throws(() => defaultCollate([{ a: 1 }, { a: 1, c: 2 }]), /field "c": present in sample 1 but not in sample 0/);
  assert.throws(() => defaultCollate([[1, 2], [1]]), /sample 1 has 1 elements, expected 2/);
  assert.throws(
    () => defaultCollate([new Float32Array(2), new Float64Array(2)]),
    /sample 1 is a Float64Array, expected a Float32Array/,
  );
  assert.throws(
    () => defaultCollate([{ t: tensor('int32', [2]) }, { t: tensor('float32', [2]) }]),
    /field "t": sample 1 has dtype float32, expected int32/,
  );
  assert.throws(() => defaultCollate([]), ArgumentError);
});

test('property: collating rows of any dtype and shape gives back the rows', () => {
  const dtypes = ['float32', 'float64', 'int32', 'uint8', 'int16'] as const;
  fc.assert(
    fc.property(
      fc.constantFrom(...dtypes),
      fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
      fc.integer({ min: 1, max: 6 }),
      fc.nat(),
      (dtype, shape, batch, seed) => {
        const rows: Tensor[] = [];
        for (let b = 0; b < batch; b++) {
          const t = tensor(dtype, shape);
          for (let k = 0; k < t.data.length; k++) (t.data as Uint8Array)[k] = (seed + b * 31 + k) % 100;
          rows.push(t);
        }
        const out = defaultCollate(rows);
        assert.deepEqual(out.shape, [batch, ...shape]);
        const size = rows[0]!.data.length;
        rows.forEach((r, b) => assert.deepEqual([...out.data.subarray(b * size, (b + 1) * size)], [...r.data]));
      },
    ),
    { numRuns: 200 },
  );
});
