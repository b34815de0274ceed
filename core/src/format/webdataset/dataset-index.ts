/**
 * The index of a WebDataset dataset: a directory of `*.tar` shards gets one `<shard>.idx.json`
 * per shard (shard-index.ts) and one `index.json` that summarizes them. `index.json` has the shape
 * of Mosaic streaming's index (version 2, a `shards` list whose entries say their `format`), so
 * the loader reads sample counts, sizes and hashes of WebDataset and MDS datasets the same way:
 *
 * ```json
 * {
 *   "version": 2,
 *   "shards": [
 *     {
 *       "format": "webdataset",
 *       "version": 1,
 *       "samples": 1000,
 *       "suffixes": ["cls", "jpg", "json"],
 *       "raw_data": { "basename": "train-000000.tar", "bytes": 30720000, "hashes": { "sha256": "…" } },
 *       "zip_data": null,
 *       "compression": null,
 *       "hashes": ["sha256"],
 *       "index_data": { "basename": "train-000000.tar.idx.json", "bytes": 123456, "hashes": { "sha256": "…" } }
 *     }
 *   ]
 * }
 * ```
 *
 * - `shards` in the order of their basenames (code-point order): global sample ids number the
 *   samples of shard 0, then shard 1, and so on.
 * - `samples`: the shard's sample count, equal to the length of its index's `samples`.
 * - `suffixes`: every suffix found in the shard, sorted (a sample may lack some).
 * - `raw_data`: the tar itself (Mosaic's name for uncompressed shard data); `zip_data` and
 *   `compression` are always null (compressed `.tar.gz` shards are not supported).
 * - `hashes`: the algorithms in `raw_data.hashes` (Mosaic's convention); always `["sha256"]`.
 * - `index_data`: the shard's random-access index file, with its size and hash, so a loader can
 *   verify it like a shard.
 *
 * Parsing checks every field (safe, relative basenames; non-negative integers; hex digests; a
 * sample count no tar of that size could hold is absurd), refuses shards of other formats, and
 * `checkShardIndex` cross-checks a shard index against its entry (basename, bytes, sha256 and
 * sample count) — every disagreement is a FormatError naming the shard.
 */
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { AbortError, ArgumentError, FormatError } from '../../errors.ts';
import { requirePositiveInt } from '../../validate.ts';
import {
  type ShardScanProgress,
  type WebDatasetShardIndex,
  WEBDATASET_INDEX_SUFFIX,
  readJsonFile,
  scanShardFile,
  unsafeRelativeKeyReason,
  webDatasetIndexPath,
  writeFileAtomic,
  writeWebDatasetShardIndex,
  zodFailure,
} from './shard-index.ts';
import { BLOCK } from './tar.ts';

/** The dataset index's file name in the dataset directory. */
export const DATASET_INDEX_FILE = 'index.json';
/** `version` of index.json (Mosaic's index version). */
export const DATASET_INDEX_VERSION = 2;
/** `format` of a WebDataset shard entry, and its `version`. */
export const WEBDATASET_SHARD_FORMAT = 'webdataset';
export const WEBDATASET_SHARD_VERSION = 1;

/** A file with its size and hashes, as Mosaic describes shard data. */
export interface HashedFile {
  readonly basename: string;
  readonly bytes: number;
  readonly hashes: { readonly sha256: string };
}

/** One shard in index.json (see the module header). */
export interface WebDatasetShardEntry {
  readonly format: typeof WEBDATASET_SHARD_FORMAT;
  readonly version: typeof WEBDATASET_SHARD_VERSION;
  readonly samples: number;
  readonly suffixes: readonly string[];
  readonly raw_data: HashedFile;
  readonly zip_data: null;
  readonly compression: null;
  readonly hashes: readonly ['sha256'];
  readonly index_data: HashedFile;
}

