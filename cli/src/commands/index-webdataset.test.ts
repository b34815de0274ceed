import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MDSWriter, WebDataset, writeWebDatasetShard } from '@shardline/core';
import type { IndexSummary } from './index-webdataset.ts';
import { type CliResult, lastJson, shardline, tempDir } from './test-support.ts';

test('index writes every shard index and index.json, which WebDataset then opens', async (t) => {
  const dir = tempDir(t, 'index');
  const shards = { 'train-000001.tar': 5, 'train-000000.tar': 3 };
  for (const [name, count] of Object.entries(shards)) {
    const samples = Array.from({ length: count }, (_, i) => ({ __key__: `${name.slice(0, -4)}/${i}`, jpg: new Uint8Array(50 + i), cls: i, ...(i === 1 ? { 'seg.png': new Uint8Array(3) } : {}) }));
    await writeWebDatasetShard(path.join(dir, name), samples);
  }
  writeFileSync(path.join(dir, 'README.md'), 'not a shard');
  const r = await shardline(['index', dir, '--json', '--concurrency', '2']);
  assert.equal(r.code, 0, r.stderr);
  const s = lastJson<IndexSummary>(r);
  assert.equal(s.shards, 2);
  assert.equal(s.samples, 8);
  assert.deepEqual(s.suffixes, ['cls', 'jpg', 'seg.png']);
  assert.equal(s.index, path.join(dir, 'index.json'));
  for (const name of Object.keys(shards)) assert.ok(existsSync(path.join(dir, `${name}.idx.json`)), name);

  const ds = await WebDataset.open(dir);
  assert.equal(ds.length, 8);
  assert.deepEqual(ds.index.shards.map((e) => e.raw_data.basename), ['train-000000.tar', 'train-000001.tar'], 'shards in name order');
  assert.equal((await ds.get(3)).__key__, 'train-000001/0');
});

test('index refuses a folder without shards, and an MDS dataset it would overwrite (exit 1)', async (t) => {
  const dir = tempDir(t, 'index');
  const empty = path.join(dir, 'empty');
  mkdirSync(empty);
  const mds = path.join(dir, 'mds');
  const writer = new MDSWriter({ out: mds, columns: { a: 'int' } });
  await writer.write({ a: 1 });
  await writer.finish();
  await writeWebDatasetShard(path.join(mds, 'stray.tar'), [{ __key__: 'k', txt: 'x' }]);
  const [a, b] = (await Promise.all([shardline(['index', empty]), shardline(['index', mds])])) as [CliResult, CliResult];
  assert.equal(a.code, 1);
  assert.match(a.stderr, /holds no \*\.tar shard/);
  assert.equal(b.code, 1);
  assert.match(b.stderr, /index\.json exists and is not a WebDataset index \(a shard has format "mds"\); refusing to overwrite it/);
});
