/**
 * The loader's side of the delivery protocol as a pure state machine (no I/O, no timers; the
 * caller passes the time): the window of items accepted from the pipeline and not yet acked, and
 * the trainer's session — its credits, what was sent in it, what it acked.
 *
 * Rules (docs/protocol.md, "Credits and acks"):
 * - items enter in stream order; at most `maxCredits` batches (and as many end markers) are held,
 *   so memory is bounded by maxCredits × the largest batch;
 * - a batch is published only while the session's batches sent < min(granted, acked + maxCredits):
 *   the loader never has more than the trainer's credit, nor more than maxCredits, in flight;
 *   end markers need no credit;
 * - an ack removes every item up to the acked one; a hello starts a session that sends again,
 *   in order, everything not acked (from the trainer's resume point when it gives one).
 * sender-protocol.ts drives it from the messages; the property tests through lossy networks.
 */
import { ArgumentError } from '../errors.ts';
import { RefusalReason, type Hello } from './messages.ts';
import type { FramedBatch } from './frame.ts';
import type { SegmentDescriptor } from './shm/descriptor.ts';
import { comparePositions, formatPosition, successor, type Position } from './position.ts';

/** An item of the stream as the window holds it. */
export type StreamItem =
  | {
      readonly kind: 'batch';
      readonly epoch: number;
      readonly step: number;
      readonly sampleIds: readonly number[];
      readonly bytes: Uint8Array;
      /** Where a copy of `bytes` lies in shared memory, when the loader placed one there (sent as a descriptor in shm sessions). */
      readonly shm?: SegmentDescriptor;
      /**
       * The batch held as its data frames (then `bytes` gathers a copy when read: use
       * {@link batchByteLength} for the size, and the frames when their layout fits).
       */
      readonly framed?: FramedBatch;
    }
  | { readonly kind: 'end'; readonly epoch: number; readonly batches: number };

/** Bytes of a batch item, without gathering a framed one. */
export function batchByteLength(item: Extract<StreamItem, { kind: 'batch' }>): number {
  return item.framed?.totalBytes ?? item.bytes.byteLength;
}

/** The position of an item: `(epoch, step)` of a batch, `(epoch, batches)` of an end marker. */
export function itemPosition(item: StreamItem): Position {
  return item.kind === 'batch' ? { epoch: item.epoch, step: item.step } : { epoch: item.epoch, step: item.batches };
}

/** Options of {@link CreditWindow}. */
export interface CreditWindowOptions {
  readonly job: string;
  readonly rank: number;
  /** Batches held unacked at most, and the most credit a trainer gets (larger grants are clamped). */
  readonly maxCredits: number;
  /** The first position the pipeline will push (default epoch 0 step 0). */
  readonly start?: Position;
  /** How long a session's client must be silent before another clientId may take the stream over. */
  readonly clientTimeoutMs: number;
}

/** What a hello asks for: the `hello` message without its envelope (the version is checked before the window). */
export type HelloRequest = Omit<Hello, 'type' | 'version'>;

/** The answer to a hello. `dropped`: items before the resume point, consumed elsewhere. */
export type HelloOutcome =
  | { readonly type: 'welcome'; readonly next: Position; readonly dropped: readonly StreamItem[]; readonly duplicate: boolean }
  | { readonly type: 'refused'; readonly reason: RefusalReason; readonly message: string };

/** A control message for a session that is not the current one. */
export interface UnknownSession {
  readonly status: 'unknown-session';
}

export type CreditOutcome = UnknownSession | { readonly status: 'ok'; readonly clamped?: { readonly requested: number; readonly allowed: number } };
export type AckOutcome =
  | UnknownSession
  | { readonly status: 'stale' }
  | { readonly status: 'invalid'; readonly why: string }
  | { readonly status: 'ok'; readonly acked: readonly StreamItem[] };
export type NackOutcome = UnknownSession | { readonly status: 'ignored'; readonly why: string } | { readonly status: 'ok'; readonly item: StreamItem };

/** The current session, for logs and stats. */
export interface SessionInfo {
  readonly id: number;
  readonly clientId: string;
  readonly hostId: string;
  /** Cumulative credit granted in the session. */
  readonly granted: number;
  /** Batches published for the first time in the session. */
  readonly sent: number;
  /** Batches of the session acked. */
  readonly acked: number;
  readonly start: Position;
}

interface Entry {
  readonly item: StreamItem;
  readonly position: Position;
  /** Published in the current session (always a prefix of the entries). */
  publishedInSession: boolean;
  /** Published in some session: only such an item can be acked. */
  everPublished: boolean;
}

interface Session {
  readonly id: number;
  readonly clientId: string;
  readonly hostId: string;
  readonly start: Position;
  granted: number;
  sent: number;
  acked: number;
  lastHeardAt: number;
  clamped: boolean;
}

