/**
 * Reading WebDataset shards: sequentially (a stream of samples in tar order, from a file, a
 * buffer or any stream of bytes) or by position through the shard's index, without scanning the
 * tar. Both give the same samples: `{ __key__, <suffix>: Buffer, ... }`, fields in tar order.
 *
 * Random access never trusts the index blindly: each read covers the member's own header blocks
 * too (one block more per member, usually), parses them with the same strict tar reader, and
 * checks that they name the indexed key and suffix with the indexed offset and size. A stale or
 * tampered index, or a shard swapped under it, is a FormatError naming the shard, the sample and
 * the member — never wrong bytes. Members of a sample that lie back to back in the tar (the usual
 * case) are fetched with one read.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import path from 'node:path';
import { ArgumentError, ClosedError, FormatError } from '../../errors.ts';
import type { Dataset } from '../../dataset/dataset.ts';
import { normalizeIndex, requirePositiveInt } from '../../validate.ts';
import { splitMemberName } from './names.ts';
import { scanSamples } from './samples.ts';
import { type WebDatasetMemberEntry, type WebDatasetShardIndex, validShardIndex } from './shard-index.ts';
import { DEFAULT_MAX_MEMBER_BYTES, TarReader, padding } from './tar.ts';

/**
 * A WebDataset sample: its key, and one field per member named by the member's lowercased
 * suffix (`jpg`, `seg.png`, `json`), holding the member's bytes.
 */
export interface WebDatasetSample {
  readonly __key__: string;
  readonly [suffix: string]: Buffer | string;
}

/** Where a shard's bytes come from, for a sequential read. */
export type ShardByteSource = string | Uint8Array | AsyncIterable<Uint8Array>;

/** Reads `length` bytes at `offset` of a shard (from a cache file, an object store range request…). */
export type ReadRange = (offset: number, length: number) => Promise<Uint8Array>;

export interface ReadWebDatasetShardOptions {
  /** Name of the shard in error messages (default: the file's basename, or `shard`). */
  readonly shard?: string;
  /** Refuse members larger than this (default 2 GiB): a sample is held in memory whole. */
  readonly maxMemberBytes?: number;
  readonly signal?: AbortSignal;
}

/** Builds a sample object; fields via defineProperty so a `__proto__` suffix stays a plain field. */
function makeSample(key: string, fields: Iterable<readonly [string, Buffer]>): WebDatasetSample {
  const sample: Record<string, Buffer | string> = { __key__: key };
  for (const [suffix, data] of fields) {
    Object.defineProperty(sample, suffix, { value: data, enumerable: true, writable: true, configurable: true });
  }
  return sample as WebDatasetSample;
}

function maxMemberBytesOption(value: number | undefined): number {
  return value === undefined ? DEFAULT_MAX_MEMBER_BYTES : requirePositiveInt('maxMemberBytes', value);
}

/**
 * Reads the samples of a shard in tar order, as WebDataset does (grouping rules in samples.ts).
 * Memory holds one sample at a time. Stopping early (break) closes the file or stream.
 * @throws FormatError naming the shard and member for a malformed tar (truncated, bad header,
 *   unsafe name, duplicate suffix…).
 * @example
 * for await (const sample of readWebDatasetShard('data/train-000000.tar')) {
 *   console.log(sample.__key__, Object.keys(sample));
 * }
 */
export async function* readWebDatasetShard(
  source: ShardByteSource,
  options: ReadWebDatasetShardOptions = {},
): AsyncGenerator<WebDatasetSample> {
  const maxMemberBytes = maxMemberBytesOption(options.maxMemberBytes);
  let chunks: AsyncIterable<Uint8Array> | Uint8Array;
  let totalBytes: number | undefined;
  let shard = options.shard;
  if (typeof source === 'string') {
    totalBytes = (await stat(source)).size;
    shard ??= path.basename(source);
    // The signal is checked by the tar reader before every header (see scanShardFile).
    chunks = createReadStream(source, { highWaterMark: 1024 * 1024 });
  } else if (source instanceof Uint8Array) {
    totalBytes = source.length;
    chunks = source;
  } else if (source !== null && typeof source === 'object' && Symbol.asyncIterator in source) {
    chunks = source;
  } else {
    throw new ArgumentError('source', 'must be a file path, a Uint8Array or an AsyncIterable of Uint8Array chunks');
  }
  const tar = new TarReader(chunks, {
    shard: shard ?? 'shard',
    maxMemberBytes,
    ...(totalBytes !== undefined && { totalBytes }),
    ...(options.signal && { signal: options.signal }),
  });
  try {
    for await (const sample of scanSamples(tar, true)) {
      yield makeSample(sample.key, sample.members.map((m) => [m.suffix, m.data!] as const));
    }
  } finally {
    await tar.close();
  }
}