/** The parsed content of a WebDataset dataset's index.json. */
export interface WebDatasetDatasetIndex {
  readonly version: typeof DATASET_INDEX_VERSION;
  readonly shards: readonly WebDatasetShardEntry[];
}

/** What the directory builder reports as it goes; a union on `type`. */
export type WebDatasetIndexProgress =
  | { readonly type: 'start'; readonly shards: number; readonly bytes: number }
  | { readonly type: 'shard-start'; readonly shard: string; readonly position: number; readonly bytes: number }
  | ({ readonly type: 'shard-progress'; readonly shard: string; readonly position: number } & ShardScanProgress)
  | { readonly type: 'shard-done'; readonly shard: string; readonly position: number; readonly samples: number; readonly bytes: number }
  | { readonly type: 'done'; readonly shards: number; readonly samples: number; readonly bytes: number };

export interface BuildWebDatasetDirectoryIndexOptions {
  /** Called with progress events, in order for each shard. */
  readonly onProgress?: (event: WebDatasetIndexProgress) => void;
  /** Shards scanned at the same time (default 1). */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
}

const SHA256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');
const COUNT = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const HASHED_FILE = z.object({ basename: z.string(), bytes: COUNT, hashes: z.object({ sha256: SHA256 }).loose() }).loose();
const SHARD_ENTRY = z
  .object({
    format: z.literal(WEBDATASET_SHARD_FORMAT),
    version: z.literal(WEBDATASET_SHARD_VERSION),
    samples: COUNT,
    suffixes: z.array(z.string()),
    raw_data: HASHED_FILE,
    zip_data: z.null(),
    compression: z.null(),
    hashes: z.tuple([z.literal('sha256')]),
    index_data: HASHED_FILE,
  })
  .loose();
const DATASET_INDEX = z.object({ version: z.literal(DATASET_INDEX_VERSION), shards: z.array(z.unknown()) }).loose();

function hashedFile(data: HashedFile): HashedFile {
  return { basename: data.basename, bytes: data.bytes, hashes: { sha256: data.hashes.sha256 } };
}

/**
 * Validates a parsed index.json of a WebDataset dataset (every rule in the module header).
 * @param where the file's name, for messages.
 * @throws FormatError naming the shard (position and basename) and the field.
 */
export function parseWebDatasetDatasetIndex(json: unknown, where = DATASET_INDEX_FILE): WebDatasetDatasetIndex {
  const top = DATASET_INDEX.safeParse(json);
  if (!top.success) throw zodFailure(where, top.error);
  const basenames = new Set<string>();
  const shards = top.data.shards.map((raw, i): WebDatasetShardEntry => {
    const format = (raw as { format?: unknown } | null)?.format;
    if (format !== WEBDATASET_SHARD_FORMAT) {
      throw new FormatError(`${where}: shards[${i}] has format ${JSON.stringify(format)}, not "${WEBDATASET_SHARD_FORMAT}"; this reader reads WebDataset shards only`);
    }
    const parsed = SHARD_ENTRY.safeParse(raw);
    if (!parsed.success) throw zodFailure(`${where}: shards[${i}]`, parsed.error);
    const shard = parsed.data;
    const what = `${where}: shards[${i}] (${JSON.stringify(shard.raw_data.basename)})`;
    for (const [field, file] of [['raw_data', shard.raw_data], ['index_data', shard.index_data]] as const) {
      const reason = unsafeRelativeKeyReason(file.basename);
      if (reason !== undefined) throw new FormatError(`${what}: ${field}.basename ${JSON.stringify(file.basename)} is refused: ${reason}`);
      if (basenames.has(file.basename)) throw new FormatError(`${what}: ${field}.basename ${JSON.stringify(file.basename)} appears twice`);
      basenames.add(file.basename);
    }
    if (shard.raw_data.bytes < BLOCK) throw new FormatError(`${what}: raw_data.bytes ${shard.raw_data.bytes} is smaller than one tar block`);
    // Every member takes at least one header block, and every sample at least one member.
    const most = Math.floor(shard.raw_data.bytes / BLOCK) - 1;
    if (shard.samples > most) {
      throw new FormatError(`${what}: ${shard.samples} samples cannot fit in ${shard.raw_data.bytes} bytes (at most ${most})`);
    }
    return {
      format: WEBDATASET_SHARD_FORMAT,
      version: WEBDATASET_SHARD_VERSION,
      samples: shard.samples,
      suffixes: [...shard.suffixes],
      raw_data: hashedFile(shard.raw_data),
      zip_data: null,
      compression: null,
      hashes: ['sha256'],
      index_data: hashedFile(shard.index_data),
    };
  });
  return { version: DATASET_INDEX_VERSION, shards };
}

