/**
 * Errors that cross the worker boundary. A worker cannot throw into the main thread, so it sends
 * its error as plain data (`SerializedError`) and the loader rebuilds it as a `WorkerError` that
 * says which worker, which batch and which sample failed, with the worker's own stack (the role
 * of PyTorch's ExceptionWrapper).
 */
import { ArgumentError, ErrorCode, ShardlineError } from '../errors.ts';

/** An error as plain, cloneable data. */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  /** ArgumentError's argument, so a bad spec is rethrown as the ArgumentError it was. */
  argument?: string;
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const out: SerializedError = { name: error.name, message: error.message };
    if (error.stack !== undefined) out.stack = error.stack;
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') out.code = code;
    if (error instanceof ArgumentError) out.argument = error.argument;
    return out;
  }
  return { name: 'Error', message: `a non-Error value was thrown: ${safeString(error)}` };
}

function safeString(v: unknown): string {
  try {
    return typeof v === 'string' ? JSON.stringify(v) : String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

/** Rebuilds a serialized error as an Error carrying the worker's name, message and stack. */
export function deserializeError(e: SerializedError): Error {
  const err = new Error(e.message);
  err.name = e.name;
  if (e.stack !== undefined) err.stack = e.stack;
  if (e.code !== undefined) (err as Error & { code?: string }).code = e.code;
  return err;
}

export interface WorkerErrorDetails {
  workerId: number;
  /** Position of the batch in the epoch (0-based), when the error belongs to one. */
  batch?: number;
  /** The dataset indices of that batch. */
  indices?: readonly number[];
  /** The dataset index whose `get` failed (for an IterableDataset: the position in the worker's stream). */
  sampleIndex?: number;
  /** The error as the worker saw it. */
  cause?: SerializedError;
}

/**
 * A DataLoader worker failed: its dataset or collate threw, it could not start, or its thread
 * exited. `workerStack` is the stack trace from inside the worker; `stack` includes it too.
 */
export class WorkerError extends ShardlineError {
  readonly workerId: number;
  readonly batch: number | undefined;
  readonly indices: readonly number[] | undefined;
  readonly sampleIndex: number | undefined;
  readonly workerStack: string | undefined;
  /** The `code` of the worker's error, if it had one (e.g. ERR_DATASET). */
  readonly causeCode: string | undefined;

  constructor(message: string, details: WorkerErrorDetails) {
    super(ErrorCode.Worker, message, details.cause ? { cause: deserializeError(details.cause) } : undefined);
    this.workerId = details.workerId;
    this.batch = details.batch;
    this.indices = details.indices;
    this.sampleIndex = details.sampleIndex;
    this.workerStack = details.cause?.stack;
    this.causeCode = details.cause?.code;
    if (this.workerStack !== undefined) {
      this.stack = `${this.stack ?? `${this.name}: ${message}`}\n--- in worker ${details.workerId} ---\n${this.workerStack}`;
    }
  }
}

/** `[4, 5, 6]`, or `[4, 5, 6, … 29 more]` for long batches. */
export function formatIndices(indices: readonly number[]): string {
  const head = indices.slice(0, 8).join(', ');
  return indices.length > 8 ? `[${head}, … ${indices.length - 8} more]` : `[${head}]`;
}

/** The error a worker's failure on a batch becomes in the caller. */
export function batchError(
  workerId: number,
  error: SerializedError,
  where: { batch?: number; indices?: readonly number[]; sampleIndex?: number },
): WorkerError {
  const parts: string[] = [];
  if (where.sampleIndex !== undefined) parts.push(`sample ${where.sampleIndex}`);
  if (where.batch !== undefined) {
    parts.push(`batch ${where.batch}${where.indices ? ` with indices ${formatIndices(where.indices)}` : ''}`);
  }
  const at = parts.length > 0 ? ` on ${parts.join(' of ')}` : '';
  return new WorkerError(`worker ${workerId} failed${at}: ${error.name}: ${error.message}`, {
    workerId,
    ...where,
    cause: error,
  });
}

/** The error a worker's failure to start becomes: a bad spec stays an ArgumentError. */
export function startupError(workerId: number, error: SerializedError): Error {
  if (error.argument !== undefined) {
    const prefix = `${error.argument}: `;
    const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
    return new ArgumentError(error.argument, `${message} (in worker ${workerId})`, { cause: deserializeError(error) });
  }
  return new WorkerError(`worker ${workerId} failed to start: ${error.name}: ${error.message}`, { workerId, cause: error });
}
