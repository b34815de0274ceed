/**
 * The loader's {@link BatchSink} over core NATS: subscribes to a rank's `hello` and `ctl`
 * subjects, answers trainers, and publishes batch frames and end markers on `data` and `events`
 * as the trainer's credit allows (docs/protocol.md). The protocol logic is SenderProtocol; this
 * module adds the connection, chunk sizes from the server's max_payload, and the waiting of
 * `send()` for room in the window (the pipeline's back-pressure).
 */
import { hostname } from 'node:os';
import { AbortError, ArgumentError, ClosedError } from '@shardline/core';
import { requireInt } from '@shardline/core/internal';
import type { Msg, NatsConnection, Subscription } from 'nats';
import {
  FramedBatch,
  MAX_CHUNKS_PER_BATCH,
  MAX_U32,
  SHM_MAX_SLOTS,
  SenderProtocol,
  ShmRing,
  Transport,
  deliverySubjects,
  frameHeaderBytes,
  onAbort,
  requireId,
  requirePosition,
  requireRank,
  requireSubjectToken,
  safeId,
  withoutUndefined,
  type BatchSink,
  type CallOptions,
  type DeliverySubjects,
  type Outgoing,
  type OutgoingBatch,
  type Position,
  type SegmentDescriptor,
  type SenderEvent,
  type SessionInfo,
  type StreamItem,
  type StreamScope,
} from '@shardline/core/protocol';

/** Options of {@link BatchSender.open}. */
export interface BatchSenderOptions extends StreamScope {
  /** Batches held until acked, at most; also the most credit a trainer gets (default 8). Memory ≤ maxCredits × maxBatchBytes. */
  maxCredits?: number;
  /** Largest batch `send()` accepts, in bytes (default 64 MiB). */
  maxBatchBytes?: number;
  /**
   * Bytes of batches held until acked, at most (default 48 MiB); a batch larger than this is
   * still taken when nothing else is held. Credits bound batches, this bounds bytes: keep it below
   * the server's per-client `max_pending` (64 MiB by default), or the server cuts a trainer that
   * falls behind as a slow consumer and every cut restarts its session.
   */
  maxHeldBytes?: number;
  /** Largest chunk in one data frame, below what the server's max_payload allows (default: as large as it allows). */
  maxChunkBytes?: number;
  /** The first position the pipeline sends (default epoch 0 step 0; a replacement loader starts at the rank's acked cursor). */
  start?: Position;
  /** Silence after which another client id may take the stream over (default 10 s). */
  clientTimeoutMs?: number;
  /** Least time between two `reset` answers to messages of unknown sessions (default 1 s). */
  resetIntervalMs?: number;
  /** This loader's id in welcomes (default `<hostname>-<pid>`). */
  loaderId?: string;
  /** This loader's host (default the hostname): shared memory is offered only to a trainer whose hello names the same one. */
  hostId?: string;
  /**
   * The shared-memory fast path: a ring of segment files (docs/protocol.md §9) that sessions of a
   * trainer on this host (same hostId, offering `shm` in its hello) get batches through, NATS
   * carrying only descriptors. Off by default; when the ring cannot be created (no such
   * directory, too little space) the sender reports `shm-unavailable` and uses NATS only.
   */
  shm?: BatchSenderShmOptions | false;
  /** Every protocol event (sessions, acks, clamps, ignored or malformed messages), for logs and metrics. */
  onEvent?: (event: SenderEvent) => void;
}

/** The shared-memory ring of a {@link BatchSender}. */
export interface BatchSenderShmOptions {
  /** Where the segment files go (default `/dev/shm`); the trainer must see the same folder. */
  directory?: string;
  /** Segment files (default maxCredits + 1: every held batch, and the one being placed). */
  slots?: number;
  /** Capacity of each (default maxBatchBytes); a larger batch goes over NATS. */
  slotBytes?: number;
  /**
   * Whether descriptors carry a CRC-32 the trainer verifies (default false). The slot's seqlock
   * and generation checks already keep a reader from torn, stale or rewritten bytes; a CRC adds
   * only a check against some other writer of the segment files (which are the loader user's,
   * mode 0600), and hashing every batch on both sides cost more than a third of the shared-memory
   * path's throughput at 1–4 MiB (docs/benchmarks.md).
   */
  checksum?: boolean;
}

