/**
 * `shardline write <input> <output>`: converts files, an ImageFolder tree, JSONL or `.npy` arrays
 * (inputs.ts) to an MDS dataset with MDSWriter, in a local directory or under an S3 prefix. For S3
 * the dataset is written to a temp folder first, then uploaded shard by shard with index.json
 * last (s3-upload.ts). Every error about the data names the input file and the sample (file,
 * line or row).
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ArgumentError, FormatError, MDSWriter, mdsStoredFile } from '@shardline/core';
import type { WriteConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { type InputKind, openInput } from './inputs.ts';
import { formatBytes, printJson, progressBar } from './output.ts';
import { S3DatasetUploader } from './s3-upload.ts';

/** What `write` did (the `--json` output). */
export interface WriteSummary {
  readonly input: string;
  readonly from: InputKind;
  /** The dataset: a directory, or `s3://bucket/prefix/`. */
  readonly output: string;
  readonly samples: number;
  readonly shards: number;
  /** Bytes of the shard files as stored. */
  readonly bytes: number;
  /** Bytes of the shards uncompressed. */
  readonly rawBytes: number;
  /** Column name → MDS encoding. */
  readonly columns: Readonly<Record<string, string>>;
  readonly compression: string | null;
  readonly hashes: readonly string[];
  readonly sizeLimit: number | null;
  /** Facts about the input (e.g. ImageFolder's classes). */
  readonly details: Readonly<Record<string, unknown>>;
  readonly seconds: number;
}

/**
 * Runs `write` and prints the summary on stdout.
 * @throws ArgumentError naming `<input>`, `<output>` or `--columns`; FormatError naming the input
 *   file and sample for data that does not fit; StoreError naming the key when an upload fails.
 */
export async function runWrite(config: WriteConfig, log: Logger): Promise<WriteSummary> {
  const started = performance.now();
  let uploader: S3DatasetUploader | undefined;
  let scratch: string | undefined;
  try {
    // The output first: a refusal there should not wait for a large input to be listed.
    if (config.output.type === 'local') {
      await checkOutputDirectory(config.output.path, config.overwrite);
    } else {
      uploader = new S3DatasetUploader(config.output, config.s3, { log });
      if (!config.overwrite && (await uploader.hasDataset())) {
        throw new ArgumentError('<output>', `${config.output.url} already holds a dataset (index.json); pass --overwrite to replace it`);
      }
    }
    const input = await openInput(config.input, config.from, { columns: config.columns, log });
    log.info({ event: 'write.start', input: input.path, from: input.kind, columns: input.columns, output: describe(config) }, 'writing');
    // For S3: a local copy first, uploaded once complete.
    const out = config.output.type === 'local' ? config.output.path : (scratch = await mkdtemp(path.join(tmpdir(), 'shardline-write-')));

    const writer = new MDSWriter({
      out,
      columns: input.columns,
      compression: config.compression,
      hashes: config.hashes,
      sizeLimit: config.sizeLimit,
      existOk: true,
    });
    const unit = input.progress.unit;
    const bar = progressBar(
      config.progress,
      unit === 'samples' ? 'write |{bar}| {percentage}% {value}/{total} samples | eta {eta_formatted}' : 'write |{bar}| {percentage}% | {samples} samples | eta {eta_formatted}',
    );
    bar.start(input.progress.total, { samples: 0 });
    let samples = 0;
    try {
      for await (const { sample, where, done } of input.samples()) {
        try {
          await writer.write(sample);
        } catch (error) {
          if (!(error instanceof ArgumentError)) throw error;
          const hint = input.columnsInferred ? ' (the columns were inferred from the first line; pass --columns to set them)' : '';
          throw new FormatError(`${input.path}: ${where}: ${error.message}${hint}`, { cause: error });
        }
        samples++;
        bar.update(done, { samples });
      }
    } finally {
      bar.stop();
    }
    const index = await writer.finish();
    const files = index.shards.map((s) => mdsStoredFile(s).basename);
    log.info({ event: 'write.written', samples, shards: index.shards.length, directory: out }, 'shards written');

    if (uploader !== undefined) {
      const upload = progressBar(config.progress, 'upload |{bar}| {percentage}% {value}/{total} files | {size}');
      upload.start(files.length + 1, { size: formatBytes(0) });
      try {
        await uploader.uploadDataset(out, files, (bytes, done) => upload.update(done, { size: formatBytes(bytes) }));
      } finally {
        upload.stop();
      }
      log.info({ event: 'write.uploaded', location: uploader.location, files: files.length + 1 }, 'dataset uploaded');
    }

    const summary: WriteSummary = {
      input: input.path,
      from: input.kind,
      output: describe(config),
      samples,
      shards: index.shards.length,
      bytes: index.shards.reduce((n, s) => n + mdsStoredFile(s).bytes, 0),
      rawBytes: index.shards.reduce((n, s) => n + s.rawData.bytes, 0),
      columns: Object.fromEntries(writer.columnNames.map((name, k) => [name, writer.columnEncodings[k]!])),
      compression: writer.compression,
      hashes: writer.hashes,
      sizeLimit: writer.sizeLimit,
      details: input.details,
      seconds: Math.round((performance.now() - started) / 10) / 100,
    };
    if (config.json) printJson(summary);
    else process.stdout.write(formatSummary(summary));
    return summary;
  } finally {
    uploader?.close();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  }
}

function describe(config: WriteConfig): string {
  return config.output.type === 'local' ? config.output.path : config.output.url;
}

/** A new or empty directory, or any directory with --overwrite (files of the same name are replaced). */
async function checkOutputDirectory(out: string, overwrite: boolean): Promise<void> {
  const info = await stat(out).catch(() => undefined);
  if (info === undefined) return;
  if (!info.isDirectory()) throw new ArgumentError('<output>', `${out} exists and is not a directory`);
  const entries = await readdir(out);
  if (entries.length > 0 && !overwrite) {
    throw new ArgumentError('<output>', `${out} is not empty (${entries.length} entries); choose a new or empty directory, or pass --overwrite`);
  }
}

function formatSummary(s: WriteSummary): string {
  const raw = s.compression === null ? '' : `, ${formatBytes(s.rawBytes)} uncompressed`;
  const columns = Object.entries(s.columns)
    .map(([name, encoding]) => `${name}: ${encoding}`)
    .join(', ');
  return (
    `Wrote ${s.samples} samples in ${s.shards} shard${s.shards === 1 ? '' : 's'} (${formatBytes(s.bytes)}${raw}) to ${s.output} ` +
    `from ${s.from} ${s.input} in ${s.seconds} s.\nColumns: ${columns}\n`
  );
}
