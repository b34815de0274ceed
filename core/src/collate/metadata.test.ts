import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collateWithMetadata } from './metadata.ts';
import { padSequenceCollate } from './pad-sequence.ts';
import { buffersOf, transferListOf } from './transfer.ts';
import { ArgumentError, ShapeMismatchError } from '../errors.ts';
import { tensor } from '../tensor.ts';

test('[data, metadata] pairs: data collated, metadata gathered per key', async () => {
  const img = (v: number) => tensor('uint8', [2], new Uint8Array([v, v]));
  const out = await collateWithMetadata()([
    [img(1), { path: 'a.jpg', size: [480, 640] }],
    [img(2), { path: 'b.jpg', size: [512, 512] }],
  ]);
  assert.deepEqual(out.data, { dtype: 'uint8', shape: [2, 2], data: new Uint8Array([1, 1, 2, 2]) });
  assert.deepEqual(out.metadata, { path: ['a.jpg', 'b.jpg'], size: [[480, 640], [512, 512]] });
  assert.throws(() => collateWithMetadata()([[img(1), { path: 'a' }], [img(2), {}]]), /field "1\.path": missing in sample 1/);
  assert.throws(() => collateWithMetadata()([img(1)]), ShapeMismatchError);
});

test('object samples with metadataKeys, and a custom inner collate', async () => {
  const collate = collateWithMetadata({ metadataKeys: ['id'], collate: padSequenceCollate({ fields: ['tokens'] }) });
  const out = await collate([
    { id: 'x1', tokens: new Int32Array([1, 2]) },
    { id: 'x2', tokens: new Int32Array([3]) },
  ]);
  assert.deepEqual(out.metadata, { id: ['x1', 'x2'] });
  const data = out.data as { tokens: { shape: number[] }; lengths: { data: Int32Array } };
  assert.deepEqual(data.tokens.shape, [2, 2]);
  assert.deepEqual([...data.lengths.data], [2, 1]);
  assert.throws(() => collate([{ tokens: new Int32Array(1) }]), /field "id": missing in sample 0/);
  assert.throws(() => collateWithMetadata({ metadataKeys: 'id' as never }), ArgumentError);
});

test('async inner collate is awaited', async () => {
  const collate = collateWithMetadata({ metadataKeys: ['id'], collate: async (xs) => xs.length });
  assert.deepEqual(await collate([{ id: 1, v: 0 }, { id: 2, v: 0 }]), { data: 2, metadata: { id: [1, 2] } });
});

test('transferListOf takes whole buffers once and never partial views', () => {
  const whole = new Float32Array(4);
  const big = new Uint8Array(16);
  const view = big.subarray(4, 8);
  const batch = { a: { dtype: 'float32', shape: [4], data: whole }, b: [view, whole], c: 'text', d: new Float32Array(0) };
  assert.deepEqual(transferListOf(batch), [whole.buffer]);
  const shared = new Int32Array(new SharedArrayBuffer(8));
  assert.deepEqual(transferListOf([shared]), []);
  assert.deepEqual(transferListOf(batch, buffersOf([{ x: whole }])), [], 'excluded: it belongs to a sample');
  assert.deepEqual([...buffersOf(batch)].length, 3);
});
