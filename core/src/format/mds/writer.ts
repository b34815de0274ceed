/**
 * Writing an MDS dataset to a local directory, with the semantics and bytes of Mosaic streaming's
 * `MDSWriter` (0.13): columns sorted by name, samples encoded by their column encodings, a new
 * shard started when the next sample would push the current one past `size_limit` (counting the
 * shard's header exactly, so every shard of two or more samples fits the limit; one sample larger
 * than the limit gets a shard of its own, and, as Mosaic does, a shard whose header alone exceeds
 * the limit is written out empty first), shard files optionally compressed and hashed, and an
 * index.json identical to Mosaic's. Mosaic's `MDSReader` and `StreamingDataset` read the result.
 */
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ArgumentError, ClosedError } from '../../errors.ts';
import { type Compression, compress, parseCompression } from './compression.ts';
import { codecForWriter } from './encodings.ts';
import { type MDSHashAlgorithm, hashBytes, isHashAlgorithm } from './hashing.ts';
import { MDS_INDEX_BASENAME, MAX_MDS_SHARD_BYTES, type MDSFileInfo, type MDSIndex, type MDSShardInfo, formatMDSIndex } from './index-file.ts';
import { compareCodePoints } from './python-json.ts';
import { type ShardColumns, encodeSample, encodeShard, shardConfigText } from './shard.ts';

/** Mosaic's default shard size limit: 64 MiB. */
export const MDS_DEFAULT_SIZE_LIMIT = 1 << 26;

export interface MDSWriterOptions {
  /** The dataset directory (created if missing). */
  readonly out: string;
  /** Column name → encoding (`int`, `str`, `ndarray:float32:3,224,224`, `jpeg`, …). */
  readonly columns: Readonly<Record<string, string>>;
  /** `zstd`, `zstd:<1-22>`, `gz`, `gz:<0-9>`, `br`, `br:<0-11>`, or null (default) for none. */
  readonly compression?: string | null;
  /** Hash algorithms for the shard files, sorted and unique as Mosaic requires (e.g. `['sha1', 'xxh64']`). */
  readonly hashes?: readonly MDSHashAlgorithm[];
  /**
   * Bytes after which a new shard starts: an integer, or Mosaic's human form (`"100kb"`, `"64mb"`,
   * `"1024b"`; units of 1024). 0 or null: one shard. Default 64 MiB. Must be below 2^32.
   */
  readonly sizeLimit?: number | string | null;
  /**
   * Write into a directory that is not empty. Default false (an ArgumentError). Unlike Mosaic,
   * which deletes the directory first, nothing is deleted: files of the same name are replaced.
   */
  readonly existOk?: boolean;
}

const SIZE_UNITS: Readonly<Record<string, number>> = { kb: 2 ** 10, mb: 2 ** 20, gb: 2 ** 30, tb: 2 ** 40, pb: 2 ** 50, eb: 2 ** 60, zb: 2 ** 70, yb: 2 ** 80 };

/**
 * Mosaic's `size_limit` argument as bytes, or null for no limit (`bytes_to_int`, then 0 → none).
 * @throws ArgumentError for malformed text, negative values and values of 2^32 or more.
 * @example parseMDSSizeLimit('100kb'); // 102400
 */
export function parseMDSSizeLimit(value: number | string | null | undefined): number | null {
  if (value === undefined) return MDS_DEFAULT_SIZE_LIMIT;
  if (value === null) return null;
  let bytes: number;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ArgumentError('sizeLimit', `must be a finite number, got ${value}`);
    bytes = Math.trunc(value);
  } else if (typeof value === 'string') {
    const text = value.trim().toLowerCase();
    const m = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)(kb|mb|gb|tb|pb|eb|zb|yb)$/.exec(text) ?? /^(\d+)(b?)$/.exec(text);
    if (m === null) throw new ArgumentError('sizeLimit', `${JSON.stringify(value)} is not a size; use bytes or a number with b, kb, mb, gb, tb (e.g. "64mb")`);
    bytes = Math.trunc(Number(m[1]) * (SIZE_UNITS[m[2]!] ?? 1));
  } else {
    throw new ArgumentError('sizeLimit', `must be a number, a string like "64mb", or null, got ${typeof value}`);
  }
  if (bytes === 0) return null;
  if (bytes < 0) throw new ArgumentError('sizeLimit', `must be at least 0, got ${bytes}`);
  if (bytes > MAX_MDS_SHARD_BYTES) throw new ArgumentError('sizeLimit', `must be less than 2^32 (sample offsets are uint32), got ${bytes}`);
  return bytes;
}