/**
 * Checks that a shard's index agrees with its entry in index.json: same basename, size, hash
 * and sample count.
 * @throws FormatError naming the shard and the field that disagrees.
 */
export function checkShardIndex(entry: WebDatasetShardEntry, index: WebDatasetShardIndex): void {
  const shard = entry.raw_data.basename;
  const disagree = (field: string, a: unknown, b: unknown): never => {
    throw new FormatError(`${shard}: index.json says ${field} ${JSON.stringify(a)} but the shard's index says ${JSON.stringify(b)}`);
  };
  if (path.posix.basename(shard) !== index.basename) disagree('basename', path.posix.basename(shard), index.basename);
  if (entry.raw_data.bytes !== index.bytes) disagree('bytes', entry.raw_data.bytes, index.bytes);
  if (entry.raw_data.hashes.sha256 !== index.sha256) disagree('sha256', entry.raw_data.hashes.sha256, index.sha256);
  if (entry.samples !== index.samples.length) disagree('samples', entry.samples, index.samples.length);
}

/** index.json's content: deterministic, two-space indented, one trailing newline. */
export function serializeWebDatasetDatasetIndex(index: WebDatasetDatasetIndex): Buffer {
  return Buffer.from(`${JSON.stringify(index, null, 2)}\n`, 'utf8');
}

/**
 * Reads and validates `<directory>/index.json`.
 * @throws FormatError naming the file for unreadable JSON or any rule broken.
 */
export async function readWebDatasetDatasetIndex(directory: string): Promise<WebDatasetDatasetIndex> {
  return parseWebDatasetDatasetIndex(await readJsonFile(path.join(directory, DATASET_INDEX_FILE)));
}

// Code-point order, so the shard order does not depend on the platform's collation.
function compareNames(a: string, b: string): number {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return Buffer.compare(x, y);
}

/** Refuses to replace an index.json that is not a WebDataset index (an MDS dataset's, say). */
async function checkReplaceable(file: string): Promise<void> {
  let json: unknown;
  try {
    json = await readJsonFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new ArgumentError('directory', `${file} exists and cannot be read as JSON; move it away to index this directory`, { cause: e });
  }
  const shards = (json as { shards?: unknown } | null)?.shards;
  const other = Array.isArray(shards) ? shards.find((s) => (s as { format?: unknown } | null)?.format !== WEBDATASET_SHARD_FORMAT) : undefined;
  if (!Array.isArray(shards) || other !== undefined) {
    const format = (other as { format?: unknown } | undefined)?.format;
    throw new ArgumentError(
      'directory',
      `${file} exists and is not a WebDataset index${format === undefined ? '' : ` (a shard has format ${JSON.stringify(format)})`}; refusing to overwrite it`,
    );
  }
}

/**
 * Indexes every `*.tar` file directly in `directory` (not its subdirectories): writes each
 * shard's `<shard>.idx.json`, then the dataset's `index.json` (both atomically), and returns the
 * dataset index. Run it again after shards change; it rescans every shard. Refuses to overwrite an
 * index.json that is not a WebDataset index.
 * @throws ArgumentError when the directory holds no `*.tar` file; FormatError naming the shard
 *   and member for a malformed tar.
 * @example
 * const index = await buildWebDatasetDirectoryIndex('data/', {
 *   onProgress: (e) => { if (e.type === 'shard-done') console.log(`${e.shard}: ${e.samples} samples`); },
 * });
 */
