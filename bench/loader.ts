/**
 * Benchmark `loader`: the whole loader pipeline — runLoader over a local MDS dataset (shard cache,
 * read, decode, a CIFAR-style augmentation as the transform, collate, encode) delivering to a
 * BatchReceiver trainer in a child process (as in production: the trainer is not the loader's
 * process) over one nats-server on loopback (test/infra) — with the decode stage on 0 and on 2
 * worker threads.
 *
 * Dataset: N samples of a 64×64×3 uint8 image (an `ndarray:uint8:64,64,3` column, 12 KiB) and a
 * label, in 1 MiB shards; transform: seeded crop to 56×56 and flip, 2 box-blur passes, normalize
 * to float32 [3, 56, 56] (bench/_loader-augment.ts).
 *
 * - Throughput: one loader per setting serves 1 warm-up epoch (thread start, JIT) then timed
 *   epochs of batches of 32; an epoch is timed by the trainer, from the end marker of the
 *   previous epoch to its own. Settings alternate (w0, w2, then w2, w0…) and `workers_speedup`
 *   is the median of the per-round ratios w2 / w0. On a 2-core machine the loader's main thread
 *   (sending), the trainer and nats-server share the cores with the workers: expect well under 2×.
 * - A cache of one shard-aware window: the same 2-worker setting with a 4 MiB cache budget (the
 *   plan's window of 4 shards of 1 MiB, twice the largest shard: the least the cache accepts
 *   but for one) instead of 256 MiB, in the same rounds. `window_cache_speed_ratio` is its rate
 *   over the 256 MiB one's (median of the rounds; ≈ 1 when the cache follows the plan), and
 *   `window_cache_fetch_ratio` the bytes its cache fetched over the bytes of the epochs it served
 *   (≈ 1: each shard about once per epoch; a cache that loses track of the window refetches
 *   every shard for every batch).
 * - Memory: one loader with the defaults (2 workers) serves one epoch of batches of 2 (thousands
 *   of batches) and the loader process's RSS (its workers included) is sampled at every batch
 *   the trainer acks. `rss_growth_bytes` is the median RSS over the acks around 90 % of the epoch
 *   minus the median around 10 %; `rss_peak_bytes` the largest sample. Goal: growth ≤ 16 MiB,
 *   i.e. memory does not grow with the epoch's length.
 *
 * This file is also the trainer child: `node bench/loader.ts --trainer <url> <job> <epochs>`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MDSWriter, decodeBatch, mix32 } from '@shardline/core';
import { BatchReceiver } from '@shardline/client';
import { LoaderMetrics, LocalDirectorySource, runLoader, type LoaderOptions } from '@shardline/loader-node';
import { connect, type NatsConnection } from 'nats';
import type { BenchOptions } from './run.ts';
import type { AugmentArgs } from './_loader-augment.ts';
import { startNats } from '../test/infra/nats.ts';

const NAMESPACE = 'bench';
const SIDE = 64;
const AUGMENT: AugmentArgs = { crop: 56, blurPasses: 2 };
const MiB = 1024 * 1024;
/** One shard-aware window of the 1 MiB shards (4, the plan's default shardWindow). */
const WINDOW_CACHE_BYTES = 4 * MiB;

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};

/** Writes `samples` images with labels; pixels are a hash of (sample, position), so no two samples are alike. */
async function writeDataset(dir: string, samples: number): Promise<void> {
  const writer = new MDSWriter({ out: dir, columns: { image: `ndarray:uint8:${SIDE},${SIDE},3`, label: 'int64' }, sizeLimit: MiB, hashes: ['xxh64'] });
  const data = new Uint8Array(SIDE * SIDE * 3);
  for (let i = 0; i < samples; i++) {
    let h = mix32(i);
    for (let k = 0; k < data.length; k += 4) {
      h = mix32(h + k);
      data[k] = h;
      data[k + 1] = h >>> 8;
      data[k + 2] = h >>> 16;
      data[k + 3] = h >>> 24;
    }
    await writer.write({ image: { dtype: 'uint8', shape: [SIDE, SIDE, 3], data }, label: BigInt(i % 10) });
  }
  await writer.finish();
}

