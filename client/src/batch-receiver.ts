/**
 * The trainer's {@link BatchSource} over core NATS: says hello on a rank's `hello` subject,
 * reads frames and events from `data` and `events`, and hands the consumer complete batches in
 * step order, exactly once (docs/protocol.md). The protocol logic is ReceiverProtocol; this module
 * adds the connection, a timer for its retries, nacks and heartbeats, a new session after every
 * reconnect of the connection, and the waiting of `read()` (whose duration is the data-wait time).
 */
import { hostname } from 'node:os';
import { AbortError, ArgumentError, ClosedError } from '@shardline/core';
import { requireInt } from '@shardline/core/internal';
import { Events, type Msg, type NatsConnection, type Status, type Subscription } from 'nats';
import {
  MAX_U32,
  ReceiverProtocol,
  ShmReader,
  deliverySubjects,
  onAbort,
  requireId,
  requirePosition,
  requireRank,
  requireSubjectToken,
  safeId,
  withoutUndefined,
  type BatchSource,
  type CallOptions,
  type DeliveredBatch,
  type Delivery,
  type DeliverySubjects,
  type Outgoing,
  type Position,
  type ReceiverEvent,
  type ReceiverState,
  type ShmFrame,
  type StreamScope,
  type Transport,
} from '@shardline/core/protocol';

/** Options of {@link BatchReceiver.connect}. */
export interface BatchReceiverOptions extends StreamScope {
  /**
   * Who this trainer is. A restarted trainer with the same id takes the stream over at once;
   * another id waits until the loader has not heard from the old one for its clientTimeoutMs
   * (default `<hostname>-rank-<rank>`, stable across restarts on one host).
   */
  clientId?: string;
  /**
   * This trainer's host (default the hostname). Shared memory is used only when it equals the
   * loader's hostId: in Kubernetes set both to the node name (downward API `spec.nodeName`).
   */
  hostId?: string;
  /**
   * Offer to read batches from the loader's shared-memory segments (default true, in
   * `/dev/shm`): used when the loader is on the same host and has a ring; if a segment cannot be
   * read (the folder is not shared with the loader), the stream goes on over NATS.
   */
  shm?: boolean | { directory?: string };
  /** Batches buffered at most, ready or in reassembly: the credit window (default 4). */
  window?: number;
  /** Largest batch accepted, in bytes (default 64 MiB); a larger one fails the stream. */
  maxBatchBytes?: number;
  /**
   * Where to start: the position after the last item this trainer consumed (from its
   * checkpoint), or null to continue after the last item the loader saw acked (default null).
   */
  resume?: Position | null;
  /** Silence after which a missing item or chunk is asked for again (default 250 ms). */
  resendAfterMs?: number;
  /** Period of the heartbeat credit and ack (default 1 s; keep it well below the loader's clientTimeoutMs). */
  heartbeatMs?: number;
  /** Period of hello retries while no welcome came (default 1 s). */
  helloRetryMs?: number;
  /** How long a hello may go unanswered, or keep being refused as busy, before the stream fails (default 30 s). */
  connectTimeoutMs?: number;
  /** Every protocol event (sessions, nacks, duplicates, malformed messages, a shared-memory fallback), for logs and metrics. */
  onEvent?: (event: ReceiverEvent) => void;
  /** Called once per read with how long the consumer waited for the item, in ms (0 when one was ready): the data-wait histogram. */
  onWait?: (ms: number) => void;
}

/** The defaults of {@link BatchReceiverOptions} that depend on nothing else. */
export function batchReceiverDefaults(): Required<Omit<BatchReceiverOptions, keyof StreamScope | 'onEvent' | 'onWait' | 'clientId'>> {
  return {
    hostId: safeId(hostname()),
    shm: true,
    window: 4,
    maxBatchBytes: 64 * 1024 * 1024,
    resume: null,
    resendAfterMs: 250,
    heartbeatMs: 1_000,
    helloRetryMs: 1_000,
    connectTimeoutMs: 30_000,
  };
}

/** Counters since connect, and the state now. */
export interface BatchReceiverStats {
  readonly state: ReceiverState;
  readonly position: Position | null;
  readonly session: number;
  readonly ready: number;
  readonly bufferedBatches: number;
  readonly bufferedBytes: number;
  readonly delivered: number;
  readonly deliveredBytes: number;
  readonly hellos: number;
  readonly nacks: number;
  readonly duplicates: number;
  readonly rejected: number;
  /** Total time reads waited, in ms, and how many reads there were. */
  readonly waitMs: number;
  readonly reads: number;
  /** How the open session's batches travel, and how many batches came through shared memory. */
  readonly transport: Transport;
  readonly shmBatches: number;
}

