/**
 * The retry policy of remote stores: which failures are worth another attempt (5xx, throttling,
 * timeouts, dropped connections, bodies cut short), which are final at once (404, 403, other 4xx,
 * a changed object), and how long to wait between attempts (exponential backoff with full jitter,
 * so ranks that failed together do not retry together).
 */
import { randomInt } from 'node:crypto';

/** What to do about one failed attempt. */
export type Failure =
  | { readonly type: 'not-found'; readonly reason: string }
  | { readonly type: 'range-not-satisfiable'; readonly reason: string }
  | { readonly type: 'fatal'; readonly reason: string }
  | { readonly type: 'retry'; readonly reason: string };

/**
 * A failure of ours that another attempt may fix: a body that ended early or carried a range
 * other than the one asked for.
 */
export class TransientError extends Error {
  override readonly name = 'TransientError';
}

// Socket-level failures that a new connection may not have: resets, refusals while a server
// restarts, timeouts, DNS hiccups, streams closed before their end.
const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $response?: { statusCode?: unknown };
}

/** The HTTP status an AWS SDK error carries, if any. */
export function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as SdkErrorShape;
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  return typeof status === 'number' && Number.isInteger(status) && status > 0 ? status : undefined;
}

/** A one-line description of an error for messages: name, status or code, and message. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const e = error as SdkErrorShape & Error;
  const status = httpStatusOf(error);
  const code = typeof e.code === 'string' ? e.code : undefined;
  const label = [e.name, status === undefined ? undefined : `HTTP ${status}`, code].filter((x) => x !== undefined && x !== '').join(', ');
  const message = e.message === '' || e.message === e.name || e.message === 'UnknownError' ? '' : `: ${e.message}`;
  return `${label}${message}`;
}

/**
 * Classifies a failed S3 call (an AWS SDK error, a Node socket error, or a TransientError).
 * Unknown errors are fatal: retrying a bug only hides it.
 */
export function classifyS3Error(error: unknown): Failure {
  const reason = describeError(error);
  if (error instanceof TransientError) return { type: 'retry', reason };
  const status = httpStatusOf(error);
  const name = error instanceof Error ? error.name : '';
  if (status !== undefined) {
    if (status === 404) {
      // A missing bucket is a configuration fault, not a missing object.
      return name === 'NoSuchBucket' ? { type: 'fatal', reason } : { type: 'not-found', reason };
    }
    if (status === 416) return { type: 'range-not-satisfiable', reason };
    if (status === 408 || status === 429 || status >= 500) return { type: 'retry', reason };
    // S3 reports some throttling and clock skew as 400 with these names.
    if (name === 'SlowDown' || name === 'Throttling' || name === 'ThrottlingException' || name === 'RequestTimeout') {
      return { type: 'retry', reason };
    }
    return { type: 'fatal', reason };
  }
  const code = typeof (error as SdkErrorShape | null)?.code === 'string' ? ((error as SdkErrorShape).code as string) : undefined;
  if (code !== undefined && RETRYABLE_CODES.has(code)) return { type: 'retry', reason };
  if (name === 'TimeoutError') return { type: 'retry', reason };
  if ((error as SdkErrorShape | null)?.$retryable !== undefined) return { type: 'retry', reason };
  return { type: 'fatal', reason };
}

/** Backoff settings: attempt n (1-based) waits a random time in [0, min(maxMs, baseMs · 2^(n−1))]. */
export interface Backoff {
  readonly baseMs: number;
  readonly maxMs: number;
}

/**
 * The wait before retrying after failed attempt `attempt` (1-based): "full jitter" exponential
 * backoff, uniform in [0, min(maxMs, baseMs · 2^(attempt−1))].
 * @param random Uniform integer in [0, n), for tests; defaults to node:crypto's randomInt.
 */
export function backoffDelay(attempt: number, backoff: Backoff, random: (n: number) => number = randomInt): number {
  const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(attempt - 1, 30));
  return ceiling <= 0 ? 0 : random(Math.floor(ceiling) + 1);
}
