/**
 * `shardline verify <dataset>`: fetches every shard of a dataset (local or S3) and checks it
 * against its index — size, every hash the index lists, and, for MDS, the layout and every sample
 * decoded; for WebDataset, the tar's sha256, its `.idx.json` (size, sha256, agreement with
 * index.json) and every sample read by position. All shards are checked (or up to the first bad
 * one with `--fail-fast`); the result names the first bad shard in shard order.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  FormatError,
  type MDSIndex,
  ShardlineError,
  WebDatasetShardReader,
  type WebDatasetDatasetIndex,
  checkShardIndex,
  loadMDSShard,
  mdsStoredFile,
  parseWebDatasetShardIndex,
} from '@shardline/core';
import { S3Source, type ShardSource } from '@shardline/loader-node';
import type { VerifyConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { type DatasetIndex, fetchDatasetFile, openDatasetSource, readDatasetIndex } from './dataset-source.ts';
import { formatBytes, printJson, progressBar } from './output.ts';

/** A shard that failed verification. */
export interface ShardFailure {
  /** Position of the shard in the index. */
  readonly shard: number;
  /** The file fetched for it. */
  readonly file: string;
  /** What is wrong; starts with `shard <n> ("<file>")`. */
  readonly problem: string;
}

/** What `verify` found (the `--json` output). */
export interface VerifySummary {
  readonly ok: boolean;
  readonly format: 'mds' | 'webdataset';
  readonly location: string;
  readonly shards: number;
  /** Shards checked (fewer than `shards` only after `--fail-fast` stopped). */
  readonly shardsChecked: number;
  /** Samples the index lists. */
  readonly samples: number;
  /** Samples decoded from shards that passed. */
  readonly samplesVerified: number;
  /** Bytes of the shards that passed. */
  readonly bytes: number;
  /** Bad shards in shard order; the first is the one reported. */
  readonly failures: readonly ShardFailure[];
  readonly seconds: number;
}

/** Checks one shard; reports decoded samples as it goes and returns the bytes it checked. */
type ShardCheck = (shard: number, onSamples: (n: number) => void) => Promise<number>;

/**
 * Runs `verify`: prints the summary (stdout) and, when a shard is bad, the first one and its
 * problem on stderr. The caller exits 1 unless `ok`.
 * @throws DatasetError or FormatError when index.json is missing or invalid (nothing to verify).
 */
export async function runVerify(config: VerifyConfig, log: Logger): Promise<VerifySummary> {
  const started = performance.now();
  const source = await openDatasetSource(config.location, config.s3);
  const scratch = source instanceof S3Source ? await mkdtemp(path.join(tmpdir(), 'shardline-verify-')) : '';
  try {
    const dataset = await readDatasetIndex(source);
    const { shards } = dataset.index;
    const samples = shards.reduce((n, s) => n + s.samples, 0);
    log.info({ event: 'verify.start', location: source.location, format: dataset.format, shards: shards.length, samples }, 'verifying');
    const check = dataset.format === 'mds' ? mdsShardCheck(source, dataset.index, scratch) : webDatasetShardCheck(source, dataset.index, scratch);

    const bar = progressBar(config.progress, 'verify |{bar}| {percentage}% {value}/{total} samples | {failed} bad shards | eta {eta_formatted}');
    bar.start(samples, { failed: 0 });
    const failures: ShardFailure[] = [];
    let verified = 0;
    let bytes = 0;
    let checked = 0;
    let next = 0;
    let stop = false;
    const worker = async (): Promise<void> => {
      while (!stop && next < shards.length) {
        const s = next++;
        try {
          // Not `bytes += await …`, which would read `bytes` before the await and lose other workers' bytes.
          const checkedBytes = await check(s, (n) => {
            verified += n;
            bar.update(verified, { failed: failures.length });
          });
          bytes += checkedBytes;
        } catch (error) {
          // Anything but a Shardline error (a bug) stops the run instead of blaming the shard.
          if (!(error instanceof ShardlineError)) throw error;
          const failure = { shard: s, file: shardFile(dataset, s), problem: error.message };
          failures.push(failure);
          log.error({ event: 'verify.bad-shard', ...failure }, 'shard failed verification');
          bar.update(verified, { failed: failures.length });
          if (config.failFast) stop = true;
        }
        checked++;
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(config.concurrency, Math.max(1, shards.length)) }, worker));
    } finally {
      bar.stop();
    }
    failures.sort((a, b) => a.shard - b.shard);

    const summary: VerifySummary = {
      ok: failures.length === 0,
      format: dataset.format,
      location: source.location,
      shards: shards.length,
      shardsChecked: checked,
      samples,
      samplesVerified: verified,
      bytes,
      failures,
      seconds: Math.round((performance.now() - started) / 10) / 100,
    };
    log.info({ event: 'verify.done', ok: summary.ok, failures: failures.length, seconds: summary.seconds }, summary.ok ? 'dataset verified' : 'dataset has bad shards');
    if (config.json) printJson(summary);
    else process.stdout.write(formatSummary(summary));
    const first = failures[0];
    if (first !== undefined) {
      const others = failures.length > 1 ? ` (and ${plural(failures.length - 1, 'more bad shard')})` : '';
      process.stderr.write(`shardline: verify failed: ${first.problem}${others}\n`);
    }
    return summary;
  } finally {
    await source.close();
    if (scratch !== '') await rm(scratch, { recursive: true, force: true });
  }
}

