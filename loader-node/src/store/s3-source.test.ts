/**
 * S3Source against a real MinIO: the conformance suite, then the transport — parallel range GETs
 * of a multipart object, retries (503, 429, 500, resets, hangs and stalls injected by a proxy in
 * front of the real server), 404 and 403 without retries, a server stopped mid-download, and no
 * socket left behind.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { AbortError, ArgumentError, ClosedError, FormatError } from '@shardline/core';
import { startS3, type S3Server } from '../../../test/infra/s3.ts';
import { NotFoundError, StoreError } from '../errors.ts';
import { shardSourceConformance } from './conformance.ts';
import { s3SourceOptionsFrom } from './s3-config.ts';
import { startFaultProxy, type Fault, type FaultProxy } from './fault-proxy.ts';
import { S3Source, parseContentRange, type S3RequestEvent, type S3SourceOptions } from './s3-source.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const PREFIX = 'datasets/train/';

// One MinIO for the file (a start costs about a second); every suite and test has its own bucket.
let server: Promise<S3Server> | undefined;
const s3 = (): Promise<S3Server> => (server ??= startS3());
after(async () => {
  if (server !== undefined) await (await server).stop();
});

function sourceOptions(s: S3Server, bucket: string, extra: Partial<S3SourceOptions> = {}): S3SourceOptions {
  return {
    bucket,
    prefix: PREFIX,
    region: s.region,
    endpoint: s.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey },
    partSize: 256 * KiB,
    maxConcurrency: 4,
    retryBaseDelayMs: 10,
    retryMaxDelayMs: 50,
    ...extra,
  };
}

shardSourceConformance({
  name: 'S3Source',
  largeObjectBytes: 4 * MiB,
  async setup() {
    const s = await s3();
    const bucket = await s.createBucket();
    const client = s.client();
    return {
      open: () => new S3Source(sourceOptions(s, bucket)),
      async put(key, bytes) {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: PREFIX + key, Body: bytes }));
      },
      async teardown() {},
    };
  },
});

/** A bucket with `objects` under PREFIX, a proxy in front of the server, and a temp folder. */
interface Setup {
  s3: S3Server;
  bucket: string;
  client: S3Client;
  proxy: FaultProxy;
  dir: string;
  source(extra?: Partial<S3SourceOptions>): S3Source;
  cleanup(): Promise<void>;
}

