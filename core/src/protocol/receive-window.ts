/**
 * The trainer's side of the delivery protocol as a pure state machine (no I/O, no timers):
 * reassembles chunked batches, puts items in stream order, drops duplicates by position, and
 * says what to ack, how much credit to grant and what to ask for again.
 *
 * - Exactly once: the consumer's position only moves forward; any item before it is a
 *   duplicate, and items reach the consumer strictly in stream order.
 * - A session (one hello) starts empty: whatever was received and not consumed is dropped and
 *   asked for again from the consumer's position, so no item the consumer has not taken can be
 *   lost, whatever happened to the previous session's messages.
 * - Memory: at most `window` batches (complete or in reassembly) of at most `maxBatchBytes`
 *   each; the credit granted (`window` + batches consumed in the session) keeps an honest loader
 *   inside it, and items that would overflow it are dropped.
 * receiver-protocol.ts drives it from the messages; the property tests through lossy networks.
 */
import type { Delivery } from './batch-transport.ts';
import type { ChunkFrame } from './frame.ts';
import { MAX_NACK_CHUNKS } from './messages.ts';
import { comparePositions, formatPosition, successor, type Position } from './position.ts';

/** Most chunks a batch may be cut into; frames claiming more are rejected. */
export const MAX_CHUNKS_PER_BATCH = 65_536;

/** Options of {@link ReceiveWindow}. */
export interface ReceiveWindowOptions {
  readonly job: string;
  readonly rank: number;
  /** Batches the trainer buffers at most: its credit window. */
  readonly window: number;
  /** The largest batch accepted, in bytes. */
  readonly maxBatchBytes: number;
  /** Where the consumer starts; null to start where the loader's window starts. */
  readonly resume?: Position | null;
}

/** What became of a received frame or end marker. */
export type AcceptOutcome =
  /** Stored; `readable` when the consumer can now read more. */
  | { readonly status: 'stored'; readonly readable: boolean }
  /** Already had it (before the consumer's position, or this chunk). */
  | { readonly status: 'duplicate' }
  /** Not for the current session (an old one, or before its welcome). */
  | { readonly status: 'ignored' }
  /** Dropped: inconsistent with what was received, for another job or rank, or no room. */
  | { readonly status: 'rejected'; readonly why: string }
  /** The next item can never be accepted (larger than maxBatchBytes): the stream cannot go on. */
  | { readonly status: 'fatal'; readonly why: string };

/** What to ask the loader for again. */
export interface MissingItem {
  readonly epoch: number;
  readonly step: number;
  /** Missing chunks of a batch in reassembly (at most MAX_NACK_CHUNKS); absent: the whole item. */
  readonly chunks?: readonly number[];
}

interface Assembly {
  readonly kind: 'batch';
  readonly position: Position;
  readonly count: number;
  readonly chunkSize: number;
  readonly bytes: Uint8Array;
  readonly have: Uint8Array;
  received: number;
}

interface PendingEnd {
  readonly kind: 'end';
  readonly position: Position;
}

type Pending = Assembly | PendingEnd;

const key = (p: Position): string => `${p.epoch}:${p.step}`;

/** The trainer's receive state. */
export class ReceiveWindow {
  readonly job: string;
  readonly rank: number;
  readonly window: number;
  readonly maxBatchBytes: number;
  #session = 0;
  #welcomed = false;
  /** The position the consumer reads next (null until a welcome says where the stream starts). */
  #readPos: Position | null;
  /** First position not received complete and in order; items in [readPos, recvNext) are ready. */
  #recvNext: Position | null;
  readonly #ready: Delivery[] = [];
  readonly #pending = new Map<string, Pending>();
  #pendingBatches = 0;
  #pendingEnds = 0;
  #consumedInSession = 0;
  #lastConsumed: Position | null = null;

  constructor(options: ReceiveWindowOptions) {
    this.job = options.job;
    this.rank = options.rank;
    this.window = options.window;
    this.maxBatchBytes = options.maxBatchBytes;
    this.#readPos = options.resume ?? null;
    this.#recvNext = this.#readPos;
  }

  /** The position the consumer reads next. */
  get position(): Position | null {
    return this.#readPos;
  }

  get session(): number {
    return this.#session;
  }

  get welcomed(): boolean {
    return this.#welcomed;
  }

  /** Cumulative credit of the session: the window plus the batches consumed since the hello. */
  get granted(): number {
    return this.#welcomed || this.#session !== 0 ? this.window + this.#consumedInSession : 0;
  }

  /** The last item the consumer took (what a cumulative ack names), or null. */
  get lastConsumed(): Position | null {
    return this.#lastConsumed;
  }

  /** Items the consumer can read now. */
  get readyCount(): number {
    return this.#ready.length;
  }

