/**
 * The standalone loader against a real nats-server and a local MDS dataset: two ranks of one job
 * each deliver two whole epochs to their own trainer, every batch exactly the rank's plan
 * (checked by decoding it), the ranks together cover every sample once per epoch; the metrics
 * count what was delivered; an abort with no trainer ends the loader promptly; bad options are
 * refused by name before anything opens.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ArgumentError } from '@shardline/core';
import type { NatsConnection } from 'nats';
import { makeTempDir, removeTempDir } from '../infra/supervisor.ts';
import { connectFor, startNats, type NatsServer } from '../infra/nats.ts';
import { metricValue } from '../infra/metrics-text.ts';
import { BatchReceiver } from '@shardline/client';
import { within } from '../delivery/support.ts';
import { LoaderMetrics } from '@shardline/loader-node';
import { LocalDirectorySource } from '@shardline/loader-node';
import { runLoader, type LoaderEvent, type LoaderOptions } from '@shardline/loader-node';
import { planOf, readCheckedEpoch, writeTestDataset } from './support.ts';

const SAMPLES = 101;
let server: NatsServer;
let datasetDir: string;
let shardSizes: number[];
const dirs: string[] = [];

before(async () => {
  datasetDir = makeTempDir('loader-dataset');
  dirs.push(datasetDir);
  [server, shardSizes] = await Promise.all([startNats({ jetstream: false }), writeTestDataset(datasetDir, SAMPLES)]);
});
after(async () => {
  await server?.stop();
  for (const dir of dirs) removeTempDir(dir);
});

const connection = (t: { after: (fn: () => unknown) => void }): Promise<NatsConnection> => connectFor(t, server);

function cacheDir(): string {
  const dir = makeTempDir('loader-cache');
  dirs.push(dir);
  return dir;
}

test('two ranks deliver two epochs each: every batch is the plan, every sample once per epoch', async (t) => {
  assert.ok(shardSizes.length >= 4, `several shards, got ${shardSizes.length}`);
  const job = 'two-ranks';
  const base = { namespace: 'test', job, worldSize: 2, batchSize: 8, epochs: 2, seed: 11, shuffle: 'global', cacheBudgetBytes: 1 << 20, maxCredits: 3 } as const;
  const [loaderNc, trainerNc] = [await connection(t), await connection(t)];
  const source = new LocalDirectorySource(datasetDir);
  t.after(() => source.close());
  const shmDir = cacheDir();
  const runs = [0, 1].map((rank) => {
    // Segments in a folder of the test's (not /dev/shm, which may be small where CI runs).
    const options: LoaderOptions = { ...base, rank, cacheDir: cacheDir(), shm: { directory: shmDir } };
    const metrics = new LoaderMetrics({ labels: { job, rank: String(rank) } });
    const events: LoaderEvent[] = [];
    const done = runLoader(options, { source, nc: loaderNc, metrics, onEvent: (e) => events.push(e) });
    return { rank, options, metrics, events, done };
  });
  const seen = [0, 1].map(() => new Map<number, number>());
  const midRun: string[] = [];
  await Promise.all(
    runs.map(async ({ rank, options, metrics }) => {
      const receiver = await BatchReceiver.connect(trainerNc, { namespace: 'test', job, rank, window: 2, shm: { directory: shmDir } });
      try {
        for (const epoch of [0, 1]) {
          const ids = await readCheckedEpoch(receiver, planOf(options, shardSizes, epoch), job, rank);
          for (const id of ids) seen[epoch]!.set(id, (seen[epoch]!.get(id) ?? 0) + 1);
          // Between the epochs the loader is still running: its cache gauges read the cache.
          if (epoch === 0) midRun[rank] = await metrics.text();
        }
      } finally {
        await receiver.close();
      }
    }),
  );
  for (const run of runs) {
    const summary = await within(run.done, 10_000, `rank ${run.rank} finishing after the last ack`);
    const plan = planOf(run.options, shardSizes, 0);
    assert.deepEqual(summary, { epochs: 2, batches: 2 * plan.numBatches, samples: 2 * plan.perRank, aborted: false });
    assert.deepEqual(run.events.find((e) => e.type === 'fields-skipped'), { type: 'fields-skipped', fields: ['text'] });

    const text = await run.metrics.text();
    assert.equal(metricValue(text, 'shardline_batches_delivered_total'), 2 * plan.numBatches);
    assert.equal(metricValue(text, 'shardline_samples_delivered_total'), 2 * plan.perRank);
    assert.ok(metricValue(text, 'shardline_bytes_delivered_total') > 2 * plan.perRank * 20);
    assert.equal(metricValue(text, 'shardline_delivery_latency_seconds_count'), 2 * plan.numBatches);
    // Prefetch may have fetched every shard before a batch asked (no miss); each ask is a hit or a miss.
    assert.ok(metricValue(text, 'shardline_cache_misses_total') + metricValue(text, 'shardline_cache_hits_total') >= 1);
    assert.ok(metricValue(text, 'shardline_cache_bytes_in_total') > 0);
    assert.equal(metricValue(text, 'shardline_cache_verification_failures_total'), 0);
    assert.equal(metricValue(text, 'shardline_credits_in_flight'), 0);
    assert.match(text, /shardline_batches_delivered_total\{job="two-ranks",rank="\d"\}/);
    assert.match(text, /# TYPE shardline_trainer_wait_seconds_total counter/);
    // Trainer and loader share this host: every batch went through shared memory, but those the
    // loader took before the trainer said hello (the window, maxCredits, and the one waiting for
    // room), which go as chunks.
    const shm = metricValue(text, 'shardline_shm_batches_total');
    assert.ok(shm >= 2 * plan.numBatches - (base.maxCredits + 1) && shm <= 2 * plan.numBatches, `${shm} of ${2 * plan.numBatches} batches through shared memory`);
    assert.ok(metricValue(text, 'shardline_trainer_wait_seconds_total') > 0, 'the trainers reported waiting (the loader starts after them)');
    // Every batch was built once, and each of its build steps timed.
    for (const stage of ['decode', 'transform', 'collate', 'encode']) {
      assert.equal(metricValue(text, 'shardline_batch_stage_seconds_count', `stage="${stage}"`), 2 * plan.numBatches, stage);
    }
    assert.equal(metricValue(text, 'shardline_batch_build_seconds_count'), 2 * plan.numBatches);
    const cached = metricValue(midRun[run.rank]!, 'shardline_cache_bytes');
    assert.ok(cached > 0 && cached <= base.cacheBudgetBytes, `cache bytes mid-run: ${cached}`);
    assert.equal(metricValue(midRun[run.rank]!, 'shardline_cache_budget_bytes'), base.cacheBudgetBytes);
    assert.equal(metricValue(text, 'shardline_cache_bytes'), 0, 'the loader has finished: no cache is watched');
  }
  // Padding (101 samples on 2 ranks) repeats one sample; every other sample comes exactly once.
  for (const counts of seen) {
    assert.equal(counts.size, SAMPLES, 'every sample of the dataset was delivered');
    const repeats = [...counts.values()].filter((n) => n > 1);
    assert.deepEqual(repeats, [2], 'only the one padding sample twice');
  }
});

test('an abort with no trainer ends the loader promptly and closes the cache', async (t) => {
  const nc = await connection(t);
  const source = new LocalDirectorySource(datasetDir);
  t.after(() => source.close());
  const controller = new AbortController();
  const dir = cacheDir();
  const events: LoaderEvent[] = [];
  const done = runLoader(
    { namespace: 'test', job: 'abort', rank: 0, worldSize: 1, batchSize: 4, epochs: 5, cacheDir: dir, cacheBudgetBytes: 1 << 20, maxCredits: 2, drainTimeoutMs: 60_000 },
    { source, nc, signal: controller.signal, onEvent: (e) => events.push(e) },
  );
  // With nobody to ack, the sender's window fills and the loader waits for credit.
  while (!events.some((e) => e.type === 'epoch-started')) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 100));
  const stopped = performance.now();
  controller.abort();
  const summary = await within(done, 3000, 'the loader stopping');
  assert.ok(performance.now() - stopped < 2000, 'stopped at once, not after the drain timeout');
  assert.equal(summary.aborted, true);
  assert.ok(summary.batches <= 2 + 3, `at most the window and the batches prepared ahead, got ${summary.batches}`);
  assert.ok(!events.some((e) => e.type === 'draining'), 'no trainer session: nobody to wait for');
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temporary files left in the cache');
  // An already aborted signal opens nothing.
  assert.deepEqual(
    await runLoader({ job: 'abort', rank: 0, worldSize: 1, batchSize: 4, epochs: 1, cacheDir: path.join(dir, 'never'), cacheBudgetBytes: 1 << 20 }, { source, nc, signal: AbortSignal.abort() }),
    { epochs: 0, batches: 0, samples: 0, aborted: true },
  );
});

test('bad options are refused by name before anything opens', async (t) => {
  const nc = await connection(t);
  const source = new LocalDirectorySource(datasetDir);
  t.after(() => source.close());
  const good: LoaderOptions = { job: 'bad', rank: 0, worldSize: 2, batchSize: 4, epochs: 1, cacheDir: cacheDir(), cacheBudgetBytes: 1 << 20 };
  const cases: Array<[Partial<LoaderOptions>, string]> = [
    [{ rank: 2 }, 'rank'],
    [{ worldSize: 0 }, 'worldSize'],
    [{ batchSize: -1 }, 'batchSize'],
    [{ job: 'Bad.Job' }, 'job'],
    [{ namespace: 'a>b' }, 'namespace'],
    [{ shuffle: 'random' as never }, 'shuffle'],
    [{ cacheBudgetBytes: 0 }, 'cacheBudgetBytes'],
    [{ epochs: 1.5 }, 'epochs'],
  ];
  for (const [patch, name] of cases) {
    await assert.rejects(runLoader({ ...good, ...patch }, { source, nc }), (e: unknown) => e instanceof ArgumentError && e.argument === name, name);
  }
});
