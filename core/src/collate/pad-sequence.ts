/**
 * Collate for variable-length sequences (token ids, audio frames): pads them to a common length
 * and adds the attention mask and the true lengths a model needs to ignore the padding.
 */
import { ArgumentError, ShapeMismatchError } from '../errors.ts';
import type { DType, Tensor, TypedArray } from '../tensor.ts';
import { dtypeOf, isDType, isTensor, isTypedArray, numel, typedArrayConstructor } from '../tensor.ts';
import { requirePositiveInt } from '../validate.ts';
import { defaultCollate } from './default-collate.ts';

export const PaddingSide = { right: 'right', left: 'left' } as const;
export type PaddingSide = (typeof PaddingSide)[keyof typeof PaddingSide];

export interface PadSequenceOptions {
  /**
   * Keys of object samples that hold sequences (default `['sequence']`). All of a sample's
   * sequence fields must have the same length: they share one mask. When samples are bare
   * sequences, the padded tensor is returned under the first name.
   */
  fields?: readonly string[];
  /** Value of padded positions (default 0). */
  paddingValue?: number;
  /** Longer sequences are truncated to their first `maxLength` elements. */
  maxLength?: number;
  /** Pad every batch to `maxLength` (fixed shapes) instead of to its longest sequence. */
  padToMaxLength?: boolean;
  /** Where padding goes (default `right`; decoder-only models generating text want `left`). */
  side?: PaddingSide;
  /** dtype for sequences given as `number[]` (default float64, as in defaultCollate). */
  dtype?: DType;
}

/** A sequence: `number[]`, a typed array, or a tensor `[T, ...]` padded along its first dimension. */
export type Sequence = readonly number[] | TypedArray | Tensor;

/**
 * The batch of `padSequenceCollate`: each sequence field as a tensor `[B, T, ...]`, plus
 * `attentionMask` (uint8 `[B, T]`, 1 on real positions) and `lengths` (int32 `[B]`, after
 * truncation); the other fields collated by `defaultCollate`.
 */
export type PaddedBatch = Record<string, unknown> & { attentionMask: Tensor; lengths: Tensor };

interface Seq {
  data: ArrayLike<number | bigint>;
  length: number;
  dtype: DType;
  /** Shape after the first (time) dimension. */
  rest: readonly number[];
}

/**
 * Makes a collate function for variable-length sequences.
 *
 * @example
 * const collate = padSequenceCollate({ fields: ['tokens'], paddingValue: 0, maxLength: 512 });
 * collate([{ tokens: new Int32Array([5, 6, 7]), label: 1n }, { tokens: new Int32Array([8]), label: 0n }]);
 * // → { tokens: int32 [2, 3] = [[5,6,7],[8,0,0]], attentionMask: uint8 [[1,1,1],[1,0,0]],
 * //     lengths: int32 [3, 1], label: int64 [1, 0] }
 */
export function padSequenceCollate(options: PadSequenceOptions = {}): (samples: readonly unknown[]) => PaddedBatch {
  const fields = options.fields ?? ['sequence'];
  if (!Array.isArray(fields) || fields.length === 0 || fields.some((f) => typeof f !== 'string' || f === '')) {
    throw new ArgumentError('fields', `must be a non-empty array of field names, got ${JSON.stringify(fields)}`);
  }
  for (const reserved of ['attentionMask', 'lengths']) {
    if (fields.includes(reserved)) throw new ArgumentError('fields', `"${reserved}" is an output name and cannot be a field`);
  }
  const paddingValue = options.paddingValue ?? 0;
  if (typeof paddingValue !== 'number' || Number.isNaN(paddingValue)) {
    throw new ArgumentError('paddingValue', `must be a number, got ${String(paddingValue)}`);
  }
  const maxLength = options.maxLength === undefined ? undefined : requirePositiveInt('maxLength', options.maxLength);
  const padToMaxLength = options.padToMaxLength ?? false;
  if (padToMaxLength && maxLength === undefined) {
    throw new ArgumentError('padToMaxLength', 'needs maxLength');
  }
  const side = options.side ?? 'right';
  if (side !== 'right' && side !== 'left') {
    throw new ArgumentError('side', `must be "right" or "left", got ${JSON.stringify(side)}`);
  }
  const numberDType = options.dtype ?? 'float64';
  if (!isDType(numberDType)) throw new ArgumentError('dtype', `unknown dtype ${JSON.stringify(numberDType)}`);

  return (samples: readonly unknown[]): PaddedBatch => {
    if (!Array.isArray(samples) || samples.length === 0) {
      throw new ArgumentError('samples', 'must be a non-empty array');
    }
    const bare = isSequence(samples[0]);
    const names = bare ? [fields[0]!] : fields;
    const columns = names.map((name) =>
      samples.map((sample, i) => {
        if (bare) {
          if (!isSequence(sample)) {
            throw new ShapeMismatchError(`sample ${i} is not a sequence, expected one like sample 0`);
          }
          return toSeq(sample, name, i, numberDType);
        }
        if (typeof sample !== 'object' || sample === null || !Object.hasOwn(sample, name)) {
          throw new ShapeMismatchError(`field "${name}": missing in sample ${i}`);
        }
        return toSeq((sample as Record<string, unknown>)[name], name, i, numberDType);
      }),
    );
    const lengths = new Int32Array(samples.length);
    columns[0]!.forEach((s, i) => (lengths[i] = Math.min(s.length, maxLength ?? Infinity)));
    columns.forEach((column, c) =>
      column.forEach((s, i) => {
        if (c > 0 && Math.min(s.length, maxLength ?? Infinity) !== lengths[i]) {
          throw new ShapeMismatchError(
            `field "${names[c]}": sample ${i} has length ${s.length}, expected ${columns[0]![i]!.length} like field "${names[0]}"`,
          );
        }
      }),
    );
    const T = padToMaxLength ? maxLength! : lengths.reduce((m, l) => Math.max(m, l), 0);
    const mask = new Uint8Array(samples.length * T);
    lengths.forEach((len, i) => {
      const start = side === 'right' ? 0 : T - len;
      mask.fill(1, i * T + start, i * T + start + len);
    });

    const out: Record<string, unknown> = {};
    columns.forEach((column, c) => (out[names[c]!] = pad(column, names[c]!, T, lengths, side, paddingValue)));
    if (!bare) {
      const restKeys = Object.keys(samples[0] as object).filter((k) => !names.includes(k));
      for (const reserved of ['attentionMask', 'lengths']) {
        if (restKeys.includes(reserved)) {
          throw new ArgumentError('samples', `field "${reserved}" clashes with the output of padSequenceCollate`);
        }
      }
      if (restKeys.length > 0) {
        const rest = samples.map((s) => {
          const o = s as Record<string, unknown>;
          const r: Record<string, unknown> = {};
          for (const k of Object.keys(o)) if (!names.includes(k)) r[k] = o[k];
          return r;
        });
        Object.assign(out, defaultCollate(rest));
      }
    }
    out.attentionMask = { dtype: 'uint8', shape: [samples.length, T], data: mask } satisfies Tensor;
    out.lengths = { dtype: 'int32', shape: [samples.length], data: lengths } satisfies Tensor;
    return out as PaddedBatch;
  };
}