interface Setup {
  readonly url: string;
  readonly loaderNc: NatsConnection;
}

interface Dataset {
  readonly dir: string;
  readonly samples: number;
}

let runs = 0;

/**
 * Runs one loader for `epochs` epochs against a trainer child; `onAck` runs at every batch the
 * trainer acks. Returns the trainer's time for each epoch after the first, in seconds, and the
 * loader's mean batch build time.
 */
async function serve(
  setup: Setup,
  dataset: Dataset,
  options: Partial<LoaderOptions> & { batchSize: number; epochs: number },
  onAck: () => void = () => {},
): Promise<{ epochSeconds: number[]; buildSeconds: number; fetchedBytes: number }> {
  const job = `bench-${runs++}`;
  const cacheDir = mkdtempSync(path.join(tmpdir(), 'bench-loader-cache-'));
  const source = new LocalDirectorySource(dataset.dir);
  const metrics = new LoaderMetrics();
  const trainer = spawn(process.execPath, [fileURLToPath(import.meta.url), '--trainer', setup.url, job, String(options.epochs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => trainer.once('exit', resolve));
  try {
    const lines = createInterface({ input: trainer.stdout! });
    const ends: number[] = [];
    const read = (async () => {
      for await (const line of lines) ends.push((JSON.parse(line) as { at: number }).at);
    })();
    await runLoader(
      {
        namespace: NAMESPACE,
        job,
        rank: 0,
        worldSize: 1,
        seed: 1,
        shuffle: 'shard-aware',
        cacheDir,
        cacheBudgetBytes: 256 * MiB,
        transform: { module: new URL('./_loader-augment.ts', import.meta.url), export: 'augment', args: AUGMENT },
        ...options,
      },
      { source, nc: setup.loaderNc, metrics, onEvent: (e) => (e.type === 'delivery' && e.event.type === 'batch-acked' ? onAck() : undefined) },
    );
    await read;
    const code = await exited;
    if (code !== 0 || ends.length !== options.epochs) throw new Error(`${job}: the trainer exited with ${code} after ${ends.length} of ${options.epochs} epochs`);
    const text = await metrics.text();
    const value = (name: string): number => Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1]);
    return {
      epochSeconds: ends.slice(1).map((t, i) => (t - ends[i]!) / 1000),
      buildSeconds: value('shardline_batch_build_seconds_sum') / value('shardline_batch_build_seconds_count'),
      fetchedBytes: value('shardline_cache_bytes_in_total'),
    };
  } finally {
    trainer.kill();
    await source.close();
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

/** The trainer child: reads `epochs` epochs, parsing every batch, and prints the time of each end marker. */
async function trainerChild(url: string, job: string, epochs: number): Promise<void> {
  const nc = await connect({ servers: url });
  const receiver = await BatchReceiver.connect(nc, { namespace: NAMESPACE, job, rank: 0, window: 4, maxBatchBytes: 64 * MiB, shm: false, helloRetryMs: 50 });
  for (let ended = 0; ended < epochs; ) {
    const item = await receiver.read();
    if (item.type === 'end-of-epoch') {
      ended++;
      process.stdout.write(`${JSON.stringify({ epoch: item.epoch, at: performance.timeOrigin + performance.now() })}\n`);
    } else if (decodeBatch(item.bytes).metadata.sampleIds.length === 0) {
      throw new Error('an empty batch');
    }
  }
  await receiver.close();
  await nc.close();
}

export async function run(o: BenchOptions): Promise<Record<string, number>> {
  const rounds = o.quick ? 1 : 3;
  const batchSize = 32;
  const longBatch = 2;
  const root = mkdtempSync(path.join(tmpdir(), 'bench-loader-'));
  const server = await startNats({ jetstream: false, allowExternal: false });
  const loaderNc = await connect({ servers: server.url });
  try {
    const fast: Dataset = { dir: path.join(root, 'fast'), samples: o.quick ? 2048 : 4096 };
    const long: Dataset = o.quick ? fast : { dir: path.join(root, 'long'), samples: 8192 };
    const t = performance.now();
    for (const dataset of new Set([fast, long])) await writeDataset(dataset.dir, dataset.samples);
    o.log(`datasets of ${SIDE}×${SIDE}×3 uint8 images in 1 MiB shards written in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const setup: Setup = { url: server.url, loaderNc };

    const rates: Record<0 | 2, number[]> = { 0: [], 2: [] };
    const windowRates: number[] = [];
    const windowFetch: number[] = [];
    const datasetBytes = readdirSync(fast.dir)
      .filter((f) => f.endsWith('.mds'))
      .reduce((n, f) => n + statSync(path.join(fast.dir, f)).size, 0);
    const builds: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const order: Array<0 | 2> = round % 2 === 0 ? [0, 2] : [2, 0];
      for (const workers of order) {
        const { epochSeconds, buildSeconds } = await serve(setup, fast, { workers, batchSize, epochs: 2 });
        rates[workers].push(fast.samples / epochSeconds[0]!);
        if (workers === 2) builds.push(buildSeconds);
      }
      const small = await serve(setup, fast, { workers: 2, batchSize, epochs: 2, cacheBudgetBytes: WINDOW_CACHE_BYTES });
      windowRates.push(fast.samples / small.epochSeconds[0]! / rates[2].at(-1)!);
      windowFetch.push(small.fetchedBytes / (2 * datasetBytes));
      o.log(
        `round ${round}: w0 ${rates[0].at(-1)!.toFixed(0)}, w2 ${rates[2].at(-1)!.toFixed(0)} samples/s (${fast.samples} samples, batches of ${batchSize}); ` +
          `w2 with a ${WINDOW_CACHE_BYTES / MiB} MiB cache ${(fast.samples / small.epochSeconds[0]!).toFixed(0)} samples/s, fetched ${windowFetch.at(-1)!.toFixed(2)} × the epochs' bytes`,
      );
    }
    const w0 = median(rates[0]);
    const w2 = median(rates[2]);
    // Measured in the workers, one batch at a time (on the main thread, builds interleave).
    const msPerSample = (median(builds) * 1000) / batchSize;
    o.log(`medians: w0 ${w0.toFixed(0)}, w2 ${w2.toFixed(0)} samples/s; a worker builds a batch in ${msPerSample.toFixed(3)} ms per sample`);

    // Memory over one long epoch, with the default workers.
    const batches = Math.ceil(long.samples / longBatch);
    const rss: number[] = [];
    let peak = 0;
    const started = performance.now();
    await serve(setup, long, { batchSize: longBatch, epochs: 1 }, () => {
      const now = process.memoryUsage.rss();
      rss.push(now);
      peak = Math.max(peak, now);
    });
    if (rss.length !== batches) throw new Error(`long epoch: ${rss.length} acks, expected ${batches}`);
    const around = (fraction: number): number => {
      const mid = Math.floor(fraction * batches);
      const half = Math.max(1, Math.floor(batches / 100));
      return median(rss.slice(Math.max(0, mid - half), mid + half + 1));
    };
    const [early, late] = [around(0.1), around(0.9)];
    o.log(
      `long epoch: ${batches} batches of ${longBatch} in ${((performance.now() - started) / 1000).toFixed(1)} s; loader RSS ${(early / MiB).toFixed(1)} MiB at 10 %, ` +
        `${(late / MiB).toFixed(1)} MiB at 90 %, peak ${(peak / MiB).toFixed(1)} MiB`,
    );
    return {
      samples_per_sec_w0: Math.round(w0),
      samples_per_sec_w2: Math.round(w2),
      workers_speedup: Math.round(median(rates[2].map((r, k) => r / rates[0][k]!)) * 100) / 100,
      build_ms_per_sample_w2: Math.round(msPerSample * 1000) / 1000,
      window_cache_speed_ratio: Math.round(median(windowRates) * 100) / 100,
      window_cache_fetch_ratio: Math.round(median(windowFetch) * 100) / 100,
      long_epoch_batches: batches,
      rss_growth_bytes: Math.round(late - early),
      rss_peak_bytes: peak,
    };
  } finally {
    await loaderNc.close();
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--trainer') {
  const [url, job, epochs] = process.argv.slice(3);
  await trainerChild(url!, job!, Number(epochs));
}