interface Reader {
  readonly started: number;
  readonly resolve: (item: Delivery) => void;
  readonly reject: (error: unknown) => void;
  readonly cleanup: () => void;
}

/**
 * Receives a rank's batches from its loader over NATS.
 * @example
 * const source = await BatchReceiver.connect(nc, { namespace: 'ml', job: 'mnist', rank: 0, onWait: (ms) => waitHistogram.observe(ms / 1000) });
 * for await (const batch of source.epoch()) train(decodeBatch(batch.bytes));
 */
export class BatchReceiver implements BatchSource {
  readonly subjects: DeliverySubjects;
  readonly #nc: NatsConnection;
  readonly #protocol: ReceiverProtocol;
  readonly #onWait: (ms: number) => void;
  readonly #subscriptions: Subscription[] = [];
  readonly #readers: Reader[] = [];
  readonly #timer: NodeJS.Timeout;
  #status: AsyncIterable<Status> | undefined;
  #connected: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  #closed: ClosedError | undefined;
  /** A subscription the server refused (permissions), or the connection closed: the stream cannot work. */
  #transportFailure: Error | undefined;
  #delivered = 0;
  #deliveredBytes = 0;
  #hellos = 0;
  #nacks = 0;
  #duplicates = 0;
  #rejected = 0;
  #waitMs = 0;
  #reads = 0;
  #shmBatches = 0;
  readonly #shm: ShmReader | undefined;

