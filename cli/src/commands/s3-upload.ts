/**
 * Publishing a dataset written in a local folder to an S3 prefix: every shard with PutObject,
 * several at a time, then index.json LAST, so a reader that finds index.json finds every shard it
 * lists (and a failed upload leaves no index pointing at missing shards). Each request is retried
 * on transient failures (5xx, throttling, dropped connections) with the loader's policy
 * (`classifyS3Error`, jittered `backoffDelay`); 4xx answers are final at once.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { MDS_INDEX_BASENAME } from '@shardline/core';
import { requirePositiveInt } from '@shardline/core/internal';
import { NotFoundError, StoreError } from '@shardline/loader-node';
import { backoffDelay, classifyS3Error, resolveS3Key } from '@shardline/loader-node/internal';
import type { DatasetLocation, S3Settings } from '../config.ts';
import type { Logger } from '../log.ts';

/** Options of {@link S3DatasetUploader}. */
export interface S3UploadOptions {
  /** Files uploaded at once (default 4). */
  readonly concurrency?: number;
  /** Attempts per request, the first included (default 5). */
  readonly maxAttempts?: number;
  /** Backoff before retry n: uniform in [0, min(maxMs, baseMs · 2^(n−1))] (default 200 ms, 10 s). */
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  readonly log?: Logger;
}

/**
 * Uploads a dataset's files under `s3://bucket/prefix/`.
 * @example
 * const uploader = new S3DatasetUploader(config.output, config.s3);
 * try {
 *   if (await uploader.hasDataset()) throw new Error('already there');
 *   await uploader.uploadDataset('/tmp/out', ['shard.00000.mds']);
 * } finally {
 *   uploader.close();
 * }
 */
export class S3DatasetUploader {
  /** `s3://bucket/prefix/`. */
  readonly location: string;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #client: S3Client;
  readonly #concurrency: number;
  readonly #maxAttempts: number;
  readonly #backoff: { readonly baseMs: number; readonly maxMs: number };
  readonly #log: Logger | undefined;

  constructor(target: Extract<DatasetLocation, { type: 's3' }>, s3: S3Settings, options: S3UploadOptions = {}) {
    this.location = target.url;
    this.#bucket = target.bucket;
    this.#prefix = target.prefix;
    this.#concurrency = requirePositiveInt('concurrency', options.concurrency ?? 4, 64);
    this.#maxAttempts = requirePositiveInt('maxAttempts', options.maxAttempts ?? 5, 100);
    this.#backoff = options.backoff ?? { baseMs: 200, maxMs: 10_000 };
    this.#log = options.log;
    this.#client = new S3Client({
      region: s3.region,
      ...(s3.endpoint === undefined ? {} : { endpoint: s3.endpoint, forcePathStyle: true }),
      ...(s3.credentials === undefined ? {} : { credentials: s3.credentials }),
      // The retries are ours, with the loader's classification of what is worth retrying.
      maxAttempts: 1,
      // The SDK's own remarks (it prints some on the console otherwise) go to our log, at debug.
      logger: sdkLogger(options.log),
    });
  }

  /** Whether the prefix already holds an index.json, i.e. a dataset. */
  async hasDataset(): Promise<boolean> {
    const key = resolveS3Key(this.#prefix, MDS_INDEX_BASENAME);
    try {
      await this.#withRetries('HeadObject', MDS_INDEX_BASENAME, () => this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key })));
      return true;
    } catch (error) {
      if (error instanceof NotFoundError) return false;
      throw error;
    }
  }

  /**
   * Uploads `files` (names relative to `directory`, which become keys under the prefix), then
   * `directory/index.json`. Resolves to the bytes uploaded.
   * @param onFile called after each file with the bytes uploaded so far and the files done.
   * @throws StoreError naming the key, after the retries, when an upload fails; index.json is
   *   then not uploaded.
   */
  async uploadDataset(directory: string, files: readonly string[], onFile?: (bytes: number, files: number) => void): Promise<number> {
    let bytes = 0;
    let done = 0;
    const upload = async (name: string): Promise<void> => {
      // Not `bytes += await …`: that would read `bytes` before the await and lose concurrent uploads.
      const size = await this.#putFile(path.join(directory, ...name.split('/')), name);
      bytes += size;
      onFile?.(bytes, ++done);
    };
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (!failed && next < files.length) {
        const name = files[next++]!;
        try {
          await upload(name);
        } catch (error) {
          failed = true;
          throw error;
        }
      }
    };
    const results = await Promise.allSettled(Array.from({ length: Math.min(this.#concurrency, files.length) }, worker));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
    // Last: readers look for index.json first, and every shard it lists is there by now.
    await upload(MDS_INDEX_BASENAME);
    return bytes;
  }

  /** Releases the client's connections. */
  close(): void {
    this.#client.destroy();
  }

  async #putFile(file: string, name: string): Promise<number> {
    const key = resolveS3Key(this.#prefix, name);
    const { size } = await stat(file);
    await this.#withRetries('PutObject', name, () =>
      // A new stream per attempt: a failed attempt has consumed the last one.
      this.#client.send(new PutObjectCommand({ Bucket: this.#bucket, Key: key, Body: createReadStream(file), ContentLength: size })),
    );
    this.#log?.debug({ event: 'write.uploaded', key, bytes: size }, 'uploaded');
    return size;
  }

  async #withRetries<T>(operation: string, name: string, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        const failure = classifyS3Error(error);
        if (failure.type === 'not-found') throw new NotFoundError(name, this.location, { cause: error });
        if (failure.type !== 'retry' || n >= this.#maxAttempts) {
          throw new StoreError(name, `${operation} to ${this.location} failed after ${n} attempt${n === 1 ? '' : 's'}: ${failure.reason}`, { cause: error });
        }
        const delay = backoffDelay(n, this.#backoff);
        this.#log?.warn({ event: 'write.retry', operation, key: name, attempt: n, delayMs: delay, reason: failure.reason }, 'retrying');
        await sleep(delay);
      }
    }
  }
}

function sdkLogger(log: Logger | undefined): { debug(...content: unknown[]): void; info(...content: unknown[]): void; warn(...content: unknown[]): void; error(...content: unknown[]): void } {
  const write = (...content: unknown[]): void => log?.debug({ event: 'write.s3-sdk', sdk: content.map(String).join(' ') }, 'AWS SDK');
  return { debug: write, info: write, warn: write, error: write };
}
