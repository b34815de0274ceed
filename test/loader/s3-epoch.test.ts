/**
 * The data plane end to end on real servers: an MDS dataset in MinIO, two `shardline loader`
 * processes (the CLI, S3 settings from the environment, worker threads, shared memory with their
 * trainers on this host), and two TypeScript trainers on `@shardline/client`'s `batches()`. Each
 * rank gets exactly its plan, the two ranks together every sample once, and each loader exits 0
 * once its trainer acked the epoch; a third run starts a replacement loader mid-epoch
 * (`--first-step`) for a trainer resuming from its checkpoint.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { batches, type TrainerBatch } from '@shardline/client';
import { makeTempDir, removeTempDir, startS3, type S3Server } from '../infra/index.ts';
import { startNats, type NatsServer } from '../infra/nats.ts';
import { within } from '../delivery/support.ts';
import { metricValue } from '../infra/metrics-text.ts';
import { planOf, startLoaderProcess, writeTestDataset, type LoaderProcess } from './support.ts';

const NAMESPACE = 's3-epoch';
const SAMPLES = 150;

const SHM_DIR = makeTempDir('s3-epoch-shm');
let s3: S3Server;
let nats: NatsServer;
let bucket: string;
let shardSizes: number[];

before(async () => {
  [s3, nats] = await Promise.all([startS3(), startNats({ jetstream: false })]);
  const dir = makeTempDir('s3-epoch-dataset');
  try {
    shardSizes = await writeTestDataset(dir, SAMPLES, { compression: 'zstd' });
    bucket = await s3.createBucket();
    const client = s3.client();
    // Shards first, index.json last, as the writer would upload them.
    const names = readdirSync(dir).sort((a, b) => Number(a === 'index.json') - Number(b === 'index.json'));
    for (const name of names) await client.send(new PutObjectCommand({ Bucket: bucket, Key: `data/${name}`, Body: readFileSync(path.join(dir, name)) }));
  } finally {
    removeTempDir(dir);
  }
});
after(async () => {
  await Promise.all([s3?.stop(), nats?.stop()]);
  removeTempDir(SHM_DIR);
});

const OPTIONS = { worldSize: 2, batchSize: 7, seed: 3, shuffle: 'shard-aware' as const };

type TestContext = { after: (fn: () => unknown) => void };

/** Starts `shardline loader` for `rank` on the MinIO dataset; resolves its exit code with `exited`. */
function startLoader(t: TestContext, job: string, rank: number, extra: readonly string[] = [], metricsPort = 0): LoaderProcess {
  const cacheDir = makeTempDir(`s3-epoch-cache-${rank}`);
  t.after(() => removeTempDir(cacheDir));
  // Segments in a folder of the test's (not /dev/shm, which may be small where CI runs); the trainers read the same one.
  const env = { PATH: process.env.PATH, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_ENDPOINT_URL: s3.endpoint, AWS_REGION: s3.region };
  return startLoaderProcess(
    t,
    ['--job', job, '--namespace', NAMESPACE, '--rank', String(rank), '--world-size', '2', '--dataset', `s3://${bucket}/data/`,
      '--nats-url', nats.url, '--cache-dir', cacheDir, '--cache-budget', '1mb', '--batch-size', String(OPTIONS.batchSize), '--epochs', '1',
      '--seed', String(OPTIONS.seed), '--shuffle', OPTIONS.shuffle, '--workers', '2', '--shm-dir', SHM_DIR, '--metrics-port', String(metricsPort), '--log-level', 'warn', ...extra],
    env,
  );
}

function checkBatch(batch: TrainerBatch, rank: number, step: number): void {
  const expected = planOf(OPTIONS, shardSizes, 0).batchIds(rank, step);
  assert.equal(batch.step, step);
  assert.deepEqual(batch.sampleIds, expected, `rank ${rank} step ${step}: the plan's samples`);
  assert.deepEqual(Array.from(batch.tensors.id!.data as BigInt64Array, Number), expected, 'each row is its sample');
  assert.deepEqual(Array.from(batch.tensors.x!.data as Float32Array), expected.flatMap((i) => [i, i + 0.5, -i]));
}

test('two loader processes read MinIO through their caches and serve two TypeScript trainers an epoch: each rank its plan, every sample once', async (t) => {
  const job = 'two-ranks';
  const metricsPort = await freePort();
  const loaders = [0, 1].map((rank) => startLoader(t, job, rank, [], rank === 0 ? metricsPort : 0));
  const seen = new Map<number, number>();
  const shm: number[] = [];
  let scraped = '';
  await Promise.all(
    [0, 1].map(async (rank) => {
      const stream = batches({ job, rank, namespace: NAMESPACE, nats: { servers: nats.url }, epochs: 1, receiver: { connectTimeoutMs: 20_000, shm: { directory: SHM_DIR } } });
      let step = 0;
      for await (const batch of stream) {
        checkBatch(batch, rank, step++);
        for (const id of batch.sampleIds) seen.set(id, (seen.get(id) ?? 0) + 1);
        // Mid-epoch, loader 0's /metrics shows its S3 requests and its cache.
        if (rank === 0 && step === 2) scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      }
      assert.equal(step, planOf(OPTIONS, shardSizes, 0).numBatches, `rank ${rank}: every batch`);
      shm.push(stream.stats().receiver?.shmBatches ?? 0);
    }),
  );
  assert.equal(seen.size, SAMPLES, 'every sample of the dataset');
  assert.ok([...seen.values()].every((n) => n === 1), 'each exactly once (150 samples split evenly: no padding)');
  assert.ok(shm.every((n) => n > 0), `trainers on the loaders' host read batches through shared memory (${shm.join(', ')})`);
  for (const [rank, loader] of loaders.entries()) {
    assert.equal(await within(loader.exited, 20_000, `loader ${rank} exiting after the epoch was acked`), 0, loader.stderr());
  }
  assert.ok(metricValue(scraped, 'shardline_s3_request_seconds_count', 'operation="download"') >= 1, 'shard downloads from MinIO were timed');
  assert.ok(metricValue(scraped, 'shardline_s3_request_seconds_count', 'operation="read"') >= 1, 'index.json was read from MinIO');
  assert.ok(metricValue(scraped, 'shardline_cache_bytes', 'rank="0"') > 0, 'the cache holds shards');
  assert.ok(metricValue(scraped, 'shardline_batch_stage_seconds_count', 'stage="decode"') >= 2, 'batches were built and timed');
  assert.doesNotMatch(scraped, /shardline_s3_request_errors_total\{/, 'no S3 request failed');
});

/** A TCP port free now on loopback (for a child's --metrics-port). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('a replacement loader started at --first-step serves a trainer resuming from its checkpoint: the rest of the epoch, no duplicate, no gap', async (t) => {
  const job = 'replacement';
  const plan = planOf(OPTIONS, shardSizes, 0);
  const resumeAt = 4;
  const loader = startLoader(t, job, 1, ['--first-step', String(resumeAt)]);
  const stream = batches({
    job,
    rank: 1,
    namespace: NAMESPACE,
    nats: { servers: nats.url },
    epochs: 1,
    resume: { epoch: 0, step: resumeAt },
    receiver: { connectTimeoutMs: 20_000, shm: { directory: SHM_DIR } },
  });
  let step = resumeAt;
  for await (const batch of stream) checkBatch(batch, 1, step++);
  assert.equal(step, plan.numBatches, 'steps firstStep … n − 1, then the end of the epoch');
  assert.equal(await within(loader.exited, 20_000, 'the replacement loader exiting'), 0, loader.stderr());
});