export interface WebDatasetShardReaderOptions {
  /** Refuse members larger than this (default 2 GiB). */
  readonly maxMemberBytes?: number;
  /**
   * For a file source: hash the whole file on open and compare with the index's sha256 (default
   * false; the loader verifies shards when it fetches them). The size is always compared.
   */
  readonly verifyHash?: boolean;
}

/** `length` bytes of a file at `offset`; fewer only where the file ends first. */
export async function readAt(handle: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled === length ? buffer : buffer.subarray(0, filled);
}

/** Members of one sample that lie back to back in the tar, fetched with one read. */
interface Run {
  readonly members: readonly WebDatasetMemberEntry[];
  readonly start: number;
  readonly end: number;
}

function runsOf(members: readonly WebDatasetMemberEntry[]): Run[] {
  const runs: Run[] = [];
  let current: WebDatasetMemberEntry[] = [];
  for (const m of members) {
    const last = current.at(-1);
    if (last !== undefined && m.header !== last.offset + last.size + padding(last.size)) {
      runs.push({ members: current, start: current[0]!.header, end: last.offset + last.size });
      current = [];
    }
    current.push(m);
  }
  const last = current.at(-1)!;
  runs.push({ members: current, start: current[0]!.header, end: last.offset + last.size });
  return runs;
}

/**
 * Random access to the samples of one shard through its index: `get(i)` reads only sample i's
 * members (and their headers, which it checks against the index). A map-style Dataset, so shard
 * readers compose with ConcatDataset for global sample ids.
 * @example
 * const index = await readWebDatasetShardIndex('data/train-000000.tar.idx.json');
 * const reader = await WebDatasetShardReader.open(index, 'data/train-000000.tar');
 * const sample = await reader.get(42);
 * await reader.close();
 */
export class WebDatasetShardReader implements Dataset<WebDatasetSample> {
  readonly index: WebDatasetShardIndex;
  readonly length: number;
  readonly #read: ReadRange;
  readonly #close: () => Promise<void>;
  readonly #maxMemberBytes: number;
  #closed = false;

  private constructor(index: WebDatasetShardIndex, read: ReadRange, close: () => Promise<void>, maxMemberBytes: number) {
    this.index = index;
    this.length = index.samples.length;
    this.#read = read;
    this.#close = close;
    this.#maxMemberBytes = maxMemberBytes;
  }

