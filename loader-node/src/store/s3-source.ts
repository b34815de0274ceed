/**
 * A ShardSource over S3 and S3-compatible stores (MinIO, Ceph RGW, R2…), on @aws-sdk/client-s3
 * with its own transport policy:
 * - one keep-alive agent whose socket count matches `maxConcurrency`, and a request bound of the
 *   same size, so requests wait here (abortably) and never in the agent's queue;
 * - connection, request (until headers) and socket-idle timeouts;
 * - retries of our own (the SDK's are off) with jittered exponential backoff on 5xx, throttling,
 *   timeouts and dropped connections, resuming a cut-off body where it stopped; 404 and 403 are
 *   final at once;
 * - downloads as parallel range GETs written at their offsets into a temp file, renamed into
 *   place only when every byte is there; small objects take a single GET;
 * - every response body is read to its end or destroyed, also on errors and aborts.
 */
import http from 'node:http';
import https from 'node:https';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, HeadObjectCommand, S3Client, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { ArgumentError, ClosedError, ShardlineError } from '@shardline/core';
import { requireInt } from '@shardline/core/internal';
import { NotFoundError, StoreError } from '../errors.ts';
import {
  abortError,
  downloadOptions,
  rangePastEnd,
  readOptions,
  requireRange,
  requireSignal,
  sizeMismatch,
  tooLarge,
} from './checks.ts';
import { normalizePrefix, resolveS3Key } from './key.ts';
import { requireDestination, writeAtomically } from './partial-file.ts';
import { RequestSlots, type Release } from './request-slots.ts';
import { backoffDelay, classifyS3Error, describeError, httpStatusOf, TransientError, type Backoff } from './retry.ts';
import type { DownloadOptions, ObjectInfo, ShardSource } from './shard-source.ts';

/** Static S3 credentials (an access key, or temporary ones with a session token). */
export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  /** When temporary credentials expire; the SDK calls a provider again before then. */
  readonly expiration?: Date;
}

/** Resolves to the credentials to sign with; called again when they near their `expiration`. */
export type S3CredentialsProvider = () => Promise<S3Credentials>;

/** Options of {@link S3Source}. */
export interface S3SourceOptions {
  /** The bucket (S3 naming rules: 3–63 of a-z, 0-9, '.', '-'). */
  bucket: string;
  /** The dataset prefix inside the bucket, e.g. `datasets/train/` (default '': the bucket root). */
  prefix?: string;
  /** The bucket's region, e.g. `us-east-1`. */
  region: string;
  /** An S3-compatible endpoint, e.g. `http://minio.storage:9000`; default: AWS's for the region. */
  endpoint?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which MinIO and most S3-compatibles need (default false). */
  forcePathStyle?: boolean;
  /**
   * Credentials or a provider of them. Omitted: the AWS SDK's default chain (web identity / IRSA,
   * container and instance metadata, shared config). {@link s3SourceOptionsFrom} fills this from
   * the environment or a mounted Kubernetes Secret.
   */
  credentials?: S3Credentials | S3CredentialsProvider;
  /** Requests in flight at once over all calls of this source, and the size of its socket pool (default 16). */
  maxConcurrency?: number;
  /** Bytes per range GET of a download; objects up to this size take one GET (default 8 MiB, ≥ 1 KiB). */
  partSize?: number;
  /** Attempts per request, the first included, before a retryable failure becomes a StoreError (default 5). */
  maxAttempts?: number;
  /** Backoff before retry n is uniform in [0, min(retryMaxDelayMs, retryBaseDelayMs · 2^(n−1))] (default 100 ms). */
  retryBaseDelayMs?: number;
  /** The ceiling of one backoff (default 10 s). */
  retryMaxDelayMs?: number;
  /** How long to wait for a TCP (and TLS) connection (default 5 s). */
  connectionTimeoutMs?: number;
  /** How long to wait for a response's headers (default 30 s). */
  requestTimeoutMs?: number;
  /** How long a socket may stay silent while a body streams (default 30 s). */
  socketTimeoutMs?: number;
  /** Called after every request attempt (for metrics: latency and errors); it must not throw. */
  onRequest?: (event: S3RequestEvent) => void;
}