  private constructor(nc: NatsConnection, o: BatchReceiverOptions & ReturnType<typeof batchReceiverDefaults> & { clientId: string }) {
    this.#nc = nc;
    this.subjects = deliverySubjects(o);
    this.#onWait = o.onWait ?? (() => {});
    this.#shm = o.shm === false ? undefined : new ShmReader({ job: o.job, rank: o.rank, ...(o.shm === true || o.shm.directory === undefined ? {} : { directory: o.shm.directory }) });
    const emit = o.onEvent ?? (() => {});
    this.#protocol = new ReceiverProtocol({
      job: o.job,
      rank: o.rank,
      window: o.window,
      maxBatchBytes: o.maxBatchBytes,
      resume: o.resume,
      clientId: o.clientId,
      hostId: o.hostId,
      resendAfterMs: o.resendAfterMs,
      heartbeatMs: o.heartbeatMs,
      helloRetryMs: o.helloRetryMs,
      connectTimeoutMs: o.connectTimeoutMs,
      shm: this.#shm !== undefined,
      // nats.js hands each message its own buffer (never reused), so a one-chunk batch is kept without a copy.
      adoptFrames: true,
      onEvent: (event) => {
        if (event.type === 'hello') this.#hellos++;
        else if (event.type === 'nack') this.#nacks++;
        else if (event.type === 'duplicate') this.#duplicates++;
        else if (event.type === 'rejected' || event.type === 'malformed') this.#rejected++;
        emit(event);
      },
    });
    const period = Math.max(5, Math.min(o.resendAfterMs, o.heartbeatMs, o.helloRetryMs) / 2);
    this.#timer = setInterval(() => this.#tick(), period);
    this.#timer.unref();
  }

  /**
   * Validates the options, subscribes to the rank's `data` and `events` subjects, says hello and
   * waits for the loader's welcome.
   * @throws ArgumentError naming a bad option, or the field a loader refused (`protocolVersion`,
   * `job`, `rank`, `resume`) with the loader's reason, or `nc` when the server refuses the
   * subscriptions (permissions); TimeoutError when no loader welcomed the trainer within
   * connectTimeoutMs; AbortError.
   */
  static async connect(nc: NatsConnection, options: BatchReceiverOptions, callOptions: CallOptions = {}): Promise<BatchReceiver> {
    const rank = requireRank('rank', options.rank);
    const o = { ...batchReceiverDefaults(), clientId: safeId(`${hostname()}-rank-${rank}`), ...withoutUndefined(options) };
    requireSubjectToken('namespace', o.namespace ?? 'default');
    requireSubjectToken('job', o.job);
    requireId('clientId', o.clientId);
    requireId('hostId', o.hostId);
    if (typeof o.shm !== 'boolean' && (typeof o.shm !== 'object' || o.shm === null || (o.shm.directory !== undefined && (typeof o.shm.directory !== 'string' || o.shm.directory === '')))) {
      throw new ArgumentError('shm', `must be true, false or { directory: a non-empty path }, got ${JSON.stringify(o.shm)}`);
    }
    requireInt('window', o.window, { min: 1, max: 1_000_000 });
    requireInt('maxBatchBytes', o.maxBatchBytes, { min: 1, max: MAX_U32 });
    if (o.resume !== null) requirePosition('resume', o.resume);
    requireInt('resendAfterMs', o.resendAfterMs, { min: 1 });
    requireInt('heartbeatMs', o.heartbeatMs, { min: 1 });
    requireInt('helloRetryMs', o.helloRetryMs, { min: 1 });
    requireInt('connectTimeoutMs', o.connectTimeoutMs, { min: 1 });
    if (callOptions.signal?.aborted) throw new AbortError('connect() was aborted');

    const receiver = new BatchReceiver(nc, o);
    const { data, events } = receiver.subjects;
    receiver.#subscriptions.push(
      nc.subscribe(events, { callback: (error, msg) => receiver.#receive(error, msg, 'events') }),
      nc.subscribe(data, { callback: (error, msg) => receiver.#receive(error, msg, 'data') }),
    );
    void receiver.#watchConnection();
    void nc.closed().then(() => {
      receiver.#transportFailure ??= new ClosedError(`the NATS connection of the BatchReceiver for ${data} closed`);
      receiver.#afterStep();
    });
    const connected = new Promise<void>((resolve, reject) => {
      receiver.#connected = { resolve, reject };
    });
    connected.catch(() => {}); // settled early (a refused subscription) it is still awaited below, or dropped
    const cleanup = onAbort(callOptions.signal, () => receiver.#connected?.reject(new AbortError('connect() was aborted')));
    try {
      await nc.flush(); // the subscriptions exist on the server before the loader can answer
      const refused = receiver.#transportFailure;
      if (refused !== undefined) throw refused;
      receiver.#publish(receiver.#protocol.connect(performance.now(), 'start'));
      await connected;
      return receiver;
    } catch (error) {
      await receiver.close();
      throw error;
    } finally {
      cleanup();
    }
  }

  /** The position the next read() returns. */
  get position(): Position | null {
    return this.#protocol.window.position;
  }

  /**
   * The next item of the stream: a batch, or the end of an epoch after its batches.
   * @throws the stream's failure (TimeoutError, ArgumentError for a refusal, FormatError);
   * ClosedError after close(); AbortError.
   */
  read(options: CallOptions = {}): Promise<Delivery> {
    const started = performance.now();
    const failure = this.#closed ?? this.#failure();
    if (failure !== undefined) return Promise.reject(failure);
    if (options.signal?.aborted) return Promise.reject(new AbortError('read() was aborted'));
    return new Promise<Delivery>((resolve, reject) => {
      const reader: Reader = {
        started,
        resolve,
        reject,
        cleanup: onAbort(options.signal, () => {
          const i = this.#readers.indexOf(reader);
          if (i >= 0) this.#readers.splice(i, 1);
          reject(new AbortError('read() was aborted'));
        }),
      };
      this.#readers.push(reader);
      this.#serve();
    });
  }

  /** The batches of the next epoch in step order; ends after the epoch's end marker. */
  async *epoch(options: CallOptions = {}): AsyncGenerator<DeliveredBatch, void, undefined> {
    for (;;) {
      const item = await this.read(options);
      if (item.type === 'end-of-epoch') return;
      yield item;
    }
  }

  /** Every item of the stream, until close(). */
  async *[Symbol.asyncIterator](): AsyncGenerator<Delivery, void, undefined> {
    for (;;) {
      try {
        yield await this.read();
      } catch (error) {
        if (error instanceof ClosedError && this.#closed !== undefined) return;
        throw error;
      }
    }
  }

  stats(): BatchReceiverStats {
    const w = this.#protocol.window;
    return {
      state: this.#protocol.state,
      position: w.position,
      session: this.#protocol.session,
      ready: w.readyCount,
      bufferedBatches: w.bufferedBatches,
      bufferedBytes: w.bufferedBytes,
      delivered: this.#delivered,
      deliveredBytes: this.#deliveredBytes,
      hellos: this.#hellos,
      nacks: this.#nacks,
      duplicates: this.#duplicates,
      rejected: this.#rejected,
      waitMs: this.#waitMs,
      reads: this.#reads,
      transport: this.#protocol.transport,
      shmBatches: this.#shmBatches,
    };
  }

  /**
   * Says bye (the loader keeps what was not consumed, for the next reader), unsubscribes and
   * rejects pending reads with a ClosedError. The connection stays open. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed !== undefined) return;
    this.#closed = new ClosedError(`BatchReceiver for ${this.subjects.data} is closed`);
    clearInterval(this.#timer);
    this.#publish(this.#protocol.close());
    (this.#status as { stop?: () => void } | undefined)?.stop?.();
    for (const s of this.#subscriptions) s.unsubscribe();
    this.#connected?.reject(this.#closed);
    this.#failReaders(this.#closed);
    await this.#shm?.close();
    if (!this.#nc.isClosed()) await this.#nc.flush().catch(() => {});
  }

  #receive(error: Error | null, msg: Msg, subject: 'data' | 'events'): void {
    if (this.#closed !== undefined) return;
    if (error !== null) {
      this.#transportFailure ??= new ArgumentError('nc', `cannot subscribe to ${this.subjects[subject]}: ${error.message}`, { cause: error });
      this.#afterStep();
      return;
    }
    const now = performance.now();
    const step = subject === 'data' ? this.#protocol.onData(msg.data, now) : this.#protocol.onEvents(msg.data, now);
    this.#publish(step.outgoing);
    this.#afterStep();
    if (step.readable) this.#serve();
    if (step.shm !== undefined) this.#readShm(step.shm);
  }

  /** Reads a batch that a descriptor frame names from shared memory; on failure the stream goes on over NATS. */
  #readShm(frame: ShmFrame): void {
    this.#shm!.read(frame.descriptor).then(
      (bytes) => {
        if (this.#closed !== undefined) return;
        this.#shmBatches++;
        const step = this.#protocol.onShmBatch(frame, bytes, performance.now());
        this.#publish(step.outgoing);
        this.#afterStep();
        if (step.readable) this.#serve();
      },
      (error: unknown) => {
        if (this.#closed !== undefined) return;
        this.#publish(this.#protocol.shmFailed(frame, error as Error, performance.now()));
        this.#afterStep();
      },
    );
  }

  #tick(): void {
    if (this.#closed !== undefined) return;
    this.#publish(this.#protocol.tick(performance.now()));
    this.#afterStep();
  }

  /** Settles connect() and failed reads after the protocol moved. */
  #afterStep(): void {
    const failure = this.#failure();
    if (failure !== undefined) {
      this.#connected?.reject(failure);
      this.#connected = undefined;
      this.#failReaders(failure);
    } else if (this.#protocol.state === 'open' && this.#connected !== undefined) {
      this.#connected.resolve();
      this.#connected = undefined;
    }
  }

  /** Hands ready items to waiting readers, in order. */
  #serve(): void {
    while (this.#readers.length > 0) {
      const now = performance.now();
      const { item, outgoing } = this.#protocol.take(now);
      if (item === undefined) return;
      const reader = this.#readers.shift()!;
      reader.cleanup();
      this.#publish(outgoing);
      const waited = now - reader.started;
      this.#reads++;
      this.#waitMs += waited;
      if (item.type === 'batch') {
        this.#delivered++;
        this.#deliveredBytes += item.bytes.byteLength;
      }
      this.#protocol.addWait(waited / 1000);
      reader.resolve(item);
      try {
        this.#onWait(waited);
      } catch (error) {
        // The item is delivered already; the caller's callback bug fails the next read instead of losing it.
        this.#transportFailure ??= error instanceof Error ? error : new Error(String(error));
      }
    }
  }

  #failure(): Error | undefined {
    return this.#transportFailure ?? this.#protocol.failure;
  }

  #failReaders(error: Error): void {
    for (const r of this.#readers.splice(0)) {
      r.cleanup();
      r.reject(error);
    }
  }

  /** A new session after every reconnect: what was in flight may be lost. */
  async #watchConnection(): Promise<void> {
    const status = this.#nc.status();
    this.#status = status;
    for await (const s of status) {
      if (this.#closed !== undefined) return;
      if (s.type === Events.Reconnect) this.#publish(this.#protocol.connect(performance.now(), 'reconnect'));
    }
  }

  #publish(out: readonly Outgoing[]): void {
    for (const { subject, bytes } of out) {
      try {
        this.#nc.publish(this.subjects[subject], bytes);
      } catch {
        // Lost like any message in flight: hellos are retried, credit and ack repeat with the heartbeat.
      }
    }
  }
}
