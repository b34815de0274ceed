/**
 * The default collate: turns a list of samples into one batch, field by field, the way PyTorch's
 * `default_collate` does, but with typed-array tensors and errors that name the field and the
 * sample that does not fit.
 *
 * Every tensor of a batch owns a fresh ArrayBuffer, so a batch built in a worker thread can be
 * transferred to the main thread without a copy (see `transferListOf`).
 */
import { ArgumentError, ShapeMismatchError } from '../errors.ts';
import type { Tensor, TypedArray } from '../tensor.ts';
import { dtypeOf, isTensor, isTypedArray, numel, typedArrayConstructor } from '../tensor.ts';

/** A collate function: samples of one batch → the batch. May be async (e.g. image decode). */
export type CollateFn<T = unknown, B = unknown> = (samples: readonly T[]) => B | Promise<B>;

/**
 * The batch type `defaultCollate` produces from samples of type `T`: numbers, bigints, booleans,
 * typed arrays and tensors become a `Tensor`, strings a `string[]`, arrays and objects are
 * collated position- and key-wise, anything else is kept as a list.
 */
export type Collated<T> = unknown extends T
  ? unknown
  : T extends number | bigint | boolean | TypedArray | Tensor
  ? Tensor
  : T extends string
    ? string[]
    : T extends readonly unknown[]
      ? { -readonly [K in keyof T]: Collated<T[K]> }
      : T extends (...args: never[]) => unknown
        ? T[]
        : T extends object
          ? { -readonly [K in keyof T]: Collated<T[K]> }
          : T[];

type Kind = 'number' | 'bigint' | 'boolean' | 'string' | 'typed' | 'tensor' | 'array' | 'object' | 'other';

function kindOf(value: unknown): Kind {
  switch (typeof value) {
    case 'number':
      return 'number';
    case 'bigint':
      return 'bigint';
    case 'boolean':
      return 'boolean';
    case 'string':
      return 'string';
    case 'object': {
      if (value === null) return 'other';
      if (isTypedArray(value)) return 'typed';
      if (Array.isArray(value)) return 'array';
      if (isTensor(value)) return 'tensor';
      const proto: unknown = Object.getPrototypeOf(value);
      return proto === Object.prototype || proto === null ? 'object' : 'other';
    }
    default:
      return 'other';
  }
}

function describe(value: unknown): string {
  const kind = kindOf(value);
  if (kind === 'typed') return `a ${(value as TypedArray).constructor.name}`;
  if (kind === 'tensor') return `a ${(value as Tensor).dtype} tensor`;
  if (kind === 'other') return value === null ? 'null' : value === undefined ? 'undefined' : `a ${typeof value}`;
  return kind === 'array' || kind === 'object' ? `an ${kind}` : `a ${kind}`;
}

/** `field "image": ` or nothing at the root, so every message reads the same way. */
function fieldPrefix(path: string): string {
  return path === '' ? '' : `field "${path}": `;
}

/** Joins a path: `image`, `0.label`, `meta.size`. */
function childPath(path: string, key: string | number): string {
  return path === '' ? String(key) : `${path}.${key}`;
}