/**
 * One request attempt of an {@link S3Source}: its operation (`stat`, `read`, `readRange`, or
 * `download` for one part of a download), how long it held a connection slot (headers and body;
 * the wait for a slot left out), and how it ended: `ok`; `not-found` (a 404, or a 416 for a
 * range past the end: an answer, not a fault); `retried` (a transient failure, tried again);
 * `failed` (given up: a final error, or the last attempt). Aborted attempts are not reported.
 */
export interface S3RequestEvent {
  readonly operation: 'stat' | 'read' | 'readRange' | 'download';
  readonly key: string;
  readonly outcome: 'ok' | 'not-found' | 'retried' | 'failed';
  readonly seconds: number;
  /** 1 for the first attempt of a call. */
  readonly attempt: number;
  /** What went wrong, for every outcome but `ok`. */
  readonly error?: string;
}

/** When one attempt got its connection slot (set by #send; unset while it waits for one). */
interface AttemptClock {
  started?: number;
}

/** The defaults of {@link S3SourceOptions}. */
export function s3SourceDefaults(): Required<Omit<S3SourceOptions, 'bucket' | 'region' | 'endpoint' | 'credentials' | 'onRequest'>> {
  return {
    prefix: '',
    forcePathStyle: false,
    maxConcurrency: 16,
    partSize: 8 * 1024 * 1024,
    maxAttempts: 5,
    retryBaseDelayMs: 100,
    retryMaxDelayMs: 10_000,
    connectionTimeoutMs: 5_000,
    requestTimeoutMs: 30_000,
    socketTimeoutMs: 30_000,
  };
}

/** The options an S3Source runs with, after defaults and checks (credentials left out). */
export type ResolvedS3SourceOptions = Readonly<Omit<Required<S3SourceOptions>, 'endpoint' | 'credentials' | 'onRequest'> & { endpoint: string | undefined }>;

/** What the source's connection pool holds now, for metrics and leak checks. */
export interface S3ConnectionStats {
  /** Sockets carrying a request. */
  readonly active: number;
  /** Keep-alive sockets waiting for the next request. */
  readonly idle: number;
  /** Requests queued in the agent (zero while the request bound works). */
  readonly queued: number;
  /** Requests holding one of the `maxConcurrency` slots, bodies still streaming included. */
  readonly inFlight: number;
}

// S3's bucket naming rules.
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const REGION = /^[a-z0-9][a-z0-9-]{0,62}$/;
const MAX_DELAY_MS = 10 * 60 * 1000;
const MIN_PART_SIZE = 1024;
const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;
// Chunks of a body are gathered up to this size before one positional writev.
const WRITE_BATCH_BYTES = 1024 * 1024;
// `bytes first-last/total`, as S3 answers a range GET.
const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+)$/;

/** A 416 answer: the caller decides what it means (an empty object, or one smaller than expected). */
class RangeNotSatisfiable extends Error {
  override readonly name = 'RangeNotSatisfiable';
}

/** The state one download shares between its parts. */
interface DownloadJob {
  readonly key: string;
  readonly objectKey: string;
  readonly file: FileHandle;
  readonly expectedSize: number | undefined;
  readonly onProgress: ((bytes: number) => void) | undefined;
  /** The object's size, once known (from expectedSize, checked against every Content-Range). */
  total: number | undefined;
  /** The object's ETag from the first response: later parts must see the same one. */
  etag: string | undefined;
  written: number;
}

