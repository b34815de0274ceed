/**
 * A batch's core tensors as `@tensorflow/tfjs` tensors. tfjs has three numeric dtypes (float32,
 * int32, bool), so every wire dtype maps onto one of them: exactly where it can (small integers,
 * half floats), after a range check where values might not fit (64-bit and uint32 integers), and
 * float64 only when the caller accepts the rounding. float32, int32 and bool data are handed to
 * tfjs as they are: on the CPU backend the tfjs tensor is a view of the batch's bytes, no copy.
 */
import { ArgumentError, type DType, isDType, type Tensor, type TypedArray, typedArrayConstructor } from '@shardline/core';
import * as tfjs from '@tensorflow/tfjs';
import type { TrainerBatch } from './batches.ts';

/** The tfjs dtypes a batch's tensors become. */
export type TfjsDType = 'float32' | 'int32' | 'bool';

/**
 * The tfjs dtype of each core dtype. tfjs has no 8-, 16- or 64-bit types: small integers widen
 * to int32 exactly; int64, uint64 and uint32 become int32 only when every value fits; float16
 * and bfloat16 widen to float32 exactly; float64 rounds to float32 (see {@link ToTfjsOptions.allowLossy}).
 */
export const TFJS_DTYPE = {
  float64: 'float32',
  float32: 'float32',
  float16: 'float32',
  bfloat16: 'float32',
  int64: 'int32',
  int32: 'int32',
  int16: 'int32',
  int8: 'int32',
  uint64: 'int32',
  uint32: 'int32',
  uint16: 'int32',
  uint8: 'int32',
  bool: 'bool',
} as const satisfies Record<DType, TfjsDType>;

/** What toTfjs needs of a tfjs module: `@tensorflow/tfjs`, `@tensorflow/tfjs-node` or `@tensorflow/tfjs-node-gpu`. */
export type TfjsModule = Pick<typeof tfjs, 'tensor'>;

/** Options of {@link toTfjs}. */
export interface ToTfjsOptions {
  /**
   * The tfjs module that makes the tensors (default `@tensorflow/tfjs`, on whatever backend is
   * active). On GPU nodes pass `@tensorflow/tfjs-node-gpu`'s module, so the tensors belong to
   * its engine even when it carries its own copy of tfjs-core.
   */
  readonly tf?: TfjsModule;
  /**
   * Accept float64 tensors, rounded to the nearest float32 (default false: a float64 tensor is
   * an ArgumentError, because silently dropping 29 bits of mantissa is a choice the trainer
   * should make; sending float32 from the loader halves the bytes on the wire as well). Even
   * with this, a finite value beyond float32's range is an error rather than an Infinity.
   */
  readonly allowLossy?: boolean;
}

const INT32_MIN = -0x8000_0000;
const INT32_MAX = 0x7fff_ffff;
const FLOAT32_MAX = 3.4028234663852886e38;

/** The values and shape tfjs gets for one tensor. */
interface Converted {
  readonly name: string;
  readonly dtype: TfjsDType;
  readonly shape: number[];
  readonly values: Float32Array | Int32Array | Uint8Array;
}

let halfTable: Float32Array | undefined;

/** Every float16 bit pattern as a float32 (exact: float32 holds every float16 value), built on first use. */
function float16Table(): Float32Array {
  if (halfTable !== undefined) return halfTable;
  const table = new Float32Array(0x10000);
  for (let bits = 0; bits < 0x10000; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const fraction = bits & 0x3ff;
    if (exponent === 0) table[bits] = sign * fraction * 2 ** -24;
    else if (exponent === 0x1f) table[bits] = fraction === 0 ? sign * Infinity : Number.NaN;
    else table[bits] = sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }
  halfTable = table;
  return table;
}

function where(name: string): string {
  return `tensors[${JSON.stringify(name)}]`;
}