function shardFile(dataset: DatasetIndex, s: number): string {
  return dataset.format === 'mds' ? mdsStoredFile(dataset.index.shards[s]!).basename : dataset.index.shards[s]!.raw_data.basename;
}

// Errors of the store (missing file, wrong size) name the key only: put the shard in front.
function inShard(label: string, error: unknown): unknown {
  if (!(error instanceof ShardlineError) || error.message.startsWith(label)) return error;
  return new FormatError(`${label}: ${error.message}`, { cause: error });
}

async function fetchIn(label: string, source: ShardSource, key: string, bytes: number, scratch: string): Promise<Uint8Array> {
  try {
    return await fetchDatasetFile(source, key, bytes, scratch);
  } catch (error) {
    throw inShard(label, error);
  }
}

// Progress is reported in steps, not per sample.
const PROGRESS_STEP = 256;

function mdsShardCheck(source: ShardSource, index: MDSIndex, scratch: string): ShardCheck {
  return async (s, onSamples) => {
    const info = index.shards[s]!;
    const file = mdsStoredFile(info);
    const label = `shard ${s} (${JSON.stringify(info.rawData.basename)})`;
    const stored = await fetchIn(label, source, file.basename, file.bytes, scratch);
    // Stored size and every listed hash, decompression, the raw file's size and hashes, the layout.
    const shard = await loadMDSShard(info, stored, { verifyHashes: true, label });
    let pending = 0;
    for (let i = 0; i < shard.length; i++) {
      shard.get(i);
      if (++pending === PROGRESS_STEP) {
        onSamples(pending);
        pending = 0;
      }
    }
    onSamples(pending);
    return file.bytes;
  };
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function webDatasetShardCheck(source: ShardSource, index: WebDatasetDatasetIndex, scratch: string): ShardCheck {
  return async (s, onSamples) => {
    const entry = index.shards[s]!;
    const label = `shard ${s} (${JSON.stringify(entry.raw_data.basename)})`;
    const tar = await fetchIn(label, source, entry.raw_data.basename, entry.raw_data.bytes, scratch);
    const digest = sha256(tar);
    if (digest !== entry.raw_data.hashes.sha256) throw new FormatError(`${label}: sha256 is ${digest}, index.json says ${entry.raw_data.hashes.sha256}`);
    const indexFile = entry.index_data.basename;
    const indexBytes = await fetchIn(label, source, indexFile, entry.index_data.bytes, scratch);
    const indexDigest = sha256(indexBytes);
    if (indexDigest !== entry.index_data.hashes.sha256) {
      throw new FormatError(`${label}: its index ${JSON.stringify(indexFile)} has sha256 ${indexDigest}, index.json says ${entry.index_data.hashes.sha256}`);
    }
    try {
      let json: unknown;
      try {
        json = JSON.parse(Buffer.from(indexBytes).toString('utf8'));
      } catch (cause) {
        throw new FormatError(`${indexFile}: not valid JSON (${(cause as Error).message})`, { cause });
      }
      const shardIndex = parseWebDatasetShardIndex(json, indexFile);
      checkShardIndex(entry, shardIndex);
      const reader = await WebDatasetShardReader.open(shardIndex, async (offset, length) => tar.subarray(offset, offset + length));
      for (let i = 0; i < reader.length; i++) {
        await reader.get(i);
        onSamples(1);
      }
    } catch (error) {
      throw inShard(label, error);
    }
    return entry.raw_data.bytes + entry.index_data.bytes;
  };
}

function formatSummary(s: VerifySummary): string {
  const what = `${s.location} (${s.format}, ${plural(s.shards, 'shard')}, ${plural(s.samples, 'sample')}, ${formatBytes(s.bytes)} verified in ${s.seconds} s)`;
  if (s.ok) {
    const checks = s.format === 'mds' ? 'every size and listed hash matches and every sample decodes' : 'every size and sha256 matches and every sample reads';
    return `OK: ${what}: ${checks}.\n`;
  }
  const stopped = s.shardsChecked < s.shards ? `; stopped after ${s.shardsChecked} shards (--fail-fast)` : '';
  return [`FAILED: ${what}: ${plural(s.failures.length, 'bad shard')}${stopped}`, ...s.failures.map((f) => `  ${f.problem}`), ''].join('\n');
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
