/**
 * Samples read straight from the shard files of the disk cache, on whichever thread decodes
 * them. The caller lends a shard's file for as long as it is read (a lease: the cache cannot
 * evict it meanwhile) and the reader takes one lease at a time, so any number of readers never
 * deadlock on a small cache budget, whatever the shuffle.
 *
 * - An uncompressed shard is read with positional reads: the sample's two offsets (the whole
 *   offset table at once when it is small), then its bytes. Nothing else of the file is read, so
 *   memory stays at one sample per read however large the shard.
 * - A compressed shard cannot be read in place: the whole stored file is read under the lease,
 *   released, decompressed and kept decoded in a small LRU (`maxDecodedShards`), as MDSDataset
 *   keeps its open shards.
 *
 * The cache verified every file on arrival (hashes and layout); reads still check each offset
 * against the index, so a file changed behind the cache's back gives a FormatError naming the
 * shard and sample, never a read outside the sample.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { ArgumentError, FormatError, MDSShard, loadMDSShard, type MDSSample, type MDSShardInfo } from '@shardline/core';

/** A shard file lent to a reader: it stays in the cache until `release()`. */
export interface ShardLease {
  /** The local file: the stored file of the shard (`zip_data` when compressed, else `raw_data`). */
  readonly file: string;
  /** The shard's entry in the dataset index. */
  readonly info: MDSShardInfo;
  release(): void;
}

/** Which batch a lease is for (the cache follows the plan batch by batch). */
export interface LeasePosition {
  readonly epoch: number;
  readonly step: number;
}

/** Lends shard `shard` (its index in the dataset index) to a reader, for the batch at `at` when known. */
export type LeaseShard = (shard: number, at?: LeasePosition) => Promise<ShardLease>;

/** Random access to the samples of one shard while a reader holds it. */
export interface ShardSamples {
  /** Decodes sample `offset` of the shard (0-based inside the shard). */
  get(offset: number): Promise<MDSSample>;
}

/** Options of {@link ShardSampleReader}. */
export interface ShardSampleReaderOptions {
  /** Decompressed shards kept per reader (default 2). Uncompressed shards are never kept. */
  readonly maxDecodedShards?: number;
  /**
   * Read files with blocking calls (default false): faster on a thread of its own (a worker),
   * where nothing else waits; never on the main thread.
   */
  readonly syncReads?: boolean;
}

/** The header of a one-sample shard: count 1, then its two offsets (12 and 12 + length). */
const ONE_SAMPLE_HEADER = 12;
/** A shard's offset table up to this size is read whole, in one read, when the shard is first read. */
const WHOLE_OFFSETS_BYTES = 16 * 1024;

/** Positional reads of one open file. */
interface PositionalFile {
  /** Reads into `into` from `position`; resolves with the bytes read (fewer at the end of the file). */
  read(into: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
}

async function openPositional(file: string, sync: boolean): Promise<PositionalFile> {
  if (sync) {
    const fd = openSync(file, 'r');
    return { read: async (into, position) => readSync(fd, into, 0, into.length, position), close: async () => closeSync(fd) };
  }
  const handle = await open(file, 'r');
  return { read: async (into, position) => (await handle.read(into, 0, into.length, position)).bytesRead, close: () => handle.close() };
}

/**
 * Reads samples of a cached MDS dataset through leases.
 * @example
 * const reader = new ShardSampleReader((shard) => leaseFromCache(shard));
 * const samples = await reader.withShard(3, async (shard) => [await shard.get(0), await shard.get(7)]);
 */
export class ShardSampleReader {
  readonly #lease: LeaseShard;
  readonly #maxDecoded: number;
  readonly #sync: boolean;
  // Decoded compressed shards, least recently used first; a load in progress is shared.
  readonly #decoded = new Map<number, Promise<MDSShard>>();
  // Per shard: the index entry as a one-sample shard, so MDSShard decodes a sample read alone.
  readonly #single = new Map<number, MDSShardInfo>();

  constructor(lease: LeaseShard, options: ShardSampleReaderOptions = {}) {
    if (typeof lease !== 'function') throw new ArgumentError('lease', 'must be a function (shard) => Promise<ShardLease>');
    const max = options.maxDecodedShards ?? 2;
    if (!Number.isSafeInteger(max) || max < 1) throw new ArgumentError('maxDecodedShards', `must be an integer ≥ 1, got ${String(max)}`);
    this.#lease = lease;
    this.#maxDecoded = max;
    this.#sync = options.syncReads ?? false;
  }