function isSequence(value: unknown): value is Sequence {
  return isTypedArray(value) || isTensor(value) || (Array.isArray(value) && value.every((v) => typeof v === 'number'));
}

function toSeq(value: unknown, field: string, i: number, numberDType: DType): Seq {
  if (isTensor(value)) {
    if (value.shape.length === 0) throw new ShapeMismatchError(`field "${field}": sample ${i} is a scalar tensor, not a sequence`);
    return { data: value.data, length: value.shape[0]!, dtype: value.dtype, rest: value.shape.slice(1) };
  }
  if (isTypedArray(value)) return { data: value, length: value.length, dtype: dtypeOf(value), rest: [] };
  if (Array.isArray(value) && value.every((v) => typeof v === 'number')) {
    return { data: value as number[], length: value.length, dtype: numberDType, rest: [] };
  }
  throw new ShapeMismatchError(`field "${field}": sample ${i} is not a sequence (number[], typed array or tensor)`);
}

function pad(column: readonly Seq[], field: string, T: number, lengths: Int32Array, side: PaddingSide, value: number): Tensor {
  const first = column[0]!;
  column.forEach((s, i) => {
    if (s.dtype !== first.dtype) {
      throw new ShapeMismatchError(`field "${field}": sample ${i} has dtype ${s.dtype}, expected ${first.dtype} (from sample 0)`);
    }
    if (s.rest.length !== first.rest.length || s.rest.some((d, j) => d !== first.rest[j])) {
      throw new ShapeMismatchError(
        `field "${field}": sample ${i} has shape ${timeShape(s.rest)}, expected ${timeShape(first.rest)} (from sample 0)`,
      );
    }
  });
  const row = numel(first.rest);
  const ctor = typedArrayConstructor(first.dtype);
  const out = new ctor(column.length * T * row);
  const big = out instanceof BigInt64Array || out instanceof BigUint64Array;
  const padValue = big ? BigInt(Math.trunc(value)) : first.dtype === 'bool' ? (value ? 1 : 0) : value;
  if (padValue !== 0 && padValue !== 0n) out.fill(padValue as never);
  column.forEach((s, i) => {
    const len = lengths[i]!;
    const start = (i * T + (side === 'right' ? 0 : T - len)) * row;
    const n = len * row;
    if (isTypedArray(s.data) && (s.data instanceof BigInt64Array || s.data instanceof BigUint64Array) === big) {
      out.set(s.data.subarray(0, n) as never, start);
    } else {
      for (let k = 0; k < n; k++) {
        const v = s.data[k]!;
        (out as unknown as (number | bigint)[])[start + k] = big ? BigInt(v) : Number(v);
      }
    }
  });
  return { dtype: first.dtype, shape: [column.length, T, ...first.rest], data: out };
}

function timeShape(rest: readonly number[]): string {
  return `[${['T', ...rest].join(',')}]`;
}