function resolveOptions(options: S3SourceOptions): ResolvedS3SourceOptions {
  if (typeof options !== 'object' || options === null) throw new ArgumentError('options', `must be an object, got ${String(options)}`);
  const d = s3SourceDefaults();
  if (typeof options.bucket !== 'string' || !BUCKET.test(options.bucket)) {
    throw new ArgumentError('bucket', `must be an S3 bucket name (3–63 of a-z, 0-9, '.', '-'), got ${JSON.stringify(options.bucket)}`);
  }
  if (typeof options.region !== 'string' || !REGION.test(options.region)) {
    throw new ArgumentError('region', `must be a region name like "us-east-1", got ${JSON.stringify(options.region)}`);
  }
  let endpoint: string | undefined;
  if (options.endpoint !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(options.endpoint);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new ArgumentError('endpoint', `must be an http:// or https:// URL, got ${JSON.stringify(options.endpoint)}`);
    }
    endpoint = options.endpoint;
  }
  if (options.forcePathStyle !== undefined && typeof options.forcePathStyle !== 'boolean') {
    throw new ArgumentError('forcePathStyle', `must be a boolean, got ${JSON.stringify(options.forcePathStyle)}`);
  }
  const credentials = options.credentials;
  if (credentials !== undefined && typeof credentials !== 'function') {
    if (typeof credentials !== 'object' || credentials === null) throw new ArgumentError('credentials', 'must be an object or a provider function');
    for (const field of ['accessKeyId', 'secretAccessKey'] as const) {
      if (typeof credentials[field] !== 'string' || credentials[field] === '') {
        throw new ArgumentError(`credentials.${field}`, 'must be a non-empty string');
      }
    }
    if (credentials.sessionToken !== undefined && typeof credentials.sessionToken !== 'string') {
      throw new ArgumentError('credentials.sessionToken', 'must be a string');
    }
  }
  if (options.onRequest !== undefined && typeof options.onRequest !== 'function') throw new ArgumentError('onRequest', 'must be a function');
  const retryBaseDelayMs = requireInt('retryBaseDelayMs', options.retryBaseDelayMs ?? d.retryBaseDelayMs, { max: MAX_DELAY_MS });
  return {
    bucket: options.bucket,
    prefix: normalizePrefix(options.prefix ?? d.prefix),
    region: options.region,
    endpoint,
    forcePathStyle: options.forcePathStyle ?? d.forcePathStyle,
    maxConcurrency: requireInt('maxConcurrency', options.maxConcurrency ?? d.maxConcurrency, { min: 1, max: 1024 }),
    partSize: requireInt('partSize', options.partSize ?? d.partSize, { min: MIN_PART_SIZE, max: MAX_PART_SIZE }),
    maxAttempts: requireInt('maxAttempts', options.maxAttempts ?? d.maxAttempts, { min: 1, max: 100 }),
    retryBaseDelayMs,
    retryMaxDelayMs: requireInt('retryMaxDelayMs', options.retryMaxDelayMs ?? d.retryMaxDelayMs, { min: retryBaseDelayMs, max: MAX_DELAY_MS }),
    connectionTimeoutMs: requireInt('connectionTimeoutMs', options.connectionTimeoutMs ?? d.connectionTimeoutMs, { min: 1, max: MAX_DELAY_MS }),
    requestTimeoutMs: requireInt('requestTimeoutMs', options.requestTimeoutMs ?? d.requestTimeoutMs, { min: 1, max: MAX_DELAY_MS }),
    socketTimeoutMs: requireInt('socketTimeoutMs', options.socketTimeoutMs ?? d.socketTimeoutMs, { min: 1, max: MAX_DELAY_MS }),
  };
}

/**
 * A read-only {@link ShardSource} over `s3://bucket/prefix/`.
 * @example
 * const source = new S3Source({
 *   bucket: 'datasets', prefix: 'c4/train/', region: 'us-east-1',
 *   endpoint: 'http://minio.storage:9000', forcePathStyle: true,
 *   credentials: { accessKeyId, secretAccessKey },
 * });
 * try {
 *   const info = await source.stat('shard.00000.mds');
 *   await source.download('shard.00000.mds', '/cache/shard.00000.mds', { expectedSize: info.size });
 * } finally {
 *   await source.close();
 * }
 */
export class S3Source implements ShardSource {
  readonly location: string;
  readonly options: ResolvedS3SourceOptions;
  readonly #client: S3Client;
  readonly #agent: http.Agent;
  readonly #slots: RequestSlots;
  readonly #backoff: Backoff;
  readonly #closing = new AbortController();
  readonly #onRequest: ((event: S3RequestEvent) => void) | undefined;