  /**
   * Runs `use` with shard `shard` readable; an uncompressed shard's lease is held until `use`
   * settles, a compressed shard's only while its file is read. `at` names the batch the read is
   * for, passed on to the lease.
   * @throws what the lease throws (QuarantinedError, AbortError…); FormatError naming the shard
   *   and sample for a corrupt file or sample; what `use` throws.
   */
  async withShard<T>(shard: number, use: (samples: ShardSamples) => Promise<T>, at?: LeasePosition): Promise<T> {
    if (!Number.isSafeInteger(shard) || shard < 0) throw new ArgumentError('shard', `must be an integer ≥ 0, got ${String(shard)}`);
    const cached = this.#decoded.get(shard);
    if (cached !== undefined) {
      this.#decoded.delete(shard);
      this.#decoded.set(shard, cached);
      return use(decodedSamples(await cached));
    }
    const lease = await this.#lease(shard, at);
    if (lease.info.zipData !== null) {
      // Another read of this shard may have started decoding it while this one waited.
      const loading = this.#decoded.get(shard);
      if (loading !== undefined) lease.release();
      return use(decodedSamples(await (loading ?? this.#decompress(shard, lease))));
    }
    let file: PositionalFile | undefined;
    try {
      file = await openPositional(lease.file, this.#sync);
      return await use(this.#positional(shard, lease.info, file));
    } finally {
      await file?.close();
      lease.release();
    }
  }

  // Reads the stored file under the lease (released before the CPU-bound decompression) and
  // keeps the decoded shard.
  #decompress(shard: number, lease: ShardLease): Promise<MDSShard> {
    const loading = (async () => {
      let bytes: Uint8Array;
      try {
        bytes = this.#sync ? readFileSync(lease.file) : await readFile(lease.file);
      } finally {
        lease.release();
      }
      return loadMDSShard(lease.info, bytes, { verifyHashes: false, label: shardLabel(shard, lease.info) });
    })();
    this.#decoded.set(shard, loading);
    loading.catch(() => {
      if (this.#decoded.get(shard) === loading) this.#decoded.delete(shard);
    });
    while (this.#decoded.size > this.#maxDecoded) this.#decoded.delete(this.#decoded.keys().next().value!);
    return loading;
  }

  #positional(shard: number, info: MDSShardInfo, file: PositionalFile): ShardSamples {
    const label = shardLabel(shard, info);
    let single = this.#single.get(shard);
    if (single === undefined) {
      single = { ...info, samples: 1, compression: null, zipData: null, rawData: { ...info.rawData, bytes: 0 } };
      this.#single.set(shard, single);
    }
    const one = single;
    const header = 4 + 4 * (info.samples + 1);
    // The whole offset table when it is small: one read for every sample of this lease.
    let table: Promise<DataView> | undefined;
    const bounds = async (offset: number, where: string): Promise<[number, number]> => {
      if (header - 4 <= WHOLE_OFFSETS_BYTES) {
        table ??= (async () => {
          const bytes = new Uint8Array(header - 4);
          await readExactly(file, bytes, 4, `${label}: its offsets`);
          return new DataView(bytes.buffer);
        })();
        const offsets = await table;
        return [offsets.getUint32(4 * offset, true), offsets.getUint32(4 * offset + 4, true)];
      }
      const pair = new DataView(new ArrayBuffer(8));
      await readExactly(file, new Uint8Array(pair.buffer), 4 + 4 * offset, `${where}: its offsets`);
      return [pair.getUint32(0, true), pair.getUint32(4, true)];
    };
    return {
      async get(offset) {
        if (!Number.isSafeInteger(offset) || offset < 0 || offset >= info.samples) {
          throw new ArgumentError('offset', `${label} has ${info.samples} samples, got offset ${String(offset)}`);
        }
        const where = `${label}, sample ${offset}`;
        const [begin, end] = await bounds(offset, where);
        if (begin < header || end < begin || end > info.rawData.bytes) {
          throw new FormatError(`${where}: offsets [${begin}, ${end}) are outside the samples [${header}, ${info.rawData.bytes}) of the file`);
        }
        // The sample is read into place after a one-sample shard header, so core's MDSShard
        // decodes it (and checks its column sizes) without a copy.
        const data = new Uint8Array(ONE_SAMPLE_HEADER + end - begin);
        const view = new DataView(data.buffer);
        view.setUint32(0, 1, true);
        view.setUint32(4, ONE_SAMPLE_HEADER, true);
        view.setUint32(8, data.length, true);
        await readExactly(file, data.subarray(ONE_SAMPLE_HEADER), begin, where);
        const prefix = `${label}, sample 0`;
        try {
          return new MDSShard({ ...one, rawData: { ...one.rawData, bytes: data.length } }, data, label).get(0);
        } catch (error) {
          if (!(error instanceof FormatError)) throw error;
          // Name the sample by its offset in the real shard, not in the one-sample shard.
          throw new FormatError(error.message.startsWith(prefix) ? where + error.message.slice(prefix.length) : `${where}: ${error.message}`, { cause: error.cause });
        }
      },
    };
  }
}

function decodedSamples(shard: MDSShard): ShardSamples {
  return { get: async (offset) => shard.get(offset) };
}

function shardLabel(shard: number, info: MDSShardInfo): string {
  return `shard ${shard} (${JSON.stringify(info.rawData.basename)})`;
}

async function readExactly(file: PositionalFile, into: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const bytesRead = await file.read(into.subarray(done), position + done);
    if (bytesRead === 0) throw new FormatError(`${what}: the file ends at byte ${position + done}, ${into.length - done} bytes short`);
    done += bytesRead;
  }
}
