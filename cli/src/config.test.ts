import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  ConfigError,
  defaults,
  parseDemoConfig,
  parseIndexConfig,
  parseInspectConfig,
  parseVerifyConfig,
  parseWriteConfig,
  verifyDefaults,
  writeDefaults,
} from './config.ts';

test('flags override defaults and are coerced from strings', () => {
  const c = parseDemoConfig({ samples: '500', workers: '0', shuffle: false }, {});
  assert.equal(c.samples, 500);
  assert.equal(c.workers, 0);
  assert.equal(c.shuffle, false);
  assert.equal(c.batchSize, defaults().batchSize);
});

test('bad flag values are refused with the flag and the value named', () => {
  assert.throws(() => parseDemoConfig({ samples: '-3' }, {}), (e: Error) => e instanceof ConfigError && /--samples must be in \[1, .*got "-3"/.test(e.message));
  assert.throws(() => parseDemoConfig({ batchSize: 'many' }, {}), /--batch-size must be .*got "many"/);
  assert.throws(() => parseDemoConfig({ workers: '1.5' }, {}), /--workers must be an integer/);
  assert.throws(() => parseDemoConfig({}, { SHARDLINE_LOG_LEVEL: 'loud' }), /SHARDLINE_LOG_LEVEL/);
});

const tty = { stderrIsTTY: true };

test('write: flags over the defaults, parsed into sizes, sorted hashes and columns', () => {
  const c = parseWriteConfig(
    { input: 'data/in.jsonl', output: 'out' },
    { sizeLimit: '512kb', compression: 'zstd:7', hashes: 'xxh64,sha256,xxh64', columns: 'id:int64,x:ndarray:float32:3,32,32,t:str' },
    {},
    tty,
  );
  assert.equal(c.input, path.resolve('data/in.jsonl'));
  assert.deepEqual(c.output, { type: 'local', path: path.resolve('out') });
  assert.equal(c.sizeLimit, 512 * 1024);
  assert.equal(c.compression, 'zstd:7');
  assert.deepEqual(c.hashes, ['sha256', 'xxh64']);
  assert.deepEqual(c.columns, { id: 'int64', x: 'ndarray:float32:3,32,32', t: 'str' });
  assert.equal(c.from, writeDefaults().from);
  assert.equal(c.progress, true);

  const d = parseWriteConfig({ input: 'in', output: 's3://bucket/some/prefix' }, { compression: 'none', hashes: 'none', sizeLimit: '0', progress: true }, {}, { stderrIsTTY: false });
  assert.deepEqual(d.output, { type: 's3', url: 's3://bucket/some/prefix/', bucket: 'bucket', prefix: 'some/prefix/' });
  assert.equal(d.compression, null);
  assert.deepEqual(d.hashes, []);
  assert.equal(d.sizeLimit, null, '0 means one shard');
  assert.equal(d.progress, false, 'no bars when stderr is not a terminal');
  assert.deepEqual(writeDefaults().hashes, ['xxh64']);
});

test('write: every bad flag is refused naming the flag and the value', () => {
  const bad = (flags: Record<string, unknown>, pattern: RegExp, args = { input: 'in', output: 'out' }): void =>
    assert.throws(() => parseWriteConfig(args, flags, {}, tty), (e: Error) => e instanceof ConfigError && pattern.test(e.message), JSON.stringify(flags));
  bad({ compression: 'lz4' }, /--compression must be .* or none, got "lz4"/);
  bad({ compression: 'bz2' }, /--compression .*got "bz2"/);
  bad({ compression: 'zstd:99' }, /got "zstd:99"/);
  bad({ sizeLimit: 'lots' }, /--size-limit must be bytes or a size like 64mb.*got "lots"/);
  bad({ sizeLimit: '5gb' }, /below 4gb, got "5gb"/);
  bad({ hashes: 'sha256,crc9' }, /--hashes: "crc9" is not a hash algorithm.*got "sha256,crc9"/);
  bad({ from: 'csv' }, /--from must be one of auto, files, imagefolder, jsonl, npy, got "csv"/);
  bad({ columns: 'id' }, /--columns must be name:encoding pairs .*"id" is not one, got "id"/);
  bad({ columns: 'a:int64,a:str' }, /--columns names the column "a" twice/);
  bad({ columns: 'a:pkl' }, /--columns: column "a": pkl \(pickle\) runs code when read/);
  bad({ columns: 'a:jpg' }, /--columns: column "a" has the unknown encoding "jpg"/);
  bad({ logLevel: 'loud' }, /--log-level must be one of/);
  bad({}, /<output> must be s3:\/\/bucket\/prefix\/ with a valid bucket name.*got "s3:\/\/Bad_Bucket\/x"/, { input: 'in', output: 's3://Bad_Bucket/x' });
  bad({}, /<output> has an unsafe prefix .*'\.\.' segment/, { input: 'in', output: 's3://bucket/a/../b' });
  bad({}, /<output> must be a local directory or s3:\/\/bucket\/prefix\/, got "gs:\/\/b\/p"/, { input: 'in', output: 'gs://b/p' });
  bad({}, /<input> must be a local directory \(this command does not work on S3\)/, { input: 's3://bucket/x', output: 'out' });
  bad({}, /<input> is required/, { input: undefined, output: 'out' } as unknown as { input: string; output: string });
});

test('S3 settings come from flags over AWS_* variables; credentials must come in pairs and are never echoed', () => {
  const args = { location: 's3://bucket/p/' };
  const env = { AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL: 'http://minio:9000', AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 'sekrit' };
  const fromEnv = parseInspectConfig(args, {}, env);
  assert.deepEqual(fromEnv.s3, { region: 'eu-west-1', endpoint: 'http://minio:9000', credentials: { accessKeyId: 'AKIA', secretAccessKey: 'sekrit' } });
  const fromFlags = parseInspectConfig(args, { region: 'us-west-2', endpoint: 'https://s3.example' }, { ...env, AWS_ENDPOINT_URL: '  ' });
  assert.equal(fromFlags.s3.region, 'us-west-2');
  assert.equal(fromFlags.s3.endpoint, 'https://s3.example');
  assert.deepEqual(parseInspectConfig(args, {}, {}).s3, { region: 'us-east-1', endpoint: undefined, credentials: undefined });

  assert.throws(() => parseInspectConfig(args, { endpoint: 'ftp://x' }, {}), /--endpoint \(or AWS_ENDPOINT_URL\) must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/x"/);
  assert.throws(() => parseInspectConfig(args, { region: 'Mars 1' }, {}), /--region \(or AWS_REGION\) must be a region name/);
  assert.throws(
    () => parseInspectConfig(args, {}, { AWS_SECRET_ACCESS_KEY: 'sekrit' }),
    (e: Error) => e instanceof ConfigError && /must be set together/.test(e.message) && !e.message.includes('sekrit'),
  );
  assert.throws(() => parseInspectConfig(args, {}, { AWS_SESSION_TOKEN: 'tok' }), (e: Error) => /AWS_SESSION_TOKEN is set/.test(e.message) && !e.message.includes('tok'));
});

test('verify and index: concurrency bounds, local-only index', () => {
  assert.equal(parseVerifyConfig({ location: 'd' }, { concurrency: '8', failFast: true }, {}, tty).concurrency, 8);
  assert.equal(parseVerifyConfig({ location: 'd' }, {}, {}, tty).concurrency, verifyDefaults().concurrency);
  assert.throws(() => parseVerifyConfig({ location: 'd' }, { concurrency: '0' }, {}, tty), /--concurrency must be in \[1, 64\], got "0"/);
  assert.equal(parseIndexConfig({ directory: 'shards' }, {}, {}, tty).directory, path.resolve('shards'));
  assert.throws(() => parseIndexConfig({ directory: 's3://b/p' }, {}, {}, tty), /<directory> must be a local directory/);
});