  constructor(options: S3SourceOptions) {
    this.options = resolveOptions(options);
    this.#onRequest = options.onRequest;
    const o = this.options;
    this.location = `s3://${o.bucket}/${o.prefix}`;
    this.#slots = new RequestSlots(o.maxConcurrency);
    this.#backoff = { baseMs: o.retryBaseDelayMs, maxMs: o.retryMaxDelayMs };
    const agentOptions = { keepAlive: true, maxSockets: o.maxConcurrency, maxFreeSockets: o.maxConcurrency };
    const secure = o.endpoint === undefined || o.endpoint.startsWith('https:');
    this.#agent = secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    this.#client = new S3Client({
      region: o.region,
      ...(o.endpoint === undefined ? {} : { endpoint: o.endpoint }),
      forcePathStyle: o.forcePathStyle,
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      // Retries are ours (they resume bodies and know 404 from 503); one attempt per send().
      maxAttempts: 1,
      // Shards are verified against their index; checksums on every GET would only cost CPU.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: new NodeHttpHandler({
        ...(secure ? { httpsAgent: this.#agent as https.Agent } : { httpAgent: this.#agent }),
        connectionTimeout: o.connectionTimeoutMs,
        requestTimeout: o.requestTimeoutMs,
        throwOnRequestTimeout: true,
        socketTimeout: o.socketTimeoutMs,
      }),
    });
  }

  /** Sockets and requests of this source now: after all calls settle, `active`, `queued` and `inFlight` are 0. */
  connectionStats(): S3ConnectionStats {
    const count = (lists: NodeJS.ReadOnlyDict<unknown[]>): number => Object.values(lists).reduce((n, l) => n + (l?.length ?? 0), 0);
    return {
      active: count(this.#agent.sockets),
      idle: count(this.#agent.freeSockets),
      queued: count(this.#agent.requests),
      inFlight: this.#slots.inUse,
    };
  }

  async stat(key: string, signal?: AbortSignal): Promise<ObjectInfo> {
    const objectKey = resolveS3Key(this.options.prefix, key);
    return this.#run('stat', key, requireSignal(signal), (s) => this.#head(key, objectKey, s));
  }

  async read(key: string, options?: { maxBytes?: number; signal?: AbortSignal }): Promise<Buffer> {
    const objectKey = resolveS3Key(this.options.prefix, key);
    const { maxBytes, signal } = readOptions(options);
    return this.#run('read', key, signal, (s) =>
      this.#withRetries('read', key, s, (clock) =>
        this.#get(clock, objectKey, undefined, undefined, s, async (output, body) => {
          const size = output.ContentLength;
          if (size === undefined) throw new TransientError('the response has no Content-Length');
          if (size > maxBytes) throw tooLarge(key, size, maxBytes);
          const out = Buffer.allocUnsafe(size);
          await consumeBody(body, size, (chunks, at) => {
            for (const c of chunks) at += c.copy(out, at);
          });
          return out;
        }),
      ),
    );
  }

  async readRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const objectKey = resolveS3Key(this.options.prefix, key);
    const range = requireRange(offset, length);
    return this.#run('readRange', key, requireSignal(signal), async (s) => {
      // An empty range has no HTTP form: check it against the object's size instead.
      if (range.length === 0) {
        const { size } = await this.#head(key, objectKey, s);
        if (range.offset > size) throw rangePastEnd(key, range.offset, 0, size);
        return Buffer.alloc(0);
      }
      const last = range.offset + range.length - 1;
      const out = Buffer.allocUnsafe(range.length);
      let filled = 0;
      let etag: string | undefined;
      try {
        await this.#withRetries('readRange', key, s, (clock) =>
          this.#get(clock, objectKey, range.offset + filled, last, s, async (output, body) => {
            // A retry reads the rest of the same version of the object, or fails with a 412.
            etag ??= output.ETag;
            const got = parseContentRange(output.ContentRange);
            if (got === undefined) throw new TransientError(`the response has no valid Content-Range (${String(output.ContentRange)})`);
            if (got.total <= last) throw rangePastEnd(key, range.offset, range.length, got.total);
            if (got.first !== range.offset + filled || got.last !== last) throw new TransientError(`asked for bytes ${range.offset + filled}-${last}, got ${output.ContentRange}`);
            // Progress survives a retry: the next attempt asks only for what is missing.
            await consumeBody(body, last - got.first + 1, (chunks) => {
              for (const c of chunks) filled += c.copy(out, filled);
            });
          }, etag),
        );
      } catch (error) {
        if (!(error instanceof RangeNotSatisfiable)) throw error;
        const { size } = await this.#head(key, objectKey, s);
        throw rangePastEnd(key, range.offset, range.length, size);
      }
      return out;
    });
  }

  async download(key: string, destination: string, options?: DownloadOptions): Promise<number> {
    const objectKey = resolveS3Key(this.options.prefix, key);
    requireDestination(destination);
    const { signal, expectedSize, onProgress } = downloadOptions(options);
    return this.#run('download', key, signal, (s) =>
      writeAtomically(destination, async (file) => {
        const job: DownloadJob = { key, objectKey, file, expectedSize, onProgress, total: expectedSize, etag: undefined, written: 0 };
        try {
          await this.#downloadInto(job, s);
        } catch (error) {
          if (!(error instanceof RangeNotSatisfiable)) throw error;
          // A 416: the object is empty, or smaller than the caller expected.
          const { size } = await this.#head(key, objectKey, s);
          if (expectedSize !== undefined && size !== expectedSize) throw sizeMismatch(key, this.location, size, expectedSize);
          if (size !== 0) throw new StoreError(key, `download from ${this.location} failed: the object changed while it was read (416 for a range within its ${size} bytes)`);
          job.total = 0;
        }
        const onDisk = (await file.stat()).size;
        if (job.written !== job.total || onDisk !== job.total) {
          throw new StoreError(key, `download from ${this.location} wrote ${job.written} bytes (${onDisk} on disk) of ${String(job.total)}`);
        }
        return job.total;
      }),
    );
  }

  /**
   * Aborts the calls in flight (they reject with a ClosedError), closes every socket and makes
   * later calls reject with a ClosedError. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort(new ClosedError(`the S3Source of ${this.location} is closed`));
    this.#client.destroy();
    this.#agent.destroy();
  }

  // The parts of a download: all at once when the size is known, else the first part (which
  // tells the size, and is the whole object when it is small) and then the rest.
  async #downloadInto(job: DownloadJob, signal: AbortSignal): Promise<void> {
    const partSize = this.options.partSize;
    if (job.expectedSize === 0) {
      // No range GET can ask for zero bytes: the object's size must simply be 0.
      const { size } = await this.#head(job.key, job.objectKey, signal);
      if (size !== 0) throw sizeMismatch(job.key, this.location, size, 0);
      return;
    }
    let next = 0;
    if (job.total === undefined) {
      await this.#downloadPart(job, 0, partSize, signal);
      next = partSize;
    }
    const total = job.total!;

    // A failed part aborts its siblings; the first failure is the one reported, once every part
    // has stopped (so nothing writes to the file after it is removed).
    const siblings = new AbortController();
    const partSignal = AbortSignal.any([signal, siblings.signal]);
    let failure: { error: unknown } | undefined;
    const worker = async (): Promise<void> => {
      // Parts are handed out by offset, not from a list: a size is only as trustworthy as the server.
      while (failure === undefined && next < total) {
        const start = next;
        next += partSize;
        try {
          await this.#downloadPart(job, start, Math.min(start + partSize, total), partSignal);
        } catch (error) {
          failure ??= { error };
          siblings.abort(error);
        }
      }
    };
    const parts = Math.ceil(Math.max(0, total - next) / partSize);
    await Promise.all(Array.from({ length: Math.min(this.options.maxConcurrency, parts) }, worker));
    if (failure !== undefined) throw failure.error;
  }

  // Bytes [start, end) into the file at their offsets; `end` may lie past the object's end while
  // its size is unknown. A retry resumes after the bytes already written.
  async #downloadPart(job: DownloadJob, start: number, end: number, signal: AbortSignal): Promise<void> {
    let done = 0;
    await this.#withRetries('download', job.key, signal, (clock) =>
      this.#get(clock, job.objectKey, start + done, end - 1, signal, async (output, body) => {
        const got = parseContentRange(output.ContentRange);
        if (got === undefined) throw new TransientError(`the response has no valid Content-Range (${String(output.ContentRange)})`);
        if (job.expectedSize !== undefined && got.total !== job.expectedSize) {
          throw sizeMismatch(job.key, this.location, got.total, job.expectedSize);
        }
        if (job.total !== undefined && got.total !== job.total) {
          throw new StoreError(job.key, `download from ${this.location} failed: the object changed size while it was read (${job.total}, then ${got.total})`);
        }
        const etag = output.ETag;
        if (job.etag !== undefined && etag !== undefined && etag !== job.etag) {
          throw new StoreError(job.key, `download from ${this.location} failed: the object changed while it was read (ETag ${job.etag}, then ${etag})`);
        }
        job.etag ??= etag;
        job.total ??= got.total;
        const last = Math.min(end, got.total) - 1;
        if (got.first !== start + done || got.last !== last) throw new TransientError(`asked for bytes ${start + done}-${last}, got ${output.ContentRange}`);
        await consumeBody(body, last - got.first + 1, async (chunks, _offset, bytes) => {
          while (bytes > 0) {
            const { bytesWritten } = await job.file.writev(chunks, start + done);
            bytes -= bytesWritten;
            done += bytesWritten;
            job.written += bytesWritten;
            if (bytes > 0) chunks = dropBytes(chunks, bytesWritten);
          }
          job.onProgress?.(job.written);
        });
      }, job.etag),
    );
  }

  async #head(key: string, objectKey: string, signal: AbortSignal): Promise<ObjectInfo> {
    const output = await this.#withRetries('stat', key, signal, (clock) =>
      this.#send(clock, signal, async (s) => this.#client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: objectKey }), { abortSignal: s })),
    );
    if (output.ContentLength === undefined) throw new StoreError(key, `stat in ${this.location} failed: the response has no Content-Length`);
    return { key, size: output.ContentLength, etag: unquote(output.ETag ?? '') };
  }

  // One GET (a range when `first` is given) whose body `consume` reads; the slot is held, and the
  // body kept alive, until `consume` settles — then the body is destroyed unless it was read to
  // its end, so no socket is left half-read.
  #get<T>(
    clock: AttemptClock,
    objectKey: string,
    first: number | undefined,
    last: number | undefined,
    signal: AbortSignal,
    consume: (output: GetObjectCommandOutput, body: Readable) => Promise<T>,
    ifMatch?: string,
  ): Promise<T> {
    return this.#send(clock, signal, async (s) => {
      let body: Readable | undefined;
      // The SDK cancels a request on abort until its headers arrive; this cancels the body after.
      const onAbort = (): void => void body?.destroy(s.reason instanceof Error ? s.reason : new Error(String(s.reason)));
      s.addEventListener('abort', onAbort, { once: true });
      try {
        const output = await this.#client.send(
          new GetObjectCommand({
            Bucket: this.options.bucket,
            Key: objectKey,
            ...(first === undefined ? {} : { Range: `bytes=${first}-${last ?? ''}` }),
            ...(ifMatch === undefined ? {} : { IfMatch: ifMatch }),
          }),
          { abortSignal: s },
        );
        body = output.Body as Readable | undefined;
        if (body === undefined) throw new TransientError('the response has no body');
        return await consume(output, body);
      } finally {
        s.removeEventListener('abort', onAbort);
        if (body !== undefined && !body.readableEnded) body.destroy();
      }
    });
  }

  // Holds one of the source's request slots while `call` runs; `clock` learns when it got one.
  async #send<T>(clock: AttemptClock, signal: AbortSignal, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const release: Release = await this.#slots.acquire(signal);
    clock.started = performance.now();
    try {
      return await call(signal);
    } finally {
      release();
    }
  }

  // Runs `attempt` until it succeeds, fails for good or runs out of attempts. Errors of ours
  // (FormatError, StoreError…) pass through; SDK and socket errors become NotFoundError,
  // StoreError or another attempt after a jittered backoff.
  async #withRetries<T>(operation: S3RequestEvent['operation'], key: string, signal: AbortSignal, attempt: (clock: AttemptClock) => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      const clock: AttemptClock = {};
      const report = (outcome: S3RequestEvent['outcome'], error?: unknown): void => {
        if (this.#onRequest === undefined || clock.started === undefined) return;
        const seconds = (performance.now() - clock.started) / 1000;
        this.#onRequest({ operation, key, outcome, seconds, attempt: n, ...(error === undefined ? {} : { error: describeError(error) }) });
      };
      try {
        const result = await attempt(clock);
        report('ok');
        return result;
      } catch (error) {
        if (signal.aborted) throw error;
        if (error instanceof ShardlineError) {
          report('failed', error);
          throw error;
        }
        if (error instanceof RangeNotSatisfiable) {
          report('not-found', error);
          throw error;
        }
        const failure = classifyS3Error(error);
        switch (failure.type) {
          case 'not-found':
            report('not-found', error);
            throw new NotFoundError(key, this.location, { cause: error });
          case 'range-not-satisfiable':
            report('not-found', error);
            throw new RangeNotSatisfiable(failure.reason, { cause: error });
          case 'fatal': {
            report('failed', error);
            // If-Match failed: the object was replaced between two requests of one call.
            const changed = httpStatusOf(error) === 412 ? 'the object changed while it was read; ' : '';
            throw new StoreError(key, `${operation} from ${this.location} failed: ${changed}${failure.reason}`, { cause: error });
          }
          case 'retry':
            if (n >= this.options.maxAttempts) {
              report('failed', error);
              throw new StoreError(key, `${operation} from ${this.location} failed after ${n} attempts; last error: ${failure.reason}`, { cause: error });
            }
            report('retried', error);
            await sleep(backoffDelay(n, this.#backoff), undefined, { signal });
        }
      }
    }
  }

  // Runs one public call under a signal that the caller's signal and close() both abort, and
  // turns an abort into the caller's AbortError or a ClosedError.
  async #run<T>(operation: string, key: string, signal: AbortSignal | undefined, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const closing = this.#closing.signal;
    if (closing.aborted) throw new ClosedError(`${operation}(${JSON.stringify(key)}): the S3Source of ${this.location} is closed`);
    const combined = signal === undefined ? closing : AbortSignal.any([closing, signal]);
    try {
      return await call(combined);
    } catch (error) {
      if (signal?.aborted === true) throw abortError(signal, `${operation} of ${key} from ${this.location}`);
      if (closing.aborted) throw new ClosedError(`${operation}(${JSON.stringify(key)}): the S3Source of ${this.location} was closed during the call`);
      throw error;
    }
  }
}

/** `bytes first-last/total` → numbers, or undefined when absent or malformed. */
export function parseContentRange(header: string | undefined): { first: number; last: number; total: number } | undefined {
  const match = header === undefined ? null : CONTENT_RANGE.exec(header);
  if (match === null) return undefined;
  const [first, last, total] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (!Number.isSafeInteger(total) || first > last || last >= total) return undefined;
  return { first, last, total };
}

