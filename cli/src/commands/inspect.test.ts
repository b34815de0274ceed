import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MDSWriter, buildWebDatasetDirectoryIndex, writeWebDatasetShard } from '@shardline/core';
import type { InspectSummary } from './inspect.ts';
import { type CliResult, lastJson, shardline, tempDir } from './test-support.ts';

test('inspect --json gives the numbers of index.json: shards, samples, bytes stored and raw, columns', async (t) => {
  const dir = tempDir(t, 'inspect');
  const writer = new MDSWriter({ out: dir, columns: { id: 'int64', text: 'str', x: 'ndarray:float32:4' }, compression: 'zstd', hashes: ['sha1', 'xxh64'], sizeLimit: 2048 });
  for (let i = 0; i < 120; i++) await writer.write({ id: i, text: 'sample '.repeat(i % 7), x: { dtype: 'float32', shape: [4], data: Float32Array.of(i, 1, 2, 3) } });
  const index = await writer.finish();
  assert.ok(index.shards.length > 2);

  const [json, listed, table] = (await Promise.all([
    shardline(['inspect', dir, '--json']),
    shardline(['inspect', dir, '--json', '--shards']),
    shardline(['inspect', dir]),
  ])) as [CliResult, CliResult, CliResult];
  assert.equal(json.code, 0, json.stderr);
  const s = lastJson<InspectSummary>(json);
  assert.equal(s.format, 'mds');
  assert.equal(s.shards, index.shards.length);
  assert.equal(s.samples, 120);
  assert.equal(s.bytes, index.shards.reduce((n, sh) => n + sh.zipData!.bytes, 0));
  assert.equal(s.rawBytes, index.shards.reduce((n, sh) => n + sh.rawData.bytes, 0));
  assert.ok(s.bytes < s.rawBytes, 'zstd shrinks repeated text');
  assert.deepEqual(s.columns, { id: 'int64', text: 'str', x: 'ndarray:float32:4' });
  assert.equal(s.columnsVary, false);
  assert.equal(s.compression, 'zstd');
  assert.deepEqual(s.hashes, ['sha1', 'xxh64']);
  assert.equal(s.sizeLimit, 2048);
  assert.equal(s.shardList, undefined);

  const withShards = lastJson<InspectSummary>(listed).shardList!;
  assert.equal(withShards.length, index.shards.length);
  assert.deepEqual(withShards[1], { shard: 1, file: 'shard.00001.mds.zstd', samples: index.shards[1]!.samples, bytes: index.shards[1]!.zipData!.bytes, rawBytes: index.shards[1]!.rawData.bytes });

  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /│ samples\s+│ 120\s+│/);
  assert.match(table.stdout, /│ x\s+│ ndarray:float32:4\s+│/);
  assert.match(table.stdout, /│ hashes\s+│ sha1, xxh64\s+│/);
});

test('inspect reads a WebDataset folder indexed by shardline', async (t) => {
  const dir = tempDir(t, 'inspect');
  for (const [shard, first] of [['train-0.tar', 0], ['train-1.tar', 3]] as const) {
    const samples = Array.from({ length: 3 }, (_, i) => ({ __key__: `s${first + i}`, jpg: new Uint8Array(100 + i), cls: first + i, ...(i === 0 ? { json: { a: 1 } } : {}) }));
    await writeWebDatasetShard(path.join(dir, shard), samples);
  }
  const index = await buildWebDatasetDirectoryIndex(dir);
  const r = await shardline(['inspect', dir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = lastJson<InspectSummary>(r);
  assert.equal(s.format, 'webdataset');
  assert.equal(s.shards, 2);
  assert.equal(s.samples, 6);
  assert.equal(s.bytes, index.shards.reduce((n, sh) => n + sh.raw_data.bytes, 0));
  assert.equal(s.indexBytes, index.shards.reduce((n, sh) => n + sh.index_data.bytes, 0));
  assert.deepEqual(s.columns, { cls: 'bytes', jpg: 'bytes', json: 'bytes' });
  assert.deepEqual(s.hashes, ['sha256']);
});

test('a folder without index.json, or with a hostile one, fails with exit 1 and says why', async (t) => {
  const dir = tempDir(t, 'inspect');
  const empty = path.join(dir, 'empty');
  mkdirSync(empty);
  const hostile = path.join(dir, 'hostile');
  mkdirSync(hostile);
  const shard = {
    column_encodings: ['int'], column_names: ['a'], column_sizes: [8], compression: null, format: 'mds', hashes: [],
    raw_data: { basename: '../../etc/passwd', bytes: 100, hashes: {} }, samples: 1, size_limit: null, version: 2, zip_data: null,
  };
  writeFileSync(path.join(hostile, 'index.json'), JSON.stringify({ version: 2, shards: [shard] }));
  const [a, b] = await Promise.all([shardline(['inspect', empty]), shardline(['inspect', hostile, '--json'])]);
  assert.equal(a.code, 1);
  assert.match(a.stderr, /empty\/index\.json does not exist: not a dataset/);
  assert.equal(b.code, 1);
  assert.match(b.stderr, /hostile\/index\.json: shard 0 \("\.\.\/\.\.\/etc\/passwd"\): raw_data\.basename: .* is not a safe relative key: it has a '\.\.' segment/);
  assert.equal(b.stdout, '', 'no JSON for a dataset that could not be read');
});
