/**
 * Test support (not part of the API): the MDS fixtures written by scripts/make-mds-fixtures.py
 * with Mosaic's MDSWriter, and the JSON conventions their expected.json (and the Python interop
 * test's output) use for column values. See that script for the conventions.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type Tensor, typedArrayConstructor, type DType } from '../../tensor.ts';
import type { MDSSample, MDSValue } from './encodings.ts';
import type { JsonValue } from './python-json.ts';

export const FIXTURES = path.join(import.meta.dirname, 'fixtures');

export interface ExpectedDataset {
  readonly columns: Record<string, string>;
  readonly compression: string | null;
  readonly hashes: string[];
  readonly size_limit: number | null;
  readonly shard_samples: number[];
  /** null for a dataset we must refuse. */
  readonly samples: Record<string, unknown>[] | null;
  readonly refused_column?: string;
}

export interface Expected {
  readonly streaming: string;
  readonly datasets: Record<string, ExpectedDataset>;
}

export function loadExpected(): Expected {
  return JSON.parse(readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as Expected;
}

function float(v: unknown): number {
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  if (v === '-0') return -0;
  return v as number;
}

function hexBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

function reviveJson(v: unknown): JsonValue {
  if (Array.isArray(v)) return v.map(reviveJson);
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === '$float') return float((v as Record<string, unknown>).$float);
    return Object.fromEntries(keys.map((k) => [k, reviveJson((v as Record<string, unknown>)[k])]));
  }
  return v as JsonValue;
}

function reviveTensor(v: { dtype: DType; shape: number[]; values: unknown[] }): Tensor {
  const ctor = typedArrayConstructor(v.dtype);
  const data = new ctor(v.values.length);
  v.values.forEach((x, i) => {
    (data as unknown as unknown[])[i] = v.dtype === 'int64' || v.dtype === 'uint64' ? BigInt(x as string) : float(x);
  });
  return { dtype: v.dtype, shape: v.shape, data };
}

/** A column value from its JSON form: what our reader decodes, and what our writer is given. */
export function reviveValue(encoding: string, v: unknown): MDSValue {
  const family = encoding.split(':')[0]!;
  switch (family) {
    case 'float16':
    case 'float32':
    case 'float64':
    case 'str_float':
      return float(v);
    case 'uint64':
    case 'int64':
    case 'int':
    case 'str_int':
      return BigInt(v as string);
    case 'bytes':
    case 'jpeg':
    case 'png':
    case 'pil':
      return hexBytes(v as string);
    case 'list[jpeg]':
    case 'list[png]':
    case 'list[pil]':
    case 'jpeg_array':
    case 'jpegarray':
      return (v as string[]).map(hexBytes);
    case 'json':
      return reviveJson(v);
    case 'ndarray':
      return reviveTensor(v as { dtype: DType; shape: number[]; values: unknown[] });
    default:
      return v as MDSValue;
  }
}

/** A whole sample from its JSON form. */
export function reviveSample(columns: Record<string, string>, sample: Record<string, unknown>): MDSSample {
  return Object.fromEntries(Object.entries(sample).map(([c, v]) => [c, reviveValue(columns[c]!, v)]));
}