function shapeString(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Collates samples into a batch of B = samples.length:
 * - numbers → float64 tensor `[B]`. Always float64, whatever the values: a JS number is a
 *   float64, so nothing is lost, and a batch's dtype never depends on whether its values happen
 *   to be whole (a feature column that is `[0, 1, 2]` in one batch and `[0.5, …]` in the next
 *   would otherwise change dtype mid-epoch). Give integer labels as bigint (→ int64, what
 *   PyTorch's cross-entropy wants) or as a typed array / tensor to choose the dtype yourself.
 * - bigints → int64 tensor `[B]`; booleans → bool tensor `[B]` (a Uint8Array of 0/1).
 * - typed arrays of one class and length L → tensor `[B, L]` of their dtype.
 * - tensors of one dtype and shape S → stacked tensor `[B, ...S]`.
 * - arrays (tuples) of one length → an array collated position-wise.
 * - plain objects with the same keys → an object collated key-wise.
 * - strings → `string[]`; anything else (null, class instances, …) → kept as a list.
 *
 * A sample that does not fit the first one throws ShapeMismatchError naming the field path and
 * the sample, e.g. `field "image": sample 3 has shape [3,32,31], expected [3,32,32] (from sample 0)`.
 *
 * @example
 * defaultCollate([{ x: new Float32Array([1, 2]), y: 0n }, { x: new Float32Array([3, 4]), y: 1n }])
 * // → { x: { dtype: 'float32', shape: [2, 2], data: Float32Array [1, 2, 3, 4] },
 * //     y: { dtype: 'int64', shape: [2], data: BigInt64Array [0n, 1n] } }
 */
export function defaultCollate<T>(samples: readonly T[]): Collated<T> {
  if (!Array.isArray(samples) || samples.length === 0) {
    throw new ArgumentError('samples', `must be a non-empty array, got ${Array.isArray(samples) ? '[]' : String(samples)}`);
  }
  return collateAt(samples, '') as Collated<T>;
}

function collateAt(samples: readonly unknown[], path: string): unknown {
  const first = samples[0];
  const kind = kindOf(first);
  for (let i = 1; i < samples.length; i++) {
    const k = kindOf(samples[i]);
    if (k !== kind) {
      throw new ShapeMismatchError(
        `${fieldPrefix(path)}sample ${i} is ${describe(samples[i])}, expected ${describe(first)} (from sample 0)`,
      );
    }
  }
  switch (kind) {
    case 'number':
      return { dtype: 'float64', shape: [samples.length], data: Float64Array.from(samples as number[]) } satisfies Tensor;
    case 'bigint': {
      const data = new BigInt64Array(samples.length);
      samples.forEach((v, i) => {
        const b = v as bigint;
        if (b < INT64_MIN || b > INT64_MAX) {
          throw new ArgumentError(childPath(`samples[${i}]`, path), `${b}n does not fit in int64`);
        }
        data[i] = b;
      });
      return { dtype: 'int64', shape: [samples.length], data } satisfies Tensor;
    }
    case 'boolean':
      return {
        dtype: 'bool',
        shape: [samples.length],
        data: Uint8Array.from(samples as boolean[], (b) => (b ? 1 : 0)),
      } satisfies Tensor;
    case 'string':
      return [...(samples as string[])];
    case 'typed':
      return stackTypedArrays(samples as TypedArray[], path);
    case 'tensor':
      return stackTensors(samples as Tensor[], path);
    case 'array':
      return collateTuples(samples as unknown[][], path);
    case 'object':
      return collateObjects(samples as Record<string, unknown>[], path);
    default:
      return [...samples];
  }
}

function stackTypedArrays(samples: readonly TypedArray[], path: string): Tensor {
  const first = samples[0]!;
  const ctor = first.constructor;
  const len = first.length;
  for (let i = 1; i < samples.length; i++) {
    const s = samples[i]!;
    if (s.constructor !== ctor) {
      throw new ShapeMismatchError(
        `${fieldPrefix(path)}sample ${i} is a ${s.constructor.name}, expected a ${ctor.name} (from sample 0)`,
      );
    }
    if (s.length !== len) {
      throw new ShapeMismatchError(
        `${fieldPrefix(path)}sample ${i} has length ${s.length}, expected ${len} (from sample 0)`,
      );
    }
  }
  const dtype = dtypeOf(first);
  const out = new (typedArrayConstructor(dtype))(samples.length * len);
  samples.forEach((s, i) => out.set(s as never, i * len));
  return { dtype, shape: [samples.length, len], data: out };
}

function stackTensors(samples: readonly Tensor[], path: string): Tensor {
  const first = samples[0]!;
  for (let i = 1; i < samples.length; i++) {
    const s = samples[i]!;
    if (s.dtype !== first.dtype) {
      throw new ShapeMismatchError(
        `${fieldPrefix(path)}sample ${i} has dtype ${s.dtype}, expected ${first.dtype} (from sample 0)`,
      );
    }
    if (s.shape.length !== first.shape.length || s.shape.some((d, j) => d !== first.shape[j])) {
      throw new ShapeMismatchError(
        `${fieldPrefix(path)}sample ${i} has shape ${shapeString(s.shape)}, expected ${shapeString(first.shape)} (from sample 0)`,
      );
    }
  }
  const size = numel(first.shape);
  const out = new (typedArrayConstructor(first.dtype))(samples.length * size);
  samples.forEach((s, i) => {
    if (s.data.length !== size) {
      throw new ShapeMismatchError(
        `${fieldPrefix(path)}sample ${i} has ${s.data.length} elements but shape ${shapeString(s.shape)} needs ${size}`,
      );
    }
    out.set(s.data as never, i * size);
  });
  return { dtype: first.dtype, shape: [samples.length, ...first.shape], data: out };
}

function collateTuples(samples: readonly unknown[][], path: string): unknown[] {
  const len = samples[0]!.length;
  for (let i = 1; i < samples.length; i++) {
    if (samples[i]!.length !== len) {
      throw new ShapeMismatchError(
        `${fieldPrefix(path)}sample ${i} has ${samples[i]!.length} elements, expected ${len} (from sample 0)`,
      );
    }
  }
  const out: unknown[] = [];
  for (let j = 0; j < len; j++) out.push(collateAt(samples.map((s) => s[j]), childPath(path, j)));
  return out;
}

function collateObjects(samples: readonly Record<string, unknown>[], path: string): Record<string, unknown> {
  const keys = Object.keys(samples[0]!);
  for (let i = 1; i < samples.length; i++) {
    const s = samples[i]!;
    for (const key of keys) {
      if (!Object.hasOwn(s, key)) {
        throw new ShapeMismatchError(`field "${childPath(path, key)}": missing in sample ${i} (present in sample 0)`);
      }
    }
    if (Object.keys(s).length !== keys.length) {
      const extra = Object.keys(s).find((k) => !keys.includes(k))!;
      throw new ShapeMismatchError(`field "${childPath(path, extra)}": present in sample ${i} but not in sample 0`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const key of keys) out[key] = collateAt(samples.map((s) => s[key]), childPath(path, key));
  return out;
}