  /**
   * Opens a reader over a shard file (its size is checked against the index, and its hash with
   * `verifyHash`) or over a range-reading function (each read's length is checked).
   * @param index an index from buildWebDatasetIndex, readWebDatasetShardIndex or
   *   parseWebDatasetShardIndex; any other object is validated first (FormatError when invalid).
   */
  static async open(
    index: WebDatasetShardIndex,
    source: string | ReadRange,
    options: WebDatasetShardReaderOptions = {},
  ): Promise<WebDatasetShardReader> {
    index = validShardIndex(index, 'index');
    const maxMemberBytes = maxMemberBytesOption(options.maxMemberBytes);
    const shard = index.basename;
    if (typeof source === 'function') {
      const read: ReadRange = async (offset, length) => {
        const bytes = await source(offset, length);
        if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
          const got = bytes instanceof Uint8Array ? `${bytes.length} bytes` : typeof bytes;
          throw new FormatError(`${shard}: reading ${length} bytes at offset ${offset} returned ${got}`);
        }
        return bytes;
      };
      return new WebDatasetShardReader(index, read, async () => undefined, maxMemberBytes);
    }
    if (typeof source !== 'string') throw new ArgumentError('source', 'must be a file path or a function (offset, length) => Promise<Uint8Array>');
    const handle: FileHandle = await open(source, 'r');
    try {
      const { size } = await handle.stat();
      if (size !== index.bytes) throw new FormatError(`${shard}: the file ${source} is ${size} bytes but its index says ${index.bytes}`);
      if (options.verifyHash === true) {
        const hash = createHash('sha256');
        for await (const chunk of handle.createReadStream({ start: 0, autoClose: false })) hash.update(chunk as Buffer);
        const digest = hash.digest('hex');
        if (digest !== index.sha256) throw new FormatError(`${shard}: the file's sha256 is ${digest} but its index says ${index.sha256}`);
      }
    } catch (e) {
      await handle.close();
      throw e;
    }
    const read: ReadRange = async (offset, length) => {
      const bytes = await readAt(handle, offset, length);
      if (bytes.length < length) throw new FormatError(`${shard}: the file ended at ${offset + bytes.length} while reading ${length} bytes at offset ${offset}`);
      return bytes;
    };
    return new WebDatasetShardReader(index, read, () => handle.close(), maxMemberBytes);
  }

  /** Key of sample `i` (negative counts from the end), from the index alone. */
  key(i: number): string {
    return this.index.samples[normalizeIndex(i, this.length)]!.key;
  }

  /**
   * Sample `i` (negative counts from the end), read by position.
   * @throws FormatError naming the shard, sample and member when the tar does not match the index.
   */
  async get(i: number): Promise<WebDatasetSample> {
    if (this.#closed) throw new ClosedError(`${this.index.basename}: the reader is closed`);
    const position = normalizeIndex(i, this.length);
    const entry = this.index.samples[position]!;
    const what = `sample ${position} (key ${JSON.stringify(entry.key)})`;
    for (const m of entry.members) {
      if (m.size > this.#maxMemberBytes) {
        throw new FormatError(`${this.index.basename}: ${what} member ${JSON.stringify(m.suffix)} is ${m.size} bytes, over the limit of ${this.#maxMemberBytes} (maxMemberBytes)`);
      }
    }
    const parts = await Promise.all(runsOf(entry.members).map((run) => this.#readRun(run, entry.key, what)));
    return makeSample(entry.key, parts.flat());
  }

  async #readRun(run: Run, key: string, what: string): Promise<[string, Buffer][]> {
    const shard = this.index.basename;
    const bytes = await this.#read(run.start, run.end - run.start);
    const tar = new TarReader(bytes, { shard, start: run.start, totalBytes: this.index.bytes, requireEnd: false, maxMemberBytes: this.#maxMemberBytes });
    const out: [string, Buffer][] = [];
    for (const m of run.members) {
      const expected = `member ${JSON.stringify(m.suffix)} (header at ${m.header}, ${m.size} bytes at offset ${m.offset})`;
      // The tar reader's own errors (a bad checksum where the index says a header is) get the sample's context.
      const inContext = (err: unknown): unknown => {
        if (!(err instanceof FormatError)) return err;
        const detail = err.message.startsWith(`${shard}: `) ? err.message.slice(shard.length + 2) : err.message;
        return new FormatError(`${shard}: ${what}: reading ${expected} as the index places it: ${detail}`, { cause: err });
      };
      const e = await tar.next().catch((err: unknown) => {
        throw inContext(err);
      });
      const split = e === null ? undefined : splitMemberName(e.name);
      if (e === null || e.type !== 'file' || split?.key !== key || split.suffix !== m.suffix || e.header !== m.header || e.offset !== m.offset || e.size !== m.size) {
        const found = e === null ? 'the end of the archive' : `${e.type} ${JSON.stringify(e.name)} (header at ${e.header}, ${e.size} bytes at offset ${e.offset})`;
        throw new FormatError(`${shard}: ${what}: the index says ${expected} but the tar has ${found}; the index is stale or corrupt`);
      }
      const data = await tar.readData().catch((err: unknown) => {
        throw inContext(err);
      });
      out.push([m.suffix, data]);
    }
    return out;
  }

  /** Closes the file (for a file source). Further `get` calls throw. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
