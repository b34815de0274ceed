/**
 * `shardline index <directory>`: indexes a directory of WebDataset `.tar` shards with core's
 * `buildWebDatasetDirectoryIndex` (a `<shard>.idx.json` per shard, then index.json), with a
 * progress bar over the bytes scanned, and prints what it found.
 */
import path from 'node:path';
import { DATASET_INDEX_FILE, type WebDatasetIndexProgress, buildWebDatasetDirectoryIndex } from '@shardline/core';
import type { IndexConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { formatBytes, printJson, progressBar } from './output.ts';

/** What `index` did (the `--json` output). */
export interface IndexSummary {
  readonly directory: string;
  /** The index.json written. */
  readonly index: string;
  readonly shards: number;
  readonly samples: number;
  /** Bytes of the tar shards. */
  readonly bytes: number;
  /** Every member suffix found, sorted. */
  readonly suffixes: readonly string[];
  readonly seconds: number;
}

/**
 * Runs `index` and prints the summary on stdout.
 * @throws ArgumentError when the directory holds no `.tar` shard or already holds another
 *   dataset's index.json; FormatError naming the shard and member for a malformed tar.
 */
export async function runIndex(config: IndexConfig, log: Logger): Promise<IndexSummary> {
  const started = performance.now();
  const bar = progressBar(config.progress, 'index |{bar}| {percentage}% {shards} shards | {size} | eta {eta_formatted}');
  // Bytes of shards finished, plus bytes read so far of those in progress.
  let finished = 0;
  let shardCount = 0;
  let done = 0;
  const reading = new Map<number, number>();
  const onProgress = (event: WebDatasetIndexProgress): void => {
    switch (event.type) {
      case 'start':
        shardCount = event.shards;
        bar.start(event.bytes, { shards: `0/${event.shards}`, size: formatBytes(event.bytes) });
        log.info({ event: 'index.start', directory: config.directory, shards: event.shards, bytes: event.bytes }, 'indexing');
        return;
      case 'shard-progress':
        reading.set(event.position, event.bytesRead);
        break;
      case 'shard-done':
        reading.delete(event.position);
        finished += event.bytes;
        done++;
        log.debug({ event: 'index.shard', shard: event.shard, samples: event.samples, bytes: event.bytes }, 'shard indexed');
        break;
      default:
        return;
    }
    let value = finished;
    for (const bytes of reading.values()) value += bytes;
    bar.update(value, { shards: `${done}/${shardCount}` });
  };
  let index;
  try {
    index = await buildWebDatasetDirectoryIndex(config.directory, { concurrency: config.concurrency, onProgress });
  } finally {
    bar.stop();
  }
  const summary: IndexSummary = {
    directory: config.directory,
    index: path.join(config.directory, DATASET_INDEX_FILE),
    shards: index.shards.length,
    samples: index.shards.reduce((n, s) => n + s.samples, 0),
    bytes: index.shards.reduce((n, s) => n + s.raw_data.bytes, 0),
    suffixes: [...new Set(index.shards.flatMap((s) => s.suffixes))].sort(),
    seconds: Math.round((performance.now() - started) / 10) / 100,
  };
  log.info({ event: 'index.done', shards: summary.shards, samples: summary.samples, seconds: summary.seconds }, 'index written');
  if (config.json) printJson(summary);
  else {
    process.stdout.write(
      `Indexed ${summary.shards} shard${summary.shards === 1 ? '' : 's'} in ${summary.directory}: ${summary.samples} samples, ` +
        `${formatBytes(summary.bytes)}, suffixes ${summary.suffixes.join(', ') || '(none)'}; wrote ${summary.index} in ${summary.seconds} s.\n`,
    );
  }
  return summary;
}
