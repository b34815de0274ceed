/**
 * Reading an MDS dataset (Mosaic streaming's format): index.json, then shard files fetched through
 * an {@link MDSFileReader} — a local directory, or anything with `read(key)` such as the loader
 * node's object stores and disk cache — decompressed, checked against the index (size always,
 * hashes when asked) and decoded with random access. A global sample id is a position in the
 * concatenation of shards (ConcatDataset semantics), found by binary search over shard sizes.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ArgumentError, DatasetError, FormatError } from '../../errors.ts';
import type { Dataset } from '../../dataset/dataset.ts';
import { ShardTable } from '../../plan/shards.ts';
import { normalizeIndex, requirePositiveInt } from '../../validate.ts';
import { decompress, parseCompression } from './compression.ts';
import type { MDSSample, MDSValue } from './encodings.ts';
import { decodeImage, type ImageChannels } from '../../dataset/image-decode.ts';
import { type MDSHashAlgorithm, hashBytes, isHashAlgorithm } from './hashing.ts';
import { MDS_INDEX_BASENAME, MAX_MDS_INDEX_BYTES, type MDSFileInfo, type MDSIndex, type MDSShardInfo, parseMDSIndex, unsafeBasenameReason } from './index-file.ts';
import { MDSShard } from './shard.ts';

/**
 * Where a dataset's files come from: `read` returns the whole file named by a relative key
 * (`index.json`, `shard.00000.mds.zstd`). The loader node's stores fit this shape as they are.
 */
export interface MDSFileReader {
  read(key: string, options?: { maxBytes?: number; signal?: AbortSignal }): Promise<Uint8Array>;
}

/**
 * Files of a local directory. Keys are checked again here (no `..`, absolute paths…), so the
 * reader never leaves `directory`.
 * @throws DatasetError (from `read`) naming the file when it is missing or unreadable; FormatError
 *   when it is larger than `maxBytes` (the size the index gives).
 */
export function mdsDirectoryReader(directory: string): MDSFileReader {
  if (typeof directory !== 'string' || directory === '') throw new ArgumentError('directory', 'must be a non-empty path');
  const root = path.resolve(directory);
  return {
    async read(key, options = {}) {
      const reason = unsafeBasenameReason(key);
      if (reason !== undefined) throw new FormatError(`${JSON.stringify(key)} is not a safe relative key: ${reason}`);
      const file = path.join(root, ...key.split('/'));
      try {
        if (options.maxBytes !== undefined) {
          const { size } = await stat(file);
          if (size > options.maxBytes) throw new FormatError(`${file} has ${size} bytes, more than the ${options.maxBytes} expected`);
        }
        return await readFile(file, { signal: options.signal });
      } catch (cause) {
        if (cause instanceof FormatError) throw cause;
        const code = (cause as { code?: string }).code;
        if (code === 'ABORT_ERR') throw cause;
        throw new DatasetError(code === 'ENOENT' ? `${file} does not exist` : `cannot read ${file}: ${(cause as Error).message}`, { cause });
      }
    },
  };
}

/** How shards are checked when loaded. Size is always checked. */
export interface MDSVerifyOptions {
  /**
   * Check digests against the index: `true` for every algorithm the index lists for the file,
   * a list for just those (each must be in the shard's `hashes`). Default false.
   */
  readonly verifyHashes?: boolean | readonly MDSHashAlgorithm[];
  readonly signal?: AbortSignal;
}

export interface OpenMDSOptions extends MDSVerifyOptions {
  /** Decoded shards kept in memory for `get` (least recently used goes first). Default 2. */
  readonly maxOpenShards?: number;
  /**
   * Decode `jpeg` and `png` columns into uint8 tensors [H, W, C] with `channels` (1, 3, 4 or
   * 'keep'; `true` means 3) instead of returning the stored bytes. Default false.
   */
  readonly decodeImages?: boolean | ImageChannels;
}

