/**
 * Positions in a rank's batch stream. The stream is a sequence of items in a fixed order: the
 * batches of an epoch at steps 0, 1, …, n − 1, then that epoch's end marker at step n, then the
 * next epoch from step 0. A position `(epoch, step)` names one item, and positions compare
 * lexicographically, so the order of the stream is the order of its positions. Both sides of
 * the delivery protocol (docs/protocol.md) reason in positions: acks, resume points, dedupe.
 */
import { ArgumentError } from '../errors.ts';

/** The largest epoch, step, rank or byte count the protocol carries (unsigned 32-bit). */
export const MAX_U32 = 0xffff_ffff;

/** One item of a rank's stream: a batch `(epoch, step)`, or the end marker `(epoch, batches)`. */
export interface Position {
  readonly epoch: number;
  readonly step: number;
}

/** Negative when `a` comes before `b`, zero when equal, positive after. */
export function comparePositions(a: Position, b: Position): number {
  return a.epoch !== b.epoch ? a.epoch - b.epoch : a.step - b.step;
}

/** `"epoch 3 step 5"`, for messages and logs. */
export function formatPosition(p: Position): string {
  return `epoch ${p.epoch} step ${p.step}`;
}

/** The item after a batch at `p` (same epoch, next step) or after an end marker at `p` (next epoch, step 0). */
export function successor(p: Position, isEndMarker: boolean): Position {
  return isEndMarker ? { epoch: p.epoch + 1, step: 0 } : { epoch: p.epoch, step: p.step + 1 };
}

/** Checks a position argument: both fields integers in [0, 2^32 − 1]. */
export function requirePosition(name: string, value: unknown): Position {
  if (typeof value !== 'object' || value === null) {
    throw new ArgumentError(name, `must be an object { epoch, step }, got ${value === null ? 'null' : typeof value}`);
  }
  const { epoch, step } = value as { epoch?: unknown; step?: unknown };
  for (const [field, v] of [['epoch', epoch], ['step', step]] as const) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_U32) {
      throw new ArgumentError(`${name}.${field}`, `must be an integer in [0, ${MAX_U32}], got ${String(v)}`);
    }
  }
  return { epoch: epoch as number, step: step as number };
}
