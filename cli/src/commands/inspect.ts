/**
 * `shardline inspect <dataset>`: what a dataset's index.json says (validated), local or on S3 —
 * shards, samples, bytes as stored and raw, columns, compression and hashes — as tables, or as one
 * JSON object with `--json`. Reads index.json only; `verify` checks the shards themselves.
 */
import Table from 'cli-table3';
import { type MDSIndex, type WebDatasetDatasetIndex } from '@shardline/core';
import type { InspectConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { type DatasetIndex, openDatasetSource, readDatasetIndex } from './dataset-source.ts';
import { formatBytes, printJson } from './output.ts';

/** One shard's line. */
export interface ShardSummary {
  readonly shard: number;
  /** The file stored for the shard (compressed when there is compression). */
  readonly file: string;
  readonly samples: number;
  /** Bytes as stored. */
  readonly bytes: number;
  /** Bytes uncompressed (MDS `raw_data`); equal to `bytes` without compression. */
  readonly rawBytes: number;
}

/** What `inspect` reports (the `--json` output). */
export interface InspectSummary {
  readonly format: 'mds' | 'webdataset';
  readonly location: string;
  readonly shards: number;
  readonly samples: number;
  /** Bytes of the shard files as stored. */
  readonly bytes: number;
  /** Bytes of the shards uncompressed. */
  readonly rawBytes: number;
  /** Column name → MDS encoding; for WebDataset, each member suffix → `bytes`. */
  readonly columns: Readonly<Record<string, string>>;
  /** True when shards disagree on their columns (`columns` is then shard 0's). */
  readonly columnsVary: boolean;
  /** The compression of every shard, or the list of those used when they differ. */
  readonly compression: string | null | readonly (string | null)[];
  /** Hash algorithms listed for any shard. */
  readonly hashes: readonly string[];
  /** MDS `size_limit` of shard 0 (bytes, or null for none); null for WebDataset. */
  readonly sizeLimit: number | null;
  /** WebDataset only: bytes of the shards' `.idx.json` files. */
  readonly indexBytes?: number;
  /** Every shard, with `--shards`. */
  readonly shardList?: readonly ShardSummary[];
}

/**
 * Runs `inspect` and prints the result (tables, or JSON with `--json`) on stdout.
 * @throws DatasetError or FormatError when index.json is missing or invalid.
 */
export async function runInspect(config: InspectConfig, log: Logger): Promise<InspectSummary> {
  const source = await openDatasetSource(config.location, config.s3);
  try {
    const dataset = await readDatasetIndex(source);
    const summary = summarize(dataset, source.location, config.shards);
    log.debug({ event: 'inspect.done', location: summary.location, format: summary.format, shards: summary.shards }, 'index read');
    if (config.json) printJson(summary);
    else process.stdout.write(formatTables(summary));
    return summary;
  } finally {
    await source.close();
  }
}

/** The summary of a validated index. */
export function summarize(dataset: DatasetIndex, location: string, withShards: boolean): InspectSummary {
  return dataset.format === 'mds' ? summarizeMds(dataset.index, location, withShards) : summarizeWebDataset(dataset.index, location, withShards);
}

function summarizeMds(index: MDSIndex, location: string, withShards: boolean): InspectSummary {
  const shards = index.shards;
  const columnsOf = (s: (typeof shards)[number]): Record<string, string> => Object.fromEntries(s.columnNames.map((name, k) => [name, s.columnEncodings[k]!]));
  const columns = shards[0] === undefined ? {} : columnsOf(shards[0]);
  const key = JSON.stringify(columns);
  const compressions = [...new Set(shards.map((s) => s.compression))];
  const list: ShardSummary[] = shards.map((s, i) => {
    const stored = s.zipData ?? s.rawData;
    return { shard: i, file: stored.basename, samples: s.samples, bytes: stored.bytes, rawBytes: s.rawData.bytes };
  });
  return {
    format: 'mds',
    location,
    shards: shards.length,
    samples: sum(list.map((s) => s.samples)),
    bytes: sum(list.map((s) => s.bytes)),
    rawBytes: sum(list.map((s) => s.rawBytes)),
    columns,
    columnsVary: shards.some((s) => JSON.stringify(columnsOf(s)) !== key),
    compression: compressions.length <= 1 ? (compressions[0] ?? null) : compressions,
    hashes: [...new Set(shards.flatMap((s) => s.hashes))].sort(),
    sizeLimit: shards[0]?.sizeLimit ?? null,
    ...(withShards ? { shardList: list } : {}),
  };
}

function summarizeWebDataset(index: WebDatasetDatasetIndex, location: string, withShards: boolean): InspectSummary {
  const shards = index.shards;
  const suffixes = [...new Set(shards.flatMap((s) => s.suffixes))].sort();
  const list: ShardSummary[] = shards.map((s, i) => ({ shard: i, file: s.raw_data.basename, samples: s.samples, bytes: s.raw_data.bytes, rawBytes: s.raw_data.bytes }));
  const bytes = sum(list.map((s) => s.bytes));
  return {
    format: 'webdataset',
    location,
    shards: shards.length,
    samples: sum(list.map((s) => s.samples)),
    bytes,
    rawBytes: bytes,
    columns: Object.fromEntries(suffixes.map((s) => [s, 'bytes'])),
    columnsVary: shards.some((s) => s.suffixes.length !== suffixes.length),
    compression: null,
    hashes: shards.length === 0 ? [] : ['sha256'],
    sizeLimit: null,
    indexBytes: sum(shards.map((s) => s.index_data.bytes)),
    ...(withShards ? { shardList: list } : {}),
  };
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

// No colours: output is often piped, and cli-table3 would colour headers otherwise.
const PLAIN = { head: [], border: [] };
// No rule between rows: one line per row.
const COMPACT = { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' };

function bytesText(n: number): string {
  return n < 1024 ? `${n} B` : `${formatBytes(n)} (${n} bytes)`;
}

/** The summary as text tables: the dataset, its columns, and its shards when listed. */
export function formatTables(s: InspectSummary): string {
  const overview = new Table({ style: PLAIN, chars: COMPACT });
  const c = s.compression;
  const compression = c === null ? 'none' : typeof c === 'string' ? c : c.map((x) => x ?? 'none').join(', ');
  overview.push(
    { format: s.format },
    { location: s.location },
    { shards: String(s.shards) },
    { samples: String(s.samples) },
    { 'bytes stored': bytesText(s.bytes) },
    { 'bytes raw': bytesText(s.rawBytes) },
    { compression },
    { hashes: s.hashes.length === 0 ? 'none' : s.hashes.join(', ') },
  );
  if (s.format === 'mds') overview.push({ 'size limit': s.sizeLimit === null ? 'none' : bytesText(s.sizeLimit) });
  if (s.indexBytes !== undefined) overview.push({ 'shard indexes': bytesText(s.indexBytes) });

  const columns = new Table({ head: ['column', s.format === 'mds' ? 'encoding' : 'value'], style: PLAIN, chars: COMPACT });
  for (const [name, encoding] of Object.entries(s.columns)) columns.push([name, encoding]);
  const parts = [overview.toString(), columns.toString()];
  if (s.columnsVary) parts.push(s.format === 'mds' ? 'Note: shards differ in their columns; the table shows shard 0.' : 'Note: not every shard has every suffix.');
  if (s.shardList !== undefined) {
    const shards = new Table({ head: ['shard', 'file', 'samples', 'bytes stored', 'bytes raw'], style: PLAIN, chars: COMPACT });
    for (const r of s.shardList) shards.push([String(r.shard), r.file, String(r.samples), String(r.bytes), String(r.rawBytes)]);
    parts.push(shards.toString());
  }
  return `${parts.join('\n')}\n`;
}
