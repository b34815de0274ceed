/**
 * The dataset commands against a real S3 (MinIO from test/infra): write to s3://, inspect and
 * verify it there, read it back through the loader's S3Source, then corrupt a shard object on the
 * server and watch verify name it. Credentials and endpoint reach the CLI through the environment,
 * as they would in a job.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { MDSDataset } from '@shardline/core';
import { S3Source, StoreError } from '@shardline/loader-node';
import { startS3, type S3Server } from '../../../test/infra/s3.ts';
import type { InspectSummary } from './inspect.ts';
import { S3DatasetUploader } from './s3-upload.ts';
import { lastJson, shardline, tempDir } from './test-support.ts';
import type { VerifySummary } from './verify.ts';
import type { WriteSummary } from './write.ts';

let server: Promise<S3Server> | undefined;
const s3 = (): Promise<S3Server> => (server ??= startS3());
after(async () => {
  if (server !== undefined) await (await server).stop();
});

async function keys(server: S3Server, bucket: string, prefix: string): Promise<string[]> {
  const page = await server.client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (page.Contents ?? []).map((o) => o.Key!).sort();
}

test('S3 round trip: write to s3://, inspect --json, verify, read back exactly; a corrupted shard object fails verify', async (t) => {
  const server = await s3();
  const bucket = await server.createBucket();
  const env = { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey, AWS_ENDPOINT_URL: server.endpoint, AWS_REGION: server.region };
  const dir = tempDir(t, 's3');
  const input = path.join(dir, 'events.jsonl');
  const rows = Array.from({ length: 60 }, (_, i) => ({ id: i, text: `event ${i} `.repeat(1 + (i % 5)), tags: [i % 3] }));
  writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n'));
  const url = `s3://${bucket}/datasets/events/`;

  const write = await shardline(['write', input, url, '--size-limit', '1kb', '--compression', 'zstd', '--hashes', 'sha256', '--no-progress', '--json'], env);
  assert.equal(write.code, 0, write.stderr);
  const written = lastJson<WriteSummary>(write);
  assert.equal(written.output, url);
  assert.equal(written.samples, 60);
  assert.ok(written.shards >= 3, `${written.shards} shards`);
  const stored = await keys(server, bucket, 'datasets/events/');
  assert.equal(stored.length, written.shards + 1);
  assert.ok(stored.includes('datasets/events/index.json'));

  const [inspect, verify, again] = await Promise.all([
    shardline(['inspect', url, '--json'], env),
    shardline(['verify', url, '--json', '--no-progress'], env),
    shardline(['write', input, url], env),
  ]);
  assert.equal(inspect.code, 0, inspect.stderr);
  const summary = lastJson<InspectSummary>(inspect);
  assert.deepEqual(
    [summary.format, summary.location, summary.samples, summary.shards, summary.bytes, summary.rawBytes, summary.compression],
    ['mds', url, 60, written.shards, written.bytes, written.rawBytes, 'zstd'],
  );
  assert.deepEqual(summary.columns, { id: 'int64', tags: 'json', text: 'str' });
  assert.equal(verify.code, 0, verify.stderr);
  assert.equal(lastJson<VerifySummary>(verify).samplesVerified, 60);
  assert.equal(again.code, 2, 'an existing dataset is not overwritten without --overwrite');
  assert.match(again.stderr, /<output>: s3:\/\/.*\/datasets\/events\/ already holds a dataset \(index\.json\); pass --overwrite/);

  const source = new S3Source({ bucket, prefix: 'datasets/events/', region: server.region, endpoint: server.endpoint, forcePathStyle: true, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } });
  try {
    const ds = await MDSDataset.open(source, { verifyHashes: true });
    const back = [];
    for await (const s of ds) back.push(s);
    assert.deepEqual(back, rows.map((r) => ({ id: BigInt(r.id), tags: r.tags, text: r.text })));
  } finally {
    await source.close();
  }

  // Corrupt shard 1 on the server: same size, one byte flipped.
  const client = server.client();
  const key = `datasets/events/shard.00001.mds.zstd`;
  const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const bytes = Buffer.from(await object.Body!.transformToByteArray());
  bytes[bytes.length >> 1]! ^= 0x01;
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes }));
  const bad = await shardline(['verify', url], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /verify failed: shard 1 \("shard\.00001\.mds"\): "shard\.00001\.mds\.zstd": sha256 is [0-9a-f]{64}, the index says [0-9a-f]{64}/);
});

test('an upload that fails leaves no index.json on S3: the index goes last', async (t) => {
  const server = await s3();
  const bucket = await server.createBucket();
  const dir = tempDir(t, 's3');
  writeFileSync(path.join(dir, 'shard.00000.mds'), 'first');
  const index = '{"version": 2, "shards": []}';
  writeFileSync(path.join(dir, 'index.json'), index);
  const uploader = new S3DatasetUploader(
    { type: 's3', url: `s3://${bucket}/d/`, bucket, prefix: 'd/' },
    { region: server.region, endpoint: server.endpoint, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } },
    { backoff: { baseMs: 1, maxMs: 5 } },
  );
  try {
    assert.equal(await uploader.hasDataset(), false);
    // The second shard is missing locally, so its upload fails.
    await assert.rejects(uploader.uploadDataset(dir, ['shard.00000.mds', 'shard.00001.mds']), /ENOENT/);
    assert.deepEqual(await keys(server, bucket, 'd/'), ['d/shard.00000.mds']);
    assert.equal(await uploader.hasDataset(), false);

    writeFileSync(path.join(dir, 'shard.00001.mds'), 'second');
    assert.equal(await uploader.uploadDataset(dir, ['shard.00000.mds', 'shard.00001.mds']), 'first'.length + 'second'.length + index.length);
    assert.deepEqual(await keys(server, bucket, 'd/'), ['d/index.json', 'd/shard.00000.mds', 'd/shard.00001.mds']);
    assert.equal(await uploader.hasDataset(), true);
  } finally {
    uploader.close();
  }
  const wrongKey = new S3DatasetUploader(
    { type: 's3', url: `s3://${bucket}/d/`, bucket, prefix: 'd/' },
    { region: server.region, endpoint: server.endpoint, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: 'not-the-secret' } },
  );
  try {
    await assert.rejects(wrongKey.uploadDataset(dir, []), (e: Error) => e instanceof StoreError && /index\.json: PutObject to s3:\/\/.* failed after 1 attempt: .*HTTP 403/.test(e.message));
  } finally {
    wrongKey.close();
  }
});
