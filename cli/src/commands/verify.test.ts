import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type MDSIndex, MDSWriter, buildWebDatasetDirectoryIndex, writeWebDatasetShard } from '@shardline/core';
import { type CliResult, lastJson, shardline, tempDir } from './test-support.ts';
import type { VerifySummary } from './verify.ts';

async function writeDataset(dir: string, options: { compression?: string | null; hashes?: ('xxh64' | 'sha256')[] } = {}): Promise<MDSIndex> {
  const writer = new MDSWriter({ out: dir, columns: { id: 'int64', text: 'str' }, compression: options.compression ?? null, hashes: options.hashes ?? ['xxh64'], sizeLimit: 1024 });
  for (let i = 0; i < 100; i++) await writer.write({ id: i, text: `sample ${i} `.repeat(3) });
  return writer.finish();
}

/** Flips one byte in the middle of a file. */
function flipByte(file: string): void {
  const data = readFileSync(file);
  data[data.length >> 1]! ^= 0xff;
  writeFileSync(file, data);
}

test('verify passes on a good dataset: every shard fetched, every hash checked, every sample decoded', async (t) => {
  const dir = tempDir(t, 'verify');
  const index = await writeDataset(dir, { compression: 'zstd', hashes: ['sha256', 'xxh64'] });
  const r = await shardline(['verify', dir, '--json', '--no-progress']);
  assert.equal(r.code, 0, r.stderr);
  const s = lastJson<VerifySummary>(r);
  assert.equal(s.ok, true);
  assert.equal(s.shards, index.shards.length);
  assert.equal(s.shardsChecked, index.shards.length);
  assert.equal(s.samples, 100);
  assert.equal(s.samplesVerified, 100);
  assert.equal(s.bytes, index.shards.reduce((n, sh) => n + sh.zipData!.bytes, 0));
  assert.deepEqual(s.failures, []);
});

test('a flipped byte fails verify with exit 1 naming the first bad shard and the problem, after checking all', async (t) => {
  const dir = tempDir(t, 'verify');
  const index = await writeDataset(dir);
  assert.ok(index.shards.length >= 5);
  const [second, fourth] = [index.shards[2]!.rawData.basename, index.shards[4]!.rawData.basename];
  flipByte(path.join(dir, fourth));
  flipByte(path.join(dir, second));

  const [all, fast] = (await Promise.all([
    shardline(['verify', dir, '--json', '--concurrency', '3']),
    shardline(['verify', dir, '--fail-fast', '--concurrency', '1']),
  ])) as [CliResult, CliResult];
  assert.equal(all.code, 1);
  assert.match(all.stderr, new RegExp(`verify failed: shard 2 \\("${second.replaceAll('.', '\\.')}"\\): .*xxh64 is [0-9a-f]+, the index says ${index.shards[2]!.rawData.hashes.xxh64} \\(and 1 more bad shard\\)`));
  const s = lastJson<VerifySummary>(all);
  assert.equal(s.ok, false);
  assert.equal(s.shardsChecked, index.shards.length, 'every shard is checked');
  assert.deepEqual(s.failures.map((f) => [f.shard, f.file]), [[2, second], [4, fourth]]);
  assert.equal(s.samplesVerified, 100 - index.shards[2]!.samples - index.shards[4]!.samples);

  assert.equal(fast.code, 1);
  assert.match(fast.stdout, /FAILED: .*1 bad shard; stopped after 3 shards \(--fail-fast\)/);
  assert.match(fast.stderr, /verify failed: shard 2 /);
});

test('a missing or truncated shard, and corruption without hashes, are named too', async (t) => {
  const dir = tempDir(t, 'verify');
  const missing = path.join(dir, 'missing');
  const index = await writeDataset(missing);
  rmSync(path.join(missing, index.shards[1]!.rawData.basename));
  const truncated = path.join(dir, 'truncated');
  await writeDataset(truncated);
  truncateSync(path.join(truncated, index.shards[3]!.rawData.basename), 10);
  // No hash to catch it: the shard's layout check does (the first sample offset points into the header).
  const unhashed = path.join(dir, 'unhashed');
  await writeDataset(unhashed, { hashes: [] });
  const first = path.join(unhashed, 'shard.00000.mds');
  const data = readFileSync(first);
  data.writeUInt32LE(1, 4);
  writeFileSync(first, data);

  const [a, b, c] = (await Promise.all([missing, truncated, unhashed].map((d) => shardline(['verify', d])))) as [CliResult, CliResult, CliResult];
  assert.equal(a.code, 1);
  assert.match(a.stderr, /verify failed: shard 1 \("shard\.00001\.mds"\): .*shard\.00001\.mds does not exist/);
  assert.equal(b.code, 1);
  assert.match(b.stderr, /verify failed: shard 3 \("shard\.00003\.mds"\): .*has 10 bytes, the index says \d+/);
  assert.equal(c.code, 1);
  assert.match(c.stderr, /verify failed: shard 0 \("shard\.00000\.mds"\): sample 0 starts at 1, inside the header/);
});

test('verify checks a WebDataset folder: tar and index hashes, and every sample read by position', async (t) => {
  const dir = tempDir(t, 'verify');
  for (const shard of ['a.tar', 'b.tar']) {
    await writeWebDatasetShard(path.join(dir, shard), Array.from({ length: 4 }, (_, i) => ({ __key__: `${shard.slice(0, -4)}-${i}`, txt: `text ${i}`, cls: i })));
  }
  await buildWebDatasetDirectoryIndex(dir);
  const good = await shardline(['verify', dir, '--json']);
  assert.equal(good.code, 0, good.stderr);
  assert.deepEqual([lastJson<VerifySummary>(good).format, lastJson<VerifySummary>(good).samplesVerified], ['webdataset', 8]);

  flipByte(path.join(dir, 'b.tar'));
  const bad = await shardline(['verify', dir]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /verify failed: shard 1 \("b\.tar"\): sha256 is [0-9a-f]{64}, index\.json says [0-9a-f]{64}/);
});