/** The defaults of {@link BatchSenderOptions}. */
export function batchSenderDefaults(): Required<Omit<BatchSenderOptions, keyof StreamScope | 'onEvent' | 'maxChunkBytes' | 'shm'>> {
  return {
    maxCredits: 8,
    maxBatchBytes: 64 * 1024 * 1024,
    maxHeldBytes: 48 * 1024 * 1024,
    start: { epoch: 0, step: 0 },
    clientTimeoutMs: 10_000,
    resetIntervalMs: 1_000,
    loaderId: safeId(`${hostname()}-${process.pid}`),
    hostId: safeId(hostname()),
  };
}

/** Counters since open, and the window now. */
export interface BatchSenderStats {
  /** Position the next send() or endEpoch() must have. */
  readonly next: Position;
  /** First position not acked. */
  readonly floor: Position;
  readonly heldBatches: number;
  readonly heldBytes: number;
  /** Batches published in the session and not acked. */
  readonly inFlight: number;
  readonly session: SessionInfo | undefined;
  readonly framesPublished: number;
  readonly bytesPublished: number;
  readonly publishFailures: number;
  /** How the current session's batches travel. */
  readonly transport: Transport;
  /** Batches placed in shared memory since open. */
  readonly shmBatches: number;
}

interface Waiter {
  readonly item: () => StreamItem;
  readonly kind: StreamItem['kind'];
  /** The batch's size (0 for an end marker), for the bound on bytes held. */
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
  readonly cleanup: () => void;
}

/**
 * Delivers a rank's batches to its trainer over NATS.
 * @example
 * const sink = await BatchSender.open(nc, { namespace: 'ml', job: 'mnist', rank: 0 });
 * for (const [step, batch] of batches.entries()) await sink.send({ epoch, step, sampleIds, bytes });
 * await sink.endEpoch(epoch, batches.length);
 */
export class BatchSender implements BatchSink {
  readonly subjects: DeliverySubjects;
  readonly #nc: NatsConnection;
  readonly #protocol: SenderProtocol;
  readonly #options: BatchSenderOptions & ReturnType<typeof batchSenderDefaults>;
  readonly #subscriptions: Subscription[] = [];
  readonly #waiters: Waiter[] = [];
  readonly #idle: Array<{ resolve: () => void; reject: (e: unknown) => void; cleanup: () => void }> = [];
  readonly #emit: (event: SenderEvent) => void;
  #closed: ClosedError | undefined;
  #subscribeError: Error | undefined;
  #frames = 0;
  #bytes = 0;
  #failures = 0;
  readonly #ring: ShmRing | undefined;
  /** Descriptors of held batches placed in the ring, by position: released when acked. */
  readonly #placed = new Map<string, SegmentDescriptor>();
  /** The last send() or endEpoch() when a ring is used: each waits for the one before, so placement keeps call order. */
  #ordered: Promise<unknown> = Promise.resolve();
  #shmBatches = 0;

