/**
 * The embedded default job: what `npm start` runs. It proves the core promises on one machine:
 * a multi-threaded DataLoader delivers every sample exactly once per epoch, deterministically
 * from the seed; the load-balanced plan gives every simulated rank the same number of batches
 * with nearly equal cost; and the data plane (data-plane.ts) delivers each rank its plan from a
 * loader to a trainer over NATS and shared memory.
 */
import cliProgress from 'cli-progress';
import { DataLoader, LoadBalancedDistributedSampler, type Tensor } from '@shardline/core';
import type { DemoConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { runDataPlane, type DataPlaneReport } from './data-plane.ts';
import { syntheticSampleBytes } from './synthetic-dataset.ts';

export interface EpochReport {
  epoch: number;
  batches: number;
  samples: number;
  duplicates: number;
  missing: number;
  seconds: number;
  samplesPerSec: number;
  firstBatchMs: number;
  /** Order fingerprint of the epoch: equal seeds give equal fingerprints. */
  fingerprint: string;
}

export interface RankReport {
  rank: number;
  samples: number;
  batches: number;
  cost: number;
}

export interface DemoSummary {
  ok: boolean;
  config: DemoConfig;
  epochs: EpochReport[];
  ranks: RankReport[];
  costSpreadPercent: number;
  /** The loaders and trainers over NATS, or why they did not run. */
  dataPlane: DataPlaneReport | { skipped: string };
}

export async function runDemo(config: DemoConfig, log: Logger): Promise<DemoSummary> {
  log.info({ event: 'demo.start', ...config }, 'local job starting');
  const loader = new DataLoader(
    {
      module: new URL('./synthetic-dataset.ts', import.meta.url).href,
      export: 'createDataset',
      args: { length: config.samples, decodeRounds: config.decodeRounds },
      length: config.samples,
    },
    {
      batchSize: config.batchSize,
      shuffle: config.shuffle,
      numWorkers: config.workers,
      seed: config.seed,
      persistentWorkers: config.workers > 0,
    },
  );

  const epochs: EpochReport[] = [];
  try {
    for (let epoch = 0; epoch < config.epochs; epoch++) {
      epochs.push(await runEpoch(loader, epoch, config, log));
    }
  } finally {
    await loader.close();
  }

  const ranks = planRanks(config);
  const costs = ranks.map((r) => r.cost);
  const mean = costs.reduce((a, b) => a + b, 0) / costs.length;
  const costSpreadPercent = mean > 0 ? ((Math.max(...costs) - Math.min(...costs)) / mean) * 100 : 0;
  const equalBatches = ranks.every((r) => r.batches === ranks[0]!.batches);
  for (const r of ranks) log.info({ event: 'demo.rank', ...r }, 'rank plan');

  let dataPlane: DemoSummary['dataPlane'];
  if (!config.dataPlane) dataPlane = { skipped: '--no-data-plane' };
  else if (config.natsServer === undefined && config.natsUrl === undefined) {
    dataPlane = { skipped: 'no nats-server: `npm start` installs one; or pass --nats-server <path> or --nats-url' };
    log.warn({ event: 'demo.plane.skipped', why: dataPlane.skipped }, 'data plane skipped');
  } else {
    dataPlane = await runDataPlane(config, { natsServer: config.natsServer, natsUrl: config.natsUrl }, log);
  }

  const ok = equalBatches && epochs.every((e) => e.duplicates === 0 && e.missing === 0) && (!('ok' in dataPlane) || dataPlane.ok);
  const summary: DemoSummary = { ok, config, epochs, ranks, costSpreadPercent, dataPlane };
  log.info({ event: 'demo.done', ok, costSpreadPercent }, ok ? 'local job finished' : 'local job FAILED its checks');
  if (config.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else process.stdout.write(formatSummary(summary));
  return summary;
}

async function runEpoch(loader: DataLoader, epoch: number, config: DemoConfig, log: Logger): Promise<EpochReport> {
  const seen = new Uint8Array(config.samples);
  let duplicates = 0;
  let samples = 0;
  let batches = 0;
  let firstBatchMs = 0;
  let fingerprint = 0x811c9dc5;
  const bar = config.progress
    ? new cliProgress.SingleBar(
        {
          format: `epoch ${epoch} |{bar}| {percentage}% {value}/{total} batches | {rate} samples/s | eta {eta_formatted}`,
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(loader.length, 0, { rate: 0 });
  const started = performance.now();
  for await (const batch of loader as AsyncIterable<{ id: Tensor }>) {
    if (batches === 0) firstBatchMs = performance.now() - started;
    for (const raw of batch.id.data) {
      const id = Number(raw);
      if (seen[id]) duplicates++;
      seen[id] = 1;
      fingerprint = Math.imul(fingerprint ^ id, 0x01000193) >>> 0;
      samples++;
    }
    batches++;
    bar?.update(batches, { rate: Math.round(samples / ((performance.now() - started) / 1000)) });
  }
  bar?.stop();
  const seconds = (performance.now() - started) / 1000;
  const missing = seen.reduce((n, s) => n + (s ? 0 : 1), 0);
  const report: EpochReport = {
    epoch,
    batches,
    samples,
    duplicates,
    missing,
    seconds: round(seconds, 3),
    samplesPerSec: Math.round(samples / seconds),
    firstBatchMs: round(firstBatchMs, 1),
    fingerprint: fingerprint.toString(16).padStart(8, '0'),
  };
  log.info({ event: 'demo.epoch', ...report }, 'epoch done');
  return report;
}

function planRanks(config: DemoConfig): RankReport[] {
  const costs = Float64Array.from({ length: config.samples }, (_, i) => syntheticSampleBytes(i));
  const ranks: RankReport[] = [];
  for (let rank = 0; rank < config.ranks; rank++) {
    const sampler = new LoadBalancedDistributedSampler(config.samples, {
      costs,
      numReplicas: config.ranks,
      rank,
      seed: config.seed,
      shuffle: config.shuffle,
    });
    let cost = 0;
    let samples = 0;
    for (const id of sampler) {
      cost += costs[id]!;
      samples++;
    }
    ranks.push({ rank, samples, batches: Math.ceil(samples / config.batchSize), cost });
  }
  return ranks;
}

function formatSummary(s: DemoSummary): string {
  const lines = [
    '',
    `Shardline local job — ${s.config.samples} samples, batch ${s.config.batchSize}, ${s.config.workers} workers, seed ${s.config.seed}`,
    '',
    'epoch  batches  samples  duplicates  missing  samples/s  first batch  order',
    ...s.epochs.map(
      (e) =>
        `${String(e.epoch).padStart(5)}  ${String(e.batches).padStart(7)}  ${String(e.samples).padStart(7)}  ` +
        `${String(e.duplicates).padStart(10)}  ${String(e.missing).padStart(7)}  ${String(e.samplesPerSec).padStart(9)}  ` +
        `${`${e.firstBatchMs} ms`.padStart(11)}  ${e.fingerprint}`,
    ),
    '',
    `Load-balanced plan for ${s.ranks.length} ranks (cost = sample bytes):`,
    ...s.ranks.map((r) => `  rank ${r.rank}: ${r.samples} samples, ${r.batches} batches, ${r.cost} bytes`),
    `  cost spread (max − min) / mean: ${s.costSpreadPercent.toPrecision(2)} %`,
    '',
    ...formatDataPlane(s.dataPlane),
    s.ok
      ? `OK: every sample exactly once per epoch; every rank has the same number of batches${'ok' in s.dataPlane ? '; every trainer got its rank\'s plan from its loader' : ''}.`
      : 'FAILED: see the tables above.',
    '',
  ];
  return lines.join('\n');
}

function formatDataPlane(p: DemoSummary['dataPlane']): string[] {
  if ('skipped' in p) return [`Data plane skipped: ${p.skipped}.`, ''];
  return [
    `Data plane: ${p.ranks} loaders (MDS shards: ${p.shards}, disk cache, worker threads) → NATS / shared memory → ${p.ranks} trainers`,
    'epoch  batches  samples  duplicates  missing  off plan',
    ...p.epochs.map(
      (e) =>
        `${String(e.epoch).padStart(5)}  ${String(e.batches).padStart(7)}  ${String(e.samples).padStart(7)}  ` +
        `${String(e.duplicates).padStart(10)}  ${String(e.missing).padStart(7)}  ${String(e.offPlan).padStart(8)}`,
    ),
    `  ${p.megabytesPerSec} MB/s in ${p.seconds} s; ${p.shmBatches} batches through shared memory; trainers waited ${(p.waitShare * 100).toFixed(0)} % of the time`,
    `  caches fetched ${(p.cacheBytesFetched / 1e6).toFixed(0)} MB over ${p.epochs.length} epoch${p.epochs.length === 1 ? '' : 's'} of a ${(p.datasetBytes / 1e6).toFixed(0)} MB dataset`,
    '',
  ];
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