interface PendingShard {
  readonly index: number;
  readonly samples: readonly Uint8Array[];
}

/**
 * Writes samples into MDS shards and an index.json in a local directory.
 *
 * @example
 * const writer = new MDSWriter({ out: 'data/train', columns: { label: 'int', image: 'jpeg' }, compression: 'zstd', hashes: ['sha1'] });
 * for (const s of samples) await writer.write({ label: s.label, image: s.jpegBytes });
 * const index = await writer.finish();
 */
export class MDSWriter {
  /** The dataset directory. */
  readonly out: string;
  /** Column names in shard order (sorted by code point, as Python sorts them). */
  readonly columnNames: readonly string[];
  readonly columnEncodings: readonly string[];
  readonly columnSizes: readonly (number | null)[];
  readonly compression: string | null;
  readonly hashes: readonly MDSHashAlgorithm[];
  /** The limit in bytes, or null for none. */
  readonly sizeLimit: number | null;
  readonly #columns: ShardColumns;
  readonly #compression: Compression | undefined;
  readonly #config: string;
  readonly #headerBytes: number;
  #samples: Uint8Array[] = [];
  #shardBytes: number;
  #nextShard = 0;
  readonly #shards: MDSShardInfo[] = [];
  #pending: Promise<void> = Promise.resolve();
  #failure: unknown = undefined;
  #finished: Promise<MDSIndex> | undefined;

