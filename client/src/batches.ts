/**
 * The trainer's loop over its rank's batches: `for await (const batch of batches(options))`.
 * A {@link TrainerStream} opens a {@link BatchReceiver} on first use (and the NATS connection too,
 * when given its options), decodes each delivered batch (docs/wire-format.md), checks that its
 * metadata names the place the protocol delivered it at, and counts the data-wait time. It is the
 * TypeScript sibling of the Python client's `shardline.batches()` (client/python).
 */
import { readFile } from 'node:fs/promises';
import { AbortError, ArgumentError, ClosedError, decodeBatch, FormatError, type Tensor } from '@shardline/core';
import { requireInt } from '@shardline/core/internal';
import {
  type DeliveredBatch,
  type DeliveredEndOfEpoch,
  MAX_U32,
  type Position,
  type ReceiverEvent,
  requireId,
  requirePosition,
  requireRank,
  requireSubjectToken,
} from '@shardline/core/protocol';
import { connect, type ConnectionOptions, credsAuthenticator, type NatsConnection } from 'nats';
import { BatchReceiver, type BatchReceiverOptions, type BatchReceiverStats } from './batch-receiver.ts';

/** One decoded batch of the rank's stream. */
export interface TrainerBatch {
  readonly type: 'batch';
  readonly job: string;
  readonly rank: number;
  readonly epoch: number;
  /** The batch's number within its epoch, from 0. */
  readonly step: number;
  /** Global id of each row's sample, in row order. */
  readonly sampleIds: readonly number[];
  /**
   * The batch's tensors by name, one row per sample id in every tensor with a dimension. Their
   * data are views of the delivered bytes (no copy); `toTfjs(batch)` makes tfjs tensors of them.
   */
  readonly tensors: Readonly<Record<string, Tensor>>;
  /** Metadata fields beyond the standard ones (empty when the loader wrote none). */
  readonly extra: Readonly<Record<string, string>>;
  /** Size of the encoded batch, in bytes. */
  readonly byteLength: number;
}

/** What {@link TrainerStream.read} returns: a batch, or the end of an epoch after its batches. */
export type TrainerItem = TrainerBatch | DeliveredEndOfEpoch;

/**
 * How batches() reaches NATS when it opens the connection itself: nats.js `ConnectionOptions`
 * (`servers`, `user`/`pass`, `token`, `tls`, `authenticator`, …) plus `credsFile`, a `.creds`
 * file read at connect.
 */
export interface NatsConnectOptions extends ConnectionOptions {
  /** A NATS credentials file (JWT and nkey seed), as `nats --creds` takes. */
  readonly credsFile?: string;
}

/** Receiver settings batches() passes through to {@link BatchReceiver.connect}, which checks them. */
export type ReceiverTuning = Omit<BatchReceiverOptions, 'namespace' | 'job' | 'rank' | 'window' | 'resume' | 'clientId' | 'onWait'>;

/** Options of {@link batches}. */
export interface BatchesOptions {
  /** The DataLoaderJob's name. */
  readonly job: string;
  /** This trainer's rank. */
  readonly rank: number;
  /**
   * An open connection, which stays the caller's (never closed here), or how to open one: the
   * stream then connects on first use and closes the connection when it closes.
   */
  readonly nats: NatsConnection | NatsConnectOptions;
  /** Kubernetes namespace of the DataLoaderJob (default `default`). */
  readonly namespace?: string;
  /** Batches buffered at most, ready or arriving: the credit window (default 4). */
  readonly window?: number;
  /**
   * Where to start: `stream.position` as this trainer's last checkpoint saved it, or null to
   * continue after the last batch the loader saw acknowledged (default null).
   */
  readonly resume?: Position | null;
  /**
   * How many epochs to read (counting a resumed, partial epoch as one); after the last one's end
   * the stream closes itself (default: until the stream is closed or aborted).
   */
  readonly epochs?: number;
  /** Who this trainer is; a restart with the same id takes the stream over at once (default `<hostname>-rank-<rank>`). */
  readonly clientId?: string;
  /** Aborting it closes the stream; a read in progress throws an AbortError. */
  readonly signal?: AbortSignal;
  /** Called after every read with how long the trainer waited for the item, in ms (0 when it was ready): the data-wait time. */
  readonly onWait?: (ms: number) => void;
  /** Finer receiver settings (timeouts, maxBatchBytes, hostId, onEvent); see BatchReceiverOptions. */
  readonly receiver?: ReceiverTuning;
}

