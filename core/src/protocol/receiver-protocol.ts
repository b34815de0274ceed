/**
 * The trainer's end of the delivery protocol without I/O: sessions (hello, retries, welcome,
 * refusals, resets), data frames and end markers into a {@link ReceiveWindow}, and the control
 * messages the trainer sends — an `ack` and a `credit` as the consumer takes each item, a `nack`
 * when nothing arrived for `resendAfterMs` while something is missing, and a heartbeat `credit`
 * + `ack` every `heartbeatMs` (both are cumulative, so repeating them is harmless and repairs
 * lost ones). Time comes from the caller (`now`, in ms), so tests can drive it.
 * batch-receiver.ts does the NATS I/O and the waiting.
 */
import { ArgumentError, FormatError, TimeoutError } from '../errors.ts';
import type { Delivery } from './batch-transport.ts';
import { FRAME_KIND_SHM, decodeChunkFrame, decodeShmFrame, frameKind, type ShmFrame } from './frame.ts';
import {
  LOADER_MESSAGE_TYPES,
  PROTOCOL_VERSION,
  RefusalReason,
  Transport,
  decodeControlMessage,
  encodeControlMessage,
  newSessionId,
  type TrainerMessage,
} from './messages.ts';
import { formatPosition, type Position } from './position.ts';
import { ReceiveWindow, type AcceptOutcome } from './receive-window.ts';
import { StaleDescriptorError } from './shm/shm-reader.ts';
import type { Outgoing } from './sender-protocol.ts';

/** What happened on the trainer's end, for logs and metrics. */
export type ReceiverEvent =
  | { type: 'hello'; session: number; resume: Position | null; credits: number; why: HelloReason }
  | { type: 'welcome'; session: number; next: Position; loaderId: string; hostId: string; maxCredits: number; transport: Transport }
  /** Reading a batch from shared memory failed: the stream goes on over NATS (a new session without the shm offer). */
  | { type: 'shm-failed'; error: string }
  | { type: 'refused'; session: number; reason: RefusalReason; message: string }
  | { type: 'reset'; session: number; reason: string }
  | { type: 'nack'; epoch: number; step: number; chunks?: readonly number[] }
  | { type: 'duplicate'; epoch: number; step: number }
  | { type: 'rejected'; why: string }
  | { type: 'malformed'; subject: 'data' | 'events'; error: string }
  | { type: 'failed'; error: string };

/** Why a hello was sent. */
export type HelloReason = 'start' | 'retry' | 'reconnect' | 'reset';

/** Where the trainer's end stands. */
export type ReceiverState = 'idle' | 'connecting' | 'open' | 'failed' | 'closed';

/** Options of {@link ReceiverProtocol}. */
export interface ReceiverProtocolOptions {
  readonly job: string;
  readonly rank: number;
  readonly window: number;
  readonly maxBatchBytes: number;
  readonly resume?: Position | null;
  readonly clientId: string;
  readonly hostId: string;
  readonly resendAfterMs: number;
  readonly heartbeatMs: number;
  readonly helloRetryMs: number;
  readonly connectTimeoutMs: number;
  /** Offer to read batches from shared memory (the loader decides; default false). */
  readonly shm?: boolean;
  /**
   * The caller hands data frames over (it never reuses their buffers), so a batch that fits in
   * one frame is kept as a view of it instead of being copied (default false).
   */
  readonly adoptFrames?: boolean;
  readonly onEvent?: (event: ReceiverEvent) => void;
}

/** Messages to publish, and whether the consumer can read more now. */
export interface ReceiverStep {
  readonly outgoing: Outgoing<'hello' | 'ctl'>[];
  readonly readable: boolean;
  /** A batch to read from shared memory, then hand to {@link ReceiverProtocol.onShmBatch} (or, on failure, to `shmFailed`). */
  readonly shm?: ShmFrame;
}

const NOTHING: ReceiverStep = { outgoing: [], readable: false };

/**
 * A gap between ticks longer than resendAfterMs, and at least this, means the process was busy
 * (with a tiny resendAfterMs the timer's own period could exceed it).
 */
const MIN_BUSY_GAP_MS = 50;

/** The most a repeated nack of one item is held back, in multiples of resendAfterMs. */
const MAX_NACK_BACKOFF = 8;

/** The trainer's protocol engine. */
export class ReceiverProtocol {
  readonly window: ReceiveWindow;
  readonly #o: ReceiverProtocolOptions;
  readonly #emit: (event: ReceiverEvent) => void;
  #state: ReceiverState = 'idle';
  #failure: Error | undefined;
  #session = 0;
  #connectingSince = 0;
  #helloSentAt = 0;
  #lastRefusal: string | undefined;
  #lastProgressAt = 0;
  #lastControlAt = 0;
  #lastTickAt = 0;
  /** Multiplies resendAfterMs for the next nack: doubles while the same item goes unanswered (to 8), back to 1 on progress. */
  #nackBackoff = 1;
  #lastNacked: string | undefined;
  #shmOffered: boolean;
  #transport: Transport = Transport.Nats;
  /** Seconds the consumer waited in the current session (reported with each credit). */
  #waited = 0;

