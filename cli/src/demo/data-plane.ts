/**
 * The data plane of the local job: the generated dataset written as MDS shards, one loader per
 * rank (`runLoader`: disk cache, worker threads, credits over NATS, shared memory on this host)
 * and one trainer per rank (`batches()` of @shardline/client), on a local nats-server. Every
 * batch a trainer gets is checked against its rank's plan (step, sample ids, the id column), and
 * every epoch against the dataset: each sample delivered once, but the padding the plan adds so
 * that every rank has the same number of batches.
 */
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { connect, type NatsConnection } from 'nats';
import { EpochPlan, MDSWriter } from '@shardline/core';
import { batches, type TrainerStream } from '@shardline/client';
import { LoaderMetrics, LocalDirectorySource, loaderDefaults, runLoader, type LoaderOptions } from '@shardline/loader-node';
import { ConfigError, type DemoConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { logEvent } from '../commands/loader.ts';
import { startLocalNats } from './local-nats.ts';
import { SyntheticDataset } from './synthetic-dataset.ts';

const NAMESPACE = 'demo';
const JOB = 'local';
const SHARD_BYTES = 4 * 1024 * 1024;
/** Each loader's disk cache: two shard-aware windows of 4 shards. */
const CACHE_SHARDS = 8;

export interface PlaneEpochReport {
  epoch: number;
  batches: number;
  samples: number;
  /** Deliveries of a sample beyond the once (or, for the few its padding repeats, the times) the plan says. */
  duplicates: number;
  missing: number;
  /** Batches whose step, sample ids or id column differ from the rank's plan. */
  offPlan: number;
}

export interface DataPlaneReport {
  ranks: number;
  shards: number;
  epochs: PlaneEpochReport[];
  batchesPlanned: number;
  batchesDelivered: number;
  /** Loaders that ended after their trainer acked every epoch. */
  loadersFinished: number;
  seconds: number;
  bytes: number;
  megabytesPerSec: number;
  /** Batches that came through shared memory (the trainers share the loaders' host). */
  shmBatches: number;
  /** Bytes of the dataset's shard files, and what the loaders' caches fetched in all. */
  datasetBytes: number;
  cacheBytesFetched: number;
  /** Share of the time the trainers waited for a batch (0: never starved). */
  waitShare: number;
  ok: boolean;
}

/**
 * Runs `config.epochs` epochs of the generated dataset through `config.ranks` loaders and
 * trainers; `natsServer` is the nats-server binary to start (or use `natsUrl`'s server).
 */
export async function runDataPlane(config: DemoConfig, nats: { natsServer?: string; natsUrl?: string }, log: Logger): Promise<DataPlaneReport> {
  if (nats.natsUrl === undefined) {
    try {
      accessSync(nats.natsServer!, constants.X_OK);
    } catch {
      throw new ConfigError(`--nats-server (or SHARDLINE_NATS_SERVER): ${nats.natsServer} is not an executable file; \`npm start\` installs nats-server, or pass --nats-url`);
    }
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'shardline-demo-'));
  const server = nats.natsUrl === undefined ? await startLocalNats(nats.natsServer!) : undefined;
  const url = nats.natsUrl ?? server!.url;
  const connections: NatsConnection[] = [];
  const streams: TrainerStream[] = [];
  const stop = new AbortController();
  try {
    const { shardSizes, datasetBytes } = await writeDataset(path.join(dir, 'dataset'), config);
    log.info({ event: 'demo.plane.start', nats: url, ranks: config.ranks, shards: shardSizes.length, dir }, 'data plane: loaders and trainers starting');
    const options = (rank: number): LoaderOptions => ({
      namespace: NAMESPACE,
      job: JOB,
      rank,
      worldSize: config.ranks,
      batchSize: config.batchSize,
      epochs: config.epochs,
      seed: config.seed,
      shuffle: config.shuffle ? 'shard-aware' : 'none',
      cacheDir: path.join(dir, `cache-${rank}`),
      cacheBudgetBytes: CACHE_SHARDS * SHARD_BYTES,
      // A few worker threads in all: every loader runs in this one process.
      workers: Math.min(config.workers, Math.floor(4 / config.ranks)),
    });
    const source = new LocalDirectorySource(path.join(dir, 'dataset'));
    const metrics = Array.from({ length: config.ranks }, (_, rank) => new LoaderMetrics({ labels: { rank: String(rank) } }));
    // Each loader runs until its trainer has acked every epoch (held in an object, so that
    // awaiting the connections does not await the loaders). A loader that fails ends the job:
    // its trainer would otherwise wait for batches that never come.
    let failLoader: (error: unknown) => void = () => {};
    const loaderFailed = new Promise<never>((_, reject) => (failLoader = reject));
    loaderFailed.catch(() => {});
    const loaders = await Promise.all(
      Array.from({ length: config.ranks }, async (_, rank) => {
        const nc = await connect({ servers: url, name: `demo-loader-${rank}` });
        connections.push(nc);
        const rankLog = log.child({ rank });
        const done = runLoader(options(rank), { source, nc, metrics: metrics[rank], signal: stop.signal, onEvent: (event) => logEvent(rankLog, event) });
        done.catch((error: unknown) => failLoader(new Error(`loader ${rank} failed: ${(error as Error).message}`, { cause: error })));
        return { done };
      }),
    );
    const plans = Array.from({ length: config.epochs }, (_, epoch) => {
      const o = { ...loaderDefaults(), ...options(0) };
      return new EpochPlan({ shardSizes, worldSize: config.ranks, seed: o.seed, epoch, shuffle: o.shuffle, dropLast: o.dropLast, batchSize: o.batchSize });
    });
    const total = plans.reduce((n, p) => n + p.numBatches * config.ranks, 0);
    const bar = config.progress
      ? new cliProgress.SingleBar(
          { format: 'data plane |{bar}| {percentage}% {value}/{total} batches | {rate} MB/s | eta {eta_formatted}', stream: process.stderr, hideCursor: true },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    bar?.start(total, 0, { rate: 0 });
    const started = performance.now();
    const counts = plans.map(() => new Uint32Array(config.samples));
    const offPlan = plans.map(() => 0);
    let delivered = 0;
    let bytes = 0;
    let shmBatches = 0;
    let waitMs = 0;
    const trainers = Promise.all(
      Array.from({ length: config.ranks }, async (_, rank) => {
        const stream = batches({ job: JOB, rank, namespace: NAMESPACE, nats: { servers: url, name: `demo-trainer-${rank}` }, epochs: config.epochs });
        streams.push(stream);
        for await (const batch of stream) {
          const expected = plans[batch.epoch]!.batchIds(rank, batch.step);
          const ids = Array.from(batch.tensors.id!.data as BigInt64Array, Number);
          if (!sameIds(batch.sampleIds, expected) || !sameIds(ids, expected)) offPlan[batch.epoch]!++;
          for (const id of batch.sampleIds) counts[batch.epoch]![id]!++;
          bytes += batch.byteLength;
          delivered++;
          bar?.update(delivered, { rate: Math.round(bytes / 1e6 / ((performance.now() - started) / 1000)) });
        }
        const stats = stream.stats();
        shmBatches += stats.receiver?.shmBatches ?? 0;
        waitMs += stats.waitSeconds * 1000;
      }),
    );
    try {
      await Promise.race([trainers, loaderFailed]);
    } finally {
      bar?.stop();
    }
    const seconds = (performance.now() - started) / 1000;
    const summaries = await Promise.all(loaders.map((l) => l.done));
    const epochs = plans.map((plan, epoch): PlaneEpochReport => {
      // What the plan hands out: every sample once, plus the few its padding repeats.
      const planned = new Uint32Array(config.samples);
      for (let rank = 0; rank < config.ranks; rank++) {
        for (let step = 0; step < plan.numBatches; step++) for (const id of plan.batchIds(rank, step)) planned[id]!++;
      }
      const got = counts[epoch]!;
      let samples = 0;
      let missing = 0;
      let duplicates = 0;
      for (let id = 0; id < config.samples; id++) {
        samples += got[id]!;
        if (got[id] === 0) missing++;
        duplicates += Math.max(0, got[id]! - Math.max(1, planned[id]!));
      }
      return { epoch, batches: plan.numBatches * config.ranks, samples, duplicates, missing, offPlan: offPlan[epoch]! };
    });
    const loadersFinished = summaries.filter((s) => !s.aborted && s.epochs === config.epochs).length;
    let fetched = 0;
    for (const m of metrics) fetched += (await m.cacheBytesIn.get()).values[0]?.value ?? 0;
    const ok = epochs.every((e) => e.duplicates === 0 && e.missing === 0 && e.offPlan === 0) && delivered === total && loadersFinished === config.ranks;
    const report: DataPlaneReport = {
      ranks: config.ranks,
      shards: shardSizes.length,
      epochs,
      batchesPlanned: total,
      batchesDelivered: delivered,
      loadersFinished,
      seconds: Math.round(seconds * 1000) / 1000,
      bytes,
      megabytesPerSec: Math.round(bytes / 1e6 / seconds),
      shmBatches,
      datasetBytes,
      cacheBytesFetched: fetched,
      waitShare: Math.round((waitMs / 1000 / (seconds * config.ranks)) * 1000) / 1000,
      ok,
    };
    log.info({ event: 'demo.plane.done', ...report, epochs: undefined }, ok ? 'data plane: every rank got its plan' : 'data plane FAILED its checks');
    return report;
  } finally {
    // After a failure the trainers still wait: close them, then the loaders and the server.
    await Promise.allSettled(streams.map((s) => s.close()));
    stop.abort();
    await Promise.allSettled(connections.map((nc) => nc.drain()));
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes the demo's samples (id, label, 3×32×32 float32 image) as MDS shards; their sample counts and bytes. */
async function writeDataset(out: string, config: DemoConfig): Promise<{ shardSizes: number[]; datasetBytes: number }> {
  const dataset = new SyntheticDataset({ length: config.samples, decodeRounds: 0 });
  const writer = new MDSWriter({ out, columns: { id: 'int64', label: 'int64', image: 'ndarray:float32:3,32,32' }, sizeLimit: SHARD_BYTES, hashes: ['xxh64'] });
  for (let i = 0; i < config.samples; i++) {
    const { image, label, id } = dataset.get(i);
    await writer.write({ id: BigInt(id), label: BigInt(label), image });
  }
  const index = await writer.finish();
  return { shardSizes: index.shards.map((s) => s.samples), datasetBytes: index.shards.reduce((n, s) => n + s.rawData.bytes, 0) };
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
