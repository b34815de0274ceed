/**
 * Smoke tests of the real S3 (MinIO) through @aws-sdk/client-s3: multipart upload, range GET,
 * ListObjectsV2 with a prefix and pagination, a bucket per test, no process left after stop(),
 * and SHARDLINE_TEST_S3_URL.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { S3_ENV, startS3, type S3Server } from './s3.ts';

const MiB = 1024 * 1024;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// Deterministic bytes whose value depends on the offset, so a wrong range cannot match by chance.
function pattern(length: number, salt: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + (i >>> 8) * 7 + salt) & 0xff;
  return b;
}

// One MinIO for the data tests (a start costs about a second); each test still gets its own bucket.
let s3: S3Server;
before(async () => {
  s3 = await startS3({ allowExternal: false });
});
after(() => s3.stop());

test('multipart upload of 2 × 5 MiB + a tail part, then range GETs return exactly those bytes', async () => {
  const bucket = await s3.createBucket();
  const client = s3.client();
  const parts = [pattern(5 * MiB, 1), pattern(5 * MiB, 2), pattern(123_457, 3)];
  const whole = Buffer.concat(parts);
  const key = 'shards/shard-00000.bin';

  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  assert.ok(UploadId !== undefined && UploadId !== '');
  const completed = [];
  for (const [i, body] of parts.entries()) {
    const { ETag } = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: body }));
    assert.ok(ETag !== undefined);
    completed.push({ ETag, PartNumber: i + 1 });
  }
  const done = await client.send(
    new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: completed } }),
  );
  // A multipart ETag ends in -<number of parts>: proof the server assembled a real multipart object.
  assert.match(done.ETag ?? '', /-3"?$/);

  // A range across the boundary of parts 1 and 2, one inside the tail, and a suffix range.
  for (const [range, start, end] of [
    [`bytes=${5 * MiB - 100}-${5 * MiB + 99}`, 5 * MiB - 100, 5 * MiB + 100],
    [`bytes=${10 * MiB + 5}-${10 * MiB + 1004}`, 10 * MiB + 5, 10 * MiB + 1005],
    ['bytes=-17', whole.length - 17, whole.length],
  ] as const) {
    const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    assert.equal(bytes.length, end - start, range);
    assert.ok(bytes.equals(whole.subarray(start, end)), `${range} returned other bytes`);
    assert.equal(got.ContentRange, `bytes ${start}-${end - 1}/${whole.length}`);
  }
  const full = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  assert.equal(full.ContentLength, whole.length);
});

test('ListObjectsV2 with a prefix pages through MaxKeys-sized pages', async () => {
  const bucket = await s3.createBucket();
  const client = s3.client();
  const wanted = Array.from({ length: 7 }, (_, i) => `train/shard-${String(i).padStart(5, '0')}.bin`);
  for (const key of [...wanted, 'val/shard-00000.bin', 'train.index']) {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key }));
  }
  const seen: string[] = [];
  const pageSizes: number[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'train/', MaxKeys: 3, ContinuationToken: token }));
    pageSizes.push(page.KeyCount ?? -1);
    seen.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  assert.deepEqual(pageSizes, [3, 3, 1]);
  assert.deepEqual(seen, wanted);
});

test('createBucket gives each call its own bucket and checks names', async () => {
  const a = await s3.createBucket();
  const b = await s3.createBucket();
  assert.notEqual(a, b);
  await s3.client().send(new HeadBucketCommand({ Bucket: b }));
  assert.equal(await s3.createBucket('shardline-named-bucket'), 'shardline-named-bucket');
  await assert.rejects(s3.createBucket('Bad_Name'), /name: must be an S3 bucket name.*"Bad_Name"/);
  await assert.rejects(startS3({ readyTimeoutMs: -1 }), /readyTimeoutMs: must be an integer ≥ 1, got -1/);
});

test('stop() leaves no process and removes the data folder', async () => {
  const own = await startS3({ allowExternal: false });
  assert.ok(own.pid > 0 && alive(own.pid));
  const health = await fetch(`${own.endpoint}/minio/health/live`);
  assert.equal(health.status, 200);
  assert.ok(existsSync(own.dataDir));
  await own.stop();
  assert.equal(alive(own.pid), false);
  if (process.env.SHARDLINE_TEST_KEEP !== '1') assert.equal(existsSync(own.dir), false);
  await assert.rejects(fetch(`${own.endpoint}/minio/health/live`));
  await own.stop(); // idempotent
});

test('SHARDLINE_TEST_S3_URL: an external server is used, and only the test buckets are removed', async (t) => {
  const saved = Object.fromEntries(Object.values(S3_ENV).map((name) => [name, process.env[name]]));
  t.after(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  process.env[S3_ENV.url] = s3.endpoint;
  delete process.env[S3_ENV.accessKeyId];
  await assert.rejects(startS3(), /SHARDLINE_TEST_S3_ACCESS_KEY_ID and SHARDLINE_TEST_S3_SECRET_ACCESS_KEY must be set/);
  process.env[S3_ENV.accessKeyId] = s3.accessKeyId;
  process.env[S3_ENV.secretAccessKey] = s3.secretAccessKey;

  const external = await startS3();
  assert.equal(external.external, true);
  assert.equal(external.endpoint, s3.endpoint);
  assert.equal(external.pid, 0);
  const bucket = await external.createBucket();
  await external.client().send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'v' }));
  await external.stop();
  // The server still runs; the external handle's bucket is gone.
  await assert.rejects(s3.client().send(new HeadBucketCommand({ Bucket: bucket })));
  const mine = await s3.createBucket();
  await s3.client().send(new HeadBucketCommand({ Bucket: mine }));
});

test('a missing MinIO binary fails with the setup command, never a skip', async (t) => {
  const empty = mkdtempSync(path.join(tmpdir(), 'shardline-empty-cache-'));
  const saved = process.env.SHARDLINE_CACHE;
  process.env.SHARDLINE_CACHE = empty;
  t.after(() => {
    if (saved === undefined) delete process.env.SHARDLINE_CACHE;
    else process.env.SHARDLINE_CACHE = saved;
    rmSync(empty, { recursive: true, force: true });
  });
  await assert.rejects(startS3({ allowExternal: false }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'SERVER_MISSING');
    assert.match(e.message, /^(CI \(CI=true\) cannot run this test: )?minio v0\.0\.0-\S+ is not installed/);
    assert.match(e.message, /Run `bash scripts\/setup-servers\.sh`/);
    return true;
  });
});