/**
 * Reads `body` to its end, handing `sink` batches of about {@link WRITE_BATCH_BYTES} with their
 * offset in the body; a body that is shorter or longer than `expected` is a TransientError.
 */
async function consumeBody(
  body: Readable,
  expected: number,
  sink: (chunks: Buffer[], offset: number, bytes: number) => void | Promise<void>,
): Promise<void> {
  let received = 0;
  let flushed = 0;
  let batch: Buffer[] = [];
  const flush = async (): Promise<void> => {
    if (received === flushed) return;
    const chunks = batch;
    batch = [];
    const bytes = received - flushed;
    const at = flushed;
    flushed = received;
    await sink(chunks, at, bytes);
  };
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (received + chunk.length > expected) throw new TransientError(`the body is longer than the ${expected} bytes announced`);
      batch.push(chunk);
      received += chunk.length;
      if (received - flushed >= WRITE_BATCH_BYTES) await flush();
    }
  } catch (error) {
    // Keep what arrived before the connection broke: a retry resumes after it.
    await flush().catch(() => undefined);
    throw error;
  }
  await flush();
  if (received !== expected) throw new TransientError(`the body ended after ${received} of ${expected} bytes`);
}

// The chunks after the first `bytes` bytes (after a short writev).
function dropBytes(chunks: Buffer[], bytes: number): Buffer[] {
  const out: Buffer[] = [];
  for (const c of chunks) {
    if (bytes >= c.length) {
      bytes -= c.length;
      continue;
    }
    out.push(bytes > 0 ? c.subarray(bytes) : c);
    bytes = 0;
  }
  return out;
}

function unquote(etag: string): string {
  return etag.length >= 2 && etag.startsWith('"') && etag.endsWith('"') ? etag.slice(1, -1) : etag;
}