function show(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  return typeof value === 'object' ? 'an object' : typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** Checks one tensor of the caller's record. */
function checkTensor(name: string, t: unknown): void {
  if (typeof t !== 'object' || t === null) throw new ArgumentError(where(name), `must be a tensor { dtype, shape, data }, got ${show(t)}`);
  const { dtype, shape, data } = t as Partial<Tensor>;
  if (!isDType(dtype)) throw new ArgumentError(`${where(name)}.dtype`, `unknown dtype ${show(dtype)}`);
  const ctor = typedArrayConstructor(dtype);
  if (!(data instanceof ctor)) throw new ArgumentError(`${where(name)}.data`, `dtype ${dtype} needs a ${ctor.name}, got ${show(data)}`);
  if (!Array.isArray(shape)) throw new ArgumentError(`${where(name)}.shape`, `must be an array of integers, got ${show(shape)}`);
  let count = 1;
  shape.forEach((d: unknown, i) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new ArgumentError(`${where(name)}.shape[${i}]`, `must be an integer ≥ 0, got ${show(d)}`);
    }
    count *= d;
  });
  if (data.length !== count) {
    throw new ArgumentError(`${where(name)}.data`, `has ${data.length} elements but shape [${shape.join(', ')}] needs ${count}`);
  }
  if (dtype === 'bool') {
    const flags = data as Uint8Array;
    for (let i = 0; i < flags.length; i++) {
      if (flags[i]! > 1) throw new ArgumentError(`${where(name)}.data[${i}]`, `a bool must be 0 or 1, got ${flags[i]}`);
    }
  }
}

function outOfInt32(name: string, dtype: DType, index: number, value: number | bigint): never {
  throw new ArgumentError(
    where(name),
    `${dtype} element ${index} is ${String(value)}, outside tfjs int32's range [${INT32_MIN}, ${INT32_MAX}]; send int32 from the loader or scale the values`,
  );
}

function toInt32Checked(name: string, dtype: DType, data: BigInt64Array | BigUint64Array | Uint32Array): Int32Array {
  const out = new Int32Array(data.length);
  if (data instanceof Uint32Array) {
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (v > INT32_MAX) outOfInt32(name, dtype, i, v);
      out[i] = v;
    }
    return out;
  }
  const [min, max] = [BigInt(INT32_MIN), BigInt(INT32_MAX)];
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < min || v > max) outOfInt32(name, dtype, i, v);
    out[i] = Number(v);
  }
  return out;
}

function float64ToFloat32(name: string, data: Float64Array, allowLossy: boolean): Float32Array {
  if (!allowLossy) {
    throw new ArgumentError(
      where(name),
      'is float64, which tfjs holds only as float32 (rounded); pass { allowLossy: true } to accept the rounding, or send float32 from the loader',
    );
  }
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (Number.isFinite(v) && !Number.isFinite(Math.fround(v))) {
      throw new ArgumentError(where(name), `float64 element ${i} is ${v}, beyond float32's range (±${FLOAT32_MAX}): it would become Infinity`);
    }
    out[i] = v;
  }
  return out;
}

function convert(name: string, t: Tensor, allowLossy: boolean): Converted {
  const shape = [...t.shape];
  const data: TypedArray = t.data;
  switch (t.dtype) {
    case 'float32':
    case 'int32':
    case 'bool':
      // Already what tfjs stores: handed over as is (zero-copy on the CPU backend).
      return { name, dtype: t.dtype, shape, values: data as Float32Array | Int32Array | Uint8Array };
    case 'int8':
    case 'uint8':
    case 'int16':
    case 'uint16':
      return { name, dtype: 'int32', shape, values: new Int32Array(data as Int8Array | Uint8Array | Int16Array | Uint16Array) };
    case 'uint32':
    case 'int64':
    case 'uint64':
      return { name, dtype: 'int32', shape, values: toInt32Checked(name, t.dtype, data as Uint32Array | BigInt64Array | BigUint64Array) };
    case 'float16': {
      const table = float16Table();
      const bits = data as Uint16Array;
      const out = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
      return { name, dtype: 'float32', shape, values: out };
    }
    case 'bfloat16': {
      // bfloat16 is the high half of a float32: shifting the bits up is exact.
      const bits = data as Uint16Array;
      const out = new Uint32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = bits[i]! << 16;
      return { name, dtype: 'float32', shape, values: new Float32Array(out.buffer) };
    }
    case 'float64':
      return { name, dtype: 'float32', shape, values: float64ToFloat32(name, data as Float64Array, allowLossy) };
  }
}