  /**
   * Validates the options and prepares the directory.
   * @throws ArgumentError naming the option at fault (an unknown or `pkl` encoding names its column).
   */
  constructor(options: MDSWriterOptions) {
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object');
    const { out, columns, compression = null, hashes = [], existOk = false } = options;
    if (typeof out !== 'string' || out === '') throw new ArgumentError('out', 'must be a non-empty directory path');
    if (typeof columns !== 'object' || columns === null || Array.isArray(columns)) {
      throw new ArgumentError('columns', 'must be an object mapping column names to encodings');
    }
    const names = Object.keys(columns).sort(compareCodePoints);
    const codecs = names.map((name) => codecForWriter(columns[name], name));
    this.#columns = { names, codecs };
    this.columnNames = names;
    this.columnEncodings = codecs.map((c) => c.encoding);
    this.columnSizes = codecs.map((c) => c.size);

    if (compression !== null && compression !== '') {
      const parsed = parseCompression(compression);
      if (parsed === undefined) throw new ArgumentError('compression', `${JSON.stringify(compression)} is not a Mosaic compression (zstd[:1-22], gz[:0-9], br[:0-11])`);
      if (!parsed.supported) throw new ArgumentError('compression', `${JSON.stringify(compression)} cannot be written by Shardline; use zstd, gz or br`);
      this.#compression = parsed;
    }
    this.compression = this.#compression?.name ?? null;

    if (!Array.isArray(hashes)) throw new ArgumentError('hashes', 'must be an array of hash algorithm names');
    hashes.forEach((h, i) => {
      if (!isHashAlgorithm(h)) throw new ArgumentError(`hashes[${i}]`, `unknown hash algorithm ${JSON.stringify(h)}`);
      if (i > 0 && !(hashes[i - 1]! < h)) throw new ArgumentError('hashes', `must be unique and sorted, as Mosaic requires: ${JSON.stringify(hashes)}`);
    });
    this.hashes = [...hashes];
    this.sizeLimit = parseMDSSizeLimit(options.sizeLimit);

    this.#config = shardConfigText({
      columnEncodings: this.columnEncodings,
      columnNames: this.columnNames,
      columnSizes: this.columnSizes,
      compression: this.compression,
      hashes: this.hashes,
      sizeLimit: this.sizeLimit,
    });
    // The sample count, the sentinel offset and the config; each sample adds its bytes and an offset.
    this.#headerBytes = 4 + 4 + Buffer.byteLength(this.#config, 'utf8');
    this.#shardBytes = this.#headerBytes;

    this.out = path.resolve(out);
    let entries: string[] = [];
    try {
      if (statSync(this.out, { throwIfNoEntry: false })?.isDirectory() === false) throw new ArgumentError('out', `${this.out} exists and is not a directory`);
      mkdirSync(this.out, { recursive: true });
      entries = readdirSync(this.out);
    } catch (cause) {
      if (cause instanceof ArgumentError) throw cause;
      throw new ArgumentError('out', `cannot create ${this.out}: ${(cause as Error).message}`, { cause });
    }
    if (entries.length > 0 && !existOk) {
      throw new ArgumentError('out', `${this.out} is not empty (${entries.length} entries); pass existOk: true to write into it anyway`);
    }
  }

  /**
   * Adds a sample (column name → value; every column, no others). May start a new shard, whose
   * file is written in the background; the promise settles when that write has.
   * @throws ArgumentError (as a rejection) naming the column when a value does not fit its
   *   encoding; the writer stays usable. ClosedError after `finish`.
   */
  async write(sample: Readonly<Record<string, unknown>>): Promise<void> {
    if (this.#finished !== undefined) throw new ClosedError('MDSWriter: write after finish');
    if (this.#failure !== undefined) throw this.#failure;
    const encoded = encodeSample(this.#columns, sample);
    const size = encoded.length + 4;
    if (this.sizeLimit !== null && this.sizeLimit < this.#shardBytes + size) this.#flush();
    this.#samples.push(encoded);
    this.#shardBytes += size;
    return this.#pending;
  }

  /** Closes the current shard (even an empty one, as Mosaic does) and queues its file. */
  #flush(): void {
    const shard: PendingShard = { index: this.#nextShard++, samples: this.#samples };
    this.#samples = [];
    this.#shardBytes = this.#headerBytes;
    this.#pending = this.#pending.then(async () => {
      if (this.#failure !== undefined) return;
      try {
        this.#shards.push(await this.#writeShard(shard));
      } catch (error) {
        this.#failure = error;
        throw error;
      }
    });
    // Failures surface from write/finish; this keeps an unawaited chain from crashing the process.
    this.#pending.catch(() => {});
  }

  async #writeShard({ index, samples }: PendingShard): Promise<MDSShardInfo> {
    const rawBasename = `shard.${String(index).padStart(5, '0')}.mds`;
    const raw = encodeShard(samples, this.#config);
    const rawData = await this.#describe(rawBasename, raw);
    let zipData: MDSFileInfo | null = null;
    let stored = raw;
    if (this.#compression !== undefined) {
      stored = compress(this.#compression, raw);
      zipData = await this.#describe(`${rawBasename}.${this.#compression.extension}`, stored);
    }
    await writeAtomically(path.join(this.out, (zipData ?? rawData).basename), stored);
    return {
      columnEncodings: this.columnEncodings,
      columnNames: this.columnNames,
      columnSizes: this.columnSizes,
      compression: this.compression,
      format: 'mds',
      hashes: this.hashes,
      rawData,
      zipData,
      samples: samples.length,
      sizeLimit: this.sizeLimit,
      version: 2,
    };
  }

  async #describe(basename: string, data: Uint8Array): Promise<MDSFileInfo> {
    const hashes: Partial<Record<MDSHashAlgorithm, string>> = {};
    for (const algorithm of this.hashes) hashes[algorithm] = await hashBytes(algorithm, data);
    return { basename, bytes: data.length, hashes };
  }

  /**
   * Writes the last shard and index.json, and returns the index. Idempotent.
   * @throws the error of a failed shard write, if any.
   */
  finish(): Promise<MDSIndex> {
    this.#finished ??= (async () => {
      if (this.#samples.length > 0) this.#flush();
      await this.#pending;
      if (this.#failure !== undefined) throw this.#failure;
      const index: MDSIndex = { version: 2, shards: [...this.#shards] };
      await writeAtomically(path.join(this.out, MDS_INDEX_BASENAME), new TextEncoder().encode(formatMDSIndex(index)));
      return index;
    })();
    return this.#finished;
  }

  /** `await using writer = new MDSWriter(…)` finishes the dataset at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.finish();
  }
}

// Readers never see a half-written file under its final name.
async function writeAtomically(file: string, data: Uint8Array): Promise<void> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, data);
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
