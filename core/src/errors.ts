/**
 * Errors of the core library. Every error has a typed `code` so callers can branch without
 * parsing messages, and every message names the offending argument, field or value.
 */

export const ErrorCode = {
  InvalidArgument: 'ERR_INVALID_ARGUMENT',
  IndexOutOfRange: 'ERR_INDEX_OUT_OF_RANGE',
  ShapeMismatch: 'ERR_SHAPE_MISMATCH',
  Worker: 'ERR_WORKER',
  Timeout: 'ERR_TIMEOUT',
  Aborted: 'ERR_ABORTED',
  Format: 'ERR_FORMAT',
  Dataset: 'ERR_DATASET',
  Closed: 'ERR_CLOSED',
  // Raised by the loader node (loader-node/src/errors.ts): one code table for the whole product.
  UnsafeKey: 'ERR_UNSAFE_KEY',
  NotFound: 'ERR_NOT_FOUND',
  Store: 'ERR_STORE',
  CacheBudget: 'ERR_CACHE_BUDGET',
  Quarantined: 'ERR_QUARANTINED',
  Verification: 'ERR_VERIFICATION',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error thrown by Shardline code. */
export class ShardlineError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A constructor or function argument is invalid. `argument` names it (e.g. `batchSize`). */
export class ArgumentError extends ShardlineError {
  readonly argument: string;

  constructor(argument: string, message: string, options?: { cause?: unknown }) {
    super(ErrorCode.InvalidArgument, `${argument}: ${message}`, options);
    this.argument = argument;
  }
}

/** An index is outside `[-length, length)` (or `[0, length)` where negatives are not allowed). */
export class IndexOutOfRangeError extends ShardlineError {
  readonly index: number;
  readonly length: number;

  constructor(index: number, length: number, what = 'index') {
    super(ErrorCode.IndexOutOfRange, `${what} ${index} is out of range for length ${length}`);
    this.index = index;
    this.length = length;
  }
}

/** Tensors or arrays that must agree in shape do not. The message names the field and sample. */
export class ShapeMismatchError extends ShardlineError {
  constructor(message: string) {
    super(ErrorCode.ShapeMismatch, message);
  }
}

/** Bytes that should follow a format (safetensors, shard files, index files) do not. */
export class FormatError extends ShardlineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Format, message, options);
  }
}

/** A dataset failed to produce a sample. */
export class DatasetError extends ShardlineError {
  readonly index: number | undefined;

  constructor(message: string, options?: { cause?: unknown; index?: number }) {
    super(ErrorCode.Dataset, message, options);
    this.index = options?.index;
  }
}

/** An operation did not finish in time. */
export class TimeoutError extends ShardlineError {
  constructor(message: string) {
    super(ErrorCode.Timeout, message);
  }
}

/** An operation was aborted through an AbortSignal. */
export class AbortError extends ShardlineError {
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super(ErrorCode.Aborted, message, options);
  }
}

/** An object was used after it was closed. */
export class ClosedError extends ShardlineError {
  constructor(message: string) {
    super(ErrorCode.Closed, message);
  }
}