export async function buildWebDatasetDirectoryIndex(
  directory: string,
  options: BuildWebDatasetDirectoryIndexOptions = {},
): Promise<WebDatasetDatasetIndex> {
  if (typeof directory !== 'string' || directory === '') throw new ArgumentError('directory', 'must be a non-empty path');
  const concurrency = requirePositiveInt('concurrency', options.concurrency ?? 1, 64);
  const { onProgress, signal } = options;
  const entries = await readdir(directory, { withFileTypes: true });
  const names: string[] = [];
  for (const e of entries) {
    if (!e.name.endsWith('.tar')) continue;
    if (e.isFile() || (e.isSymbolicLink() && (await stat(path.join(directory, e.name))).isFile())) names.push(e.name);
  }
  names.sort(compareNames);
  if (names.length === 0) throw new ArgumentError('directory', `${directory} holds no *.tar shard`);
  for (const name of names) {
    const reason = unsafeRelativeKeyReason(name);
    if (reason !== undefined) throw new ArgumentError('directory', `shard file name ${JSON.stringify(name)} is refused: ${reason}`);
  }
  const indexFile = path.join(directory, DATASET_INDEX_FILE);
  await checkReplaceable(indexFile);

  const sizes = await Promise.all(names.map(async (name) => (await stat(path.join(directory, name))).size));
  onProgress?.({ type: 'start', shards: names.length, bytes: sizes.reduce((a, b) => a + b, 0) });
  const results: WebDatasetShardEntry[] = new Array(names.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < names.length && !failed) {
      const position = next++;
      const name = names[position]!;
      if (signal?.aborted) throw new AbortError('indexing was aborted', { cause: signal.reason });
      const tarPath = path.join(directory, name);
      onProgress?.({ type: 'shard-start', shard: name, position, bytes: sizes[position]! });
      const index = await scanShardFile(tarPath, {
        ...(signal && { signal }),
        ...(onProgress && { onProgress: (p: ShardScanProgress) => onProgress({ type: 'shard-progress', shard: name, position, ...p }) }),
      });
      const data = await writeWebDatasetShardIndex(webDatasetIndexPath(tarPath), index);
      const suffixes = new Set<string>();
      for (const sample of index.samples) for (const m of sample.members) suffixes.add(m.suffix);
      results[position] = {
        format: WEBDATASET_SHARD_FORMAT,
        version: WEBDATASET_SHARD_VERSION,
        samples: index.samples.length,
        suffixes: [...suffixes].sort(compareNames),
        raw_data: { basename: name, bytes: index.bytes, hashes: { sha256: index.sha256 } },
        zip_data: null,
        compression: null,
        hashes: ['sha256'],
        index_data: {
          basename: `${name}${WEBDATASET_INDEX_SUFFIX}`,
          bytes: data.length,
          hashes: { sha256: createHash('sha256').update(data).digest('hex') },
        },
      };
      onProgress?.({ type: 'shard-done', shard: name, position, samples: index.samples.length, bytes: index.bytes });
    }
  };
  // After a failure the other workers finish their current shard and stop.
  const guarded = (): Promise<void> =>
    worker().catch((e: unknown) => {
      failed = true;
      throw e;
    });
  await Promise.all(Array.from({ length: Math.min(concurrency, names.length) }, guarded));
  const index: WebDatasetDatasetIndex = { version: DATASET_INDEX_VERSION, shards: results };
  await writeFileAtomic(indexFile, serializeWebDatasetDatasetIndex(index));
  onProgress?.({
    type: 'done',
    shards: results.length,
    samples: results.reduce((a, s) => a + s.samples, 0),
    bytes: results.reduce((a, s) => a + s.raw_data.bytes, 0),
  });
  return index;
}
