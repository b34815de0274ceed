/**
 * Errors of the loader node. Like core's (which it re-uses: FormatError for bad bytes,
 * AbortError, TimeoutError), each has a typed `code` and a message that names the key, shard or
 * setting at fault.
 */
import { ErrorCode, ShardlineError } from '@shardline/core';

/** A key from an index or a caller would leave the dataset prefix (`..`, absolute, backslash, encoded escapes). */
export class UnsafeKeyError extends ShardlineError {
  readonly key: string;
  constructor(key: string, reason: string) {
    super(ErrorCode.UnsafeKey, `key ${JSON.stringify(key)} is refused: ${reason}`);
    this.key = key;
  }
}

/** The object does not exist in the store. */
export class NotFoundError extends ShardlineError {
  readonly key: string;
  constructor(key: string, location: string, options?: { cause?: unknown }) {
    super(ErrorCode.NotFound, `${key} does not exist in ${location}`, options);
    this.key = key;
  }
}

/** The store failed (after its retries): the message names the key, the operation and the last error. */
export class StoreError extends ShardlineError {
  readonly key: string;
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Store, `${key}: ${message}`, options);
    this.key = key;
  }
}

/** The cache's byte budget cannot work (e.g. smaller than two of the largest shard); the message says the minimum. */
export class CacheBudgetError extends ShardlineError {
  constructor(message: string) {
    super(ErrorCode.CacheBudget, message);
  }
}

/** A fetched shard did not match its index (size or hash). */
export class VerificationError extends ShardlineError {
  readonly key: string;
  constructor(key: string, message: string) {
    super(ErrorCode.Verification, `${key}: ${message}`);
    this.key = key;
  }
}

/** A shard failed verification too many times and is no longer fetched; the message names it. */
export class QuarantinedError extends ShardlineError {
  readonly key: string;
  constructor(key: string, failures: number, options?: { cause?: unknown }) {
    super(ErrorCode.Quarantined, `shard ${key} is quarantined after ${failures} failed verifications`, options);
    this.key = key;
  }
}
