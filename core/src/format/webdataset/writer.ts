/**
 * Writing WebDataset shards: samples `{ __key__, <suffix>: value, ... }` become tar members
 * `<key>.<suffix>`, as the reference `TarWriter` writes them, and deterministically: fixed mtime,
 * mode 0444, uid/gid 0 and no user or group names, members in code-point order of their suffix,
 * so the same samples always give the same bytes (and the same sha256).
 *
 * Field values, following the reference's default encoder: bytes (any ArrayBufferView) as they
 * are (copied, so the caller may reuse its buffers); strings as UTF-8; under a `json`/`jsn` suffix (the part after the last '.'), any other
 * value as JSON; under `cls cls2 class count index inx id`, an integer or bigint as its decimal
 * digits. Fields whose name starts with '_' are metadata and not written (`__key__` among them).
 * Anything else is an ArgumentError naming the sample and field. Keys and suffixes are checked so
 * that the tar reads back as exactly these samples (names.ts); a sample with the key of the one
 * before it is refused, since readers would merge the two.
 *
 * Names that do not fit a ustar header (over 100 bytes without a usable '/' split, or not ASCII)
 * get a pax `path` record, which GNU tar, bsdtar and Python's tarfile all read.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import tar from 'tar-stream';
import { AbortError, ArgumentError } from '../../errors.ts';
import { memberNameFor } from './names.ts';
import { buildWebDatasetIndex } from './shard-index.ts';

/** A sample to write: its key and fields (see the module header for the accepted values). */
export interface WebDatasetSampleInput {
  readonly __key__: string;
  readonly [field: string]: unknown;
}

export interface WriteWebDatasetShardOptions {
  /** Modification time of every member (default: the Unix epoch), so output is reproducible. */
  readonly mtime?: Date;
  readonly signal?: AbortSignal;
}

export interface WriteWebDatasetShardFileOptions extends WriteWebDatasetShardOptions {
  /** Also build and write the shard's index (`<path>.idx.json`). Default false. */
  readonly index?: boolean;
}

/** What was written. */
export interface WrittenWebDatasetShard {
  readonly bytes: number;
  readonly samples: number;
  /** SHA-256 of the tar, lowercase hex. */
  readonly sha256: string;
}

const WRITE_BATCH_BYTES = 1024 * 1024;
const DECIMAL_SUFFIXES: ReadonlySet<string> = new Set(['cls', 'cls2', 'class', 'count', 'index', 'inx', 'id']);
const JSON_SUFFIXES: ReadonlySet<string> = new Set(['json', 'jsn']);
const LONE_SURROGATE = /\p{Cs}/u;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? `a ${value.constructor?.name ?? 'object'}` : `a ${typeof value}`;
}

