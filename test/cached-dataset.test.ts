/**
 * A dataset in a real MinIO, read through S3Source and the disk cache (issue 4's end-to-end
 * checks): every sample back exactly under a budget smaller than the working set, a download
 * killed midway, a shard corrupted on the server, and hostile index files — each a clear error,
 * the process alive and the cache consistent (within budget, no temporary leftovers).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { EpochPlan, MDSWriter, type MDSSample } from '@shardline/core';
import { QuarantinedError, S3Source, openCachedMDSDataset, type CacheEvent } from '@shardline/loader-node';
import { startFaultProxy } from '../loader-node/src/store/fault-proxy.ts';
import { makeTempDir, startS3, type S3Server } from './infra/index.ts';

let s3: S3Server;
let client: S3Client;
const SAMPLES = 600;

before(async () => {
  s3 = await startS3();
  client = s3.client();
});
after(async () => {
  await s3?.stop();
});

function sampleOf(i: number): MDSSample {
  return { id: BigInt(i), text: `sample ${i} ${'x'.repeat(i % 97)}`, payload: new Uint8Array(200 + (i % 50)).fill(i & 0xff) };
}

// Writes an MDS dataset (zstd shards, sha256 and xxh64 hashes, ~8 shards) and uploads it under a fresh bucket.
async function uploadDataset(): Promise<{ bucket: string; files: Map<string, Buffer> }> {
  const out = makeTempDir('mds-upload');
  const writer = new MDSWriter({
    out,
    columns: { id: 'int64', text: 'str', payload: 'bytes' },
    compression: 'zstd',
    hashes: ['sha256', 'xxh64'],
    sizeLimit: 24_000,
  });
  for (let i = 0; i < SAMPLES; i++) await writer.write(sampleOf(i));
  await writer.finish();
  const bucket = await s3.createBucket();
  const files = new Map<string, Buffer>();
  // Shards first, index.json last: a reader never sees an index whose shards are missing.
  const names = readdirSync(out).sort((a, b) => Number(a === 'index.json') - Number(b === 'index.json'));
  for (const name of names) {
    const body = readFileSync(path.join(out, name));
    files.set(name, body);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `train/${name}`, Body: body }));
  }
  return { bucket, files };
}

function source(bucket: string, endpoint = s3.endpoint): S3Source {
  return new S3Source({
    bucket,
    prefix: 'train/',
    endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    maxAttempts: 3,
    retryBaseDelayMs: 10,
  });
}

function assertConsistent(dir: string, budget: number): void {
  const names = readdirSync(dir);
  assert.deepEqual(names.filter((n) => n.startsWith('.')), [], 'temporary files left behind');
  const bytes = names.reduce((n, f) => n + (statSync(path.join(dir, f), { throwIfNoEntry: false })?.size ?? 0), 0);
  assert.ok(bytes <= budget, `cache holds ${bytes} bytes on disk, budget ${budget}`);
}

test('every sample comes back exactly through the cache, following the plan, with a budget below the working set', async () => {
  const { bucket, files } = await uploadDataset();
  const shardBytes = [...files].filter(([n]) => n !== 'index.json').map(([, b]) => b.length);
  assert.ok(shardBytes.length >= 6, `expected several shards, got ${shardBytes.length}`);
  const budget = 2 * Math.max(...shardBytes) + 100; // far below the dataset: evictions must happen
  const cacheDir = makeTempDir('shard-cache');
  const events: CacheEvent[] = [];
  const store = source(bucket);
  const opened = await openCachedMDSDataset({ source: store, cacheDir, budgetBytes: budget, prefetchHorizon: 2, onEvent: (e) => events.push(e) });
  try {
    assert.equal(opened.dataset.length, SAMPLES);
    for (const epoch of [0, 1]) {
      const plan = new EpochPlan({ shardSizes: opened.dataset.index.shards.map((s) => s.samples), worldSize: 1, seed: 3, epoch, shuffle: 'shard-aware' });
      opened.followPlan(plan, 0);
      const ids = new Float64Array(plan.perRank);
      plan.fill(0, 0, ids);
      const seen = new Set<number>();
      for (const id of ids) {
        assert.deepEqual(await opened.dataset.get(id), sampleOf(id));
        seen.add(id);
        assert.ok(opened.cache.usedBytes <= budget);
      }
      assert.equal(seen.size, SAMPLES, `epoch ${epoch}: every sample exactly once`);
    }
    const stats = opened.cache.stats();
    assert.ok(stats.evictions > 0, 'the budget is below the working set, so shards were evicted');
    assert.ok(stats.prefetches > 0, 'prefetch followed the plan');
    assert.equal(stats.verificationFailures, 0);
    assertConsistent(cacheDir, budget);
  } finally {
    await opened.close();
    await store.close();
  }
});

test('a dataset uploaded with `shardline write` reads back exactly through the cache', async () => {
  const input = path.join(makeTempDir('jsonl'), 'train.jsonl');
  const rows = Array.from({ length: 400 }, (_, i) => ({ id: i, text: `row ${i} ${'y'.repeat(i % 61)}`, score: i / 8 }));
  writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const bucket = await s3.createBucket();
  const cli = spawnSync(
    process.execPath,
    [path.join(import.meta.dirname, '..', 'cli', 'src', 'main.ts'), 'write', input, `s3://${bucket}/train/`, '--columns', 'id:int64,text:str,score:float64', '--size-limit', '8kb', '--compression', 'zstd', '--hashes', 'sha256', '--no-progress', '--json'],
    {
      encoding: 'utf8',
      env: {
        ...process.env,
        SHARDLINE_LOG_LEVEL: 'warn',
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
        AWS_ENDPOINT_URL: s3.endpoint,
        AWS_REGION: s3.region,
      },
    },
  );
  assert.equal(cli.status, 0, cli.stderr);
  const summary = JSON.parse(cli.stdout.trim().split('\n').at(-1)!) as { samples: number; shards: number };
  assert.equal(summary.samples, rows.length);
  assert.ok(summary.shards > 3, `expected several shards, got ${summary.shards}`);

  const cacheDir = makeTempDir('shard-cache');
  const store = source(bucket);
  const opened = await openCachedMDSDataset({ source: store, cacheDir, budgetBytes: 64 << 10 });
  try {
    assert.equal(opened.dataset.length, rows.length);
    for (let i = 0; i < rows.length; i++) {
      const got = await opened.dataset.get(i);
      assert.deepEqual({ id: Number(got.id), text: got.text, score: got.score }, rows[i]);
    }
    assertConsistent(cacheDir, 64 << 10);
  } finally {
    await opened.close();
    await store.close();
  }
});

test('a download killed midway is retried and leaves nothing torn; the cache stays consistent', async () => {
  const { bucket } = await uploadDataset();
  const proxy = await startFaultProxy(s3.endpoint);
  // The first shard GET is cut mid-body; everything else passes.
  let cut = 0;
  proxy.plan = (request) => (request.method === 'GET' && request.url?.includes('shard.') === true && cut++ === 0 ? { type: 'reset-mid-body' } : { type: 'pass' });
  const cacheDir = makeTempDir('shard-cache');
  const store = source(bucket, proxy.endpoint);
  const opened = await openCachedMDSDataset({ source: store, cacheDir, budgetBytes: 10 << 20, prefetchHorizon: 0 });
  try {
    assert.deepEqual(await opened.dataset.get(0), sampleOf(0));
    assert.ok(proxy.requests.some((r) => r.fault === 'reset-mid-body'), 'the fault was injected');
    assertConsistent(cacheDir, 10 << 20);
  } finally {
    await opened.close();
    await store.close();
    await proxy.close();
  }
});

test('a shard corrupted on the server is fetched again, then quarantined by name; other shards still load', async () => {
  const { bucket, files } = await uploadDataset();
  const victim = [...files.keys()].find((n) => n.endsWith('.zstd'))!;
  const body = Buffer.from(files.get(victim)!);
  body[body.length >> 1] = body[body.length >> 1]! ^ 0xff; // same size, different bytes: only the hash tells
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: `train/${victim}`, Body: body }));
  const cacheDir = makeTempDir('shard-cache');
  const events: CacheEvent[] = [];
  const store = source(bucket);
  const opened = await openCachedMDSDataset({ source: store, cacheDir, budgetBytes: 10 << 20, maxFailures: 2, onEvent: (e) => events.push(e) });
  try {
    const shard = opened.shardKeys.indexOf(victim);
    const first = opened.dataset.index.shards.slice(0, shard).reduce((n, s) => n + s.samples, 0);
    await assert.rejects(opened.dataset.get(first), (error: unknown) => {
      assert.ok(error instanceof QuarantinedError, String(error));
      assert.match(error.message, new RegExp(`shard ${victim.replaceAll('.', '\\.')} is quarantined after 2 failed verifications`));
      assert.match(String((error as Error).cause), /hash|sha256|xxh64/);
      return true;
    });
    assert.equal(events.filter((e) => e.type === 'verification-failed').length, 2);
    assert.deepEqual(opened.cache.quarantined(), [victim]);
    // The rest of the dataset is fine.
    const other = shard === 0 ? opened.dataset.length - 1 : 0;
    assert.deepEqual(await opened.dataset.get(other), sampleOf(other));
    assertConsistent(cacheDir, 10 << 20);
  } finally {
    await opened.close();
    await store.close();
  }
});

test('hostile index files are refused with an error naming the problem', async () => {
  const { files } = await uploadDataset();
  const index = JSON.parse(files.get('index.json')!.toString('utf8')) as { shards: Record<string, unknown>[] };
  const cases: [string, (i: typeof index) => void, RegExp][] = [
    ['a basename that climbs out of the prefix', (i) => ((i.shards[0]!.zip_data as { basename: string }).basename = '../../etc/passwd'), /basename|\.\./],
    ['an absolute basename', (i) => ((i.shards[0]!.raw_data as { basename: string }).basename = '/etc/passwd'), /basename|absolute/],
    ['a huge shard size', (i) => ((i.shards[0]!.zip_data as { bytes: number }).bytes = 1e15), /bytes/],
    ['a negative sample count', (i) => (i.shards[0]!.samples = -3), /samples/],
  ];
  for (const [what, mutate, pattern] of cases) {
    const hostile = structuredClone(index);
    mutate(hostile);
    const hostileBucket = await s3.createBucket();
    for (const [name, body] of files) {
      await client.send(new PutObjectCommand({ Bucket: hostileBucket, Key: `train/${name}`, Body: name === 'index.json' ? JSON.stringify(hostile) : body }));
    }
    const store = source(hostileBucket);
    const cacheDir = makeTempDir('shard-cache');
    await assert.rejects(openCachedMDSDataset({ source: store, cacheDir, budgetBytes: 10 << 20 }), (error: unknown) => {
      assert.equal((error as { code?: string }).code, 'ERR_FORMAT', `${what}: ${String(error)}`);
      assert.match((error as Error).message, pattern, what);
      return true;
    });
    await store.close();
    assertConsistent(cacheDir, 10 << 20);
  }
  // A shard truncated on the server: its size no longer matches the index.
  const truncated = await s3.createBucket();
  const victim = [...files.keys()].find((n) => n.endsWith('.zstd'))!;
  for (const [name, body] of files) {
    await client.send(new PutObjectCommand({ Bucket: truncated, Key: `train/${name}`, Body: name === victim ? body.subarray(0, body.length - 7) : body }));
  }
  const store = source(truncated);
  const cacheDir = makeTempDir('shard-cache');
  const opened = await openCachedMDSDataset({ source: store, cacheDir, budgetBytes: 10 << 20, maxFailures: 1 });
  const shard = opened.shardKeys.indexOf(victim);
  const first = opened.dataset.index.shards.slice(0, shard).reduce((n, s) => n + s.samples, 0);
  await assert.rejects(opened.dataset.get(first), new RegExp(victim.replaceAll('.', '\\.')));
  assertConsistent(cacheDir, 10 << 20);
  await opened.close();
  await store.close();
});
