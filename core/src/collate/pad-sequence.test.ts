import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { padSequenceCollate } from './pad-sequence.ts';
import { ArgumentError, ShapeMismatchError } from '../errors.ts';
import type { Tensor } from '../tensor.ts';
import { tensor } from '../tensor.ts';

test('pads to the longest sequence on the right with mask and lengths', () => {
  const collate = padSequenceCollate({ fields: ['tokens'], paddingValue: -1 });
  const out = collate([
    { tokens: new Int32Array([5, 6, 7]), label: 1n },
    { tokens: new Int32Array([8]), label: 0n },
  ]);
  assert.deepEqual(out.tokens, { dtype: 'int32', shape: [2, 3], data: new Int32Array([5, 6, 7, 8, -1, -1]) });
  assert.deepEqual(out.attentionMask, { dtype: 'uint8', shape: [2, 3], data: new Uint8Array([1, 1, 1, 1, 0, 0]) });
  assert.deepEqual(out.lengths, { dtype: 'int32', shape: [2], data: new Int32Array([3, 1]) });
  assert.deepEqual(out.label, { dtype: 'int64', shape: [2], data: new BigInt64Array([1n, 0n]) });
});

test('left padding, truncation and fixed length', () => {
  const left = padSequenceCollate({ side: 'left' })([[1, 2], [3]]);
  assert.deepEqual(left.sequence, { dtype: 'float64', shape: [2, 2], data: new Float64Array([1, 2, 0, 3]) });
  assert.deepEqual([...(left.attentionMask.data as Uint8Array)], [1, 1, 0, 1]);

  const cut = padSequenceCollate({ maxLength: 2, dtype: 'int64' })([[1, 2, 3, 4], [5]]);
  assert.deepEqual(cut.sequence, { dtype: 'int64', shape: [2, 2], data: new BigInt64Array([1n, 2n, 5n, 0n]) });
  assert.deepEqual([...(cut.lengths.data as Int32Array)], [2, 1]);

  const fixed = padSequenceCollate({ maxLength: 4, padToMaxLength: true })([new Uint8Array([9])]);
  assert.deepEqual(fixed.sequence, { dtype: 'uint8', shape: [1, 4], data: new Uint8Array([9, 0, 0, 0]) });
  assert.deepEqual([...(fixed.attentionMask.data as Uint8Array)], [1, 0, 0, 0]);
});

test('tensor sequences pad along their first dimension', () => {
  const a = tensor('float32', [2, 3], new Float32Array([1, 2, 3, 4, 5, 6]));
  const b = tensor('float32', [1, 3], new Float32Array([7, 8, 9]));
  const out = padSequenceCollate({ fields: ['frames'] })([{ frames: a }, { frames: b }]);
  assert.deepEqual(out.frames, {
    dtype: 'float32',
    shape: [2, 2, 3],
    data: new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0]),
  });
  assert.throws(
    () => padSequenceCollate({ fields: ['frames'] })([{ frames: a }, { frames: tensor('float32', [1, 2]) }]),
    /field "frames": sample 1 has shape \[T,2\], expected \[T,3\]/,
  );
});

test('several fields share one mask and must agree in length', () => {
  const collate = padSequenceCollate({ fields: ['ids', 'types'] });
  const out = collate([
    { ids: new Int32Array([1, 2]), types: new Int8Array([0, 1]) },
    { ids: new Int32Array([3]), types: new Int8Array([0]) },
  ]);
  assert.deepEqual(out.types, { dtype: 'int8', shape: [2, 2], data: new Int8Array([0, 1, 0, 0]) });
  assert.throws(
    () => collate([{ ids: new Int32Array([1, 2]), types: new Int8Array([0]) }]),
    (e: unknown) => e instanceof ShapeMismatchError && /field "types": sample 0 has length 1/.test(e.message),
  );
  assert.throws(() => collate([{ ids: new Int32Array(1) }]), /field "types": missing in sample 0/);
});

test('bad options are rejected with the argument named', () => {
  assert.throws(() => padSequenceCollate({ maxLength: 0 }), (e: unknown) => e instanceof ArgumentError && e.argument === 'maxLength');
  assert.throws(() => padSequenceCollate({ padToMaxLength: true }), (e: unknown) => e instanceof ArgumentError && e.argument === 'padToMaxLength');
  assert.throws(() => padSequenceCollate({ side: 'middle' as never }), (e: unknown) => e instanceof ArgumentError && e.argument === 'side');
  assert.throws(() => padSequenceCollate({ fields: [] }), (e: unknown) => e instanceof ArgumentError && e.argument === 'fields');
});

test('property: mask sums equal lengths and unmasked values are the sequence', () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.integer({ min: 1, max: 1000 }), { maxLength: 12 }), { minLength: 1, maxLength: 8 }),
      fc.constantFrom('left' as const, 'right' as const),
      fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined }),
      (seqs, side, maxLength) => {
        const out = padSequenceCollate({ side, maxLength, dtype: 'int32' })(seqs.map((s) => Int32Array.from(s)));
        const padded = out.sequence as Tensor;
        const T = padded.shape[1]!;
        const data = padded.data as Int32Array;
        const mask = out.attentionMask.data as Uint8Array;
        seqs.forEach((s, i) => {
          const len = Math.min(s.length, maxLength ?? Infinity);
          assert.equal(out.lengths.data[i], len);
          const row = [...data.subarray(i * T, (i + 1) * T)].filter((_, t) => mask[i * T + t] === 1);
          assert.deepEqual(row, s.slice(0, len));
          assert.equal(mask.subarray(i * T, (i + 1) * T).reduce((a, b) => a + b, 0), len);
        });
      },
    ),
    { numRuns: 200 },
  );
});