function isTrainerBatch(value: object): value is TrainerBatch {
  const v = value as Partial<TrainerBatch>;
  return v.type === 'batch' && typeof v.tensors === 'object' && v.tensors !== null;
}

/**
 * A batch's tensors (a {@link TrainerBatch} from `batches()`, or any record of core tensors) as
 * `@tensorflow/tfjs` tensors, by name, with the same shapes. Dtypes map as {@link TFJS_DTYPE}
 * says: float32, int32 and bool are kept (and not copied: the tfjs tensor reads the batch's
 * buffer, which stays alive as long as the tensor does); uint8, int8, int16 and uint16 widen to
 * int32 (tfjs has no smaller integer type); int64, uint64 and uint32 become int32 when every value
 * fits, else an ArgumentError names the tensor, element and value; float16 and bfloat16 widen to
 * float32 exactly; float64 needs `allowLossy`.
 *
 * The tensors are the caller's: dispose of them when the step is done (`tf.dispose(result)`), or
 * make them inside `tf.tidy`, or tfjs memory grows with every batch.
 *
 * Every tensor is checked and converted before any tfjs tensor is made, so an error leaves no
 * tensor behind.
 * @throws ArgumentError naming the tensor (`tensors["label"]`) for a malformed tensor, a value
 * out of int32's range, or float64 without `allowLossy`.
 * @example
 * for await (const batch of batches({ job: 'mnist', rank, nats: { servers: 'nats://nats:4222' } })) {
 *   const { image, label } = toTfjs(batch);
 *   await model.trainOnBatch(image, label);
 *   tf.dispose([image, label]);
 * }
 */
export function toTfjs(source: TrainerBatch | Readonly<Record<string, Tensor>>, options: ToTfjsOptions = {}): Record<string, tfjs.Tensor> {
  if (typeof source !== 'object' || source === null || Array.isArray(source)) {
    throw new ArgumentError('batch', `must be a batch from batches() or a record of tensors, got ${show(source)}`);
  }
  if (typeof options !== 'object' || options === null) throw new ArgumentError('options', `must be an object, got ${show(options)}`);
  const tf = options.tf ?? tfjs;
  if (typeof tf !== 'object' || tf === null || typeof tf.tensor !== 'function') {
    throw new ArgumentError('options.tf', `must be a tfjs module (import * as tf from '@tensorflow/tfjs'), got ${show(tf)}`);
  }
  const allowLossy = options.allowLossy ?? false;
  if (typeof allowLossy !== 'boolean') throw new ArgumentError('options.allowLossy', `must be a boolean, got ${show(allowLossy)}`);

  const tensors: Readonly<Record<string, Tensor>> = isTrainerBatch(source) ? source.tensors : source;
  const converted: Converted[] = [];
  for (const name of Object.keys(tensors)) {
    const t = tensors[name];
    checkTensor(name, t);
    converted.push(convert(name, t!, allowLossy));
  }

  const out: [string, tfjs.Tensor][] = [];
  try {
    for (const c of converted) out.push([c.name, tf.tensor(c.values, c.shape, c.dtype)]);
  } catch (error) {
    for (const [, t] of out) t.dispose();
    throw error;
  }
  // fromEntries, not assignment, so a tensor named "__proto__" stays a plain field.
  return Object.fromEntries(out);
}