/** Counters of a {@link TrainerStream}. */
export interface TrainerStreamStats {
  /** Total time reads waited for their item, in seconds: what the trainer lost to data loading. */
  readonly waitSeconds: number;
  /** Items read: batches and ends of epochs. */
  readonly reads: number;
  /** Batches read. */
  readonly batches: number;
  /** Encoded bytes of the batches read. */
  readonly bytes: number;
  /** Ends of epochs read. */
  readonly epochs: number;
  /** The position the next read returns (what a checkpoint saves as `resume`). */
  readonly position: Position | null;
  /** The receiver's own counters (sessions, nacks, duplicates, buffer), once connected. */
  readonly receiver: BatchReceiverStats | undefined;
}

/** Why a stream ended: close(), an abort of its signal, its `epochs` read, or a failed read. */
type StreamEnd = 'closed' | 'aborted' | 'done' | 'failed';

/** The options after checking, with defaults applied. */
interface Settings {
  readonly job: string;
  readonly rank: number;
  readonly namespace: string;
  readonly nats: { readonly connection: NatsConnection } | { readonly options: NatsConnectOptions };
  readonly window: number | undefined;
  readonly resume: Position | null;
  readonly epochs: number | undefined;
  readonly clientId: string | undefined;
  readonly signal: AbortSignal | undefined;
  readonly onWait: ((ms: number) => void) | undefined;
  readonly receiver: ReceiverTuning;
}

const OPTION_KEYS: ReadonlySet<string> = new Set(['job', 'rank', 'nats', 'namespace', 'window', 'resume', 'epochs', 'clientId', 'signal', 'onWait', 'receiver']);
const STREAM_SCOPE_KEYS = ['namespace', 'job', 'rank', 'window', 'resume', 'clientId', 'onWait'] as const;

function show(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  return typeof value === 'object' ? 'an object' : String(value);
}

function isConnection(value: object): value is NatsConnection {
  const nc = value as Partial<NatsConnection>;
  return typeof nc.subscribe === 'function' && typeof nc.publish === 'function' && typeof nc.closed === 'function';
}

function checkNats(value: unknown): Settings['nats'] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ArgumentError('nats', `must be a NatsConnection or connection options { servers, … }, got ${show(value)}`);
  }
  if (isConnection(value)) {
    if (value.isClosed()) throw new ArgumentError('nats', 'the connection is closed');
    return { connection: value };
  }
  const options = value as NatsConnectOptions;
  const servers: unknown = options.servers;
  const list = typeof servers === 'string' ? [servers] : servers;
  if (!Array.isArray(list) || list.length === 0 || list.some((s) => typeof s !== 'string' || s.trim() === '')) {
    throw new ArgumentError('nats.servers', `must be a server URL or a non-empty array of them, got ${show(servers)}`);
  }
  if (options.credsFile !== undefined && (typeof options.credsFile !== 'string' || options.credsFile === '')) {
    throw new ArgumentError('nats.credsFile', `must be the path of a .creds file, got ${show(options.credsFile)}`);
  }
  return { options };
}

function checkOptions(options: BatchesOptions): Settings {
  if (typeof options !== 'object' || options === null) throw new ArgumentError('options', `must be an object, got ${show(options)}`);
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw new ArgumentError(key, `is not an option of batches() (options: ${[...OPTION_KEYS].join(', ')})`);
  }
  const job = requireSubjectToken('job', options.job);
  const rank = requireRank('rank', options.rank);
  const namespace = requireSubjectToken('namespace', options.namespace ?? 'default');
  const nats = checkNats(options.nats);
  const window = options.window === undefined ? undefined : requireInt('window', options.window, { min: 1, max: 1_000_000 });
  const resume = options.resume === undefined || options.resume === null ? null : requirePosition('resume', options.resume);
  const epochs = options.epochs === undefined ? undefined : requireInt('epochs', options.epochs, { min: 1, max: MAX_U32 });
  const clientId = options.clientId === undefined ? undefined : requireId('clientId', options.clientId);
  const signal = options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new ArgumentError('signal', `must be an AbortSignal, got ${show(signal)}`);
  const onWait = options.onWait;
  if (onWait !== undefined && typeof onWait !== 'function') throw new ArgumentError('onWait', `must be a function, got ${show(onWait)}`);
  const receiver = options.receiver ?? {};
  if (typeof receiver !== 'object' || receiver === null || Array.isArray(receiver)) {
    throw new ArgumentError('receiver', `must be an object of BatchReceiver options, got ${show(receiver)}`);
  }
  for (const key of STREAM_SCOPE_KEYS) {
    if (key in receiver) throw new ArgumentError(`receiver.${key}`, `is set by batches() itself: pass it as the top-level option ${key}`);
  }
  return { job, rank, namespace, nats, window, resume, epochs, clientId, signal, onWait, receiver };
}