// Python sorts str by code point; UTF-16 order differs for characters beyond U+FFFF.
function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function encodeField(key: string, suffix: string, value: unknown): Buffer {
  const field = `sample ${JSON.stringify(key)} field ${JSON.stringify(suffix)}`;
  // A copy: the bytes wait in the tar stream's queue while the caller may reuse its buffer.
  if (ArrayBuffer.isView(value)) return Buffer.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  if (typeof value === 'string') {
    if (LONE_SURROGATE.test(value)) throw new ArgumentError(field, 'the string has a lone surrogate, which UTF-8 cannot encode');
    return Buffer.from(value, 'utf8');
  }
  const extension = suffix.slice(suffix.lastIndexOf('.') + 1);
  if (JSON_SUFFIXES.has(extension)) {
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch (e) {
      throw new ArgumentError(field, `cannot be written as JSON: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    if (json === undefined) throw new ArgumentError(field, `${describe(value)} cannot be written as JSON`);
    return Buffer.from(json, 'utf8');
  }
  if (DECIMAL_SUFFIXES.has(extension) && (typeof value === 'bigint' || Number.isSafeInteger(value))) {
    return Buffer.from(String(value), 'latin1');
  }
  throw new ArgumentError(
    field,
    `cannot write ${describe(value)} under the suffix ${JSON.stringify(suffix)}: pass bytes or a string ` +
      '(other values are written as JSON under a json suffix, integers as text under cls, id, index and the like)',
  );
}

/** The members of one sample, named and encoded, in the order they are written. */
export function encodeWebDatasetSample(sample: WebDatasetSampleInput): { name: string; data: Buffer }[] {
  if (typeof sample !== 'object' || sample === null || Array.isArray(sample)) {
    throw new ArgumentError('sample', `must be an object with __key__, got ${describe(sample)}`);
  }
  const key = sample.__key__;
  if (typeof key !== 'string') throw new ArgumentError('__key__', `must be a string, got ${describe(key)}`);
  const suffixes = Object.keys(sample)
    .filter((k) => !k.startsWith('_'))
    .sort(compareCodePoints);
  if (suffixes.length === 0) throw new ArgumentError(`sample ${JSON.stringify(key)}`, 'has no fields to write (names starting with _ are skipped)');
  return suffixes.map((suffix) => ({ name: memberNameFor(key, suffix), data: encodeField(key, suffix, sample[suffix]) }));
}

type Samples = Iterable<WebDatasetSampleInput> | AsyncIterable<WebDatasetSampleInput>;

/** Streams the tar of `samples` into `sink`, chunk by chunk, with backpressure. */
async function packShard(
  samples: Samples,
  options: WriteWebDatasetShardOptions,
  sink: (chunk: Buffer) => Promise<void>,
): Promise<WrittenWebDatasetShard> {
  if (samples === null || typeof samples !== 'object' || !(Symbol.iterator in samples || Symbol.asyncIterator in samples)) {
    throw new ArgumentError('samples', 'must be an Iterable or AsyncIterable of samples');
  }
  const mtime = options.mtime ?? new Date(0);
  if (!(mtime instanceof Date) || Number.isNaN(mtime.getTime()) || mtime.getTime() < 0) {
    throw new ArgumentError('mtime', 'must be a valid Date at or after the Unix epoch');
  }
  const { signal } = options;
  const pack = tar.pack();
  const hash = createHash('sha256');
  let bytes = 0;
  const consumer = (async () => {
    for await (const chunk of pack as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
      await sink(chunk);
    }
  })();
  // A failed sink must stop the producer too, which may be waiting for the pack to drain.
  const failed = consumer.then(
    () => new Promise<never>(() => undefined),
    (e: unknown) => {
      pack.destroy(e instanceof Error ? e : new Error(String(e)));
      throw e;
    },
  );
  failed.catch(() => undefined);
  let count = 0;
  try {
    let previous: string | undefined;
    for await (const sample of samples) {
      if (signal?.aborted) throw new AbortError('writing the shard was aborted', { cause: signal.reason });
      const members = encodeWebDatasetSample(sample);
      if (sample.__key__ === previous) {
        throw new ArgumentError(`samples[${count}]`, `has the key ${JSON.stringify(previous)} of the sample before it; readers would merge the two`);
      }
      previous = sample.__key__;
      for (const { name, data } of members) {
        const header = { name, size: data.length, mode: 0o444, uid: 0, gid: 0, uname: '', gname: '', mtime, type: 'file' as const };
        const written = new Promise<void>((resolve, reject) => {
          pack.entry(header, data, (err?: Error | null) => (err ? reject(err) : resolve()));
        });
        await Promise.race([written, failed]);
      }
      count++;
    }
    pack.finalize();
    await Promise.race([consumer, failed]);
  } catch (e) {
    pack.destroy(e instanceof Error ? e : new Error(String(e)));
    await consumer.catch(() => undefined);
    throw e;
  }
  return { bytes, samples: count, sha256: hash.digest('hex') };
}

/**
 * Encodes samples as a shard in memory (for small shards and tests).
 * @example
 * const tarBytes = await encodeWebDatasetShard([{ __key__: '000', jpg: jpegBytes, cls: 3, json: { w: 640 } }]);
 */
export async function encodeWebDatasetShard(samples: Samples, options: WriteWebDatasetShardOptions = {}): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await packShard(samples, options, async (chunk) => {
    chunks.push(chunk);
  });
  return Buffer.concat(chunks);
}

/**
 * Writes samples as a shard file, streaming (memory holds one sample), atomically (a temporary
 * file renamed into place; nothing is left behind on failure). With `index: true` it also writes
 * the shard's random-access index beside it.
 * @example
 * const { samples, sha256 } = await writeWebDatasetShard('out/train-000000.tar', samples, { index: true });
 */
export async function writeWebDatasetShard(
  path: string,
  samples: Samples,
  options: WriteWebDatasetShardFileOptions = {},
): Promise<WrittenWebDatasetShard> {
  if (typeof path !== 'string' || path === '') throw new ArgumentError('path', 'must be a non-empty file path');
  const temporary = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  const handle = await open(temporary, 'wx');
  // Tar chunks are small (a 512-byte header, then data): write them in batches of ~1 MiB.
  let batch: Buffer[] = [];
  let batchBytes = 0;
  const flush = async (): Promise<void> => {
    const data = Buffer.concat(batch, batchBytes);
    batch = [];
    batchBytes = 0;
    for (let at = 0; at < data.length; ) at += (await handle.write(data, at)).bytesWritten;
  };
  let written: WrittenWebDatasetShard;
  try {
    written = await packShard(samples, options, async (chunk) => {
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= WRITE_BATCH_BYTES) await flush();
    });
    await flush();
    await handle.close();
    await rename(temporary, path);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw e;
  }
  if (options.index === true) await buildWebDatasetIndex(path, options.signal ? { signal: options.signal } : {});
  return written;
}
