/**
 * `index.json` of an MDS dataset, version 2, as Mosaic streaming writes it:
 *
 * ```json
 * {"shards": [{"column_encodings": ["int", "str"], "column_names": ["label", "text"],
 *   "column_sizes": [8, null], "compression": "zstd", "format": "mds", "hashes": ["sha1"],
 *   "raw_data": {"basename": "shard.00000.mds", "bytes": 1234, "hashes": {"sha1": "…"}},
 *   "samples": 10, "size_limit": 67108864, "version": 2,
 *   "zip_data": {"basename": "shard.00000.mds.zstd", "bytes": 456, "hashes": {"sha1": "…"}}}],
 *  "version": 2}
 * ```
 *
 * Parsing trusts nothing: every field is checked (types, non-negative integer sizes and counts
 * within what uint32 shard offsets allow, known encodings, compressions and hash algorithms,
 * column sizes that agree with their encodings, `zip_data` exactly when compressed), and every
 * basename must be a safe relative key (no `..`, absolute path, backslash, control character…),
 * unique in the dataset. Errors are FormatErrors naming the shard and the field.
 */
import { z } from 'zod';
import { FormatError } from '../../errors.ts';
import { parseCompression } from './compression.ts';
import { codecForIndex } from './encodings.ts';
import { MDS_HASH_ALGORITHMS, type MDSHashAlgorithm, isHashAlgorithm } from './hashing.ts';
import { pythonJsonDumps, pythonJsonLoads } from './python-json.ts';

/** The index file's name in a dataset directory. */
export const MDS_INDEX_BASENAME = 'index.json';
/** The only index version Mosaic streaming writes. */
export const MDS_INDEX_VERSION = 2;
/** Shard sample offsets are uint32: no shard file, sample count or size limit can reach 2^32. */
export const MAX_MDS_SHARD_BYTES = 2 ** 32 - 1;
/** A compressed file may be a little larger than its raw data. */
export const MAX_ZIP_BYTES = 2 ** 33;
/** More shards than any real dataset, few enough to hold the table in memory. */
export const MAX_SHARDS = 10_000_000;
/** More columns than any real dataset. */
export const MAX_COLUMNS = 10_000;
/** Longest basename accepted, in UTF-8 bytes (S3's limit for a whole key). */
export const MAX_BASENAME_BYTES = 1024;
/** Largest index.json read (V8 cannot hold a longer string). */
export const MAX_MDS_INDEX_BYTES = 512 * 1024 * 1024;

/** A file of a shard: its name relative to the dataset root, its size and hex digests. */
export interface MDSFileInfo {
  readonly basename: string;
  readonly bytes: number;
  readonly hashes: Readonly<Partial<Record<MDSHashAlgorithm, string>>>;
}

/** One shard's entry (field names camelCased; {@link mdsIndexToJson} gives Mosaic's). */
export interface MDSShardInfo {
  readonly columnEncodings: readonly string[];
  readonly columnNames: readonly string[];
  /** Fixed size of each column's values, or null where variable. */
  readonly columnSizes: readonly (number | null)[];
  /** Compression of the shard file (e.g. `zstd`, `gz:9`), or null. */
  readonly compression: string | null;
  readonly format: 'mds';
  /** Hash algorithms applied to the shard files. */
  readonly hashes: readonly MDSHashAlgorithm[];
  /** The uncompressed shard file. */
  readonly rawData: MDSFileInfo;
  /** The compressed shard file; present exactly when `compression` is. */
  readonly zipData: MDSFileInfo | null;
  /** Number of samples. */
  readonly samples: number;
  readonly sizeLimit: number | null;
  readonly version: 2;
}

/** A parsed index.json. */
export interface MDSIndex {
  readonly version: 2;
  readonly shards: readonly MDSShardInfo[];
}

const LONE_SURROGATE = /\p{Cs}/u;
const CONTROL_OR_FORMAT = /[\p{Cc}\p{Cf}]/u;
const PERCENT_ENCODED = /%[0-9a-fA-F]{2}/;

/**
 * Why `name` is not a safe relative key under the dataset root, or undefined when it is. The same
 * rules as the loader's object keys: nothing a file system, URL or Unicode normalization could
 * turn into an escape.
 */