const DECODABLE = new Set(['jpeg', 'png']);

function hashesToCheck(info: MDSShardInfo, verify: MDSVerifyOptions['verifyHashes'], label: string): readonly MDSHashAlgorithm[] {
  if (verify === undefined || verify === false) return [];
  if (verify === true) return info.hashes;
  if (!Array.isArray(verify)) throw new ArgumentError('verifyHashes', 'must be a boolean or an array of hash algorithm names');
  for (const algorithm of verify) {
    if (!isHashAlgorithm(algorithm)) throw new ArgumentError('verifyHashes', `unknown hash algorithm ${JSON.stringify(algorithm)}`);
    if (!info.hashes.includes(algorithm)) throw new FormatError(`${label}: the index has no ${algorithm} hash (it has ${info.hashes.join(', ') || 'none'})`);
  }
  return verify;
}

async function verifyFile(file: MDSFileInfo, data: Uint8Array, algorithms: readonly MDSHashAlgorithm[], label: string): Promise<void> {
  const where = `${label}: ${JSON.stringify(file.basename)}`;
  if (data.length !== file.bytes) throw new FormatError(`${where} has ${data.length} bytes, the index says ${file.bytes}`);
  for (const algorithm of algorithms) {
    const expected = file.hashes[algorithm];
    if (expected === undefined) throw new FormatError(`${where}: the index lists ${algorithm} for the shard but gives no ${algorithm} digest for this file`);
    const actual = await hashBytes(algorithm, data);
    if (actual !== expected) throw new FormatError(`${where}: ${algorithm} is ${actual}, the index says ${expected}`);
  }
}

/** The file a reader fetches for a shard: the compressed one when there is one, as Mosaic stores it. */
export function mdsStoredFile(info: MDSShardInfo): MDSFileInfo {
  return info.zipData ?? info.rawData;
}

/**
 * Turns the stored file of a shard (its `zip_data` file when compressed, else `raw_data`) into
 * an {@link MDSShard}: checks its size and, if asked, its hashes, decompresses, then checks the
 * raw file the same way and its layout.
 * @param label how errors name the shard, e.g. `shard 3`.
 * @throws FormatError naming the shard on any mismatch or corruption.
 */
export async function loadMDSShard(info: MDSShardInfo, stored: Uint8Array, options: MDSVerifyOptions & { label?: string } = {}): Promise<MDSShard> {
  const label = options.label ?? `shard ${JSON.stringify(info.rawData.basename)}`;
  const algorithms = hashesToCheck(info, options.verifyHashes, label);
  let raw = stored;
  if (info.zipData !== null) {
    await verifyFile(info.zipData, stored, algorithms, label);
    const compression = parseCompression(info.compression);
    if (compression === undefined) throw new FormatError(`${label}: unknown compression ${JSON.stringify(info.compression)}`);
    raw = decompress(compression, stored, info.rawData.bytes, `${label}: ${JSON.stringify(info.zipData.basename)}`);
  }
  await verifyFile(info.rawData, raw, algorithms, label);
  return new MDSShard(info, raw, label);
}

/**
 * An MDS dataset with random access by global sample id. Shards are fetched on first use and the
 * last few decoded ones kept; concurrent requests for one shard share one fetch.
 *
 * @example
 * const ds = await MDSDataset.open('/data/train', { verifyHashes: true });
 * ds.length;          // samples in all shards
 * await ds.get(1234); // { image: Uint8Array, label: 3n }
 */
export class MDSDataset implements Dataset<MDSSample> {
  readonly index: MDSIndex;
  /** Total number of samples. */
  readonly length: number;
  /** Shard sizes as prefix sums: global id ↔ (shard, offset). */
  readonly table: ShardTable;
  readonly #files: MDSFileReader;
  readonly #options: OpenMDSOptions;
  readonly #maxOpen: number;
  readonly #open = new Map<number, Promise<MDSShard>>();

