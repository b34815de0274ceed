/**
 * A whole WebDataset directory as one map-style dataset: index.json and every shard's index are
 * read and cross-checked once, then global sample id i is found by a binary search over the
 * shards' sample counts (ConcatDataset) and read by position from its shard. For local datasets
 * (`shardline run --local`, tests); the loader node reads shards from its cache with
 * WebDatasetShardReader directly.
 */
import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { FormatError } from '../../errors.ts';
import { ConcatDataset } from '../../dataset/concat.ts';
import { type WebDatasetDatasetIndex, type WebDatasetShardEntry, checkShardIndex, readWebDatasetDatasetIndex } from './dataset-index.ts';
import { type ReadRange, type WebDatasetSample, WebDatasetShardReader, readAt } from './reader.ts';
import { MAX_INDEX_FILE_BYTES, parseWebDatasetShardIndex } from './shard-index.ts';

/** Reads ranges of a file, opening it per read (no descriptor held) and checking its size each time. */
function fileRanges(file: string, bytes: number): ReadRange {
  return async (offset, length) => {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size !== bytes) throw new FormatError(`${path.basename(file)}: the file is ${size} bytes but its index says ${bytes}`);
      // A short read is reported by the shard reader, which checks every read's length.
      return await readAt(handle, offset, length);
    } finally {
      await handle.close();
    }
  };
}

/**
 * A directory indexed by buildWebDatasetDirectoryIndex, opened for random access by global
 * sample id (shard 0's samples first, then shard 1's…).
 * @example
 * const ds = await WebDataset.open('data/');
 * const sample = await ds.get(12345);
 */
export class WebDataset extends ConcatDataset<WebDatasetSample> {
  readonly index: WebDatasetDatasetIndex;
  /** One reader per shard, in index.json order. */
  readonly shards: readonly WebDatasetShardReader[];

  private constructor(index: WebDatasetDatasetIndex, shards: WebDatasetShardReader[]) {
    super(shards);
    this.index = index;
    this.shards = shards;
  }

  /**
   * Opens `directory`. Each shard index file is checked against index.json (its size and
   * sha256, then the shard's basename, size, hash and sample count); the tar files are checked
   * for size at each read, and every member header against the index as it is read. No file
   * descriptor stays open between reads.
   * @throws FormatError naming the file and field that disagree.
   */
  static async open(directory: string): Promise<WebDataset> {
    const index = await readWebDatasetDatasetIndex(directory);
    if (index.shards.length === 0) throw new FormatError(`${path.join(directory, 'index.json')} lists no shards`);
    const shards = await Promise.all(index.shards.map((entry) => openShard(directory, entry)));
    return new WebDataset(index, shards);
  }

  /** Sample `i` by global sample id (negative counts from the end). */
  override get(i: number): Promise<WebDatasetSample> {
    return Promise.resolve(super.get(i));
  }
}

async function openShard(directory: string, entry: WebDatasetShardEntry): Promise<WebDatasetShardReader> {
  const file = path.join(directory, entry.index_data.basename);
  const where = entry.index_data.basename;
  const { size } = await stat(file);
  if (size !== entry.index_data.bytes) throw new FormatError(`${where}: the file is ${size} bytes but index.json says ${entry.index_data.bytes}`);
  if (size > MAX_INDEX_FILE_BYTES) throw new FormatError(`${where}: ${size} bytes is over the ${MAX_INDEX_FILE_BYTES}-byte limit of an index file`);
  const data = await readFile(file);
  const digest = createHash('sha256').update(data).digest('hex');
  if (digest !== entry.index_data.hashes.sha256) {
    throw new FormatError(`${where}: the file's sha256 is ${digest} but index.json says ${entry.index_data.hashes.sha256}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(data.toString('utf8'));
  } catch (e) {
    throw new FormatError(`${where}: not valid JSON (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  const shardIndex = parseWebDatasetShardIndex(json, where);
  checkShardIndex(entry, shardIndex);
  const tarPath = path.join(directory, entry.raw_data.basename);
  return WebDatasetShardReader.open(shardIndex, fileRanges(tarPath, entry.raw_data.bytes));
}