export function unsafeBasenameReason(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (LONE_SURROGATE.test(name)) return 'it contains a lone UTF-16 surrogate';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_BASENAME_BYTES) return `it is ${bytes} bytes long, over the limit of ${MAX_BASENAME_BYTES}`;
  const control = CONTROL_OR_FORMAT.exec(name);
  if (control !== null) return `it contains the control or format character U+${control[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  if (name.includes('\\')) return 'it contains a backslash';
  if (name.startsWith('/')) return "it is absolute (starts with '/')";
  if (/^[A-Za-z]:/.test(name)) return 'it starts with a drive letter';
  const encoded = PERCENT_ENCODED.exec(name);
  if (encoded !== null) return `it contains the percent-encoded sequence ${encoded[0]}`;
  if (name.normalize('NFKC') !== name) return 'Unicode NFKC normalization changes it (look-alike or compatibility characters)';
  for (const segment of name.split('/')) {
    if (segment === '') return "it has an empty segment ('//' or a trailing '/')";
    if (segment === '.' || segment === '..') return `it has a '${segment}' segment`;
  }
  return undefined;
}

const count = (max: number) => z.number().int().min(0).max(max);

const fileInfoSchema = (maxBytes: number) =>
  z.object({
    basename: z.string(),
    bytes: count(maxBytes),
    hashes: z.record(z.string(), z.string().regex(/^[0-9a-f]{1,128}$/, 'must be a lowercase hex digest')),
  });

const shardSchema = z.object({
  column_encodings: z.array(z.string()).max(MAX_COLUMNS),
  column_names: z.array(z.string()).max(MAX_COLUMNS),
  column_sizes: z.array(count(MAX_MDS_SHARD_BYTES).nullable()).max(MAX_COLUMNS),
  compression: z.string().nullable(),
  format: z.string(),
  hashes: z.array(z.string()).max(MDS_HASH_ALGORITHMS.length),
  raw_data: fileInfoSchema(MAX_MDS_SHARD_BYTES),
  zip_data: fileInfoSchema(MAX_ZIP_BYTES).nullable(),
  samples: count(MAX_MDS_SHARD_BYTES),
  size_limit: count(MAX_MDS_SHARD_BYTES).nullable(),
  version: z.number(),
});

const indexSchema = z.object({
  version: z.number(),
  shards: z.array(z.unknown()).max(MAX_SHARDS),
});

type RawShard = z.infer<typeof shardSchema>;

function pathText(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const where = pathText(issue.path);
  return where === '' ? issue.message : `${where}: ${issue.message}`;
}

function shardLabel(i: number, raw: unknown): string {
  const name = (raw as { raw_data?: { basename?: unknown } } | null)?.raw_data?.basename;
  return typeof name === 'string' && name.length <= 200 ? `shard ${i} (${JSON.stringify(name)})` : `shard ${i}`;
}

function checkFile(file: z.infer<ReturnType<typeof fileInfoSchema>>, field: string, fail: (field: string, message: string) => never): MDSFileInfo {
  const reason = unsafeBasenameReason(file.basename);
  if (reason !== undefined) fail(`${field}.basename`, `${JSON.stringify(file.basename)} is not a safe relative key: ${reason}`);
  for (const algorithm of Object.keys(file.hashes)) {
    if (!isHashAlgorithm(algorithm)) fail(`${field}.hashes`, `unknown hash algorithm ${JSON.stringify(algorithm)}`);
  }
  return { basename: file.basename, bytes: file.bytes, hashes: { ...file.hashes } };
}

function checkShard(i: number, raw: unknown): MDSShardInfo {
  const label = shardLabel(i, raw);
  const fail = (field: string, message: string): never => {
    throw new FormatError(`${MDS_INDEX_BASENAME}: ${label}: ${field}: ${message}`);
  };
  const parsed = shardSchema.safeParse(raw);
  if (!parsed.success) throw new FormatError(`${MDS_INDEX_BASENAME}: ${label}: ${firstIssue(parsed.error)}`);
  const s: RawShard = parsed.data;
  if (s.version !== MDS_INDEX_VERSION) fail('version', `is ${s.version}, only version ${MDS_INDEX_VERSION} is supported`);
  if (s.format !== 'mds') fail('format', `${JSON.stringify(s.format)} is not supported (only "mds")`);

  const n = s.column_names.length;
  if (s.column_encodings.length !== n || s.column_sizes.length !== n) {
    fail('column_names', `${n} names, ${s.column_encodings.length} encodings and ${s.column_sizes.length} sizes: they must have one entry per column`);
  }
  if (new Set(s.column_names).size !== n) {
    const dup = s.column_names.find((c, k) => s.column_names.indexOf(c) !== k)!;
    fail('column_names', `column ${JSON.stringify(dup)} appears twice`);
  }
  s.column_names.forEach((column, k) => {
    const codec = codecForIndex(s.column_encodings[k], `${MDS_INDEX_BASENAME}: ${label}: column ${JSON.stringify(column)}`);
    if (s.column_sizes[k] !== codec.size) {
      fail(`column_sizes[${k}]`, `column ${JSON.stringify(column)} with encoding ${JSON.stringify(codec.encoding)} has size ${codec.size ?? 'null'}, the index says ${s.column_sizes[k]}`);
    }
  });

  if (s.compression !== null && parseCompression(s.compression) === undefined) {
    fail('compression', `${JSON.stringify(s.compression)} is not a Mosaic compression (br, bz2, gz, snappy or zstd, optionally with :level)`);
  }
  const hashes = s.hashes;
  for (const algorithm of hashes) {
    if (!isHashAlgorithm(algorithm)) fail('hashes', `unknown hash algorithm ${JSON.stringify(algorithm)}; known: ${MDS_HASH_ALGORITHMS.join(', ')}`);
  }
  if (new Set(hashes).size !== hashes.length) fail('hashes', 'lists an algorithm twice');

  const rawData = checkFile(s.raw_data, 'raw_data', fail);
  // The smallest shard of `samples` samples: the count and samples + 1 offsets.
  const header = 4 + 4 * (s.samples + 1);
  if (rawData.bytes < header) fail('raw_data.bytes', `${rawData.bytes} bytes cannot hold the header of ${s.samples} samples (${header} bytes)`);
  let zipData: MDSFileInfo | null = null;
  if (s.compression === null) {
    if (s.zip_data !== null) fail('zip_data', 'is set but compression is null');
  } else {
    if (s.zip_data === null) fail('zip_data', `is null but compression is ${JSON.stringify(s.compression)}`);
    zipData = checkFile(s.zip_data!, 'zip_data', fail);
    if (zipData.basename === rawData.basename) fail('zip_data.basename', 'is the same file as raw_data.basename');
  }
  return {
    columnEncodings: [...s.column_encodings],
    columnNames: [...s.column_names],
    columnSizes: [...s.column_sizes],
    compression: s.compression,
    format: 'mds',
    hashes: hashes as MDSHashAlgorithm[],
    rawData,
    zipData,
    samples: s.samples,
    sizeLimit: s.size_limit,
    version: 2,
  };
}

/**
 * Parses and validates an index.json (its text, its bytes, or the already-parsed JSON value).
 * @throws FormatError naming the shard and field at fault.
 * @example
 * const index = parseMDSIndex(await readFile('data/index.json'));
 * index.shards.reduce((n, s) => n + s.samples, 0); // number of samples
 */
export function parseMDSIndex(input: string | Uint8Array | unknown): MDSIndex {
  let value = input;
  if (input instanceof Uint8Array) {
    if (input.length > MAX_MDS_INDEX_BYTES) throw new FormatError(`${MDS_INDEX_BASENAME}: ${input.length} bytes, over the limit of ${MAX_MDS_INDEX_BYTES}`);
    try {
      value = new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch (cause) {
      throw new FormatError(`${MDS_INDEX_BASENAME}: invalid UTF-8`, { cause });
    }
  }
  if (typeof value === 'string') value = pythonJsonLoads(value, MDS_INDEX_BASENAME);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FormatError(`${MDS_INDEX_BASENAME}: must be a JSON object with "version" and "shards"`);
  }
  const top = indexSchema.safeParse(value);
  if (!top.success) throw new FormatError(`${MDS_INDEX_BASENAME}: ${firstIssue(top.error)}`);
  if (top.data.version !== MDS_INDEX_VERSION) {
    throw new FormatError(`${MDS_INDEX_BASENAME}: version: is ${top.data.version}, only version ${MDS_INDEX_VERSION} is supported`);
  }
  const shards = top.data.shards.map((raw, i) => checkShard(i, raw));
  const seen = new Map<string, number>();
  shards.forEach((s, i) => {
    for (const [field, file] of [['raw_data', s.rawData], ['zip_data', s.zipData]] as const) {
      if (file === null) continue;
      const other = seen.get(file.basename);
      if (other !== undefined && other !== i) {
        throw new FormatError(`${MDS_INDEX_BASENAME}: ${shardLabel(i, { raw_data: { basename: s.rawData.basename } })}: ${field}.basename: ${JSON.stringify(file.basename)} is also a file of shard ${other}`);
      }
      seen.set(file.basename, i);
    }
  });
  return { version: 2, shards };
}

function fileToJson(file: MDSFileInfo): Record<string, unknown> {
  return { basename: file.basename, bytes: file.bytes, hashes: { ...file.hashes } };
}

/** One shard's entry with Mosaic's field names. */
export function shardInfoToJson(shard: MDSShardInfo): Record<string, unknown> {
  return {
    column_encodings: [...shard.columnEncodings],
    column_names: [...shard.columnNames],
    column_sizes: [...shard.columnSizes],
    compression: shard.compression,
    format: shard.format,
    hashes: [...shard.hashes],
    raw_data: fileToJson(shard.rawData),
    samples: shard.samples,
    size_limit: shard.sizeLimit,
    version: shard.version,
    zip_data: shard.zipData === null ? null : fileToJson(shard.zipData),
  };
}

/** The index with Mosaic's field names, ready for JSON. */
export function mdsIndexToJson(index: MDSIndex): Record<string, unknown> {
  return { shards: index.shards.map(shardInfoToJson), version: index.version };
}

/** index.json's text exactly as Mosaic writes it (`json.dump(obj, sort_keys=True)`). */
export function formatMDSIndex(index: MDSIndex): string {
  return pythonJsonDumps(mdsIndexToJson(index) as Parameters<typeof pythonJsonDumps>[0], { sortKeys: true });
}
