/**
 * Test-only access to the wire format test vectors in ./fixtures (written by the reference Python
 * `safetensors` package, see scripts/make-wire-vectors.py): the manifest, each vector's bytes,
 * and tensors rebuilt from the manifest's values (not from the bytes), so encoder and decoder are
 * each checked against what numpy computed. Not exported from the package.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type DType, type Tensor, tensor, typedArrayConstructor } from '../tensor.ts';
import type { DecodedBatchMetadata } from './batch-metadata.ts';

export const FIXTURES = path.join(import.meta.dirname, 'fixtures');

/** A value as the manifest writes it: numbers, or strings for 64-bit ints and special floats. */
export type ManifestValue = number | string;

export interface VectorTensor {
  readonly dtype: DType;
  readonly safetensorsDtype: string;
  readonly shape: number[];
  readonly dataOffsets: [number, number];
  readonly hex: string;
  readonly values: ManifestValue[];
}

export interface Vector {
  readonly name: string;
  readonly description: string;
  readonly file: string;
  readonly size: number;
  readonly sha256: string;
  readonly metadata: Record<string, string> | null;
  readonly batch: DecodedBatchMetadata | null;
  readonly order: string[];
  readonly tensors: Record<string, VectorTensor>;
}

export interface Manifest {
  readonly generator: string;
  readonly safetensors: string;
  readonly numpy: string;
  readonly vectors: Vector[];
}

export function loadManifest(dir = FIXTURES): Manifest {
  return JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
}

/** A vector's bytes in a fresh, 8-aligned buffer. */
export function vectorBytes(v: Vector, dir = FIXTURES): Uint8Array {
  const file = readFileSync(path.join(dir, v.file));
  return new Uint8Array(file);
}

function floatOf(v: ManifestValue): number {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return Number.NaN;
  if (v === 'Infinity') return Number.POSITIVE_INFINITY;
  if (v === '-Infinity') return Number.NEGATIVE_INFINITY;
  if (v === '-0') return -0;
  throw new Error(`unexpected float value ${v}`);
}

/** The manifest value an element should decode to, in the element's JavaScript type. */
export function expectedElement(dtype: DType, v: ManifestValue): number | bigint {
  if (dtype === 'int64' || dtype === 'uint64') return BigInt(v);
  if (dtype === 'float32' || dtype === 'float64') return floatOf(v);
  return v as number;
}

/** A tensor built from the manifest's values. */
export function tensorFromValues(t: VectorTensor): Tensor {
  const ctor = typedArrayConstructor(t.dtype);
  const data = new ctor(t.values.length);
  t.values.forEach((v, i) => {
    (data as unknown as (number | bigint)[])[i] = expectedElement(t.dtype, v);
  });
  return tensor(t.dtype, t.shape, data);
}

/** The vector's tensors rebuilt from values, inserted in reverse file order (the encoder must sort). */
export function vectorTensors(v: Vector): Record<string, Tensor> {
  return Object.fromEntries(
    [...v.order].reverse().map((name) => [name, tensorFromValues(v.tensors[name]!)] as const),
  );
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** A typed array's raw bytes. */
export function bytesOf(data: Tensor['data']): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