/** The loader's window and session state. */
export class CreditWindow {
  readonly job: string;
  readonly rank: number;
  readonly maxCredits: number;
  readonly clientTimeoutMs: number;
  readonly #entries: Entry[] = [];
  #batches = 0;
  #markers = 0;
  /** Entries published in the current session: entries[0, cursor). */
  #cursor = 0;
  /** Position the pipeline pushes next. */
  #next: Position;
  /** First position not acked (or skipped by a resume point): nothing before it is held or sent again. */
  #floor: Position;
  #session: Session | undefined;

  constructor(options: CreditWindowOptions) {
    this.job = options.job;
    this.rank = options.rank;
    this.maxCredits = options.maxCredits;
    this.clientTimeoutMs = options.clientTimeoutMs;
    this.#next = options.start ?? { epoch: 0, step: 0 };
    this.#floor = this.#next;
  }

  /** The position the pipeline must push next. */
  get next(): Position {
    return this.#next;
  }

  /** The first position not acked by the trainer. */
  get floor(): Position {
    return this.#floor;
  }

  /** Batches held (accepted, not acked). */
  get heldBatches(): number {
    return this.#batches;
  }

  /** Items held (batches and end markers). */
  get heldItems(): number {
    return this.#entries.length;
  }

  /** Bytes of the batches held. */
  get heldBytes(): number {
    let bytes = 0;
    for (const e of this.#entries) if (e.item.kind === 'batch') bytes += batchByteLength(e.item);
    return bytes;
  }

  /** Batches sent in the current session and not acked yet (0 without a session). */
  get inFlight(): number {
    const s = this.#session;
    return s === undefined ? 0 : s.sent - s.acked;
  }

  get session(): SessionInfo | undefined {
    const s = this.#session;
    return s === undefined
      ? undefined
      : { id: s.id, clientId: s.clientId, hostId: s.hostId, granted: s.granted, sent: s.sent, acked: s.acked, start: s.start };
  }

  /** Whether an item of this kind can be pushed now (the window holds fewer than maxCredits of them). */
  hasRoom(kind: StreamItem['kind']): boolean {
    return (kind === 'batch' ? this.#batches : this.#markers) < this.maxCredits;
  }

  /**
   * Appends the next item of the stream. An item before the floor (the trainer said it already
   * has it) is not held: `skipped`.
   * @throws ArgumentError when the item is not at {@link next} or the window has no room.
   */
  push(item: StreamItem): 'held' | 'skipped' {
    const position = itemPosition(item);
    if (comparePositions(position, this.#next) !== 0) {
      const what = item.kind === 'batch' ? `batch at ${formatPosition(position)}` : `end of epoch ${item.epoch} after ${item.batches} batches`;
      throw new ArgumentError(
        item.kind === 'batch' ? 'batch' : 'endEpoch',
        `${what} is out of order: the stream expects ${formatPosition(this.#next)} next` +
          (this.#next.step > 0 ? ` (a batch, or the end of epoch ${this.#next.epoch} after ${this.#next.step} batches)` : ''),
      );
    }
    if (!this.hasRoom(item.kind)) throw new ArgumentError('window', `holds ${this.maxCredits} ${item.kind === 'batch' ? 'batches' : 'end markers'} already`);
    this.#next = successor(position, item.kind === 'end');
    if (comparePositions(position, this.#floor) < 0) return 'skipped';
    if (this.#entries.length === 0) this.#floor = position;
    this.#entries.push({ item, position, publishedInSession: false, everPublished: false });
    if (item.kind === 'batch') this.#batches++;
    else this.#markers++;
    return 'held';
  }

  /**
   * Answers a hello: refuses another job or rank, a different client while the current one is
   * alive, or a resume point before the floor; otherwise starts a session from the resume point
   * (or the floor) in which every held item is sent again. A repeated hello of the current
   * session is answered again without restarting it.
   */
  hello(hello: HelloRequest, now: number): HelloOutcome {
    if (hello.job !== this.job) {
      return refuse(RefusalReason.Job, `this loader serves job ${JSON.stringify(this.job)}, the hello names job ${JSON.stringify(hello.job)}`);
    }
    if (hello.rank !== this.rank) {
      return refuse(RefusalReason.Rank, `this loader serves rank ${this.rank}, the hello names rank ${hello.rank}`);
    }
    const current = this.#session;
    if (current !== undefined && current.clientId !== hello.clientId && now - current.lastHeardAt < this.clientTimeoutMs) {
      return refuse(
        RefusalReason.Busy,
        `rank ${this.rank} is being served to client ${JSON.stringify(current.clientId)}, heard from ${Math.round(now - current.lastHeardAt)} ms ago; ` +
          `another client may take over after ${this.clientTimeoutMs} ms of silence`,
      );
    }
    if (current !== undefined && current.id === hello.session && current.clientId === hello.clientId) {
      current.lastHeardAt = now;
      return { type: 'welcome', next: current.start, dropped: [], duplicate: true };
    }
    const resume = hello.resume;
    if (resume !== null && comparePositions(resume, this.#floor) < 0) {
      return refuse(
        RefusalReason.Resume,
        `resume point ${formatPosition(resume)} is before the oldest item this loader holds (${formatPosition(this.#floor)}); ` +
          'those batches were acked and are gone',
      );
    }
    let dropped: StreamItem[] = [];
    if (resume !== null && comparePositions(resume, this.#floor) > 0) {
      let n = 0;
      while (n < this.#entries.length && comparePositions(this.#entries[n]!.position, resume) < 0) n++;
      dropped = this.#remove(n);
      this.#floor = resume;
    }
    for (const e of this.#entries) e.publishedInSession = false;
    this.#cursor = 0;
    this.#session = {
      id: hello.session,
      clientId: hello.clientId,
      hostId: hello.hostId,
      start: this.#floor,
      granted: hello.credits,
      sent: 0,
      acked: 0,
      lastHeardAt: now,
      clamped: false,
    };
    return { type: 'welcome', next: this.#floor, dropped, duplicate: false };
  }

  /**
   * Records a cumulative grant (a smaller one than before is stale and changes nothing). Reports
   * `clamped` when the trainer's outstanding credit first exceeds maxCredits.
   */
  credit(session: number, granted: number, now: number): CreditOutcome {
    const s = this.#current(session, now);
    if (s === undefined) return { status: 'unknown-session' };
    if (granted > s.granted) s.granted = granted;
    const requested = s.granted - s.acked;
    const clamped = requested > this.maxCredits;
    const report = clamped && !s.clamped;
    s.clamped = clamped;
    return report ? { status: 'ok', clamped: { requested, allowed: this.maxCredits } } : { status: 'ok' };
  }

  /**
   * Removes every item up to and including `position`, which must be a held item that was
   * sent. An ack before the floor is stale; one of an item never sent is invalid.
   */
  ack(session: number, position: Position, now: number): AckOutcome {
    const s = this.#current(session, now);
    if (s === undefined) return { status: 'unknown-session' };
    if (comparePositions(position, this.#floor) < 0) return { status: 'stale' };
    const index = this.#find(position);
    if (index < 0 || !this.#entries[index]!.everPublished) {
      return { status: 'invalid', why: `no item at ${formatPosition(position)} was sent (the oldest unacked item is at ${formatPosition(this.#floor)})` };
    }
    let batchesOfSession = 0;
    for (let i = 0; i <= index && i < this.#cursor; i++) if (this.#entries[i]!.item.kind === 'batch') batchesOfSession++;
    s.acked += batchesOfSession;
    const acked = this.#remove(index + 1);
    return { status: 'ok', acked };
  }

  /** The held item at `position` to send again, when it was sent in this session. */
  nack(session: number, position: Position, now: number): NackOutcome {
    const s = this.#current(session, now);
    if (s === undefined) return { status: 'unknown-session' };
    const index = this.#find(position);
    if (index < 0) {
      return comparePositions(position, this.#floor) < 0
        ? { status: 'ignored', why: `${formatPosition(position)} was acked already` }
        : { status: 'ignored', why: `no item at ${formatPosition(position)} is held` };
    }
    const entry = this.#entries[index]!;
    if (!entry.publishedInSession) return { status: 'ignored', why: `${formatPosition(position)} was not sent in this session yet` };
    return { status: 'ok', item: entry.item };
  }

  /** Ends the session (the trainer left); held items stay for the next one. */
  bye(session: number): UnknownSession | { readonly status: 'ok' } {
    if (this.#session?.id !== session) return { status: 'unknown-session' };
    this.#session = undefined;
    return { status: 'ok' };
  }

  /** Marks the client of the session as alive. */
  touch(session: number, now: number): boolean {
    return this.#current(session, now) !== undefined;
  }

  /**
   * The next item to publish in the session, marked as sent, or undefined when there is no
   * session, nothing left to send, or no credit for the next batch.
   */
  takePublishable(): StreamItem | undefined {
    const s = this.#session;
    const entry = this.#entries[this.#cursor];
    if (s === undefined || entry === undefined) return undefined;
    if (entry.item.kind === 'batch') {
      if (s.sent >= Math.min(s.granted, s.acked + this.maxCredits)) return undefined;
      s.sent++;
    }
    entry.publishedInSession = true;
    entry.everPublished = true;
    this.#cursor++;
    return entry.item;
  }

  #current(session: number, now: number): Session | undefined {
    const s = this.#session;
    if (s === undefined || s.id !== session) return undefined;
    s.lastHeardAt = now;
    return s;
  }

  #find(position: Position): number {
    // Held positions are sorted: binary search.
    let lo = 0;
    let hi = this.#entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = comparePositions(this.#entries[mid]!.position, position);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Removes the first `n` entries and moves the floor past them. */
  #remove(n: number): StreamItem[] {
    if (n === 0) return [];
    const removed = this.#entries.splice(0, n);
    for (const e of removed) {
      if (e.item.kind === 'batch') this.#batches--;
      else this.#markers--;
    }
    this.#cursor = Math.max(0, this.#cursor - n);
    const last = removed[removed.length - 1]!;
    this.#floor = successor(last.position, last.item.kind === 'end');
    return removed.map((e) => e.item);
  }
}

function refuse(reason: RefusalReason, message: string): HelloOutcome {
  return { type: 'refused', reason, message };
}
