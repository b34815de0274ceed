/**
 * The loader's end of the delivery protocol without I/O: turns received control messages
 * (bytes) and pushed items into the messages to publish, over a {@link CreditWindow}. It never
 * throws on what a trainer sends: malformed or hostile messages are reported as events and
 * dropped. batch-sender.ts does the NATS I/O; the property tests run it over simulated networks.
 */
import { ArgumentError } from '../errors.ts';
import { CreditWindow, batchByteLength, type StreamItem } from './credit-window.ts';
import { chunkLayout, encodeChunkFrame, encodeShmFrame } from './frame.ts';
import {
  PROTOCOL_VERSION,
  RefusalReason,
  TRAINER_MESSAGE_TYPES,
  Transport,
  VersionMismatchError,
  decodeControlMessage,
  describeValue,
  encodeControlMessage,
  type LoaderMessage,
} from './messages.ts';
import type { Position } from './position.ts';
import type { DeliverySubjects } from './subjects.ts';

/** A message to publish on one of the stream's subjects. */
export interface Outgoing<S extends keyof DeliverySubjects = keyof DeliverySubjects> {
  readonly subject: S;
  readonly bytes: Uint8Array;
}

/** What happened on the loader's end, for logs and metrics (one event per line). */
export type SenderEvent =
  | { type: 'welcome'; session: number; clientId: string; hostId: string; next: Position; credits: number; repeated: boolean; transport: Transport }
  | { type: 'refused'; session: number; clientId?: string; reason: RefusalReason; message: string }
  | { type: 'bye'; session: number }
  | { type: 'credit-clamped'; session: number; requested: number; allowed: number }
  | { type: 'batch-acked'; epoch: number; step: number; sampleIds: readonly number[]; how: 'ack' | 'resume' }
  | { type: 'epoch-acked'; epoch: number; batches: number }
  | { type: 'resent'; epoch: number; step: number; frames: number }
  | { type: 'ignored'; message: 'ack' | 'nack'; epoch: number; step: number; why: string }
  | { type: 'unknown-session'; session: number; messageType: string; resetSent: boolean }
  | { type: 'malformed'; subject: 'hello' | 'ctl'; error: string }
  /** The trainer reported `seconds` more of waiting for batches (its credits carry the session's total). */
  | { type: 'trainer-wait'; session: number; seconds: number }
  /** The transport failed to publish or deliver (reported by the NATS adapter). */
  | { type: 'transport-error'; error: string }
  /** The adapter's shared-memory ring: created, or not available (batches then go over NATS only). */
  | { type: 'shm-ring'; ring: string; slots: number; slotBytes: number; reclaimed: number }
  | { type: 'shm-unavailable'; error: string };

/** Options of {@link SenderProtocol}. */
export interface SenderProtocolOptions {
  readonly job: string;
  readonly rank: number;
  readonly maxCredits: number;
  readonly maxBatchBytes: number;
  readonly start?: Position;
  readonly clientTimeoutMs: number;
  /** Least time between two `reset` answers to messages of unknown sessions. */
  readonly resetIntervalMs: number;
  readonly loaderId: string;
  readonly hostId: string;
  /** Whether this loader can place batches in shared memory: a hello from its host that offers `shm` gets an shm session. */
  readonly shm?: boolean;
  readonly onEvent?: (event: SenderEvent) => void;
}

/** The loader's protocol engine. */
export class SenderProtocol {
  readonly window: CreditWindow;
  readonly #options: SenderProtocolOptions;
  readonly #emit: (event: SenderEvent) => void;
  /** Chunk size of the current session, fixed at its hello so that nacked chunk indices stay valid. */
  #chunkBytes = 1;
  #lastResetAt = -Infinity;
  /** How the current session's batches travel, fixed at its hello. */
  #transport: Transport = Transport.Nats;
  /** The trainer's reported wait in the current session, in seconds (cumulative). */
  #waited = 0;

  constructor(options: SenderProtocolOptions) {
    this.#options = options;
    this.#emit = options.onEvent ?? (() => {});
    this.window = new CreditWindow({
      job: options.job,
      rank: options.rank,
      maxCredits: options.maxCredits,
      start: options.start,
      clientTimeoutMs: options.clientTimeoutMs,
    });
  }

