/**
 * A dataset where `inspect` and `verify` find it: a local directory or an S3 prefix, behind the
 * loader's ShardSource, with its index.json read, validated and told apart (MDS, or a WebDataset
 * directory indexed by `shardline index`).
 */
import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  DatasetError,
  FormatError,
  MAX_MDS_INDEX_BYTES,
  MDS_INDEX_BASENAME,
  type MDSIndex,
  type WebDatasetDatasetIndex,
  parseMDSIndex,
  parseWebDatasetDatasetIndex,
} from '@shardline/core';
import { LocalDirectorySource, NotFoundError, S3Source, type S3RequestEvent, type ShardSource, s3SourceOptionsFrom } from '@shardline/loader-node';
import type { DatasetLocation, S3Settings } from '../config.ts';

/** A validated index.json, by format. */
export type DatasetIndex =
  | { readonly format: 'mds'; readonly index: MDSIndex }
  | { readonly format: 'webdataset'; readonly index: WebDatasetDatasetIndex };

/**
 * The store of a dataset: a LocalDirectorySource, or an S3Source with the CLI's S3 settings
 * (`onS3Request` sees each of its request attempts). Close it when done.
 * @throws ArgumentError naming the setting at fault.
 */
export async function openDatasetSource(location: DatasetLocation, s3: S3Settings, onS3Request?: (event: S3RequestEvent) => void): Promise<ShardSource> {
  if (location.type === 'local') return new LocalDirectorySource(location.path);
  const options = await s3SourceOptionsFrom({
    url: location.url,
    ...(s3.credentials === undefined ? {} : { credentials: s3.credentials }),
    options: { region: s3.region, ...(s3.endpoint === undefined ? {} : { endpoint: s3.endpoint }) },
  });
  return new S3Source(onS3Request === undefined ? options : { ...options, onRequest: onS3Request });
}

/**
 * Reads and validates the dataset's index.json. A WebDataset index is one whose shards say
 * `"format": "webdataset"`; anything else is read as MDS (and must be a valid one).
 * @throws DatasetError when there is no index.json; FormatError naming the file, shard and field
 *   for an invalid one.
 */
export async function readDatasetIndex(source: ShardSource): Promise<DatasetIndex> {
  const where = `${source.location}${MDS_INDEX_BASENAME}`;
  let bytes: Buffer;
  try {
    bytes = await source.read(MDS_INDEX_BASENAME, { maxBytes: MAX_MDS_INDEX_BYTES });
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    throw new DatasetError(`${where} does not exist: not a dataset (a folder of WebDataset .tar shards needs \`shardline index\` first)`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    // Python's dialect (NaN…) or not JSON at all: the MDS parser says which.
    json = undefined;
  }
  const shards = (json as { shards?: unknown } | null | undefined)?.shards;
  const first = Array.isArray(shards) ? (shards[0] as { format?: unknown } | null | undefined) : undefined;
  try {
    if (first?.format === 'webdataset') return { format: 'webdataset', index: parseWebDatasetDatasetIndex(json, where) };
    return { format: 'mds', index: parseMDSIndex(bytes) };
  } catch (error) {
    // parseMDSIndex names the file `index.json`: say where it is.
    if (error instanceof FormatError && error.message.startsWith(`${MDS_INDEX_BASENAME}: `)) {
      throw new FormatError(`${where}${error.message.slice(MDS_INDEX_BASENAME.length)}`, { cause: error });
    }
    throw error;
  }
}

/**
 * The whole file `key`, which the index says has `bytes` bytes: read directly from a local
 * directory (a larger file is refused before it is read), downloaded from S3 through a temp file
 * in `scratch` (the size checked on every part).
 * @throws NotFoundError when it is missing; FormatError naming the key when its size is not `bytes`.
 */
export async function fetchDatasetFile(source: ShardSource, key: string, bytes: number, scratch: string): Promise<Uint8Array> {
  if (!(source instanceof S3Source)) return source.read(key, { maxBytes: bytes });
  const file = path.join(scratch, randomUUID());
  try {
    await source.download(key, file, { expectedSize: bytes });
    return await readFile(file);
  } finally {
    await rm(file, { force: true });
  }
}
