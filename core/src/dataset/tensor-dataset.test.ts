import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArgumentError, IndexOutOfRangeError, ShapeMismatchError } from '../errors.ts';
import { tensor } from '../tensor.ts';
import { TensorDataset } from './tensor-dataset.ts';

const features = tensor('float32', [4, 3], Float32Array.from({ length: 12 }, (_, k) => k));
const labels = tensor('int64', [4], BigInt64Array.from([10n, 11n, 12n, 13n]));

test('TensorDataset yields the i-th row of every tensor', () => {
  const ds = new TensorDataset(features, labels);
  assert.equal(ds.length, 4);
  const [x, y] = ds.get(2);
  assert.deepEqual(x!.shape, [3]);
  assert.deepEqual([...x!.data], [6, 7, 8]);
  assert.equal(x!.dtype, 'float32');
  assert.deepEqual(y!.shape, []);
  assert.deepEqual([...y!.data], [12n]);
  const [last] = ds.get(-1);
  assert.deepEqual([...last!.data], [9, 10, 11]);
});

test('TensorDataset rows are views into the tensors, not copies', () => {
  const t = tensor('int32', [2, 2], Int32Array.from([1, 2, 3, 4]));
  const ds = new TensorDataset(t);
  const [r] = ds.get(1);
  assert.equal(r!.data.buffer, t.data.buffer);
  t.data[2] = 99;
  assert.equal(r!.data[0], 99);
});

test('TensorDataset refuses out-of-range indices', () => {
  const ds = new TensorDataset(features);
  assert.throws(() => ds.get(4), IndexOutOfRangeError);
  assert.throws(() => ds.get(-5), IndexOutOfRangeError);
});

test('TensorDataset names the tensor whose first dimension disagrees', () => {
  const short = tensor('float32', [3, 2]);
  assert.throws(
    () => new TensorDataset(features, labels, short),
    (e: unknown) => e instanceof ShapeMismatchError && /tensors\[2\] has first dimension 3 but tensors\[0\] has 4/.test(e.message),
  );
});

test('TensorDataset refuses no tensors, non-tensors, scalars and inconsistent tensors', () => {
  assert.throws(() => new TensorDataset(), (e: unknown) => e instanceof ArgumentError && e.argument === 'tensors');
  assert.throws(
    () => new TensorDataset(features, { dtype: 'float32' } as never),
    (e: unknown) => e instanceof ArgumentError && e.argument === 'tensors[1]',
  );
  assert.throws(
    () => new TensorDataset(tensor('float32', [])),
    (e: unknown) => e instanceof ArgumentError && e.argument === 'tensors[0]',
  );
  const broken = { dtype: 'float32' as const, shape: [2, 2], data: new Float32Array(3) };
  assert.throws(() => new TensorDataset(broken), (e: unknown) => e instanceof ShapeMismatchError && /tensors\[0\]/.test(e.message));
});
