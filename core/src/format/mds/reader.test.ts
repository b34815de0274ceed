import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatasetError, FormatError, IndexOutOfRangeError } from '../../errors.ts';
import { formatMDSIndex, parseMDSIndex, type MDSIndex } from './index-file.ts';
import { MDSDataset, type MDSFileReader, mdsDirectoryReader, loadMDSShard, mdsStoredFile } from './reader.ts';
import { FIXTURES, loadExpected, reviveSample } from './test-values.ts';

const ROLLOVER = path.join(FIXTURES, 'rollover-zstd');
const want = loadExpected().datasets['rollover-zstd']!;
const samples = want.samples!.map((s) => reviveSample(want.columns, s));

/** The files of a fixture dataset in memory, counting reads; `edit` may change any file. */
function memory(dir: string, edit: (files: Map<string, Uint8Array>) => void = () => {}): MDSFileReader & { reads: string[] } {
  const files = new Map(readdirSync(dir).map((f) => [f, new Uint8Array(readFileSync(path.join(dir, f)))]));
  edit(files);
  const reads: string[] = [];
  return {
    reads,
    async read(key, options = {}) {
      reads.push(key);
      await new Promise((r) => setImmediate(r));
      const data = files.get(key);
      if (data === undefined) throw new DatasetError(`${key} does not exist`);
      if (options.maxBytes !== undefined && data.length > options.maxBytes) throw new FormatError(`${key} is too large`);
      return data;
    },
  };
}

