/**
 * The argument checks and abort handling every store shares, so a bad offset or an aborted
 * signal reads the same whichever store raised it.
 */
import { constants as bufferConstants } from 'node:buffer';
import { AbortError, ArgumentError, FormatError } from '@shardline/core';
import { requireInt } from '@shardline/core/internal';
import type { DownloadOptions } from './shard-source.ts';

/** What `read` returns at most when the caller gives no `maxBytes`: 64 MiB. */
export const DEFAULT_MAX_READ_BYTES = 64 * 1024 * 1024;

/** The largest Buffer this process can allocate: the ceiling of `read` and `readRange`. */
export const MAX_BUFFER_BYTES = bufferConstants.MAX_LENGTH;

/** `signal` is undefined or an AbortSignal. */
export function requireSignal(signal: unknown, name = 'signal'): AbortSignal | undefined {
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  throw new ArgumentError(name, `must be an AbortSignal, got ${typeof signal}`);
}

/** The options of `read`, with the default limit applied. */
export function readOptions(options: unknown): { maxBytes: number; signal: AbortSignal | undefined } {
  if (options === undefined) return { maxBytes: DEFAULT_MAX_READ_BYTES, signal: undefined };
  if (typeof options !== 'object' || options === null) throw new ArgumentError('options', `must be an object, got ${String(options)}`);
  const { maxBytes, signal } = options as { maxBytes?: unknown; signal?: unknown };
  return {
    maxBytes: maxBytes === undefined ? DEFAULT_MAX_READ_BYTES : requireInt('maxBytes', maxBytes, { max: MAX_BUFFER_BYTES }),
    signal: requireSignal(signal, 'options.signal'),
  };
}

/** Checks `offset` and `length` of `readRange`. */
export function requireRange(offset: unknown, length: unknown): { offset: number; length: number } {
  return {
    offset: requireInt('offset', offset),
    length: requireInt('length', length, { max: MAX_BUFFER_BYTES }),
  };
}

/** The options of `download`, checked. */
export function downloadOptions(options: unknown): {
  signal: AbortSignal | undefined;
  expectedSize: number | undefined;
  onProgress: ((bytes: number) => void) | undefined;
} {
  if (options === undefined) return { signal: undefined, expectedSize: undefined, onProgress: undefined };
  if (typeof options !== 'object' || options === null) throw new ArgumentError('options', `must be an object, got ${String(options)}`);
  const { signal, expectedSize, onProgress } = options as DownloadOptions;
  if (onProgress !== undefined && typeof onProgress !== 'function') {
    throw new ArgumentError('options.onProgress', `must be a function, got ${typeof onProgress}`);
  }
  return {
    signal: requireSignal(signal, 'options.signal'),
    expectedSize: expectedSize === undefined ? undefined : requireInt('options.expectedSize', expectedSize),
    onProgress,
  };
}

/** The AbortError for `what` (e.g. `download of shards/a.mds`), carrying the signal's reason. */
export function abortError(signal: AbortSignal, what: string): AbortError {
  return new AbortError(`${what} was aborted`, { cause: signal.reason });
}

/** Throws the AbortError for `what` when `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted === true) throw abortError(signal, what);
}

/** The FormatError for an object whose size is not the one the caller expected. */
export function sizeMismatch(key: string, location: string, actual: number, expected: number): FormatError {
  return new FormatError(`${key} in ${location} is ${actual} bytes, expected ${expected} (from the index)`);
}

/** The FormatError for a range that does not lie within the object. */
export function rangePastEnd(key: string, offset: number, length: number, size: number): FormatError {
  return new FormatError(`${key}: range [${offset}, ${offset + length}) is past the end of the object (${size} bytes)`);
}

/** The FormatError for an object over the `maxBytes` of `read`. */
export function tooLarge(key: string, size: number, maxBytes: number): FormatError {
  return new FormatError(`${key} is ${size} bytes, over the read limit of ${maxBytes} (maxBytes)`);
}