  /**
   * Answers a `hello`: `welcome` then the session's first items, or `refused`. `chunkBytes` is
   * the largest chunk a data frame may carry now (from the connection's max_payload).
   */
  onHello(data: Uint8Array, now: number, chunkBytes: number): Outgoing[] {
    let hello;
    try {
      hello = decodeControlMessage(data, ['hello']);
    } catch (error) {
      if (error instanceof VersionMismatchError && error.session !== undefined) {
        const message = `protocol version ${describeValue(error.version)} is not supported; this loader speaks version ${PROTOCOL_VERSION}`;
        this.#emit({ type: 'refused', session: error.session, reason: RefusalReason.Version, message });
        return [this.#event({ type: 'refused', version: PROTOCOL_VERSION, session: error.session, reason: RefusalReason.Version, message, supportedVersions: [PROTOCOL_VERSION] })];
      }
      this.#emit({ type: 'malformed', subject: 'hello', error: (error as Error).message });
      return [];
    }
    const outcome = this.window.hello(hello, now);
    if (outcome.type === 'refused') {
      this.#emit({ type: 'refused', session: hello.session, clientId: hello.clientId, reason: outcome.reason, message: outcome.message });
      return [
        this.#event({
          type: 'refused',
          version: PROTOCOL_VERSION,
          session: hello.session,
          reason: outcome.reason,
          message: outcome.message,
          supportedVersions: [PROTOCOL_VERSION],
        }),
      ];
    }
    if (!outcome.duplicate) {
      this.#chunkBytes = Math.max(1, chunkBytes);
      // Shared memory only between processes of one host that both want it; a trainer that
      // cannot read the segments after all says hello again without the offer.
      this.#transport = this.#options.shm === true && hello.shm === true && hello.hostId === this.#options.hostId ? Transport.Shm : Transport.Nats;
      this.#waited = 0;
    }
    for (const item of outcome.dropped) this.#acked(item, 'resume');
    this.#emit({
      type: 'welcome',
      session: hello.session,
      clientId: hello.clientId,
      hostId: hello.hostId,
      next: outcome.next,
      credits: hello.credits,
      repeated: outcome.duplicate,
      transport: this.#transport,
    });
    this.#clampCheck(hello.session, hello.credits, now);
    const welcome = this.#event({
      type: 'welcome',
      version: PROTOCOL_VERSION,
      session: hello.session,
      job: this.#options.job,
      rank: this.#options.rank,
      next: outcome.next,
      maxCredits: this.#options.maxCredits,
      maxBatchBytes: this.#options.maxBatchBytes,
      loaderId: this.#options.loaderId,
      hostId: this.#options.hostId,
      transport: this.#transport,
    });
    return [welcome, ...this.pump()];
  }

  /** Handles a `credit`, `ack`, `nack` or `bye`; returns what to publish (frames sent again, or newly allowed). */
  onControl(data: Uint8Array, now: number): Outgoing[] {
    let message;
    try {
      message = decodeControlMessage(data, TRAINER_MESSAGE_TYPES.filter((t) => t !== 'hello'));
    } catch (error) {
      this.#emit({ type: 'malformed', subject: 'ctl', error: (error as Error).message });
      return [];
    }
    const w = this.window;
    switch (message.type) {
      case 'credit': {
        const outcome = w.credit(message.session, message.granted, now);
        if (outcome.status === 'unknown-session') return this.#unknown(message.session, message.type, now);
        if (outcome.clamped !== undefined) this.#emit({ type: 'credit-clamped', session: message.session, ...outcome.clamped });
        if (message.waitedSeconds !== undefined && message.waitedSeconds > this.#waited) {
          this.#emit({ type: 'trainer-wait', session: message.session, seconds: message.waitedSeconds - this.#waited });
          this.#waited = message.waitedSeconds;
        }
        return this.pump();
      }
      case 'ack': {
        const outcome = w.ack(message.session, message, now);
        if (outcome.status === 'unknown-session') return this.#unknown(message.session, message.type, now);
        if (outcome.status === 'invalid') this.#emit({ type: 'ignored', message: 'ack', epoch: message.epoch, step: message.step, why: outcome.why });
        if (outcome.status !== 'ok') return [];
        for (const item of outcome.acked) this.#acked(item, 'ack');
        return this.pump();
      }
      case 'nack': {
        const outcome = w.nack(message.session, message, now);
        if (outcome.status === 'unknown-session') return this.#unknown(message.session, message.type, now);
        if (outcome.status === 'ignored') {
          this.#emit({ type: 'ignored', message: 'nack', epoch: message.epoch, step: message.step, why: outcome.why });
          return [];
        }
        const frames = this.#frames(outcome.item, message.chunks);
        this.#emit({ type: 'resent', epoch: message.epoch, step: message.step, frames: frames.length });
        return frames;
      }
      case 'bye': {
        // A bye for an unknown session needs no answer: that trainer is gone either way.
        if (w.bye(message.session).status === 'ok') this.#emit({ type: 'bye', session: message.session });
        return [];
      }
    }
  }

  /**
   * Appends the next item of the stream and returns what can be published now.
   * @throws ArgumentError when it is out of order, larger than maxBatchBytes, or the window is full.
   */
  push(item: StreamItem): Outgoing[] {
    if (item.kind === 'batch' && batchByteLength(item) > this.#options.maxBatchBytes) {
      throw new ArgumentError(
        'batch.bytes',
        `the batch at epoch ${item.epoch} step ${item.step} has ${batchByteLength(item)} bytes, more than maxBatchBytes (${this.#options.maxBatchBytes})`,
      );
    }
    if (this.window.push(item) === 'skipped') {
      this.#acked(item, 'resume');
      return [];
    }
    return this.pump();
  }

  /** How the current session's batches travel (`nats` before any session). */
  get transport(): Transport {
    return this.window.session === undefined ? Transport.Nats : this.#transport;
  }

  /** Frames and end markers that the session's credit allows now, in stream order. */
  pump(): Outgoing[] {
    const out: Outgoing[] = [];
    for (let item = this.window.takePublishable(); item !== undefined; item = this.window.takePublishable()) {
      out.push(...this.#frames(item, undefined));
    }
    return out;
  }

  #frames(item: StreamItem, chunks: readonly number[] | undefined): Outgoing[] {
    const session = this.window.session!.id;
    if (item.kind === 'end') {
      return [this.#event({ type: 'end-of-epoch', version: PROTOCOL_VERSION, session, epoch: item.epoch, batches: item.batches })];
    }
    if (this.#transport === Transport.Shm && item.shm !== undefined) {
      const { job, rank } = this.#options;
      return [{ subject: 'data', bytes: encodeShmFrame({ session, job, rank, epoch: item.epoch, step: item.step, totalBytes: batchByteLength(item) }, item.shm) }];
    }
    const indicesOf = (count: number) => [...new Set(chunks ?? Array.from({ length: count }, (_, i) => i))].filter((i) => i < count);
    const framed = item.framed;
    if (framed !== undefined && framed.fits(this.#chunkBytes)) {
      // Held as frames of this session's layout: views, no copy.
      return indicesOf(framed.count).map((index) => ({ subject: 'data', bytes: framed.frame(index, session) }));
    }
    const bytes = item.bytes;
    const { count, chunkSize } = chunkLayout(bytes.byteLength, this.#chunkBytes);
    const header = {
      session,
      job: this.#options.job,
      rank: this.#options.rank,
      epoch: item.epoch,
      step: item.step,
      count,
      chunkSize,
      totalBytes: bytes.byteLength,
    };
    return indicesOf(count).map((index) => ({ subject: 'data', bytes: encodeChunkFrame({ ...header, index }, bytes) }));
  }

  #acked(item: StreamItem, how: 'ack' | 'resume'): void {
    if (item.kind === 'batch') this.#emit({ type: 'batch-acked', epoch: item.epoch, step: item.step, sampleIds: item.sampleIds, how });
    else this.#emit({ type: 'epoch-acked', epoch: item.epoch, batches: item.batches });
  }

  #clampCheck(session: number, credits: number, now: number): void {
    const outcome = this.window.credit(session, credits, now);
    if (outcome.status === 'ok' && outcome.clamped !== undefined) this.#emit({ type: 'credit-clamped', session, ...outcome.clamped });
  }

  /** A message for a session this loader does not have: answer `reset` (rate-limited) so the trainer says hello again. */
  #unknown(session: number, messageType: string, now: number): Outgoing[] {
    const resetSent = now - this.#lastResetAt >= this.#options.resetIntervalMs;
    this.#emit({ type: 'unknown-session', session, messageType, resetSent });
    if (!resetSent) return [];
    this.#lastResetAt = now;
    return [this.#event({ type: 'reset', version: PROTOCOL_VERSION, session, reason: `this loader has no session ${session}; say hello again` })];
  }

  #event(message: LoaderMessage): Outgoing<'events'> {
    return { subject: 'events', bytes: encodeControlMessage(message) };
  }
}
