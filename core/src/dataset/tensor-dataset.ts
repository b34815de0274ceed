/**
 * TensorDataset: samples are the rows of one or more tensors that share their first dimension
 * (features, labels, ...). Rows are views into the tensors' typed arrays, never copies.
 */
import { ArgumentError, ShapeMismatchError } from '../errors.ts';
import { isTensor, numel, row } from '../tensor.ts';
import type { Tensor } from '../tensor.ts';
import { normalizeIndex } from '../validate.ts';
import type { Dataset } from './dataset.ts';

/**
 * A dataset whose sample `i` is `[t0[i], t1[i], ...]`: the i-th row of every tensor.
 *
 * @example
 * const x = tensor('float32', [100, 8]);
 * const y = tensor('int64', [100]);
 * const ds = new TensorDataset(x, y);
 * const [features, label] = ds.get(-1); // shapes [8] and []
 */
export class TensorDataset implements Dataset<Tensor[]> {
  readonly tensors: readonly Tensor[];
  readonly length: number;

  constructor(...tensors: Tensor[]) {
    if (tensors.length === 0) throw new ArgumentError('tensors', 'needs at least one tensor');
    tensors.forEach((t, k) => {
      if (!isTensor(t)) throw new ArgumentError(`tensors[${k}]`, 'must be a tensor {dtype, shape, data}');
      if (t.shape.length === 0) throw new ArgumentError(`tensors[${k}]`, 'is a scalar (shape []) and has no rows');
      if (t.data.length !== numel(t.shape)) {
        throw new ShapeMismatchError(
          `tensors[${k}] has ${t.data.length} elements but its shape [${t.shape.join(', ')}] needs ${numel(t.shape)}`,
        );
      }
    });
    const first = tensors[0]!.shape[0]!;
    tensors.forEach((t, k) => {
      if (t.shape[0] !== first) {
        throw new ShapeMismatchError(
          `tensors[${k}] has first dimension ${t.shape[0]} but tensors[0] has ${first}; all tensors must have the same number of rows`,
        );
      }
    });
    this.tensors = [...tensors];
    this.length = first;
  }

  get(index: number): Tensor[] {
    const i = normalizeIndex(index, this.length);
    return this.tensors.map((t) => row(t, i));
  }
}
