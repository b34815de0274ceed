/**
 * The random-access index of one WebDataset shard, built by scanning the tar once and stored
 * beside it as `<shard>.idx.json` (`train-000000.tar` → `train-000000.tar.idx.json`):
 *
 * ```json
 * {"format":"shardline-webdataset-index","version":1,"basename":"train-000000.tar",
 *  "bytes":30720,"sha256":"<64 hex digits>","samples":[
 * {"key":"a/000000","members":[{"suffix":"cls","header":0,"offset":512,"size":1},{"suffix":"jpg","header":1024,"offset":1536,"size":4711}]},
 * ...
 * ]}
 * ```
 *
 * - `basename`: the shard's file name relative to the index (and to the dataset root).
 * - `bytes`, `sha256`: the size and SHA-256 (lowercase hex) of the whole tar file.
 * - `samples`: in tar order, exactly the samples a sequential WebDataset read yields (samples.ts).
 *   Per member: `suffix` (lowercased, as readers key it), `header` (offset of the member's first
 *   header block, its pax or GNU long-name header when it has one), `offset` and `size` of its data.
 *
 * Parsing never trusts the file: every number is a safe integer, headers and data offsets are
 * 512-aligned with the data after its header, members lie inside `bytes`, in increasing order
 * without overlap, each key/suffix pair is one WebDataset would produce, a sample's suffixes are
 * unique, and adjacent samples have different keys (the tar would have merged them). Anything
 * else is a FormatError naming the index file and the sample and member at fault; unknown fields
 * are refused too (a new layout gets a new `version`). A key may come back after other keys (the
 * reference yields a new sample then, so the index keeps both, by position). The readers also
 * check each member's header against the index at read time (reader.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ArgumentError, FormatError } from '../../errors.ts';
import { RESERVED_SUFFIXES, hasControlCharacter, isMetadataName, splitMemberName, unsafeNameReason } from './names.ts';
import { scanSamples } from './samples.ts';
import { BLOCK, TarReader, padding } from './tar.ts';

export const WEBDATASET_INDEX_FORMAT = 'shardline-webdataset-index';
export const WEBDATASET_INDEX_VERSION = 1;
/** Appended to a shard's file name to name its index. */
export const WEBDATASET_INDEX_SUFFIX = '.idx.json';
/** Largest index file read (V8 cannot hold a longer string). */
export const MAX_INDEX_FILE_BYTES = 512 * 1024 * 1024;

/** Where one member's header and data lie in the tar. */
export interface WebDatasetMemberEntry {
  /** Lowercased suffix: the field name in the sample. */
  readonly suffix: string;
  /** Offset of the member's first header block (its extension header when it has one). */
  readonly header: number;
  /** Offset of the member's data. */
  readonly offset: number;
  /** Bytes of data. */
  readonly size: number;
}

export interface WebDatasetSampleEntry {
  readonly key: string;
  /** In tar order. */
  readonly members: readonly WebDatasetMemberEntry[];
}

/** The parsed content of a `<shard>.idx.json` file (see the module header). */
export interface WebDatasetShardIndex {
  readonly format: typeof WEBDATASET_INDEX_FORMAT;
  readonly version: typeof WEBDATASET_INDEX_VERSION;
  readonly basename: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly samples: readonly WebDatasetSampleEntry[];
}

/** Progress of one shard scan: bytes read so far of the shard's total. */
export interface ShardScanProgress {
  readonly bytesRead: number;
  readonly bytes: number;
}

export interface BuildWebDatasetIndexOptions {
  readonly signal?: AbortSignal;
  /** Called as the scan goes, at most every {@link PROGRESS_INTERVAL_BYTES} and at the end. */
  readonly onProgress?: (progress: ShardScanProgress) => void;
  /** Write `<shard>.idx.json` beside the shard (default true). */
  readonly write?: boolean;
}

/** How often a scan reports progress, in bytes read. */
export const PROGRESS_INTERVAL_BYTES = 64 * 1024 * 1024;

/** The index file of a shard: `<tarPath>.idx.json`. */
export function webDatasetIndexPath(tarPath: string): string {
  return `${tarPath}${WEBDATASET_INDEX_SUFFIX}`;
}

/**
 * Scans a shard once and returns its index; writes it beside the shard as `<shard>.idx.json`
 * unless `write: false`. The shard is read as a stream (memory stays flat whatever its size)
 * and hashed on the way.
 * @throws FormatError naming the shard and member for a malformed tar (see tar.ts, samples.ts).
 * @example
 * const index = await buildWebDatasetIndex('data/train-000000.tar');
 * console.log(index.samples.length, index.sha256);
 */
export async function buildWebDatasetIndex(
  tarPath: string,
  options: BuildWebDatasetIndexOptions = {},
): Promise<WebDatasetShardIndex> {
  const built = await scanShardFile(tarPath, options);
  if (options.write ?? true) await writeWebDatasetShardIndex(webDatasetIndexPath(tarPath), built);
  return built;
}

