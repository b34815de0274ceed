#!/usr/bin/env node
/**
 * `shardline`: the command line that fronts every component. `demo` is the main job on the
 * embedded default (what `npm start` runs): a complete local job with no cluster. The data
 * engineer's commands prepare and check datasets: `write` (files, ImageFolder, JSONL, .npy → MDS,
 * local or S3), `inspect`, `verify` and `index` (WebDataset).
 *
 * Exit codes: 0 success; 1 failure (a bad shard, bad data, a store error); 2 wrong or missing
 * flags and arguments (the message names the flag or argument and the value).
 */
import { Command, CommanderError } from 'commander';
import { ArgumentError, ShardlineError } from '@shardline/core';
import {
  ConfigError,
  parseDemoConfig,
  parseIndexConfig,
  parseInspectConfig,
  parseLoaderConfig,
  parseVerifyConfig,
  LOADER_SHUFFLES,
  parseWriteConfig,
  type Terminal,
  WRITE_INPUT_KINDS,
} from './config.ts';
import { runDemo } from './demo/run-demo.ts';
import { runIndex } from './commands/index-webdataset.ts';
import { runInspect } from './commands/inspect.ts';
import { runLoaderCommand } from './commands/loader.ts';
import { runVerify } from './commands/verify.ts';
import { runWrite } from './commands/write.ts';
import { createLogger } from './log.ts';

const LOG_LEVEL_HELP = 'trace, debug, info, warn, error or silent (env SHARDLINE_LOG_LEVEL)';
const S3_HELP = `
S3: datasets may live at s3://bucket/prefix/. Credentials come from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), else the AWS SDK's default chain; the region from
--region, AWS_REGION or us-east-1; an S3-compatible endpoint (MinIO…) from --endpoint or
AWS_ENDPOINT_URL, with path-style addressing.`;

const WRITE_HELP = `
Inputs (--from):
  files        every file under a directory, recursively, sorted by path: columns name (str),
               data (bytes)
  imagefolder  root/<class>/<image>: columns label (int; sorted class names, as torchvision's
               ImageFolder), image (jpeg, or png when every image is one), class (str)
  jsonl        one JSON object per line; columns from --columns, or inferred from the first line:
               integer → int64, float → float64, string → str, anything else → json
  npy          a .npy file, or a directory of them (one column per file, named after it): row i of
               every array is sample i; rows are ndarray:<dtype>:<shape> (scalars for 1-D arrays)
${S3_HELP}

Examples:
  $ shardline write ./photos data/photos --from imagefolder --compression zstd
  $ shardline write events.jsonl data/events --columns id:int64,text:str,meta:json --size-limit 32mb
  $ shardline write ./arrays s3://datasets/arrays/ --endpoint http://minio:9000 --hashes sha256,xxh64
`;

const INSPECT_HELP = `${S3_HELP}

Examples:
  $ shardline inspect data/photos
  $ shardline inspect s3://datasets/arrays/ --json --shards
`;

const VERIFY_HELP = `${S3_HELP}

Examples:
  $ shardline verify data/photos
  $ shardline verify s3://datasets/arrays/ --fail-fast --json
`;

const LOADER_HELP = `
Every flag can come from the environment instead (flags win): SHARDLINE_JOB, SHARDLINE_NAMESPACE,
SHARDLINE_RANK, SHARDLINE_WORLD_SIZE, SHARDLINE_DATASET, SHARDLINE_NATS_URL (or NATS_URL),
SHARDLINE_NATS_CREDS, SHARDLINE_CACHE_DIR, SHARDLINE_CACHE_BUDGET, SHARDLINE_BATCH_SIZE,
SHARDLINE_EPOCHS, SHARDLINE_SEED, SHARDLINE_SHUFFLE, SHARDLINE_METRICS_PORT, SHARDLINE_WORKERS,
SHARDLINE_FIRST_EPOCH, SHARDLINE_FIRST_STEP, SHARDLINE_SHM_DIR, SHARDLINE_HOST_ID, SHARDLINE_MAX_HELD.
A trainer on the same node (same --host-id, the shared-memory folder mounted in both) gets its
batches through shared memory; elsewhere, or with --shm-dir off, over NATS.
SIGTERM or SIGINT stops the loader: it stops preparing batches, gives the trainer a few seconds to
ack what was sent, closes its cache and NATS connection and exits 0.
${S3_HELP}

Examples:
  $ shardline loader --job mnist --rank 0 --world-size 2 --dataset s3://datasets/mnist/ \\
      --nats-url nats://nats:4222 --cache-dir /cache --cache-budget 8gb --batch-size 64 --epochs 3
`;

const INDEX_HELP = `
Examples:
  $ shardline index data/laion-shards
  $ shardline index data/laion-shards --concurrency 2 --json
`;

function terminal(): Terminal {
  return { stderrIsTTY: process.stderr.isTTY === true };
}

/** Usage errors of the dataset commands exit with 2, like ConfigError (help and --version stay 0). */
function usageExit(err: CommanderError): never {
  throw err.exitCode === 0 ? err : new CommanderError(2, err.code, err.message);
}