async function rejectsFormat(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('global sample ids map across shards by prefix sums, negative ids from the end', async () => {
  const files = memory(ROLLOVER);
  const ds = await MDSDataset.open(files);
  assert.deepEqual(ds.index.shards.map((s) => s.samples), [4, 1, 5, 1]);
  assert.equal(ds.length, 11);
  assert.deepEqual(ds.locate(0), { shard: 0, offset: 0 });
  assert.deepEqual(ds.locate(4), { shard: 1, offset: 0 });
  assert.deepEqual(ds.locate(9), { shard: 2, offset: 4 });
  assert.deepEqual(ds.locate(-1), { shard: 3, offset: 0 });
  for (const id of [10, 0, 5, 4, 9]) assert.deepStrictEqual(await ds.get(id), samples[id]);
  assert.deepStrictEqual(await ds.get(-11), samples[0]);
  await assert.rejects(ds.get(11), IndexOutOfRangeError);
  await assert.rejects(ds.get(1.5), /sample id: must be an integer/);
});

test('shards are fetched once, kept up to maxOpenShards, and concurrent requests share one fetch', async () => {
  const files = memory(ROLLOVER);
  const ds = await MDSDataset.open(files, { maxOpenShards: 2 });
  files.reads.length = 0;
  const got = await Promise.all([0, 1, 2, 3, 0, 1, 2, 3].map((id) => ds.get(id)));
  assert.deepStrictEqual(got, [...samples.slice(0, 4), ...samples.slice(0, 4)]);
  assert.deepEqual(files.reads, ['shard.00000.mds.zstd']);
  await ds.get(4); // shard 1
  await ds.get(5); // shard 2: shard 0 is evicted
  await ds.get(4);
  assert.deepEqual(files.reads, ['shard.00000.mds.zstd', 'shard.00001.mds.zstd', 'shard.00002.mds.zstd']);
  await ds.get(0);
  assert.equal(files.reads.at(-1), 'shard.00000.mds.zstd');
  assert.throws(() => new MDSDataset(ds.index, files, { maxOpenShards: 0 }), /maxOpenShards/);
});

test('iterating gives every sample in order, skipping empty shards', async () => {
  const tiny = loadExpected().datasets['tiny-limit']!;
  const ds = await MDSDataset.open(path.join(FIXTURES, 'tiny-limit'));
  const all = [];
  for await (const s of ds) all.push(s);
  assert.deepStrictEqual(all, tiny.samples!.map((s) => reviveSample(tiny.columns, s)));
  assert.equal((await ds.shard(0)).length, 0);
});

test('verifyHashes catches any changed byte; sizes are always checked', async () => {
  const flip = (name: string, at: number) => (files: Map<string, Uint8Array>) => {
    const data = files.get(name)!.slice();
    data[at]! ^= 1;
    files.set(name, data);
  };
  // A flipped byte in the compressed file: the zip hash names the file and algorithm.
  let ds = await MDSDataset.open(memory(ROLLOVER, flip('shard.00002.mds.zstd', 40)), { verifyHashes: true });
  await rejectsFormat(ds.get(6), /^shard 2 \("shard\.00002\.mds"\): "shard\.00002\.mds\.zstd": sha1 is [0-9a-f]{40}, the index says [0-9a-f]{40}/);
  ds = await MDSDataset.open(memory(ROLLOVER, flip('shard.00002.mds.zstd', 40)), { verifyHashes: ['xxh64'] });
  await rejectsFormat(ds.get(6), /: xxh64 is [0-9a-f]{16}, the index says/);
  await rejectsFormat(
    (await MDSDataset.open(memory(ROLLOVER), { verifyHashes: ['md5'] })).get(0),
    /^shard 0 \("shard\.00000\.mds"\): the index has no md5 hash \(it has sha1, xxh64\)/,
  );
  // A shorter file fails its size check before anything else.
  const truncated = (files: Map<string, Uint8Array>) => files.set('shard.00001.mds.zstd', files.get('shard.00001.mds.zstd')!.subarray(0, 30));
  await rejectsFormat((await MDSDataset.open(memory(ROLLOVER, truncated))).get(4), /"shard\.00001\.mds\.zstd" has 30 bytes, the index says \d+/);
  // A failed load is not cached: a later call tries again.
  const files = memory(ROLLOVER, truncated);
  ds = await MDSDataset.open(files);
  await assert.rejects(ds.get(4));
  await assert.rejects(ds.get(4));
  assert.equal(files.reads.filter((r) => r === 'shard.00001.mds.zstd').length, 2);
});

test('an index that lies about the raw data is caught when the shard is loaded', async () => {
  const index = parseMDSIndex(readFileSync(path.join(ROLLOVER, 'index.json')));
  const stored = new Uint8Array(readFileSync(path.join(ROLLOVER, 'shard.00000.mds.zstd')));
  const lie = (edit: (s: Record<string, unknown>) => void): MDSIndex => {
    const json = JSON.parse(formatMDSIndex(index)) as { shards: Record<string, unknown>[] };
    edit(json.shards[0]!);
    return parseMDSIndex(json);
  };
  const raw = (s: Record<string, unknown>) => s.raw_data as Record<string, unknown>;
  await rejectsFormat(loadMDSShard(lie((s) => (raw(s).bytes = 400)).shards[0]!, stored, { label: 'shard 0' }), /^shard 0: "shard\.00000\.mds\.zstd": decompresses to more than the 400 bytes the index gives/);
  await rejectsFormat(loadMDSShard(lie((s) => (raw(s).bytes = 600)).shards[0]!, stored, { label: 'shard 0' }), /decompresses to 500 bytes, but the index gives 600/);
  await rejectsFormat(loadMDSShard(lie((s) => (s.samples = 5)).shards[0]!, stored), /^shard "shard\.00000\.mds": the file holds 4 samples, the index says 5/);
  await rejectsFormat(
    loadMDSShard(lie((s) => (raw(s).hashes = { sha1: 'ab'.repeat(20), xxh64: '00' })).shards[0]!, stored, { verifyHashes: true }),
    /"shard\.00000\.mds": sha1 is 22991f7bd4aa8ecdaed3733f126f5dfbf614d4bb, the index says abab/,
  );
  await rejectsFormat(loadMDSShard(lie((s) => (s.compression = 'bz2')).shards[0]!, stored), /compression "bz2" is not supported by Shardline/);
  assert.equal(mdsStoredFile(index.shards[0]!).basename, 'shard.00000.mds.zstd');
  assert.equal((await loadMDSShard(index.shards[0]!, stored, { verifyHashes: true })).length, 4);
});

test('mdsDirectoryReader reads inside its directory only, with clear errors', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'shardline-mds-reader-'));
  try {
    writeFileSync(path.join(dir, 'a.bin'), 'hello');
    const files = mdsDirectoryReader(dir);
    assert.equal(Buffer.from(await files.read('a.bin')).toString(), 'hello');
    await assert.rejects(files.read('missing.mds'), (e: unknown) => e instanceof DatasetError && /missing\.mds does not exist/.test(e.message));
    await rejectsFormat(files.read('../escape'), /"\.\.\/escape" is not a safe relative key: it has a '\.\.' segment/);
    await rejectsFormat(files.read('/etc/passwd'), /is absolute/);
    await rejectsFormat(files.read('a.bin', { maxBytes: 4 }), /a\.bin has 5 bytes, more than the 4 expected/);
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(files.read('a.bin', { signal: controller.signal }), /abort/i);
    await assert.rejects(MDSDataset.open(dir), (e: unknown) => e instanceof DatasetError && /index\.json does not exist/.test(e.message));
    writeFileSync(path.join(dir, 'index.json'), '{"version": 2, "shards": [{}]}');
    await rejectsFormat(MDSDataset.open(dir), /^index\.json: shard 0: /);
    assert.throws(() => mdsDirectoryReader(''), /directory: must be a non-empty path/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a shard file that is missing is a DatasetError naming it', async () => {
  const ds = await MDSDataset.open(memory(ROLLOVER, (files) => files.delete('shard.00003.mds.zstd')));
  await assert.rejects(ds.get(10), (e: unknown) => e instanceof DatasetError && /shard\.00003\.mds\.zstd does not exist/.test(e.message));
  assert.deepStrictEqual(await ds.get(9), samples[9]);
});