  private constructor(nc: NatsConnection, options: BatchSenderOptions & ReturnType<typeof batchSenderDefaults>, ring: ShmRing | undefined) {
    this.#nc = nc;
    this.#options = options;
    this.#ring = ring;
    this.subjects = deliverySubjects(options);
    const emit = options.onEvent ?? (() => {});
    this.#emit = (event) => {
      if (event.type === 'batch-acked' && this.#ring !== undefined) this.#release(event.epoch, event.step);
      emit(event);
    };
    this.#protocol = new SenderProtocol({
      job: options.job,
      rank: options.rank,
      maxCredits: options.maxCredits,
      maxBatchBytes: options.maxBatchBytes,
      start: options.start,
      clientTimeoutMs: options.clientTimeoutMs,
      resetIntervalMs: options.resetIntervalMs,
      loaderId: options.loaderId,
      hostId: options.hostId,
      shm: ring !== undefined,
      onEvent: this.#emit,
    });
  }

  /**
   * Validates the options, subscribes to the rank's `hello` and `ctl` subjects and waits until
   * the server has the subscriptions.
   * @throws ArgumentError naming a bad option, when the server's max_payload cannot carry a
   * batch of maxBatchBytes in at most 65,536 chunks, or (`nc`) when the server refuses the
   * subscriptions (permissions).
   */
  static async open(nc: NatsConnection, options: BatchSenderOptions): Promise<BatchSender> {
    const o = { ...batchSenderDefaults(), ...withoutUndefined(options) };
    requireSubjectToken('namespace', o.namespace ?? 'default');
    requireSubjectToken('job', o.job);
    requireRank('rank', o.rank);
    requireInt('maxCredits', o.maxCredits, { min: 1, max: 1_000_000 });
    requireInt('maxBatchBytes', o.maxBatchBytes, { min: 1, max: MAX_U32 });
    requireInt('maxHeldBytes', o.maxHeldBytes, { min: 1, max: Number.MAX_SAFE_INTEGER });
    if (o.maxChunkBytes !== undefined) requireInt('maxChunkBytes', o.maxChunkBytes, { min: 1, max: MAX_U32 });
    requirePosition('start', o.start);
    requireInt('clientTimeoutMs', o.clientTimeoutMs, { min: 0 });
    requireInt('resetIntervalMs', o.resetIntervalMs, { min: 0 });
    requireId('loaderId', o.loaderId);
    requireId('hostId', o.hostId);
    const ring = o.shm === undefined || o.shm === false ? undefined : await openRing(o, o.shm);
    const sender = new BatchSender(nc, o, ring);
    const chunk = sender.#chunkBytes();
    if (Math.ceil(o.maxBatchBytes / chunk) > MAX_CHUNKS_PER_BATCH) {
      throw new ArgumentError(
        'maxBatchBytes',
        `${o.maxBatchBytes} bytes would take more than ${MAX_CHUNKS_PER_BATCH} chunks of ${chunk} bytes (maxChunkBytes ${o.maxChunkBytes ?? 'unset'}, the server's max_payload ${nc.info?.max_payload}); lower it, or allow larger chunks`,
      );
    }
    const { hello, ctl } = sender.subjects;
    sender.#subscriptions.push(
      nc.subscribe(hello, { callback: (error, msg) => sender.#receive(error, msg, 'hello') }),
      nc.subscribe(ctl, { callback: (error, msg) => sender.#receive(error, msg, 'ctl') }),
    );
    void nc.closed().then(() => sender.#shutdown(new ClosedError('the NATS connection closed')));
    await nc.flush();
    const refused = sender.#subscribeError;
    if (refused !== undefined) {
      await sender.close();
      throw new ArgumentError('nc', `the server refused a subscription: ${refused.message}`, { cause: refused });
    }
    return sender;
  }

  /**
   * Accepts the next batch of the stream into the window (its bytes are copied unless
   * `batch.transfer` hands them over); waits while
   * the window holds maxCredits batches. Sends are taken in call order.
   * @throws ArgumentError for a batch out of order, with bad fields or over maxBatchBytes;
   * AbortError; ClosedError.
   */
  send(batch: OutgoingBatch, options: CallOptions = {}): Promise<void> {
    try {
      checkBatch(batch, this.#options.maxBatchBytes);
    } catch (error) {
      return Promise.reject(error);
    }
    const { epoch, step } = batch;
    const sampleIds = [...batch.sampleIds];
    const { job, rank } = this.#options;
    // The held copy is made as the batch's frames, so publishing it copies nothing more; a
    // handed-over buffer is kept as it is.
    const item = (shm?: SegmentDescriptor) => (): StreamItem => {
      const placed = shm === undefined ? {} : { shm };
      if (batch.transfer === true) return { kind: 'batch', epoch, step, sampleIds, bytes: batch.bytes, ...placed };
      const framed = FramedBatch.build({ job, rank, epoch, step }, batch.bytes, this.#chunkBytes());
      return {
        kind: 'batch',
        epoch,
        step,
        sampleIds,
        get bytes() {
          return framed.bytes();
        },
        framed,
        ...placed,
      };
    };
    if (this.#ring === undefined) return this.#enqueue('batch', item(), options.signal, batch.bytes.byteLength);
    return this.#inOrder(async () => {
      const shm = await this.#place(batch.bytes, options.signal);
      // Known before the push: a batch the trainer's resume point skips is acked within it.
      if (shm !== undefined) this.#placed.set(`${epoch}:${step}`, shm);
      try {
        await this.#enqueue('batch', item(shm), options.signal, batch.bytes.byteLength);
      } catch (error) {
        if (shm !== undefined) this.#release(epoch, step);
        throw error;
      }
    });
  }

  /**
   * Ends epoch `epoch` after `batches` batches (its end marker follows its last batch).
   * @throws ArgumentError when the stream is not at that epoch's end; AbortError; ClosedError.
   */
  endEpoch(epoch: number, batches: number, options: CallOptions = {}): Promise<void> {
    try {
      requireInt('epoch', epoch, { max: MAX_U32 });
      requireInt('batches', batches, { max: MAX_U32 });
    } catch (error) {
      return Promise.reject(error);
    }
    const end = () => this.#enqueue('end', () => ({ kind: 'end', epoch, batches }), options.signal, 0);
    return this.#ring === undefined ? end() : this.#inOrder(end);
  }

  /** Resolves once every item sent so far was acked by the trainer (AbortError, ClosedError). */
  acknowledged(options: CallOptions = {}): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    if (this.#isIdle()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const entry = { resolve, reject, cleanup: () => {} };
      entry.cleanup = onAbort(options.signal, () => {
        const i = this.#idle.indexOf(entry);
        if (i >= 0) this.#idle.splice(i, 1);
        reject(new AbortError('acknowledged() was aborted'));
      });
      this.#idle.push(entry);
    });
  }

  stats(): BatchSenderStats {
    const w = this.#protocol.window;
    return {
      next: w.next,
      floor: w.floor,
      heldBatches: w.heldBatches,
      heldBytes: w.heldBytes,
      inFlight: w.inFlight,
      session: w.session,
      framesPublished: this.#frames,
      bytesPublished: this.#bytes,
      publishFailures: this.#failures,
      transport: this.#protocol.transport,
      shmBatches: this.#shmBatches,
    };
  }

  /** Unsubscribes and rejects pending calls with a ClosedError; held batches are dropped. The connection stays open. Idempotent. */
  async close(): Promise<void> {
    this.#shutdown(new ClosedError(`BatchSender for ${this.subjects.data} is closed`));
    await this.#ring?.close();
  }

  /** Runs `step` after every earlier send() and endEpoch() settled, so items keep call order. */
  #inOrder(step: () => Promise<void>): Promise<void> {
    const run = this.#ordered.then(step, step);
    this.#ordered = run.catch(() => {});
    return run;
  }

  /**
   * Copies a batch into the ring when the current session reads shared memory and it fits;
   * undefined otherwise (the batch then travels over NATS). A failed write is reported and the
   * batch goes over NATS; an abort or close is the caller's error.
   */
  async #place(bytes: Uint8Array, signal: AbortSignal | undefined): Promise<SegmentDescriptor | undefined> {
    const ring = this.#ring!;
    if (this.#closed !== undefined || this.#protocol.transport !== Transport.Shm || !ring.fits(bytes.byteLength)) return undefined;
    try {
      const descriptor = await ring.write(bytes, { signal });
      this.#shmBatches++;
      return descriptor;
    } catch (error) {
      if (error instanceof AbortError) throw error;
      if (error instanceof ClosedError) throw this.#closed ?? error;
      this.#emit({ type: 'transport-error', error: `shared-memory write: ${(error as Error).message}` });
      return undefined;
    }
  }

  #release(epoch: number, step: number): void {
    const key = `${epoch}:${step}`;
    const descriptor = this.#placed.get(key);
    if (descriptor === undefined) return;
    this.#placed.delete(key);
    this.#ring!.release(descriptor);
  }

  #shutdown(error: ClosedError): void {
    if (this.#closed !== undefined) return;
    this.#closed = error;
    for (const s of this.#subscriptions) s.unsubscribe();
    for (const w of this.#waiters.splice(0)) {
      w.cleanup();
      w.reject(error);
    }
    for (const i of this.#idle.splice(0)) {
      i.cleanup();
      i.reject(error);
    }
  }

  #enqueue(kind: StreamItem['kind'], item: () => StreamItem, signal: AbortSignal | undefined, bytes: number): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    if (signal?.aborted) return Promise.reject(new AbortError(`${kind === 'batch' ? 'send()' : 'endEpoch()'} was aborted`));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        item,
        kind,
        bytes,
        resolve,
        reject,
        cleanup: onAbort(signal, () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(new AbortError(`${kind === 'batch' ? 'send()' : 'endEpoch()'} was aborted`));
          this.#admit();
        }),
      };
      this.#waiters.push(waiter);
      this.#admit();
    });
  }

  /** Moves queued sends into the window while it has room, in call order. */
  #admit(): void {
    while (this.#closed === undefined) {
      const w = this.#waiters[0];
      if (w === undefined || !this.#protocol.window.hasRoom(w.kind) || !this.#hasByteRoom(w)) break;
      this.#waiters.shift();
      w.cleanup();
      try {
        this.#publish(this.#protocol.push(w.item()));
        w.resolve();
      } catch (error) {
        w.reject(error);
      }
    }
    if (this.#isIdle()) {
      for (const i of this.#idle.splice(0)) {
        i.cleanup();
        i.resolve();
      }
    }
  }

  // The bytes bound: a batch fits when what is held plus it stays within maxHeldBytes, or when
  // nothing is held (so one batch above the bound still goes, alone).
  #hasByteRoom(w: Waiter): boolean {
    const held = this.#protocol.window.heldBytes;
    return w.bytes === 0 || held === 0 || held + w.bytes <= this.#options.maxHeldBytes;
  }

  #isIdle(): boolean {
    return this.#waiters.length === 0 && this.#protocol.window.heldItems === 0;
  }

  #receive(error: Error | null, msg: Msg, subject: 'hello' | 'ctl'): void {
    if (this.#closed !== undefined) return;
    if (error !== null) {
      this.#subscribeError ??= error;
      this.#emit({ type: 'transport-error', error: `subscription to ${this.subjects[subject]}: ${error.message}` });
      return;
    }
    const now = performance.now();
    try {
      const out = subject === 'hello' ? this.#protocol.onHello(msg.data, now, this.#chunkBytes()) : this.#protocol.onControl(msg.data, now);
      this.#publish(out);
    } catch (error) {
      // Only a connection whose max_payload cannot hold a frame header gets here.
      this.#emit({ type: 'transport-error', error: (error as Error).message });
    }
    this.#admit();
  }

  #publish(out: readonly Outgoing[]): void {
    for (const { subject, bytes } of out) {
      try {
        this.#nc.publish(this.subjects[subject], bytes);
        this.#frames++;
        this.#bytes += bytes.byteLength;
      } catch (error) {
        // Lost like any message in flight: the trainer's nack or next hello brings it back.
        this.#failures++;
        this.#emit({ type: 'transport-error', error: `publish to ${this.subjects[subject]}: ${(error as Error).message}` });
      }
    }
  }

  /** The largest chunk a frame may carry on this connection now. */
  #chunkBytes(): number {
    const maxPayload = this.#nc.info?.max_payload ?? 1024 * 1024;
    const room = maxPayload - frameHeaderBytes(this.#options.job);
    if (room < 1) {
      throw new ArgumentError('max_payload', `the server's max_payload (${maxPayload} bytes) cannot hold a data frame header for job ${this.#options.job}`);
    }
    return Math.min(room, this.#options.maxChunkBytes ?? room);
  }
}