async function openConnection(options: NatsConnectOptions, name: string): Promise<NatsConnection> {
  const { credsFile, ...rest } = options;
  let authenticator = rest.authenticator;
  if (credsFile !== undefined) {
    try {
      authenticator = credsAuthenticator(new Uint8Array(await readFile(credsFile)));
    } catch (error) {
      throw new ArgumentError('nats.credsFile', `cannot read ${credsFile}: ${(error as Error).message}`, { cause: error });
    }
  }
  try {
    // A trainer outlives NATS outages as the loader does: it reconnects and resumes its session.
    return await connect({ name, maxReconnectAttempts: -1, ...rest, ...(authenticator === undefined ? {} : { authenticator }) });
  } catch (error) {
    throw new ArgumentError('nats.servers', `cannot connect to ${[rest.servers].flat().join(', ')}: ${(error as Error).message}`, { cause: error });
  }
}

/** Decodes a delivered batch and checks that its metadata names the place it was delivered at. */
function decodeDelivered(delivered: DeliveredBatch, job: string, rank: number): TrainerBatch {
  const at = `the batch delivered as job ${JSON.stringify(job)} rank ${rank} epoch ${delivered.epoch} step ${delivered.step}`;
  let decoded: ReturnType<typeof decodeBatch>;
  try {
    decoded = decodeBatch(delivered.bytes);
  } catch (error) {
    throw new FormatError(`${at}: ${(error as Error).message}`, { cause: error });
  }
  const { metadata } = decoded;
  const expected = { job, rank, epoch: delivered.epoch, step: delivered.step };
  const wrong = (['job', 'rank', 'epoch', 'step'] as const)
    .filter((key) => metadata[key] !== expected[key])
    .map((key) => `metadata.${key} is ${JSON.stringify(metadata[key])} where ${JSON.stringify(expected[key])} was expected`);
  if (wrong.length > 0) throw new FormatError(`${at}: ${wrong.join(', ')}; a loader bug, not trained on`);
  return {
    type: 'batch',
    job,
    rank,
    epoch: delivered.epoch,
    step: delivered.step,
    sampleIds: metadata.sampleIds,
    tensors: decoded.tensors,
    extra: metadata.extra,
    byteLength: delivered.bytes.byteLength,
  };
}

/**
 * One rank's batches from its loader: an async iterable of decoded batches over every epoch,
 * with {@link epoch} for a loop per epoch and {@link read} for the end-of-epoch markers too.
 * Make one with {@link batches}. Reads connect on first use; close() (or `await using`) leaves
 * the stream, and the loader keeps what was not read for the next reader.
 */
export class TrainerStream implements AsyncIterable<TrainerBatch>, AsyncDisposable {
  readonly #settings: Settings;
  /** Aborted by close(), so that a connect in progress stops at once. */
  readonly #stop = new AbortController();
  readonly #signal: AbortSignal;
  #connecting: Promise<BatchReceiver> | undefined;
  #receiver: BatchReceiver | undefined;
  #ownedConnection: NatsConnection | undefined;
  #end: StreamEnd | undefined;
  #closing: Promise<void> | undefined;
  /** What one of the caller's callbacks threw inside the receiver, thrown by the next read. */
  #callbackError: { error: unknown } | undefined;
  #unlistenAbort: (() => void) | undefined;
  #waitMs = 0;
  #reads = 0;
  #batches = 0;
  #bytes = 0;
  #epochs = 0;

  /** @internal Use {@link batches}, which checks the options. */
  constructor(settings: Settings) {
    this.#settings = settings;
    const signal = settings.signal;
    this.#signal = signal === undefined ? this.#stop.signal : AbortSignal.any([signal, this.#stop.signal]);
    if (signal !== undefined) {
      const abort = (): void => void this.#shutdown('aborted');
      signal.addEventListener('abort', abort, { once: true });
      this.#unlistenAbort = () => signal.removeEventListener('abort', abort);
    }
  }

