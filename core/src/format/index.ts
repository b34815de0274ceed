/**
 * Shard formats, each a reader and a writer behind one name (STYLE.md: a string-keyed registry):
 * `mds` (Mosaic streaming's MDS, byte-compatible) and `webdataset` (tar shards grouped by key,
 * with a random-access index built once beside them). A dataset folder's `index.json` says which
 * (`format` of each shard), so one loader reads both.
 */
import { MDSDataset, MDSWriter } from './mds/index.ts';
import { WebDataset, buildWebDatasetDirectoryIndex, writeWebDatasetShard } from './webdataset/index.ts';

export * from './mds/index.ts';
export * from './webdataset/index.ts';

/** The shard formats by the name index.json gives them. */
export const shardFormats = {
  mds: { open: MDSDataset.open.bind(MDSDataset), Writer: MDSWriter },
  webdataset: { open: WebDataset.open.bind(WebDataset), writeShard: writeWebDatasetShard, buildIndex: buildWebDatasetDirectoryIndex },
} as const;
export type ShardFormat = keyof typeof shardFormats;
