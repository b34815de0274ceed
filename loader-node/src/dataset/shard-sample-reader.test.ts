/**
 * ShardSampleReader against core's MDSDataset on the same files: every sample of an uncompressed
 * and of a zstd dataset reads to the same values (any order, any subset: a property test), one
 * lease at a time and every lease returned; a compressed shard is decoded once and kept; and
 * files changed behind the cache's back (offsets out of the file, a truncated file, a column
 * whose bytes do not decode) give FormatErrors naming the shard and the sample's real offset.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { ArgumentError, FormatError, MDSDataset, MDSWriter, mdsStoredFile, type MDSSample } from '@shardline/core';
import { ShardSampleReader, type ShardLease } from './shard-sample-reader.ts';

const SAMPLES = 60;
const root = mkdtempSync(path.join(tmpdir(), 'shard-sample-reader-'));
after(() => rmSync(root, { recursive: true, force: true }));

function sampleOf(i: number): MDSSample {
  return {
    id: BigInt(i),
    name: `sample ${i} ${'é'.repeat(i % 5)}`,
    // Variable shape: the size prefix of each sample differs.
    v: { dtype: 'float32', shape: [1 + (i % 4)], data: Float32Array.from({ length: 1 + (i % 4) }, (_, k) => i + k / 10) },
    raw: Uint8Array.from({ length: i % 7 }, (_, k) => (i * 31 + k) & 0xff),
    meta: { i, even: i % 2 === 0 },
  };
}

async function write(name: string, compression: string | null, samples: readonly MDSSample[] = Array.from({ length: SAMPLES }, (_, i) => sampleOf(i))): Promise<string> {
  const out = path.join(root, name);
  const writer = new MDSWriter({ out, columns: { id: 'int64', name: 'str', v: 'ndarray:float32', raw: 'bytes', meta: 'json' }, compression, sizeLimit: 700 });
  for (const s of samples) await writer.write(s);
  await writer.finish();
  return out;
}

/** Leases straight from a dataset folder, counting them: at most one held at a time. */
function folderLeases(dataset: MDSDataset, dir: string, files: (shard: number) => string = (s) => path.join(dir, mdsStoredFile(dataset.index.shards[s]!).basename)) {
  const stats = { leased: 0, held: 0, maxHeld: 0 };
  const lease = async (shard: number): Promise<ShardLease> => {
    stats.leased++;
    stats.held++;
    stats.maxHeld = Math.max(stats.maxHeld, stats.held);
    let released = false;
    return {
      file: files(shard),
      info: dataset.index.shards[shard]!,
      release: () => {
        assert.ok(!released, 'a lease is released once');
        released = true;
        stats.held--;
      },
    };
  };
  return { lease, stats };
}

async function readAll(reader: ShardSampleReader, dataset: MDSDataset, ids: readonly number[]): Promise<MDSSample[]> {
  const out: MDSSample[] = [];
  for (const id of ids) {
    const { shard, offset } = dataset.locate(id);
    out.push(await reader.withShard(shard, (s) => s.get(offset)));
  }
  return out;
}

let rawDir: string;
let zstdDir: string;
let manyDir: string;
before(async () => {
  manyDir = path.join(root, 'many');
  // One shard whose offset table is too large to read whole: offsets are read per sample.
  const many = new MDSWriter({ out: manyDir, columns: { v: 'uint16', s: 'str' }, sizeLimit: null });
  for (let i = 0; i < 5000; i++) await many.write({ v: i, s: 'x'.repeat(i % 3) });
  await many.finish();
  [rawDir, zstdDir] = await Promise.all([write('raw', null), write('zstd', 'zstd')]);
});

for (const [kind, syncReads] of [['raw', false], ['raw', true], ['zstd', false], ['zstd', true], ['many', false], ['many', true]] as const) {
  test(`${kind}${syncReads ? ', blocking reads' : ''}: every sample reads as MDSDataset reads it, in any order, one lease at a time`, async () => {
    const dir = { raw: rawDir, zstd: zstdDir, many: manyDir }[kind];
    const dataset = await MDSDataset.open(dir);
    assert.ok(kind === 'many' || dataset.index.shards.length >= 4, `several shards, got ${dataset.index.shards.length}`);
    const expected = await Promise.all(Array.from({ length: dataset.length }, (_, i) => dataset.get(i)));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: dataset.length - 1 }), { minLength: 1, maxLength: 40 }), async (ids) => {
        const { lease, stats } = folderLeases(dataset, dir);
        const reader = new ShardSampleReader(lease, { maxDecodedShards: 2, syncReads });
        assert.deepStrictEqual(await readAll(reader, dataset, ids), ids.map((i) => expected[i]));
        assert.equal(stats.held, 0, 'every lease was returned');
        assert.equal(stats.maxHeld, 1, 'one lease at a time');
      }),
      { numRuns: 40 },
    );
  });
}