  /** The position the next read returns: save it in checkpoints and pass it back as `resume`. Null before the first connect when no `resume` was given. */
  get position(): Position | null {
    return this.#receiver?.position ?? this.#settings.resume;
  }

  /** Whether the stream ended: close(), an abort, its `epochs` read, or a failure. */
  get closed(): boolean {
    return this.#end !== undefined;
  }

  /**
   * Connects now instead of on the first read: opens the NATS connection when given options,
   * says hello and waits for the loader's welcome. Idempotent.
   * @throws ArgumentError naming `nats.servers` or `nats.credsFile` when the connection cannot be
   * opened, or the field a loader refused (`resume`, `job`, …); TimeoutError when no loader
   * answered within the receiver's connectTimeoutMs; AbortError; ClosedError after close().
   * Every error closes the stream.
   */
  async connect(): Promise<this> {
    try {
      await this.#connect();
    } catch (error) {
      throw await this.#fail(error);
    }
    return this;
  }

  /**
   * The next item: a batch, or the end of an epoch after its batches. After the last of
   * `epochs` ends of epochs the stream closes itself.
   * @throws FormatError when a batch cannot be decoded or its metadata names another job, rank,
   * epoch or step than it was delivered as; the stream's failure (TimeoutError, ArgumentError
   * for a refusal, ClosedError when a caller's connection closed); whatever an `onWait` or
   * `onEvent` callback threw; AbortError when the signal is aborted; ClosedError after close().
   * Every error closes the stream.
   */
  async read(): Promise<TrainerItem> {
    let item: TrainerItem;
    try {
      const receiver = await this.#connect();
      const delivered = await receiver.read({ signal: this.#signal });
      if (this.#callbackError !== undefined) throw this.#callbackError.error;
      this.#reads++;
      if (delivered.type === 'end-of-epoch') {
        this.#epochs++;
        item = delivered;
      } else {
        item = decodeDelivered(delivered, this.#settings.job, this.#settings.rank);
        this.#batches++;
        this.#bytes += item.byteLength;
      }
    } catch (error) {
      throw await this.#fail(error);
    }
    if (item.type === 'end-of-epoch' && this.#epochs === this.#settings.epochs) await this.#shutdown('done');
    return item;
  }

  /**
   * The batches up to the next end of an epoch (the rest of the current epoch after a resume or
   * a `break`). Leaving the loop early does not close the stream: the next epoch() goes on from
   * there. Ends at once when the stream was closed or its `epochs` were read.
   * @example
   * await using stream = batches({ job: 'mnist', rank, nats: { servers: url }, resume: checkpoint?.position });
   * for (let e = 0; e < 10; e++) {
   *   for await (const batch of stream.epoch()) await trainStep(batch);
   *   await saveCheckpoint({ position: stream.position });
   * }
   */
  async *epoch(): AsyncGenerator<TrainerBatch, void, undefined> {
    for (;;) {
      const item = await this.#next();
      if (item === undefined || item.type === 'end-of-epoch') return;
      yield item;
    }
  }

  /**
   * Every batch of every epoch (up to `epochs`), in order. Leaving the loop (break, return, a
   * throw) closes the stream, and the connection when the stream opened it.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<TrainerBatch, void, undefined> {
    try {
      for (;;) {
        const item = await this.#next();
        if (item === undefined) return;
        if (item.type === 'batch') yield item;
      }
    } finally {
      await this.close();
    }
  }

  /** Counters since the stream was made: the data-wait time, batches and bytes read. */
  stats(): TrainerStreamStats {
    return {
      waitSeconds: this.#waitMs / 1000,
      reads: this.#reads,
      batches: this.#batches,
      bytes: this.#bytes,
      epochs: this.#epochs,
      position: this.position,
      receiver: this.#receiver?.stats(),
    };
  }

  /**
   * Leaves the stream: says bye to the loader (which keeps the unread batches for the next
   * reader), and closes the NATS connection when the stream opened it. Pending reads reject with
   * a ClosedError; iteration ends. Idempotent.
   */
  close(): Promise<void> {
    return this.#shutdown('closed');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The next item, or undefined once the stream was closed or its `epochs` were read. */
  async #next(): Promise<TrainerItem | undefined> {
    if (this.#endedQuietly()) return undefined;
    try {
      return await this.read();
    } catch (error) {
      if (error instanceof ClosedError && this.#endedQuietly()) return undefined;
      throw error;
    }
  }

  /** Whether the stream ended without an error to report: close(), or its `epochs` read. */
  #endedQuietly(): boolean {
    return this.#end === 'closed' || this.#end === 'done';
  }

  /** Ends the stream after a failed call, and says what the caller gets: the failure, or why the stream had ended. */
  async #fail(error: unknown): Promise<unknown> {
    const end = this.#end;
    await this.#shutdown('failed');
    if (end === 'aborted' || this.#settings.signal?.aborted === true) {
      return error instanceof AbortError ? error : new AbortError('batches() was aborted', { cause: this.#settings.signal?.reason });
    }
    if (end === 'closed' || end === 'done') return error instanceof ClosedError ? error : this.#closedError();
    return error;
  }

  #closedError(): ClosedError {
    return new ClosedError(`the batch stream of job ${this.#settings.job} rank ${this.#settings.rank} is closed`);
  }

  #connect(): Promise<BatchReceiver> {
    if (this.#end !== undefined) return Promise.reject(this.#closedError());
    this.#connecting ??= this.#open();
    return this.#connecting;
  }

  async #open(): Promise<BatchReceiver> {
    const s = this.#settings;
    if (this.#signal.aborted) throw new AbortError('batches() was aborted');
    let nc: NatsConnection;
    if ('connection' in s.nats) {
      nc = s.nats.connection;
    } else {
      nc = await openConnection(s.nats.options, `shardline-trainer-${s.namespace}-${s.job}-rank-${s.rank}`);
      if (this.#end !== undefined) {
        await nc.close(); // ended while connecting, before the connection was known to #shutdown
        throw this.#closedError();
      }
      this.#ownedConnection = nc;
    }
    const onEvent = s.receiver.onEvent;
    // Aborted by close() too; BatchReceiver.connect closes what it made before it rejects.
    this.#receiver = await BatchReceiver.connect(
      nc,
      {
        ...s.receiver,
        namespace: s.namespace,
        job: s.job,
        rank: s.rank,
        resume: s.resume,
        ...(s.window === undefined ? {} : { window: s.window }),
        ...(s.clientId === undefined ? {} : { clientId: s.clientId }),
        onWait: (ms) => {
          this.#waitMs += ms;
          if (s.onWait !== undefined) this.#guard(s.onWait, ms);
        },
        ...(onEvent === undefined ? {} : { onEvent: (event: ReceiverEvent) => this.#guard(onEvent, event) }),
      },
      { signal: this.#signal },
    );
    return this.#receiver;
  }

  /** Calls a caller's callback from inside the receiver, where a throw would lose the item being handed over: it is kept for the next read instead. */
  #guard<T>(callback: (value: T) => void, value: T): void {
    try {
      callback(value);
    } catch (error) {
      this.#callbackError ??= { error };
    }
  }

  #shutdown(why: StreamEnd): Promise<void> {
    this.#end ??= why;
    this.#closing ??= (async () => {
      this.#unlistenAbort?.();
      this.#stop.abort();
      await this.#connecting?.catch(() => {});
      await this.#receiver?.close();
      const nc = this.#ownedConnection;
      if (nc !== undefined && !nc.isClosed()) await nc.close();
    })();
    return this.#closing;
  }
}

/**
 * One rank's batches from its loader, decoded, in order, each exactly once: a
 * {@link TrainerStream} to `for await` over. Options are checked at once (an ArgumentError names
 * the bad one); the stream connects on the first read.
 * @example
 * import * as tf from '@tensorflow/tfjs';
 * import { batches, toTfjs } from '@shardline/client';
 *
 * for await (const batch of batches({ job: 'mnist', rank: 0, namespace: 'ml', nats: { servers: 'nats://nats:4222' }, epochs: 10 })) {
 *   const { image, label } = toTfjs(batch);
 *   await model.trainOnBatch(image, label);
 *   tf.dispose([image, label]);
 * }
 */
export function batches(options: BatchesOptions): TrainerStream {
  return new TrainerStream(checkOptions(options));
}