/** The flags every dataset command on S3 takes. */
function withS3Options(command: Command): Command {
  return command
    .option('--endpoint <url>', 'S3-compatible endpoint, e.g. http://minio:9000 (env AWS_ENDPOINT_URL)')
    .option('--region <region>', 'S3 region (env AWS_REGION; default us-east-1)');
}

export function buildProgram(): Command {
  const program = new Command('shardline')
    .description('Distributed data loading for ML training: exactly once per epoch, deterministic from a seed.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('demo', { isDefault: true })
    .description(
      'Run a complete local job on a generated dataset: a multi-worker DataLoader over every epoch ' +
        '(with an exactly-once check), the load-balanced epoch plan of simulated ranks, and the data plane: ' +
        'the dataset as MDS shards, one loader and one trainer per rank over a local nats-server, each rank checked against its plan.',
    )
    .option('--samples <n>', 'samples in the generated dataset (default 20000)')
    .option('--batch-size <n>', 'samples per batch (default 64)')
    .option('--workers <n>', 'DataLoader worker threads, 0 = in-process (default 2)')
    .option('--epochs <n>', 'epochs to run (default 2)')
    .option('--seed <n>', 'seed of every random choice (default 0)')
    .option('--ranks <n>', 'simulated data-parallel ranks for the epoch plan (default 4)')
    .option('--decode-rounds <n>', 'CPU work per sample, like image decoding (default 2)')
    .option('--no-shuffle', 'keep dataset order')
    .option('--nats-server <path>', 'nats-server binary for the data plane (env SHARDLINE_NATS_SERVER; npm start installs and sets it)')
    .option('--nats-url <url>', 'use this running NATS server for the data plane instead of starting one')
    .option('--no-data-plane', 'run only the DataLoader and the plan, not the loaders and trainers over NATS')
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print the summary as one JSON object on stdout')
    .option('--log-level <level>', 'trace, debug, info, warn, error or silent (env SHARDLINE_LOG_LEVEL)')
    .action(async (flags: Record<string, unknown>) => {
      const config = parseDemoConfig(flags, process.env);
      const log = createLogger('demo', config.logLevel);
      const summary = await runDemo(config, log);
      if (!summary.ok) process.exitCode = 1;
    });

  withS3Options(
    program
      .command('write')
      .argument('<input>', 'a directory of files, an ImageFolder tree, a .jsonl file, a .npy file or a directory of them')
      .argument('<output>', 'a local directory (new or empty) or s3://bucket/prefix/')
      .description('Convert files, an ImageFolder tree, JSONL or .npy arrays to an MDS dataset (Mosaic streaming compatible).')
      .option('--from <kind>', `input kind: ${WRITE_INPUT_KINDS.join(', ')} (default auto: detected from the input)`)
      .option('--columns <spec>', 'JSONL columns as name:encoding,... (default: inferred from the first line)')
      .option('--size-limit <size>', 'start a new shard past this size: bytes or 64mb, 512kb… (default 64mb; 0: one shard)')
      .option('--compression <name>', 'zstd, zstd:<1-22>, gz, gz:<0-9>, br, br:<0-11> or none (default none)')
      .option('--hashes <list>', 'hashes of each shard file, e.g. sha256,xxh64, or none (default xxh64)')
      .option('--overwrite', 'write into a non-empty directory, or over an existing dataset on S3')
      .option('--no-progress', 'no progress bar (none either when stderr is not a terminal)')
      .option('--json', 'print the summary as one JSON object on stdout')
      .option('--log-level <level>', LOG_LEVEL_HELP)
      .addHelpText('after', WRITE_HELP),
  )
    .exitOverride(usageExit)
    .action(async (input: unknown, output: unknown, flags: Record<string, unknown>) => {
      const config = parseWriteConfig({ input, output }, flags, process.env, terminal());
      await runWrite(config, createLogger('write', config.logLevel));
    });

  withS3Options(
    program
      .command('inspect')
      .argument('<dataset>', 'a dataset directory or s3://bucket/prefix/ (MDS, or WebDataset with a shardline index)')
      .description("Show a dataset's shards, samples, bytes (stored and raw), columns, compression and hashes from its index.json.")
      .option('--shards', 'list every shard')
      .option('--json', 'print one JSON object on stdout: {"format", "shards", "samples", "bytes", "columns", ...}')
      .option('--log-level <level>', LOG_LEVEL_HELP)
      .addHelpText('after', INSPECT_HELP),
  )
    .exitOverride(usageExit)
    .action(async (location: unknown, flags: Record<string, unknown>) => {
      const config = parseInspectConfig({ location }, flags, process.env);
      await runInspect(config, createLogger('inspect', config.logLevel));
    });

  withS3Options(
    program
      .command('verify')
      .argument('<dataset>', 'a dataset directory or s3://bucket/prefix/ (MDS, or WebDataset with a shardline index)')
      .description(
        'Fetch every shard and check it against index.json: size, every listed hash, and every sample decoded. ' +
          'Exits 1 naming the first bad shard, after checking all of them (or at the first with --fail-fast).',
      )
      .option('--fail-fast', 'stop at the first bad shard')
      .option('--concurrency <n>', 'shards fetched and checked at once (default 4)')
      .option('--no-progress', 'no progress bar (none either when stderr is not a terminal)')
      .option('--json', 'print the summary as one JSON object on stdout')
      .option('--log-level <level>', LOG_LEVEL_HELP)
      .addHelpText('after', VERIFY_HELP),
  )
    .exitOverride(usageExit)
    .action(async (location: unknown, flags: Record<string, unknown>) => {
      const config = parseVerifyConfig({ location }, flags, process.env, terminal());
      const summary = await runVerify(config, createLogger('verify', config.logLevel));
      if (!summary.ok) process.exitCode = 1;
    });

  withS3Options(
    program
      .command('loader')
      .description(
        "Run one rank's loader (standalone, no coordinator): its epoch plan from the seed, shards through " +
          'a disk cache, batches collated and delivered to the trainer over NATS; /metrics, /healthz, /readyz.',
      )
      .option('--job <name>', 'the job name, a DNS label')
      .option('--namespace <name>', 'the job namespace, a DNS label (default "default")')
      .option('--rank <n>', 'this loader\'s rank, below --world-size')
      .option('--world-size <n>', 'the number of ranks')
      .option('--dataset <location>', 'the dataset: a local directory or s3://bucket/prefix/')
      .option('--nats-url <urls>', 'NATS server URLs, comma-separated (default nats://127.0.0.1:4222)')
      .option('--nats-creds <file>', 'a NATS credentials (.creds) file')
      .option('--cache-dir <dir>', 'the shard cache folder')
      .option('--cache-budget <size>', 'cache byte budget, e.g. 8gb (default 8gb; at least twice the largest shard)')
      .option('--batch-size <n>', 'samples per batch')
      .option('--epochs <n>', 'epochs to serve (default 1)')
      .option('--seed <n>', 'seed of the epoch plan (default 0)')
      .option('--shuffle <mode>', `${LOADER_SHUFFLES.join(', ')} (default shard-aware)`)
      .option('--metrics-port <port>', 'port of /metrics, /healthz and /readyz (default 9090; 0 picks one)')
      .option('--workers <n>', 'worker threads that decode and build batches, 0 = the main thread (default 2)')
      .option('--first-epoch <n>', 'the epoch to start at (default 0): a replacement loader resumes its rank here')
      .option('--first-step <n>', 'the step of --first-epoch to start at (default 0)')
      .option('--shm-dir <dir>', 'shared-memory segment folder for a trainer on this node, or "off" (default /dev/shm)')
      .option('--max-held <size>', 'bytes of batches held until acked, e.g. 128mb (default 48mb; keep below the NATS server\'s max_pending)')
      .option('--host-id <id>', 'this node, for the shared-memory handshake (default the hostname; in Kubernetes the node name)')
      .option('--log-level <level>', LOG_LEVEL_HELP)
      .addHelpText('after', LOADER_HELP),
  )
    .exitOverride(usageExit)
    .action(async (flags: Record<string, unknown>) => {
      const config = parseLoaderConfig(flags, process.env);
      const log = createLogger('loader', config.logLevel);
      const controller = new AbortController();
      const stop = (signal: NodeJS.Signals) => {
        log.info({ event: 'loader.signal', signal }, `${signal}: stopping`);
        controller.abort();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      try {
        await runLoaderCommand(config, log, controller.signal);
      } finally {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
      }
    });

  program
    .command('index')
    .argument('<directory>', 'a local directory of WebDataset .tar shards')
    .description('Index a directory of WebDataset .tar shards: a <shard>.idx.json per shard and the dataset index.json.')
    .option('--concurrency <n>', 'shards scanned at once (default 1)')
    .option('--no-progress', 'no progress bar (none either when stderr is not a terminal)')
    .option('--json', 'print the summary as one JSON object on stdout')
    .option('--log-level <level>', LOG_LEVEL_HELP)
    .addHelpText('after', INDEX_HELP)
    .exitOverride(usageExit)
    .action(async (directory: unknown, flags: Record<string, unknown>) => {
      const config = parseIndexConfig({ directory }, flags, process.env, terminal());
      await runIndex(config, createLogger('index', config.logLevel));
    });

  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed its message (or the help) already.
      process.exitCode = err.exitCode;
      return;
    }
    // An ArgumentError that names a flag or an argument (`--columns`, `<output>`) is a usage error too.
    if (err instanceof ConfigError || (err instanceof ArgumentError && /^(--|<)/.test(err.argument))) {
      process.stderr.write(`shardline: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    if (err instanceof ShardlineError) {
      // Our errors say what is wrong and where; a stack trace would only bury it.
      process.stderr.write(`shardline: [${err.code}] ${err.message}\n`);
      process.exitCode = 1;
      return;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`shardline: ${e.code ? `[${e.code}] ` : ''}${e.stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}

if (import.meta.main) await main(process.argv);
