/**
 * WebDataset `.tar` shards: writing them, reading them in order or by position through an index
 * built once and stored beside them (`<shard>.idx.json`), and the dataset-level `index.json`
 * that summarizes a directory of shards in the shape of Mosaic's index. Formats are documented in
 * shard-index.ts and dataset-index.ts; WebDataset's naming and grouping rules in names.ts and
 * samples.ts.
 */
export { MAX_NAME_BYTES, isMetadataName, splitMemberName } from './names.ts';
export type { MemberName } from './names.ts';
export { DEFAULT_MAX_MEMBER_BYTES } from './tar.ts';
export { encodeWebDatasetSample, encodeWebDatasetShard, writeWebDatasetShard } from './writer.ts';
export type {
  WebDatasetSampleInput,
  WriteWebDatasetShardFileOptions,
  WriteWebDatasetShardOptions,
  WrittenWebDatasetShard,
} from './writer.ts';
export { WebDatasetShardReader, readWebDatasetShard } from './reader.ts';
export type {
  ReadRange,
  ReadWebDatasetShardOptions,
  ShardByteSource,
  WebDatasetSample,
  WebDatasetShardReaderOptions,
} from './reader.ts';
export {
  WEBDATASET_INDEX_FORMAT,
  WEBDATASET_INDEX_SUFFIX,
  WEBDATASET_INDEX_VERSION,
  buildWebDatasetIndex,
  parseWebDatasetShardIndex,
  readWebDatasetShardIndex,
  serializeWebDatasetShardIndex,
  webDatasetIndexPath,
} from './shard-index.ts';
export type {
  BuildWebDatasetIndexOptions,
  ShardScanProgress,
  WebDatasetMemberEntry,
  WebDatasetSampleEntry,
  WebDatasetShardIndex,
} from './shard-index.ts';
export {
  DATASET_INDEX_FILE,
  DATASET_INDEX_VERSION,
  WEBDATASET_SHARD_FORMAT,
  WEBDATASET_SHARD_VERSION,
  buildWebDatasetDirectoryIndex,
  checkShardIndex,
  parseWebDatasetDatasetIndex,
  readWebDatasetDatasetIndex,
  serializeWebDatasetDatasetIndex,
} from './dataset-index.ts';
export type {
  BuildWebDatasetDirectoryIndexOptions,
  HashedFile,
  WebDatasetDatasetIndex,
  WebDatasetIndexProgress,
  WebDatasetShardEntry,
} from './dataset-index.ts';
export { WebDataset } from './dataset.ts';
