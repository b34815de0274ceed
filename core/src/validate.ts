/**
 * Argument checks shared by every public constructor. Each throws an ArgumentError that names
 * the argument and the rejected value.
 */
import { ArgumentError, IndexOutOfRangeError } from './errors.ts';

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  return String(value);
}

/** An integer in `[min, max]` (defaults: 0 and Number.MAX_SAFE_INTEGER). */
export function requireInt(
  name: string,
  value: unknown,
  { min = 0, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ArgumentError(name, `must be an integer, got ${show(value)}`);
  }
  if (value < min || value > max) {
    throw new ArgumentError(name, `must be in [${min}, ${max}], got ${value}`);
  }
  return value;
}

/** An integer ≥ 1. */
export function requirePositiveInt(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  return requireInt(name, value, { min: 1, max });
}

/** A finite number in `[min, max]`. */
export function requireFinite(
  name: string,
  value: unknown,
  { min = -Infinity, max = Infinity }: { min?: number; max?: number } = {},
): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ArgumentError(name, `must be a finite number, got ${show(value)}`);
  }
  if (value < min || value > max) {
    throw new ArgumentError(name, `must be in [${min}, ${max}], got ${value}`);
  }
  return value;
}

/** Every element finite and ≥ 0, and (if `positiveSum`) a sum above zero. Returns a Float64Array copy. */
export function requireWeights(
  name: string,
  values: ArrayLike<number>,
  { positiveSum = true }: { positiveSum?: boolean } = {},
): Float64Array {
  if (values == null || typeof values.length !== 'number') {
    throw new ArgumentError(name, 'must be an array of numbers');
  }
  const out = new Float64Array(values.length);
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const w = values[i];
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
      throw new ArgumentError(`${name}[${i}]`, `must be a finite number ≥ 0, got ${show(w)}`);
    }
    out[i] = w;
    sum += w;
  }
  if (positiveSum && !(sum > 0)) throw new ArgumentError(name, 'must have a positive sum');
  return out;
}

/** A seed: a safe integer ≥ 0. */
export function requireSeed(name: string, value: unknown): number {
  return requireInt(name, value, { min: 0 });
}

/**
 * Normalizes a possibly negative index (Python semantics: -1 is the last element) and checks it
 * is in range. Returns the index in `[0, length)`.
 */
export function normalizeIndex(index: number, length: number, what = 'index'): number {
  if (typeof index !== 'number' || !Number.isInteger(index)) {
    throw new ArgumentError(what, `must be an integer, got ${show(index)}`);
  }
  const i = index < 0 ? index + length : index;
  if (i < 0 || i >= length) throw new IndexOutOfRangeError(index, length, what);
  return i;
}