test('zstd: a decompressed shard is kept, and its file is not leased again while it is', async () => {
  const dataset = await MDSDataset.open(zstdDir);
  const { lease, stats } = folderLeases(dataset, zstdDir);
  const reader = new ShardSampleReader(lease, { maxDecodedShards: 2 });
  const first = dataset.index.shards[0]!.samples;
  await reader.withShard(0, async (s) => [await s.get(0), await s.get(first - 1)]);
  await reader.withShard(0, (s) => s.get(1));
  assert.equal(stats.leased, 1, 'shard 0 leased once');
  // Two more shards push shard 0 out of the LRU of two.
  await reader.withShard(1, (s) => s.get(0));
  await reader.withShard(2, (s) => s.get(0));
  await reader.withShard(0, (s) => s.get(0));
  assert.equal(stats.leased, 4);
  // Concurrent reads of one shard share its decompression.
  await Promise.all([reader.withShard(3, (s) => s.get(0)), reader.withShard(3, (s) => s.get(1))]);
  assert.equal(stats.leased, 6, 'the second read took its lease and gave it back');
  assert.equal(stats.held, 0);
});

test('raw: a lease is held while the shard is read and returned when the read fails', async () => {
  const dataset = await MDSDataset.open(rawDir);
  const { lease, stats } = folderLeases(dataset, rawDir);
  const reader = new ShardSampleReader(lease);
  await reader.withShard(1, async () => assert.equal(stats.held, 1));
  await assert.rejects(reader.withShard(1, (s) => s.get(dataset.index.shards[1]!.samples)), (e: unknown) => e instanceof ArgumentError && e.argument === 'offset');
  await assert.rejects(reader.withShard(1, async () => Promise.reject(new Error('the caller failed'))), /the caller failed/);
  assert.equal(stats.held, 0, 'every lease was returned');
  assert.throws(() => new ShardSampleReader(lease, { maxDecodedShards: 0 }), (e: unknown) => e instanceof ArgumentError && e.argument === 'maxDecodedShards');
  await assert.rejects(reader.withShard(-1, (s) => s.get(0)), (e: unknown) => e instanceof ArgumentError && e.argument === 'shard');
  // A lender's error passes unchanged.
  const refusing = new ShardSampleReader(() => Promise.reject(new Error('quarantined')));
  await assert.rejects(refusing.withShard(0, (s) => s.get(0)), /^Error: quarantined$/);
});

test('raw: files changed behind the cache give FormatErrors naming the shard and the sample', async () => {
  const dataset = await MDSDataset.open(rawDir);
  const info = dataset.index.shards[1]!;
  const label = `shard 1 \\("${info.rawData.basename.replaceAll('.', '\\.')}"\\)`;
  const original = path.join(rawDir, info.rawData.basename);
  const copy = path.join(root, 'tampered.mds');
  const reader = new ShardSampleReader(folderLeases(dataset, rawDir, () => copy).lease);

  // Sample 2 made to end past the file.
  copyFileSync(original, copy);
  const bytes = readFileSync(copy);
  bytes.writeUInt32LE(info.rawData.bytes + 10, 4 + 4 * 3);
  writeFileSync(copy, bytes);
  await assert.rejects(reader.withShard(1, (s) => s.get(2)), (e: unknown) => {
    assert.ok(e instanceof FormatError, String(e));
    assert.match(e.message, new RegExp(`^${label}, sample 2: offsets \\[\\d+, \\d+\\) are outside the samples`));
    return true;
  });
  // The file cut short inside the last sample.
  copyFileSync(original, copy);
  truncateSync(copy, info.rawData.bytes - 3);
  await assert.rejects(reader.withShard(1, (s) => s.get(info.samples - 1)), new RegExp(`^FormatError: ${label}, sample ${info.samples - 1}: the file ends at byte \\d+, 3 bytes short`));
});

test('raw: a column whose bytes do not decode is named with its sample offset in the real shard', async () => {
  const samples = Array.from({ length: 12 }, (_, i) => sampleOf(i));
  // Bytes already encoded go in as they are (the writer's escape hatch): not UTF-8 in a str column.
  samples[9] = { ...samples[9]!, name: Uint8Array.of(0xff, 0xfe, 0x41) };
  const dir = await write('bad-utf8', null, samples);
  const dataset = await MDSDataset.open(dir);
  const { shard, offset } = dataset.locate(9);
  assert.ok(offset > 0, 'the bad sample is not the first of its shard');
  const reader = new ShardSampleReader(folderLeases(dataset, dir).lease);
  await assert.rejects(reader.withShard(shard, (s) => s.get(offset)), (e: unknown) => {
    assert.ok(e instanceof FormatError, String(e));
    assert.match(e.message, new RegExp(`^shard ${shard} \\("shard\\.\\d+\\.mds"\\), sample ${offset}, column "name": `));
    return true;
  });
  await assert.rejects(dataset.get(9), (e: unknown) => e instanceof FormatError, 'MDSDataset refuses it too');
});
