/**
 * Mosaic streaming's MDS format (mosaicml-streaming 0.13): index.json version 2, shard files with
 * per-sample offsets, column encodings, compression and hashes. Datasets written by Mosaic's
 * `MDSWriter` read as they are, and Mosaic reads what {@link MDSWriter} writes. Every name is
 * MDS-prefixed so that the package entry can re-export this module as it is.
 */
export { MDSDataset, loadMDSShard, mdsDirectoryReader, mdsStoredFile } from './reader.ts';
export type { MDSFileReader, MDSVerifyOptions, OpenMDSOptions } from './reader.ts';
export { MDSWriter, MDS_DEFAULT_SIZE_LIMIT, parseMDSSizeLimit } from './writer.ts';
export type { MDSWriterOptions } from './writer.ts';
export { MDSShard } from './shard.ts';
export {
  MAX_MDS_INDEX_BYTES,
  MAX_MDS_SHARD_BYTES,
  MDS_INDEX_BASENAME,
  MDS_INDEX_VERSION,
  formatMDSIndex,
  mdsIndexToJson,
  parseMDSIndex,
} from './index-file.ts';
export type { MDSFileInfo, MDSIndex, MDSShardInfo } from './index-file.ts';
export { MDS_ENCODINGS, MDS_UNSAFE_ENCODINGS, isMdsEncoding, mdsEncodedSize } from './encodings.ts';
export type { MDSSample, MDSValue } from './encodings.ts';
export { MDS_COMPRESSIONS } from './compression.ts';
export { MDS_HASH_ALGORITHMS } from './hashing.ts';
export type { MDSHashAlgorithm } from './hashing.ts';
export type { JsonValue as MDSJsonValue } from './python-json.ts';