  /** Batches held: ready and in reassembly. */
  get bufferedBatches(): number {
    let ready = 0;
    for (const d of this.#ready) if (d.type === 'batch') ready++;
    return ready + this.#pendingBatches;
  }

  /** Bytes held for batches (ready and in reassembly). */
  get bufferedBytes(): number {
    let bytes = 0;
    for (const d of this.#ready) if (d.type === 'batch') bytes += d.bytes.byteLength;
    for (const p of this.#pending.values()) if (p.kind === 'batch') bytes += p.bytes.byteLength;
    return bytes;
  }

  /**
   * Starts session `session`: drops everything received and not consumed, and returns what the
   * hello carries (resume point and initial credit).
   */
  begin(session: number): { resume: Position | null; credits: number } {
    this.#session = session;
    this.#welcomed = false;
    this.#ready.length = 0;
    this.#pending.clear();
    this.#pendingBatches = 0;
    this.#pendingEnds = 0;
    this.#consumedInSession = 0;
    this.#recvNext = this.#readPos;
    return { resume: this.#readPos, credits: this.window };
  }

  /**
   * The loader's welcome: items of the session start at `next`, which must be the resume point
   * the hello gave (when it gave one).
   */
  welcome(session: number, next: Position): 'ok' | 'ignored' | { readonly mismatch: string } {
    if (session !== this.#session || this.#welcomed) return 'ignored';
    if (this.#readPos !== null && comparePositions(next, this.#readPos) !== 0) {
      return { mismatch: `the loader's welcome starts the stream at ${formatPosition(next)}, the hello asked for ${formatPosition(this.#readPos)}` };
    }
    this.#readPos = next;
    this.#recvNext = next;
    this.#welcomed = true;
    return 'ok';
  }

  /**
   * Whether a batch at `position` of the current session is still wanted: not before what was
   * received in order, and not already complete. A shared-memory descriptor for an unwanted one
   * is a late duplicate whose slot may already hold another batch: it is not read.
   */
  wants(session: number, position: Position): boolean {
    if (session !== this.#session || !this.#welcomed || comparePositions(position, this.#recvNext!) < 0) return false;
    const entry = this.#pending.get(key(position));
    return entry === undefined || (entry.kind === 'batch' && entry.received < entry.count);
  }

  /** Stores one received chunk (its payload is copied, unless `adopt` hands over a one-chunk batch's buffer). */
  acceptChunk(frame: ChunkFrame, options: { readonly adopt?: boolean } = {}): AcceptOutcome {
    if (frame.session !== this.#session || !this.#welcomed) return { status: 'ignored' };
    if (frame.job !== this.job || frame.rank !== this.rank) {
      return { status: 'rejected', why: `frame is for job ${JSON.stringify(frame.job)} rank ${frame.rank}, this stream is job ${JSON.stringify(this.job)} rank ${this.rank}` };
    }
    const position = { epoch: frame.epoch, step: frame.step };
    if (comparePositions(position, this.#recvNext!) < 0) return { status: 'duplicate' };
    const k = key(position);
    let entry = this.#pending.get(k);
    if (entry?.kind === 'end') {
      return { status: 'rejected', why: `a chunk of a batch at ${formatPosition(position)}, where the end of epoch ${position.epoch} is` };
    }
    if (entry === undefined) {
      if (frame.totalBytes > this.maxBatchBytes) {
        const why = `the batch at ${formatPosition(position)} has ${frame.totalBytes} bytes, more than maxBatchBytes (${this.maxBatchBytes})`;
        return comparePositions(position, this.#recvNext!) === 0 ? { status: 'fatal', why } : { status: 'rejected', why };
      }
      if (frame.count > MAX_CHUNKS_PER_BATCH) {
        return { status: 'rejected', why: `the batch at ${formatPosition(position)} claims ${frame.count} chunks, more than ${MAX_CHUNKS_PER_BATCH}` };
      }
      if (!this.#makeRoom('batch', position)) {
        return { status: 'rejected', why: `no room for the batch at ${formatPosition(position)}: ${this.window} batches are buffered (the loader sent beyond its credit)` };
      }
      entry = {
        kind: 'batch',
        position,
        count: frame.count,
        chunkSize: frame.chunkSize,
        // A whole batch in a buffer the caller hands over (read from shared memory) is kept as it is.
        bytes: options.adopt === true && frame.count === 1 ? frame.payload : new Uint8Array(frame.totalBytes),
        have: new Uint8Array(frame.count),
        received: 0,
      };
      this.#pending.set(k, entry);
      this.#pendingBatches++;
    } else if (entry.count !== frame.count || entry.chunkSize !== frame.chunkSize || entry.bytes.byteLength !== frame.totalBytes) {
      return {
        status: 'rejected',
        why: `chunk ${frame.index} of the batch at ${formatPosition(position)} says ${frame.count} chunks of ${frame.chunkSize} bytes, ${frame.totalBytes} in all; ` +
          `earlier chunks said ${entry.count} of ${entry.chunkSize}, ${entry.bytes.byteLength} in all`,
      };
    }
    if (entry.received === entry.count || entry.have[frame.index] === 1) return { status: 'duplicate' };
    if (entry.bytes !== frame.payload) entry.bytes.set(frame.payload, frame.index * frame.chunkSize);
    entry.have[frame.index] = 1;
    entry.received++;
    return { status: 'stored', readable: entry.received === entry.count && this.#advance() };
  }

  /** Stores a received end marker: epoch `epoch` has `batches` batches. */
  acceptEnd(session: number, epoch: number, batches: number): AcceptOutcome {
    if (session !== this.#session || !this.#welcomed) return { status: 'ignored' };
    const position = { epoch, step: batches };
    if (comparePositions(position, this.#recvNext!) < 0) return { status: 'duplicate' };
    const k = key(position);
    const entry = this.#pending.get(k);
    if (entry !== undefined) {
      return entry.kind === 'end'
        ? { status: 'duplicate' }
        : { status: 'rejected', why: `end of epoch ${epoch} after ${batches} batches, where a batch is at ${formatPosition(position)}` };
    }
    if (!this.#makeRoom('end', position)) {
      return { status: 'rejected', why: `no room for the end of epoch ${epoch}: ${this.window} end markers are buffered` };
    }
    this.#pending.set(k, { kind: 'end', position });
    this.#pendingEnds++;
    return { status: 'stored', readable: this.#advance() };
  }

  /**
   * What to ask for again when nothing arrived for a while: the missing chunks of the batch in
   * reassembly at the receive position, or that whole item; undefined before the welcome, or
   * when the buffer is full of items in order (the loader is out of credit, nothing is missing).
   */
  missing(): MissingItem | undefined {
    if (!this.#welcomed) return undefined;
    const next = this.#recvNext!;
    const entry = this.#pending.get(key(next));
    if (entry?.kind === 'batch') {
      const chunks: number[] = [];
      for (let i = 0; i < entry.count && chunks.length < MAX_NACK_CHUNKS; i++) if (entry.have[i] === 0) chunks.push(i);
      return { epoch: next.epoch, step: next.step, chunks };
    }
    // Items held beyond the receive position mean one before them is missing. Without any, a full
    // buffer means the loader is out of credit: nothing is missing, the consumer is behind.
    if (this.#pending.size === 0 && this.bufferedBatches >= this.window) return undefined;
    return { epoch: next.epoch, step: next.step };
  }

  /** The next item in stream order, or undefined when none is ready; the caller acks it and grants credit. */
  take(): Delivery | undefined {
    const item = this.#ready.shift();
    if (item === undefined) return undefined;
    const position = item.type === 'batch' ? { epoch: item.epoch, step: item.step } : { epoch: item.epoch, step: item.batches };
    this.#readPos = successor(position, item.type === 'end-of-epoch');
    this.#lastConsumed = position;
    if (item.type === 'batch') this.#consumedInSession++;
    return item;
  }

  /** Moves complete items at the receive position to the ready queue; true when any moved. */
  #advance(): boolean {
    let moved = false;
    for (;;) {
      const next = this.#recvNext!;
      const k = key(next);
      const entry = this.#pending.get(k);
      if (entry === undefined || (entry.kind === 'batch' && entry.received < entry.count)) return moved;
      this.#pending.delete(k);
      moved = true;
      if (entry.kind === 'batch') {
        this.#pendingBatches--;
        this.#ready.push({ type: 'batch', job: this.job, rank: this.rank, epoch: next.epoch, step: next.step, bytes: entry.bytes });
        this.#recvNext = successor(next, false);
      } else {
        this.#pendingEnds--;
        this.#ready.push({ type: 'end-of-epoch', epoch: next.epoch, batches: next.step });
        this.#recvNext = successor(next, true);
        // Anything held for this epoch lies after its end: it cannot be a real item.
        for (const [k2, p] of this.#pending) {
          if (p.position.epoch === next.epoch) {
            this.#pending.delete(k2);
            if (p.kind === 'batch') this.#pendingBatches--;
            else this.#pendingEnds--;
          }
        }
      }
    }
  }

  /**
   * Room for one more item of `kind` at `position`: true when fewer than `window` of that kind
   * are held, or after dropping the held one farthest ahead when `position` comes before it
   * (the item the consumer needs next must always find room, or the stream would stall).
   */
  #makeRoom(kind: Pending['kind'], position: Position): boolean {
    if ((kind === 'batch' ? this.bufferedBatches : this.#pendingEnds) < this.window) return true;
    let farthest: Pending | undefined;
    for (const p of this.#pending.values()) {
      if (p.kind === kind && (farthest === undefined || comparePositions(p.position, farthest.position) > 0)) farthest = p;
    }
    if (farthest === undefined || comparePositions(position, farthest.position) >= 0) return false;
    this.#pending.delete(key(farthest.position));
    if (kind === 'batch') this.#pendingBatches--;
    else this.#pendingEnds--;
    return true;
  }
}