/** Creates the sender's ring, or reports why there is none (the sender then uses NATS only). */
async function openRing(o: BatchSenderOptions & ReturnType<typeof batchSenderDefaults>, shm: BatchSenderShmOptions): Promise<ShmRing | undefined> {
  if (typeof shm !== 'object' || shm === null) throw new ArgumentError('shm', 'must be false or an object { directory?, slots?, slotBytes?, checksum? }');
  if (shm.checksum !== undefined && typeof shm.checksum !== 'boolean') throw new ArgumentError('shm.checksum', `must be a boolean, got ${JSON.stringify(shm.checksum)}`);
  const slots = shm.slots ?? Math.min(o.maxCredits + 1, SHM_MAX_SLOTS);
  const slotBytes = shm.slotBytes ?? o.maxBatchBytes;
  requireInt('shm.slots', slots, { min: o.maxCredits + 1, max: SHM_MAX_SLOTS });
  requireInt('shm.slotBytes', slotBytes, { min: 1, max: MAX_U32 });
  const emit = o.onEvent ?? (() => {});
  try {
    const ring = await ShmRing.create({
      job: o.job,
      rank: o.rank,
      slots,
      slotBytes,
      checksum: shm.checksum ?? false,
      ...(shm.directory === undefined ? {} : { directory: shm.directory }),
    });
    emit({ type: 'shm-ring', ring: ring.name, slots, slotBytes, reclaimed: ring.reclaimed.removed.length });
    return ring;
  } catch (error) {
    emit({ type: 'shm-unavailable', error: (error as Error).message });
    return undefined;
  }
}

function checkBatch(batch: OutgoingBatch, maxBatchBytes: number): void {
  if (typeof batch !== 'object' || batch === null) throw new ArgumentError('batch', 'must be an object { epoch, step, sampleIds, bytes }');
  requireInt('batch.epoch', batch.epoch, { max: MAX_U32 });
  requireInt('batch.step', batch.step, { max: MAX_U32 });
  if (!Array.isArray(batch.sampleIds)) throw new ArgumentError('batch.sampleIds', 'must be an array of sample ids');
  for (let i = 0; i < batch.sampleIds.length; i++) {
    const id: unknown = batch.sampleIds[i];
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
      throw new ArgumentError(`batch.sampleIds[${i}]`, `must be an integer in [0, 2^53 - 1], got ${String(id)}`);
    }
  }
  if (!(batch.bytes instanceof Uint8Array)) throw new ArgumentError('batch.bytes', 'must be a Uint8Array');
  if (batch.bytes.byteLength > maxBatchBytes) {
    throw new ArgumentError('batch.bytes', `the batch at epoch ${batch.epoch} step ${batch.step} has ${batch.bytes.byteLength} bytes, more than maxBatchBytes (${maxBatchBytes})`);
  }
}