  constructor(options: ReceiverProtocolOptions) {
    this.#o = options;
    this.#emit = options.onEvent ?? (() => {});
    this.#shmOffered = options.shm === true;
    this.window = new ReceiveWindow({
      job: options.job,
      rank: options.rank,
      window: options.window,
      maxBatchBytes: options.maxBatchBytes,
      resume: options.resume ?? null,
    });
  }

  get state(): ReceiverState {
    return this.#state;
  }

  /** Why the stream cannot go on (state `failed`). */
  get failure(): Error | undefined {
    return this.#failure;
  }

  get session(): number {
    return this.#session;
  }

  /** How the open session's batches travel. */
  get transport(): Transport {
    return this.#transport;
  }

  /** Adds to the wait reported to the loader with the next credit. */
  addWait(seconds: number): void {
    if (Number.isFinite(seconds) && seconds > 0) this.#waited += seconds;
  }

  /**
   * Starts a new session: drops what was received and not consumed and says hello from the
   * consumer's position. Used to start, after the connection came back, and on a `reset`.
   */
  connect(now: number, why: HelloReason): Outgoing<'hello'>[] {
    if (this.#state === 'failed' || this.#state === 'closed') return [];
    if (why !== 'retry' || this.#state !== 'connecting') {
      this.#connectingSince = now;
      this.#lastRefusal = undefined;
    }
    this.#state = 'connecting';
    this.#session = newSessionId(this.#session);
    this.#transport = Transport.Nats;
    this.#waited = 0;
    const { resume, credits } = this.window.begin(this.#session);
    this.#helloSentAt = now;
    this.#emit({ type: 'hello', session: this.#session, resume, credits, why });
    return [
      this.#message('hello', {
        type: 'hello',
        version: PROTOCOL_VERSION,
        session: this.#session,
        job: this.#o.job,
        rank: this.#o.rank,
        clientId: this.#o.clientId,
        hostId: this.#o.hostId,
        credits,
        resume,
        ...(this.#shmOffered ? { shm: true } : {}),
      }),
    ];
  }

  /** Handles a message of the `events` subject: welcome, refused, end-of-epoch, reset. */
  onEvents(data: Uint8Array, now: number): ReceiverStep {
    if (this.#state === 'failed' || this.#state === 'closed' || this.#state === 'idle') return NOTHING;
    let message;
    try {
      message = decodeControlMessage(data, LOADER_MESSAGE_TYPES);
    } catch (error) {
      this.#emit({ type: 'malformed', subject: 'events', error: (error as Error).message });
      return NOTHING;
    }
    if (message.session !== this.#session) return NOTHING; // another session's or another client's
    switch (message.type) {
      case 'welcome': {
        if (this.#state !== 'connecting') return NOTHING;
        // A welcome no honest loader sends is dropped, not obeyed; if it was the loader's, the
        // hello retries end in the connect timeout, whose error quotes it.
        if (message.job !== this.#o.job || message.rank !== this.#o.rank) {
          return this.#badWelcome(`the welcome names job ${JSON.stringify(message.job)} rank ${message.rank}, this stream is job ${JSON.stringify(this.#o.job)} rank ${this.#o.rank}`);
        }
        const outcome = this.window.welcome(message.session, message.next);
        if (outcome === 'ignored') return NOTHING;
        if (outcome !== 'ok') return this.#badWelcome(outcome.mismatch);
        this.#state = 'open';
        this.#lastProgressAt = now;
        this.#lastControlAt = now;
        // Only what the hello offered: a loader cannot push a trainer onto shared memory.
        this.#transport = this.#shmOffered && message.transport === Transport.Shm ? Transport.Shm : Transport.Nats;
        const { next, loaderId, hostId, maxCredits } = message;
        this.#emit({ type: 'welcome', session: message.session, next, loaderId, hostId, maxCredits, transport: this.#transport });
        return NOTHING;
      }
      case 'refused': {
        if (this.#state !== 'connecting') return NOTHING;
        this.#emit({ type: 'refused', session: message.session, reason: message.reason, message: message.message });
        if (message.reason === RefusalReason.Busy) {
          this.#lastRefusal = message.message; // retried every helloRetryMs until connectTimeoutMs
          return NOTHING;
        }
        const argument = { version: 'protocolVersion', job: 'job', rank: 'rank', resume: 'resume' }[message.reason];
        this.#fail(new ArgumentError(argument, `the loader refused the hello: ${message.message}`));
        return NOTHING;
      }
      case 'end-of-epoch':
        return this.#accepted(this.window.acceptEnd(message.session, message.epoch, message.batches), { epoch: message.epoch, step: message.batches }, now);
      case 'reset':
        this.#emit({ type: 'reset', session: message.session, reason: message.reason });
        return { outgoing: this.connect(now, 'reset'), readable: false };
    }
  }

  /** Handles a data frame. */
  onData(data: Uint8Array, now: number): ReceiverStep {
    if (this.#state !== 'open') return NOTHING;
    if (frameKind(data) === FRAME_KIND_SHM) return this.#onShmFrame(data);
    let frame;
    try {
      frame = decodeChunkFrame(data);
    } catch (error) {
      this.#emit({ type: 'malformed', subject: 'data', error: (error as Error).message });
      return NOTHING;
    }
    // A one-chunk batch keeps the frame's bytes as they are (no copy); see onData's contract.
    return this.#accepted(this.window.acceptChunk(frame, { adopt: this.#o.adoptFrames === true && frame.count === 1 }), frame, now);
  }

  /**
   * Takes a batch read from shared memory for a frame that onData returned (`step.shm`). The
   * buffer is kept as the batch's bytes (not copied).
   */
  onShmBatch(frame: ShmFrame, bytes: Uint8Array, now: number): ReceiverStep {
    if (this.#state !== 'open' || frame.session !== this.#session) return NOTHING;
    if (bytes.byteLength !== frame.totalBytes) {
      this.#emit({ type: 'rejected', why: `shared memory gave ${bytes.byteLength} bytes for the batch at ${formatPosition(frame)}, its frame says ${frame.totalBytes}` });
      return NOTHING;
    }
    const chunk = { ...frame, index: 0, count: 1, chunkSize: frame.totalBytes, payload: bytes };
    return this.#accepted(this.window.acceptChunk(chunk, { adopt: true }), frame, now);
  }

  /**
   * Reading from shared memory failed. A stale descriptor (its slot moved on: a late copy) is
   * only dropped — a nack brings the item again if it is still missing. Anything else (the
   * trainer does not see the loader's segments, or they are gone) stops the offer and starts a
   * new session over NATS. Returns the hello to send, if any.
   */
  shmFailed(frame: ShmFrame, error: Error, now: number): Outgoing<'hello'>[] {
    if (this.#state !== 'open' || frame.session !== this.#session || !this.#shmOffered) return [];
    if (error instanceof StaleDescriptorError) {
      this.#emit({ type: 'rejected', why: error.message });
      return [];
    }
    this.#shmOffered = false;
    this.#emit({ type: 'shm-failed', error: error.message });
    return this.connect(now, 'reconnect');
  }

  /** The next item for the consumer, with the ack and credit to send for it. */
  take(now: number): { item: Delivery | undefined; outgoing: Outgoing<'ctl'>[] } {
    const item = this.window.take();
    if (item === undefined || this.#state !== 'open') return { item, outgoing: [] };
    this.#lastControlAt = now;
    return { item, outgoing: this.#progressMessages() };
  }

  /** Timers: hello retries and the connect timeout, nacks when stalled, heartbeats. */
  tick(now: number): Outgoing<'hello' | 'ctl'>[] {
    if (this.#state === 'connecting') {
      if (now - this.#connectingSince >= this.#o.connectTimeoutMs) {
        const why = this.#lastRefusal === undefined ? 'no loader answered' : `the last answer: ${this.#lastRefusal}`;
        this.#fail(
          new TimeoutError(
            `no welcome for job ${JSON.stringify(this.#o.job)} rank ${this.#o.rank} within ${this.#o.connectTimeoutMs} ms (connectTimeoutMs): ${why}`,
          ),
        );
        return [];
      }
      return now - this.#helloSentAt >= this.#o.helloRetryMs ? this.connect(now, 'retry') : [];
    }
    if (this.#state !== 'open') return [];
    const out: Outgoing<'ctl'>[] = [];
    // A tick this late means the process was busy (a training step, a long decode): frames that
    // arrived meanwhile wait behind this timer, so the silence is not the network's. Start the
    // silence over instead of asking for items that are already here.
    const busy = now - this.#lastTickAt > Math.max(this.#o.resendAfterMs, MIN_BUSY_GAP_MS);
    this.#lastTickAt = now;
    if (busy) {
      this.#lastProgressAt = Math.max(this.#lastProgressAt, now);
    } else if (now - this.#lastProgressAt >= this.#o.resendAfterMs * this.#nackBackoff) {
      this.#lastProgressAt = now;
      const missing = this.window.missing();
      if (missing !== undefined) {
        // Asking again for the same item, with nothing arriving meanwhile, waits twice as long each
        // time: a big batch still in flight behind a slow link is not sent twice over.
        const nacked = formatPosition(missing);
        this.#nackBackoff = nacked === this.#lastNacked ? Math.min(this.#nackBackoff * 2, MAX_NACK_BACKOFF) : 2;
        this.#lastNacked = nacked;
        const chunks = missing.chunks !== undefined && missing.chunks.length > 0 ? missing.chunks : undefined;
        this.#emit({ type: 'nack', epoch: missing.epoch, step: missing.step, ...(chunks === undefined ? {} : { chunks }) });
        out.push(
          this.#message('ctl', {
            type: 'nack',
            version: PROTOCOL_VERSION,
            session: this.#session,
            epoch: missing.epoch,
            step: missing.step,
            ...(chunks === undefined ? {} : { chunks }),
          }),
        );
      }
    }
    if (now - this.#lastControlAt >= this.#o.heartbeatMs) {
      this.#lastControlAt = now;
      out.push(...this.#progressMessages());
    }
    return out;
  }

  /** Leaves the stream: a `bye` when a session is open. */
  close(): Outgoing<'ctl'>[] {
    const wasOpen = this.#state === 'open';
    if (this.#state !== 'failed') this.#state = 'closed';
    return wasOpen ? [this.#message('ctl', { type: 'bye', version: PROTOCOL_VERSION, session: this.#session })] : [];
  }

  /** The cumulative ack (when something was consumed) and credit of the session. */
  #progressMessages(): Outgoing<'ctl'>[] {
    const out: Outgoing<'ctl'>[] = [];
    const last = this.window.lastConsumed;
    if (last !== null) {
      out.push(this.#message('ctl', { type: 'ack', version: PROTOCOL_VERSION, session: this.#session, epoch: last.epoch, step: last.step }));
    }
    const waitedSeconds = Math.min(Math.round(this.#waited * 1e6) / 1e6, 1e9);
    out.push(this.#message('ctl', { type: 'credit', version: PROTOCOL_VERSION, session: this.#session, granted: this.window.granted, waitedSeconds }));
    return out;
  }

  #onShmFrame(data: Uint8Array): ReceiverStep {
    let frame;
    try {
      frame = decodeShmFrame(data);
    } catch (error) {
      this.#emit({ type: 'malformed', subject: 'data', error: (error as Error).message });
      return NOTHING;
    }
    if (frame.session !== this.#session) return NOTHING;
    if (this.#transport === Transport.Shm && !this.window.wants(frame.session, frame)) {
      // A late copy (the item was received, maybe consumed and its slot reused): never read it.
      this.#emit({ type: 'duplicate', epoch: frame.epoch, step: frame.step });
      return NOTHING;
    }
    if (this.#transport !== Transport.Shm) {
      this.#emit({ type: 'rejected', why: `a shared-memory frame for ${formatPosition(frame)} in a session whose transport is ${this.#transport}` });
      return NOTHING;
    }
    if (frame.job !== this.#o.job || frame.rank !== this.#o.rank) {
      this.#emit({ type: 'rejected', why: `frame is for job ${JSON.stringify(frame.job)} rank ${frame.rank}, this stream is job ${JSON.stringify(this.#o.job)} rank ${this.#o.rank}` });
      return NOTHING;
    }
    return { outgoing: [], readable: false, shm: frame };
  }

  #accepted(outcome: AcceptOutcome, at: Position, now: number): ReceiverStep {
    switch (outcome.status) {
      case 'stored':
        this.#lastProgressAt = now;
        this.#nackBackoff = 1;
        this.#lastNacked = undefined;
        return { outgoing: [], readable: outcome.readable };
      case 'duplicate':
        this.#emit({ type: 'duplicate', epoch: at.epoch, step: at.step });
        return NOTHING;
      case 'ignored':
        return NOTHING;
      case 'rejected':
        this.#emit({ type: 'rejected', why: outcome.why });
        return NOTHING;
      case 'fatal':
        this.#fail(new FormatError(`${outcome.why}; the stream cannot go on past ${formatPosition(at)}`));
        return NOTHING;
    }
  }

  #badWelcome(why: string): ReceiverStep {
    this.#lastRefusal = why;
    this.#emit({ type: 'rejected', why });
    return NOTHING;
  }

  #fail(error: Error): void {
    this.#state = 'failed';
    this.#failure = error;
    this.#emit({ type: 'failed', error: error.message });
  }

  #message<S extends 'hello' | 'ctl'>(subject: S, message: TrainerMessage): Outgoing<S> {
    return { subject, bytes: encodeControlMessage(message) };
  }
}