  constructor(index: MDSIndex, files: MDSFileReader, options: OpenMDSOptions = {}) {
    if (typeof files?.read !== 'function') throw new ArgumentError('files', 'must have a read(key) method');
    this.index = index;
    this.table = new ShardTable(index.shards.map((s) => s.samples));
    this.length = this.table.numSamples;
    this.#files = files;
    this.#options = options;
    this.#maxOpen = requirePositiveInt('maxOpenShards', options.maxOpenShards ?? 2);
  }

  /**
   * Reads and validates `index.json` from a directory or a file reader.
   * @throws FormatError for an invalid index; DatasetError when it cannot be read.
   */
  static async open(source: string | MDSFileReader, options: OpenMDSOptions = {}): Promise<MDSDataset> {
    const files = typeof source === 'string' ? mdsDirectoryReader(source) : source;
    const bytes = await files.read(MDS_INDEX_BASENAME, { maxBytes: MAX_MDS_INDEX_BYTES, signal: options.signal });
    return new MDSDataset(parseMDSIndex(bytes), files, options);
  }

  /** Where global sample id `id` (negative counts from the end) lives. */
  locate(id: number): { shard: number; offset: number } {
    return this.table.locate(normalizeIndex(id, this.length, 'sample id'));
  }

  /** Shard `s`, fetched, checked and decoded (or from the cache of open shards). */
  shard(s: number): Promise<MDSShard> {
    const i = normalizeIndex(s, this.index.shards.length, 'shard');
    let loading = this.#open.get(i);
    if (loading !== undefined) {
      this.#open.delete(i);
      this.#open.set(i, loading);
      return loading;
    }
    loading = this.#load(i);
    this.#open.set(i, loading);
    loading.catch(() => {
      if (this.#open.get(i) === loading) this.#open.delete(i);
    });
    while (this.#open.size > this.#maxOpen) this.#open.delete(this.#open.keys().next().value!);
    return loading;
  }

  async #load(s: number): Promise<MDSShard> {
    const info = this.index.shards[s]!;
    const file = mdsStoredFile(info);
    const label = `shard ${s} (${JSON.stringify(info.rawData.basename)})`;
    const bytes = await this.#files.read(file.basename, { maxBytes: file.bytes, signal: this.#options.signal });
    return loadMDSShard(info, bytes, { verifyHashes: this.#options.verifyHashes, label });
  }

  /** Sample `id` of the concatenation of all shards. */
  async get(id: number): Promise<MDSSample> {
    const { shard, offset } = this.locate(id);
    const sample = (await this.shard(shard)).get(offset);
    return this.#decodeImages(shard, offset, sample);
  }

  async #decodeImages(shard: number, offset: number, sample: MDSSample): Promise<MDSSample> {
    const option = this.#options.decodeImages;
    if (option === undefined || option === false) return sample;
    const channels = option === true ? 3 : option;
    const info = this.index.shards[shard]!;
    const decoded: Record<string, MDSValue> = { ...sample };
    for (const [c, encoding] of info.columnEncodings.entries()) {
      if (!DECODABLE.has(encoding)) continue;
      const name = info.columnNames[c]!;
      try {
        decoded[name] = await decodeImage(sample[name] as Uint8Array, channels);
      } catch (error) {
        throw new FormatError(`shard ${shard} (${JSON.stringify(info.rawData.basename)}) sample ${offset}: column ${JSON.stringify(name)} is not a decodable ${encoding}: ${(error as Error).message}`, { cause: error });
      }
    }
    return decoded;
  }

  /** Every sample in order, one shard at a time. */
  async *[Symbol.asyncIterator](): AsyncIterator<MDSSample> {
    for (let s = 0; s < this.index.shards.length; s++) {
      if (this.index.shards[s]!.samples === 0) continue;
      const shard = await this.shard(s);
      for (let i = 0; i < shard.length; i++) yield this.#decodeImages(s, i, shard.get(i));
    }
  }
}