/** Scans a shard file into its index (no writing). Shared with the directory builder. */
export async function scanShardFile(tarPath: string, options: BuildWebDatasetIndexOptions = {}): Promise<WebDatasetShardIndex> {
  if (typeof tarPath !== 'string' || tarPath === '') throw new ArgumentError('tarPath', 'must be a non-empty path');
  const basename = path.basename(tarPath);
  const info = await stat(tarPath);
  if (!info.isFile()) throw new ArgumentError('tarPath', `${tarPath} is not a file`);
  const bytes = info.size;
  const hash = createHash('sha256');
  const { onProgress } = options;
  let bytesRead = 0;
  let reported = 0;
  async function* hashed(): AsyncGenerator<Uint8Array> {
    // Opened on the first read, and closed by the loop when the generator is closed. No signal
    // on the stream: the tar reader checks it before every header.
    for await (const chunk of createReadStream(tarPath, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytesRead += chunk.length;
      if (onProgress !== undefined && bytesRead - reported >= PROGRESS_INTERVAL_BYTES) {
        reported = bytesRead;
        onProgress({ bytesRead, bytes });
      }
      yield chunk;
    }
  }
  const tar = new TarReader(hashed(), { shard: basename, totalBytes: bytes, ...(options.signal && { signal: options.signal }) });
  try {
    const samples: WebDatasetSampleEntry[] = [];
    for await (const sample of scanSamples(tar, false)) {
      samples.push({
        key: sample.key,
        members: sample.members.map(({ suffix, header, offset, size }) => ({ suffix, header, offset, size })),
      });
    }
    await tar.drain();
    if (bytesRead !== bytes) throw new FormatError(`${basename}: the file changed while it was indexed (${bytes} bytes, then ${bytesRead})`);
    onProgress?.({ bytesRead, bytes });
    const index: WebDatasetShardIndex = { format: WEBDATASET_INDEX_FORMAT, version: WEBDATASET_INDEX_VERSION, basename, bytes, sha256: hash.digest('hex'), samples };
    VALIDATED.add(index);
    return index;
  } finally {
    await tar.close();
  }
}

/**
 * The index's file content: one sample per line, so large indexes stay readable and diffable.
 * Deterministic: the same index always gives the same bytes.
 */
export function serializeWebDatasetShardIndex(index: WebDatasetShardIndex): Buffer {
  const head = JSON.stringify({
    format: index.format,
    version: index.version,
    basename: index.basename,
    bytes: index.bytes,
    sha256: index.sha256,
  });
  const lines = index.samples.map((s) =>
    JSON.stringify({
      key: s.key,
      members: s.members.map((m) => ({ suffix: m.suffix, header: m.header, offset: m.offset, size: m.size })),
    }),
  );
  const body = lines.length === 0 ? '[]' : `[\n${lines.join(',\n')}\n]`;
  return Buffer.from(`${head.slice(0, -1)},"samples":${body}}\n`, 'utf8');
}

/** Writes a file atomically: a temporary file beside it, then a rename. */
export async function writeFileAtomic(file: string, data: Uint8Array): Promise<void> {
  const temporary = `${file}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(temporary, data);
    await rename(temporary, file);
  } catch (e) {
    await rm(temporary, { force: true });
    throw e;
  }
}

/** Writes an index file atomically and returns its bytes. */
export async function writeWebDatasetShardIndex(file: string, index: WebDatasetShardIndex): Promise<Buffer> {
  const data = serializeWebDatasetShardIndex(index);
  await writeFileAtomic(file, data);
  return data;
}

const nonNegative = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const SHARD_INDEX_SCHEMA = z
  .object({
    format: z.literal(WEBDATASET_INDEX_FORMAT),
    version: z.literal(WEBDATASET_INDEX_VERSION),
    basename: z.string(),
    bytes: nonNegative,
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
    samples: z.array(
      z.object({
        key: z.string(),
        members: z
          .array(z.object({ suffix: z.string(), header: nonNegative, offset: nonNegative, size: nonNegative }).strict())
          .min(1),
      }).strict(),
    ),
  })
  .strict();

/** Formats a zod error as `<where>: <path>: <message>`, naming the first issue. */
export function zodFailure(where: string, error: z.ZodError): FormatError {
  const issue = error.issues[0]!;
  const at = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
  return new FormatError(`${where}: ${at === '' ? '' : `${at}: `}${issue.message}`, { cause: error });
}

/**
 * Why `key` cannot be a relative key under a dataset root, or undefined when it can: the rules
 * of the loader's store keys that matter for a name written in an index (not empty, no NUL or
 * control character, no backslash, not absolute, no empty, `.` or `..` segment, at most 1024 bytes).
 */
export function unsafeRelativeKeyReason(key: string): string | undefined {
  if (key === '') return 'it is empty';
  if (hasControlCharacter(key)) return 'it contains a control character';
  if (key.includes('\\')) return 'it contains a backslash';
  if (key.startsWith('/')) return "it is absolute (starts with '/')";
  if (Buffer.byteLength(key, 'utf8') > 1024) return 'it is longer than 1024 bytes';
  for (const segment of key.split('/')) {
    if (segment === '') return "it has an empty segment ('//' or a trailing '/')";
    if (segment === '.' || segment === '..') return `it has a '${segment}' segment`;
  }
  return undefined;
}

/**
 * Validates a parsed `<shard>.idx.json` (see the module header for every rule).
 * @param where the index file's name, for messages.
 * @throws FormatError naming the file, the sample (position and key) and the member.
 */
export function parseWebDatasetShardIndex(json: unknown, where = 'index'): WebDatasetShardIndex {
  const parsed = SHARD_INDEX_SCHEMA.safeParse(json);
  if (!parsed.success) throw zodFailure(where, parsed.error);
  const index = parsed.data;
  const fail = (message: string): never => {
    throw new FormatError(`${where} (shard ${JSON.stringify(index.basename)}): ${message}`);
  };
  const basenameReason = unsafeRelativeKeyReason(index.basename);
  if (basenameReason !== undefined) fail(`basename ${JSON.stringify(index.basename)} is refused: ${basenameReason}`);
  if (index.bytes < BLOCK) fail(`bytes ${index.bytes} is smaller than one ${BLOCK}-byte tar block`);
  let end = 0;
  let previousKey: string | undefined;
  index.samples.forEach((sample, i) => {
    const what = `sample ${i} (key ${JSON.stringify(sample.key)})`;
    const keyReason = unsafeNameReason(`${sample.key}.x`);
    if (keyReason !== undefined) fail(`${what}: the key is refused: ${keyReason}`);
    if (sample.key === previousKey) fail(`${what} has the key of the sample before it; the tar would have merged them`);
    previousKey = sample.key;
    const seen = new Set<string>();
    sample.members.forEach((m, j) => {
      const member = `${what} member ${j} (${JSON.stringify(m.suffix)})`;
      const name = `${sample.key}.${m.suffix}`;
      const nameReason = unsafeNameReason(name);
      if (nameReason !== undefined) fail(`${member}: the member name is refused: ${nameReason}`);
      const split = splitMemberName(name);
      if (split === undefined || split.key !== sample.key || split.suffix !== m.suffix || isMetadataName(name)) {
        fail(`${member}: ${JSON.stringify(name)} is not a member name a tar could give this key and suffix`);
      }
      if (RESERVED_SUFFIXES.has(m.suffix)) fail(`${member}: the suffix is reserved`);
      if (seen.has(m.suffix)) fail(`${member}: the suffix is repeated`);
      seen.add(m.suffix);
      if (m.header % BLOCK !== 0 || m.offset % BLOCK !== 0) fail(`${member}: header ${m.header} and offset ${m.offset} must be multiples of ${BLOCK}`);
      if (m.offset < m.header + BLOCK) fail(`${member}: data offset ${m.offset} is not after its header at ${m.header}`);
      if (m.header < end) fail(`${member}: header at ${m.header} overlaps the previous member, which ends at ${end}`);
      if (m.size > index.bytes || m.offset + m.size > index.bytes) {
        fail(`${member}: ${m.size} bytes at offset ${m.offset} run past the end of the ${index.bytes}-byte shard`);
      }
      end = m.offset + m.size + padding(m.size);
    });
  });
  VALIDATED.add(index);
  return index as WebDatasetShardIndex;
}

// Indexes that passed parseWebDatasetShardIndex or came from a scan, so readers need not check
// them again; anything else handed to a reader is validated first.
const VALIDATED = new WeakSet<object>();

/** `index` itself when it is known valid, else the result of validating it (FormatError when it is not). */
export function validShardIndex(index: unknown, where: string): WebDatasetShardIndex {
  return typeof index === 'object' && index !== null && VALIDATED.has(index) ? (index as WebDatasetShardIndex) : parseWebDatasetShardIndex(index, where);
}

/**
 * Reads and validates a `<shard>.idx.json` file.
 * @throws FormatError naming the file for unreadable JSON or any rule broken.
 */
export async function readWebDatasetShardIndex(file: string): Promise<WebDatasetShardIndex> {
  return parseWebDatasetShardIndex(await readJsonFile(file), path.basename(file));
}

/** Reads a JSON file of at most {@link MAX_INDEX_FILE_BYTES}, with a FormatError naming it when it is not JSON. */
export async function readJsonFile(file: string): Promise<unknown> {
  const handle = await open(file, 'r');
  let text: string;
  try {
    const { size } = await handle.stat();
    if (size > MAX_INDEX_FILE_BYTES) throw new FormatError(`${file}: ${size} bytes is over the ${MAX_INDEX_FILE_BYTES}-byte limit of an index file`);
    text = await readFile(handle, 'utf8');
  } finally {
    await handle.close();
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(`${file}: not valid JSON (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
}