async function setup(objects: Record<string, Buffer>): Promise<Setup> {
  const s = await s3();
  const bucket = await s.createBucket();
  const client = s.client();
  for (const [key, body] of Object.entries(objects)) await client.send(new PutObjectCommand({ Bucket: bucket, Key: PREFIX + key, Body: body }));
  const proxy = await startFaultProxy(s.endpoint);
  const dir = await mkdtemp(path.join(tmpdir(), 'shardline-s3-source-'));
  const sources: S3Source[] = [];
  return {
    s3: s,
    bucket,
    client,
    proxy,
    dir,
    source(extra = {}) {
      const source = new S3Source(sourceOptions(s, bucket, { endpoint: proxy.endpoint, ...extra }));
      sources.push(source);
      return source;
    },
    async cleanup() {
      for (const source of sources) await source.close();
      await proxy.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// Polls until `check` holds (sockets close a few ticks after the request that used them fails).
async function eventually(check: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(10);
  }
}

async function assertNoSocketsInUse(source: S3Source): Promise<void> {
  await eventually(() => {
    const stats = source.connectionStats();
    return stats.active === 0 && stats.queued === 0 && stats.inFlight === 0;
  }, `no socket in use (${JSON.stringify(source.connectionStats())})`);
  assert.ok(source.connectionStats().idle <= source.options.maxConcurrency);
}

const gets = (proxy: FaultProxy): string[] => proxy.requests.filter((r) => r.method === 'GET').map((r) => r.range ?? 'whole');

test('a multipart-uploaded object downloads with parallel range GETs, with and without expectedSize', async (t) => {
  const env = await setup({});
  t.after(() => env.cleanup());
  const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(123_457)];
  const whole = Buffer.concat(parts);
  const key = 'shard.00000.mds';
  const { UploadId } = await env.client.send(new CreateMultipartUploadCommand({ Bucket: env.bucket, Key: PREFIX + key }));
  const completed = [];
  for (const [i, body] of parts.entries()) {
    const { ETag } = await env.client.send(new UploadPartCommand({ Bucket: env.bucket, Key: PREFIX + key, UploadId, PartNumber: i + 1, Body: body }));
    completed.push({ ETag, PartNumber: i + 1 });
  }
  await env.client.send(new CompleteMultipartUploadCommand({ Bucket: env.bucket, Key: PREFIX + key, UploadId, MultipartUpload: { Parts: completed } }));

  const partSize = 1 * MiB;
  const source = env.source({ partSize, maxConcurrency: 4 });
  const info = await source.stat(key);
  assert.equal(info.size, whole.length);
  assert.match(info.etag, /-3$/, 'a multipart ETag');
  const expectedParts = Math.ceil(whole.length / partSize);

  env.proxy.requests.length = 0;
  const target = path.join(env.dir, 'with-size');
  assert.equal(await source.download(key, target, { expectedSize: whole.length }), whole.length);
  assert.ok((await readFile(target)).equals(whole));
  const ranges = gets(env.proxy);
  assert.equal(ranges.length, expectedParts, ranges.join(' '));
  assert.deepEqual(
    [...ranges].sort((a, b) => Number(/=(\d+)/.exec(a)![1]) - Number(/=(\d+)/.exec(b)![1])),
    Array.from({ length: expectedParts }, (_, i) => `bytes=${i * partSize}-${Math.min((i + 1) * partSize, whole.length) - 1}`),
  );
  assert.ok(env.proxy.peakConcurrency > 1 && env.proxy.peakConcurrency <= 4, `peak ${env.proxy.peakConcurrency}`);

  // Without a size, the first part tells it; the others follow in parallel.
  env.proxy.requests.length = 0;
  const unsized = path.join(env.dir, 'without-size');
  assert.equal(await source.download(key, unsized), whole.length);
  assert.ok((await readFile(unsized)).equals(whole));
  assert.equal(gets(env.proxy)[0], `bytes=0-${partSize - 1}`);
  assert.equal(gets(env.proxy).length, expectedParts);
  await assertNoSocketsInUse(source);
});

test('a small object takes a single GET', async (t) => {
  const body = randomBytes(100 * KiB);
  const env = await setup({ 'small.bin': body });
  t.after(() => env.cleanup());
  const source = env.source();
  const target = path.join(env.dir, 'small');
  assert.equal(await source.download('small.bin', target), body.length);
  assert.deepEqual(gets(env.proxy), ['bytes=0-262143']);
  assert.ok((await readFile(target)).equals(body));
});

test('503 SlowDown, 429, 500, resets, a hang and a stalled body are retried; a cut body resumes where it stopped', async (t) => {
  const body = randomBytes(1 * MiB + 17);
  const env = await setup({ 'a.bin': body });
  t.after(() => env.cleanup());
  const source = env.source({ partSize: 4 * MiB, maxAttempts: 4, requestTimeoutMs: 1000, socketTimeoutMs: 1000 });
  const scenarios: Array<[string, Fault[]]> = [
    ['503 SlowDown', [{ type: 'status', status: 503, code: 'SlowDown' }]],
    ['429 and 500', [{ type: 'status', status: 429, code: 'TooManyRequests' }, { type: 'status', status: 500, code: 'InternalError' }]],
    ['a reset before the response', [{ type: 'reset' }]],
    ['a reset in the body', [{ type: 'reset-mid-body' }]],
    ['a hang before the response', [{ type: 'hang' }]],
    ['a stalled body', [{ type: 'stall-mid-body' }]],
    ['three different faults in a row', [{ type: 'reset' }, { type: 'status', status: 503, code: 'SlowDown' }, { type: 'reset-mid-body' }]],
  ];
  for (const [name, faults] of scenarios) {
    const planned = [...faults];
    env.proxy.requests.length = 0;
    env.proxy.plan = () => planned.shift() ?? { type: 'pass' };
    const target = path.join(env.dir, 'retried');
    assert.equal(await source.download('a.bin', target, { expectedSize: body.length }), body.length, name);
    assert.ok((await readFile(target)).equals(body), name);
    assert.equal(env.proxy.requests.length, faults.length + 1, `${name}: ${JSON.stringify(env.proxy.requests)}`);
    if (faults.at(-1)!.type.endsWith('mid-body')) {
      // The retry asks only for the bytes after those already written.
      const resumedFrom = Number(/^bytes=(\d+)-/.exec(env.proxy.requests.at(-1)!.range ?? '')?.[1]);
      assert.ok(resumedFrom > 0 && resumedFrom <= body.length / 2 + 1, `${name}: resumed at ${resumedFrom}`);
    }
    await rm(target);
  }
  // read, readRange and stat retry too.
  const planned: Fault[] = [{ type: 'status', status: 503, code: 'SlowDown' }, { type: 'reset' }];
  env.proxy.plan = () => planned.shift() ?? { type: 'pass' };
  assert.ok((await source.read('a.bin')).equals(body));
  planned.push({ type: 'reset-mid-body' });
  assert.ok((await source.readRange('a.bin', 1000, 300_000)).equals(body.subarray(1000, 301_000)));
  planned.push({ type: 'status', status: 503, code: 'SlowDown' });
  assert.equal((await source.stat('a.bin')).size, body.length);
  await assertNoSocketsInUse(source);
  assert.deepEqual(await readdir(env.dir), []);
});

test('retries are bounded: then a StoreError names the key, the operation and the last error, and no file is left', async (t) => {
  const env = await setup({ 'a.bin': randomBytes(300 * KiB) });
  t.after(() => env.cleanup());
  const source = env.source({ maxAttempts: 3 });
  env.proxy.plan = () => ({ type: 'status', status: 503, code: 'SlowDown' });
  const target = path.join(env.dir, 'never');
  await assert.rejects(source.download('a.bin', target, { expectedSize: 300 * KiB }), (e: unknown) => {
    assert.ok(e instanceof StoreError, String(e));
    assert.equal(e.key, 'a.bin');
    assert.match(e.message, /^a\.bin: download from s3:\/\/.*\/datasets\/train\/ failed after 3 attempts; last error: SlowDown, HTTP 503/);
    return true;
  });
  // Two parts, three attempts each, and the second part may have been cut short by the first's failure.
  assert.ok(env.proxy.requests.length >= 3 && env.proxy.requests.length <= 6, String(env.proxy.requests.length));
  assert.deepEqual(await readdir(env.dir), []);

  env.proxy.requests.length = 0;
  await assert.rejects(source.stat('a.bin'), (e: unknown) => e instanceof StoreError && /stat .* after 3 attempts/.test(e.message));
  assert.equal(env.proxy.requests.length, 3);
  env.proxy.plan = () => ({ type: 'reset' });
  await assert.rejects(source.read('a.bin'), (e: unknown) => e instanceof StoreError && /read .* after 3 attempts; last error: .*ECONNRESET/.test(e.message));
  await assertNoSocketsInUse(source);
});

test('every request attempt is reported with its operation, outcome and time; the wait for a connection slot is not counted', async (t) => {
  const body = randomBytes(300 * KiB);
  const env = await setup({ 'a.bin': body });
  t.after(() => env.cleanup());
  const events: S3RequestEvent[] = [];
  const source = env.source({ maxAttempts: 3, maxConcurrency: 1, partSize: 1 * MiB, onRequest: (e) => events.push(e) });
  const outcomes = (): string[] => events.map((e) => `${e.operation} ${e.key} ${e.attempt} ${e.outcome}`);

  const planned: Fault[] = [{ type: 'status', status: 503, code: 'SlowDown' }, { type: 'reset' }];
  env.proxy.plan = () => planned.shift() ?? { type: 'pass' };
  assert.ok((await source.read('a.bin')).equals(body));
  assert.deepEqual(outcomes(), ['read a.bin 1 retried', 'read a.bin 2 retried', 'read a.bin 3 ok']);
  assert.match(events[0]!.error!, /SlowDown, HTTP 503/);
  assert.match(events[1]!.error!, /ECONNRESET/);
  assert.equal(events[2]!.error, undefined);
  for (const e of events) assert.ok(e.seconds >= 0 && e.seconds < 30, String(e.seconds));

  events.length = 0;
  await assert.rejects(source.stat('missing.bin'), NotFoundError);
  await assert.rejects(source.readRange('a.bin', body.length + 10, 5), (e: unknown) => e instanceof FormatError && /past the end/.test(e.message));
  env.proxy.plan = () => ({ type: 'status', status: 503, code: 'SlowDown' });
  await assert.rejects(source.download('a.bin', path.join(env.dir, 'x'), { expectedSize: body.length }), StoreError);
  assert.deepEqual(outcomes(), [
    'stat missing.bin 1 not-found',
    'readRange a.bin 1 not-found', // a 416; then a stat learns the size that the error names
    'stat a.bin 1 ok',
    'download a.bin 1 retried',
    'download a.bin 2 retried',
    'download a.bin 3 failed',
  ]);
  assert.match(events.at(-1)!.error!, /SlowDown, HTTP 503/);

  // One slot: the second read waits for the first, whose response the proxy holds back 300 ms.
  events.length = 0;
  let n = 0;
  env.proxy.plan = async () => {
    if (++n === 1) await sleep(300);
    return { type: 'pass' };
  };
  const [first, second] = await Promise.all([source.read('a.bin'), source.read('a.bin')]);
  assert.ok(first.equals(body) && second.equals(body));
  assert.deepEqual(outcomes(), ['read a.bin 1 ok', 'read a.bin 1 ok']);
  assert.ok(events[0]!.seconds >= 0.25, `the held request took ${events[0]!.seconds} s`);
  assert.ok(events[1]!.seconds < 0.25, `the queued one is timed from its slot: ${events[1]!.seconds} s`);
  await assertNoSocketsInUse(source);
});

test('an object replaced during a download or a resumed read is a StoreError, not a mix of two versions', async (t) => {
  const first = randomBytes(1 * MiB);
  const env = await setup({ 'a.bin': first });
  t.after(() => env.cleanup());
  const source = env.source({ partSize: 256 * KiB, maxConcurrency: 1 });
  const replace = async (): Promise<Fault> => {
    await env.client.send(new PutObjectCommand({ Bucket: env.bucket, Key: PREFIX + 'a.bin', Body: randomBytes(first.length) }));
    return { type: 'pass' };
  };
  for (const expectedSize of [first.length, undefined]) {
    // The second part's request waits until the object has been replaced.
    let n = 0;
    env.proxy.plan = () => (++n === 2 ? replace() : { type: 'pass' });
    env.proxy.requests.length = 0;
    await assert.rejects(
      source.download('a.bin', path.join(env.dir, 'a'), { expectedSize }),
      (e: unknown) => e instanceof StoreError && /the object changed while it was read; PreconditionFailed, HTTP 412/.test(e.message),
      String(expectedSize),
    );
    assert.equal(env.proxy.requests.length, 2, 'a changed object is not retried');
  }
  let n = 0;
  env.proxy.plan = () => (++n === 1 ? { type: 'reset-mid-body' } : n === 2 ? replace() : { type: 'pass' });
  env.proxy.requests.length = 0;
  await assert.rejects(source.readRange('a.bin', 0, 600 * KiB), (e: unknown) => e instanceof StoreError && /HTTP 412/.test(e.message));
  assert.deepEqual(await readdir(env.dir), []);
  await assertNoSocketsInUse(source);
});

test('404 is a NotFoundError and 403 a StoreError, both without retries', async (t) => {
  const env = await setup({ 'a.bin': randomBytes(1000) });
  t.after(() => env.cleanup());
  const source = env.source({ maxAttempts: 5 });
  for (const call of [() => source.stat('missing.bin'), () => source.read('missing.bin'), () => source.download('missing.bin', path.join(env.dir, 'm'))]) {
    env.proxy.requests.length = 0;
    await assert.rejects(call(), NotFoundError);
    assert.equal(env.proxy.requests.length, 1);
  }

  env.proxy.requests.length = 0;
  env.proxy.plan = () => ({ type: 'status', status: 403, code: 'AccessDenied' });
  await assert.rejects(source.download('a.bin', path.join(env.dir, 'x')), (e: unknown) => e instanceof StoreError && /AccessDenied, HTTP 403/.test(e.message) && !/attempts/.test(e.message));
  assert.equal(env.proxy.requests.length, 1);

  // Real 403s from the server: a wrong secret.
  env.proxy.plan = () => ({ type: 'pass' });
  env.proxy.requests.length = 0;
  const wrong = env.source({ credentials: { accessKeyId: env.s3.accessKeyId, secretAccessKey: 'not-the-secret' } });
  await assert.rejects(wrong.read('a.bin'), (e: unknown) => e instanceof StoreError && /HTTP 403/.test(e.message));
  await assert.rejects(wrong.stat('a.bin'), (e: unknown) => e instanceof StoreError && /HTTP 403/.test(e.message));
  assert.equal(env.proxy.requests.length, 2);
  // A missing bucket is not a missing object.
  const noBucket = env.source({ bucket: 'no-such-bucket-shardline' });
  await assert.rejects(noBucket.read('a.bin'), (e: unknown) => e instanceof StoreError && /NoSuchBucket/.test(e.message));
  assert.deepEqual(await readdir(env.dir), []);
  await assertNoSocketsInUse(source);
});

test('a server stopped mid-download gives a StoreError after the retries, and no partial file', async (t) => {
  // A server of its own: this test stops it.
  const own = await startS3({ allowExternal: false });
  t.after(() => own.stop());
  const bucket = await own.createBucket();
  const body = randomBytes(24 * MiB);
  await own.client().send(new PutObjectCommand({ Bucket: bucket, Key: PREFIX + 'big.bin', Body: body }));
  const dir = await mkdtemp(path.join(tmpdir(), 'shardline-s3-stop-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const source = new S3Source(sourceOptions(own, bucket, { partSize: 256 * KiB, maxConcurrency: 2, maxAttempts: 3 }));
  t.after(() => source.close());

  let stopping: Promise<void> | undefined;
  const started = Date.now();
  await assert.rejects(
    source.download('big.bin', path.join(dir, 'big.bin'), {
      expectedSize: body.length,
      onProgress: () => {
        stopping ??= own.stop();
      },
    }),
    (e: unknown) => {
      assert.ok(e instanceof StoreError, String(e));
      assert.match(e.message, /^big\.bin: download from s3:\/\/.* failed after 3 attempts; last error: .*(ECONNREFUSED|ECONNRESET)/);
      return true;
    },
  );
  assert.ok(Date.now() - started < 20_000);
  await stopping;
  assert.deepEqual(await readdir(dir), []);
  await assertNoSocketsInUse(source);
});

test('no socket is left in use after successes, errors and aborts; close() releases the idle ones', async (t) => {
  const body = randomBytes(2 * MiB);
  const env = await setup({ 'a.bin': body });
  t.after(() => env.cleanup());
  const source = env.source({ partSize: 64 * KiB, maxConcurrency: 4, maxAttempts: 2 });
  await source.download('a.bin', path.join(env.dir, 'ok'), { expectedSize: body.length });
  await source.readRange('a.bin', 5, 100);
  await assert.rejects(source.download('a.bin', path.join(env.dir, 'bad'), { expectedSize: 5 }));
  await assert.rejects(source.read('a.bin', { maxBytes: 10 }));
  // Abort while parts are streaming.
  const controller = new AbortController();
  await assert.rejects(
    source.download('a.bin', path.join(env.dir, 'aborted'), { signal: controller.signal, onProgress: (n) => n > 200 * KiB && controller.abort() }),
    AbortError,
  );
  // Bodies cut by the proxy.
  env.proxy.plan = () => ({ type: 'reset-mid-body' });
  await assert.rejects(source.download('a.bin', path.join(env.dir, 'cut')), StoreError);
  await assertNoSocketsInUse(source);
  env.proxy.plan = () => ({ type: 'pass' });
  await source.download('a.bin', path.join(env.dir, 'ok'), { expectedSize: body.length });
  await assertNoSocketsInUse(source);
  assert.deepEqual((await readdir(env.dir)).sort(), ['ok']);
  assert.ok(source.connectionStats().idle > 0, 'keep-alive sockets stay for reuse');
  await source.close();
  await eventually(() => source.connectionStats().idle === 0 && source.connectionStats().active === 0, 'every socket closed after close()');
});

test('close() during a download rejects it with a ClosedError and removes the partial file', async (t) => {
  const body = randomBytes(4 * MiB);
  const env = await setup({ 'a.bin': body });
  t.after(() => env.cleanup());
  const source = env.source({ partSize: 64 * KiB, maxConcurrency: 2 });
  let closing: Promise<void> | undefined;
  await assert.rejects(
    source.download('a.bin', path.join(env.dir, 'a'), { onProgress: () => void (closing ??= source.close()) }),
    (e: unknown) => e instanceof ClosedError && /closed during the call/.test(e.message),
  );
  await closing;
  assert.deepEqual(await readdir(env.dir), []);
  await assert.rejects(source.stat('a.bin'), ClosedError);
});

test('credentials may come from a provider function', async (t) => {
  const env = await setup({ 'a.bin': Buffer.from('hello') });
  t.after(() => env.cleanup());
  let calls = 0;
  const source = env.source({
    credentials: async () => {
      calls++;
      return { accessKeyId: env.s3.accessKeyId, secretAccessKey: env.s3.secretAccessKey };
    },
  });
  assert.equal((await source.read('a.bin')).toString(), 'hello');
  assert.equal((await source.read('a.bin')).toString(), 'hello');
  assert.equal(calls, 1);

  // End to end from configuration: the endpoint from the environment, the keys from a mounted Secret.
  const secret = path.join(env.dir, 'secret');
  await mkdir(secret);
  await writeFile(path.join(secret, 'access-key-id'), `${env.s3.accessKeyId}\n`);
  await writeFile(path.join(secret, 'secret-access-key'), `${env.s3.secretAccessKey}\n`);
  const options = await s3SourceOptionsFrom({
    url: `s3://${env.bucket}/${PREFIX}`,
    env: { AWS_ENDPOINT_URL: env.proxy.endpoint, AWS_REGION: env.s3.region, AWS_ACCESS_KEY_ID: 'wrong', AWS_SECRET_ACCESS_KEY: 'wrong' },
    secretPath: secret,
  });
  const configured = new S3Source(options);
  t.after(() => configured.close());
  assert.equal((await configured.read('a.bin')).toString(), 'hello');
});

test('the constructor checks every option and names it', async () => {
  const base: S3SourceOptions = { bucket: 'data', region: 'us-east-1' };
  const bad: Array<[Partial<S3SourceOptions> | Record<string, unknown>, string]> = [
    [{ bucket: 'UPPER' }, 'bucket'],
    [{ bucket: 'a' }, 'bucket'],
    [{ region: '' }, 'region'],
    [{ endpoint: 'ftp://x' }, 'endpoint'],
    [{ endpoint: 'not a url' }, 'endpoint'],
    [{ prefix: '../x' }, 'prefix'],
    [{ partSize: 10 }, 'partSize'],
    [{ maxConcurrency: 0 }, 'maxConcurrency'],
    [{ maxAttempts: 0 }, 'maxAttempts'],
    [{ retryBaseDelayMs: -1 }, 'retryBaseDelayMs'],
    [{ retryBaseDelayMs: 500, retryMaxDelayMs: 100 }, 'retryMaxDelayMs'],
    [{ requestTimeoutMs: 0 }, 'requestTimeoutMs'],
    [{ forcePathStyle: 'yes' }, 'forcePathStyle'],
    [{ credentials: { accessKeyId: '', secretAccessKey: 'x' } }, 'credentials.accessKeyId'],
  ];
  for (const [patch, argument] of bad) {
    assert.throws(
      () => new S3Source({ ...base, ...patch } as S3SourceOptions),
      (e: unknown) => e instanceof ArgumentError && e.argument === argument,
      JSON.stringify(patch),
    );
  }
  const source = new S3Source({ ...base, prefix: 'a/b' });
  assert.equal(source.location, 's3://data/a/b/');
  assert.equal(source.options.partSize, 8 * MiB);
  await source.close();
});

test('parseContentRange accepts only well-formed, consistent ranges', () => {
  assert.deepEqual(parseContentRange('bytes 0-9/10'), { first: 0, last: 9, total: 10 });
  for (const bad of [undefined, '', 'bytes */10', 'bytes 5-4/10', 'bytes 0-10/10', 'bytes 0-9/99999999999999999999', 'bytes -1-9/10', 'items 0-9/10']) {
    assert.equal(parseContentRange(bad), undefined, String(bad));
  }
});
