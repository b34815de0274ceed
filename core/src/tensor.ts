/**
 * Tensors as plain data: a dtype, a shape and a typed array in row-major order. This is the
 * currency of datasets, collate and the batch wire format; frameworks (tfjs, PyTorch) wrap it
 * without copying.
 */
import { ArgumentError, ShapeMismatchError } from './errors.ts';

export const DType = {
  float64: 'float64',
  float32: 'float32',
  float16: 'float16',
  bfloat16: 'bfloat16',
  int64: 'int64',
  int32: 'int32',
  int16: 'int16',
  int8: 'int8',
  uint64: 'uint64',
  uint32: 'uint32',
  uint16: 'uint16',
  uint8: 'uint8',
  bool: 'bool',
} as const;
export type DType = (typeof DType)[keyof typeof DType];

export type TypedArray =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array
  | Uint16Array
  | Uint8Array;

/** A dense row-major tensor. float16 and bfloat16 hold raw bits in a Uint16Array; bool in a Uint8Array (0/1). */
export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TypedArray;
}

type TypedArrayConstructor = {
  new (length: number): TypedArray;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray;
  readonly BYTES_PER_ELEMENT: number;
};

const CONSTRUCTORS: Record<DType, TypedArrayConstructor> = {
  float64: Float64Array,
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint64: BigUint64Array,
  uint32: Uint32Array,
  uint16: Uint16Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.hasOwn(CONSTRUCTORS, value);
}

/** The typed array class that holds a dtype's elements. */
export function typedArrayConstructor(dtype: DType): TypedArrayConstructor {
  const ctor = CONSTRUCTORS[dtype];
  if (ctor === undefined) throw new ArgumentError('dtype', `unknown dtype ${JSON.stringify(dtype)}`);
  return ctor;
}

export function bytesPerElement(dtype: DType): number {
  return typedArrayConstructor(dtype).BYTES_PER_ELEMENT;
}

/** The natural dtype of a typed array (Uint16Array → uint16, Uint8Array → uint8). */
export function dtypeOf(data: TypedArray): DType {
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof BigUint64Array) return 'uint64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint32Array) return 'uint32';
  if (data instanceof Uint16Array) return 'uint16';
  if (data instanceof Uint8Array) return 'uint8';
  throw new ArgumentError('data', 'is not a supported typed array');
}

export function isTypedArray(value: unknown): value is TypedArray {
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}

export function isTensor(value: unknown): value is Tensor {
  if (typeof value !== 'object' || value === null) return false;
  const t = value as Partial<Tensor>;
  return isDType(t.dtype) && Array.isArray(t.shape) && isTypedArray(t.data);
}

/** Number of elements of a shape (1 for a scalar shape `[]`). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkShape(shape: readonly number[]): void {
  if (!Array.isArray(shape)) throw new ArgumentError('shape', 'must be an array of integers');
  shape.forEach((d, i) => {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new ArgumentError(`shape[${i}]`, `must be an integer ≥ 0, got ${String(d)}`);
    }
  });
}

/**
 * Makes a tensor, checking that dtype, shape and data agree. Without data, allocates zeros.
 * @example tensor('float32', [2, 3], new Float32Array(6))
 */
export function tensor(dtype: DType, shape: readonly number[], data?: TypedArray): Tensor {
  const ctor = typedArrayConstructor(dtype);
  checkShape(shape);
  const n = numel(shape);
  const values = data ?? new ctor(n);
  if (!(values instanceof ctor)) {
    throw new ArgumentError('data', `dtype ${dtype} needs a ${ctor.name}, got ${values.constructor.name}`);
  }
  if (values.length !== n) {
    throw new ShapeMismatchError(`data has ${values.length} elements but shape [${shape.join(', ')}] needs ${n}`);
  }
  return { dtype, shape: [...shape], data: values };
}

/** Row `index` of the first dimension, as a view (no copy). */
export function row(t: Tensor, index: number): Tensor {
  const [first, ...rest] = t.shape;
  if (first === undefined) throw new ArgumentError('tensor', 'a scalar has no rows');
  if (!Number.isInteger(index) || index < 0 || index >= first) {
    throw new ArgumentError('index', `${index} is out of range for first dimension ${first}`);
  }
  const size = numel(rest);
  return { dtype: t.dtype, shape: rest, data: t.data.subarray(index * size, (index + 1) * size) };
}
