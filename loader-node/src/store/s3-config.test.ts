/**
 * s3SourceOptionsFrom: the dataset URL, region and endpoint from the environment, credentials from
 * explicit options, a mounted Secret (files or JSON, re-read after rotation) or the environment —
 * in that order — and errors that name the variable or file without leaking a secret.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ArgumentError, FormatError } from '@shardline/core';
import { mountedSecretCredentials, parseS3Url, readS3Secret, s3SourceOptionsFrom } from './s3-config.ts';
import { S3Source, type S3CredentialsProvider } from './s3-source.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'shardline-s3-config-'));
});
after(() => rm(dir, { recursive: true, force: true }));

async function secretFolder(name: string, files: Record<string, string>): Promise<string> {
  const folder = path.join(dir, name);
  await mkdir(folder, { recursive: true });
  for (const [file, text] of Object.entries(files)) await writeFile(path.join(folder, file), text);
  return folder;
}

const ENV = { AWS_ACCESS_KEY_ID: 'env-id', AWS_SECRET_ACCESS_KEY: 'env-secret' };

test('the URL gives bucket and prefix; region and endpoint come from the environment; a custom endpoint means path style', async () => {
  const options = await s3SourceOptionsFrom({ url: 's3://datasets/c4/train/', env: { AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL_S3: 'http://minio:9000', AWS_ENDPOINT_URL: 'http://other:1' } });
  assert.equal(options.bucket, 'datasets');
  assert.equal(options.prefix, 'c4/train/');
  assert.equal(options.region, 'eu-west-1');
  assert.equal(options.endpoint, 'http://minio:9000');
  assert.equal(options.forcePathStyle, true);
  assert.equal(options.credentials, undefined, 'no credentials: the SDK default chain');
  const source = new S3Source(options);
  assert.equal(source.location, 's3://datasets/c4/train/');
  await source.close();

  const plain = await s3SourceOptionsFrom({ url: 's3://datasets', env: { AWS_DEFAULT_REGION: 'ap-south-1' } });
  assert.equal(plain.prefix, '');
  assert.equal(plain.region, 'ap-south-1');
  assert.equal(plain.endpoint, undefined);
  assert.equal(plain.forcePathStyle, false);
  assert.equal((await s3SourceOptionsFrom({ url: 's3://d/' })).region, 'us-east-1');

  const overridden = await s3SourceOptionsFrom({ url: 's3://d/p', env: { AWS_REGION: 'eu-west-1' }, options: { region: 'us-west-2', partSize: 1 << 20, forcePathStyle: false, endpoint: 'http://x:1' } });
  assert.equal(overridden.region, 'us-west-2');
  assert.equal(overridden.partSize, 1 << 20);
  assert.equal(overridden.forcePathStyle, false);
});

test('credentials from the environment, with or without a session token; half a pair names the missing variable', async () => {
  assert.deepEqual((await s3SourceOptionsFrom({ url: 's3://d/', env: ENV })).credentials, { accessKeyId: 'env-id', secretAccessKey: 'env-secret' });
  assert.deepEqual((await s3SourceOptionsFrom({ url: 's3://d/', env: { ...ENV, AWS_SESSION_TOKEN: 'tok' } })).credentials, {
    accessKeyId: 'env-id',
    secretAccessKey: 'env-secret',
    sessionToken: 'tok',
  });
  await assert.rejects(s3SourceOptionsFrom({ url: 's3://d/', env: { AWS_ACCESS_KEY_ID: 'x' } }), (e: unknown) => e instanceof ArgumentError && e.argument === 'AWS_SECRET_ACCESS_KEY');
  await assert.rejects(s3SourceOptionsFrom({ url: 's3://d/', env: { AWS_SECRET_ACCESS_KEY: 'x' } }), (e: unknown) => e instanceof ArgumentError && e.argument === 'AWS_ACCESS_KEY_ID');
  await assert.rejects(s3SourceOptionsFrom({ url: 's3://d/', env: { AWS_SESSION_TOKEN: 'x' } }), (e: unknown) => e instanceof ArgumentError && e.argument === 'AWS_SESSION_TOKEN');
  // Blank values count as unset.
  assert.equal((await s3SourceOptionsFrom({ url: 's3://d/', env: { AWS_ACCESS_KEY_ID: ' ', AWS_SECRET_ACCESS_KEY: '' } })).credentials, undefined);
});

test('a mounted Secret folder (files, trailing newlines ignored) wins over the environment, and explicit credentials win over both', async () => {
  const folder = await secretFolder('files', { 'access-key-id': 'file-id\n', 'secret-access-key': 'file-secret\n', 'session-token': ' file-token ' });
  const options = await s3SourceOptionsFrom({ url: 's3://d/', env: ENV, secretPath: folder });
  assert.equal(typeof options.credentials, 'function');
  const resolved = await (options.credentials as S3CredentialsProvider)();
  assert.equal(resolved.accessKeyId, 'file-id');
  assert.equal(resolved.secretAccessKey, 'file-secret');
  assert.equal(resolved.sessionToken, 'file-token');
  assert.ok(resolved.expiration instanceof Date && resolved.expiration.getTime() > Date.now() + 5 * 60_000);

  const explicit = { accessKeyId: 'opt-id', secretAccessKey: 'opt-secret' };
  assert.deepEqual((await s3SourceOptionsFrom({ url: 's3://d/', env: ENV, secretPath: folder, credentials: explicit })).credentials, explicit);
});

test('a JSON credentials file, named directly or as credentials.json in the folder', async () => {
  const json = JSON.stringify({ accessKeyId: 'json-id', secretAccessKey: 'json-secret' });
  const folder = await secretFolder('json', { 'credentials.json': json });
  assert.deepEqual(await readS3Secret(folder), { accessKeyId: 'json-id', secretAccessKey: 'json-secret' });
  assert.deepEqual(await readS3Secret(path.join(folder, 'credentials.json')), { accessKeyId: 'json-id', secretAccessKey: 'json-secret' });
});

test('a rotated Secret is read again by the provider', async () => {
  const folder = await secretFolder('rotating', { 'access-key-id': 'id-1', 'secret-access-key': 's-1' });
  const provider = mountedSecretCredentials(folder, 0);
  assert.equal((await provider()).accessKeyId, 'id-1');
  await writeFile(path.join(folder, 'access-key-id'), 'id-2');
  assert.equal((await provider()).accessKeyId, 'id-2');
});

test('a bad Secret fails at configuration time, naming the file and field but never a secret value', async () => {
  const secret = 'TOP-SECRET-VALUE';
  const cases: Array<[string, Record<string, string>, (e: unknown) => boolean]> = [
    ['missing-secret', { 'access-key-id': 'id' }, (e) => e instanceof ArgumentError && /secret-access-key/.test(e.message)],
    ['empty-file', { 'access-key-id': '\n', 'secret-access-key': secret }, (e) => e instanceof FormatError && /access-key-id is empty/.test(e.message)],
    ['bad-json', { 'credentials.json': `{"accessKeyId": "${secret}", ` }, (e) => e instanceof FormatError && /not valid JSON/.test(e.message)],
    ['json-array', { 'credentials.json': `["${secret}"]` }, (e) => e instanceof FormatError && /JSON object/.test(e.message)],
    ['json-field', { 'credentials.json': JSON.stringify({ accessKeyId: secret, secretAccessKey: 5 }) }, (e) => e instanceof FormatError && /secretAccessKey must be/.test(e.message)],
    ['huge', { 'access-key-id': 'x'.repeat(70_000), 'secret-access-key': secret }, (e) => e instanceof FormatError && /over the 65536/.test(e.message)],
    ['nothing', { unrelated: secret }, (e) => e instanceof ArgumentError && /holds neither/.test(e.message)],
  ];
  for (const [name, files, check] of cases) {
    const folder = await secretFolder(name, files);
    await assert.rejects(s3SourceOptionsFrom({ url: 's3://d/', secretPath: folder }), (e: unknown) => {
      assert.ok(!String((e as Error).message).includes(secret), `${name} leaks the secret: ${(e as Error).message}`);
      return check(e);
    }, name);
  }
  await assert.rejects(readS3Secret(path.join(dir, 'no-such-folder')), (e: unknown) => e instanceof ArgumentError && e.argument === 'secretPath');
});

test('parseS3Url refuses anything but s3://bucket[/prefix]', () => {
  assert.deepEqual(parseS3Url('s3://b/p/q'), { bucket: 'b', prefix: 'p/q' });
  assert.deepEqual(parseS3Url('s3://b'), { bucket: 'b', prefix: '' });
  for (const bad of ['http://b/p', 's3://', 's3:///p', 'b/p', '', 42]) {
    assert.throws(() => parseS3Url(bad), (e: unknown) => e instanceof ArgumentError && e.argument === 'url', String(bad));
  }
});
