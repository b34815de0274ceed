import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ArgumentError, FormatError } from '../../errors.ts';
import {
  type WebDatasetDatasetIndex,
  type WebDatasetIndexProgress,
  buildWebDatasetDirectoryIndex,
  checkShardIndex,
  parseWebDatasetDatasetIndex,
  readWebDatasetDatasetIndex,
} from './dataset-index.ts';
import { WebDataset } from './dataset.ts';
import { readWebDatasetShard } from './reader.ts';
import { readWebDatasetShardIndex } from './shard-index.ts';
import { archive, member } from './test-tar.ts';
import { encodeWebDatasetShard } from './writer.ts';

function withTempDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'shardline-wds-dataset-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** Writes `shards` (name → sample count) of small samples into `dir` and returns their bytes. */
async function makeShards(dir: string, shards: Record<string, number>): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const [name, count] of Object.entries(shards)) {
    const bytes = await encodeWebDatasetShard(
      Array.from({ length: count }, (_, i) => ({ __key__: `${name.replace('.tar', '')}/${String(i).padStart(4, '0')}`, cls: i, txt: `${name}#${i}`, ...(i % 2 === 0 && { json: { i } }) })),
    );
    writeFileSync(path.join(dir, name), bytes);
    out[name] = bytes;
  }
  return out;
}

test(
  'indexes every *.tar of a directory: one idx.json per shard and an index.json in Mosaic shape',
  withTempDir(async (dir) => {
    const shards = await makeShards(dir, { 'b-001.tar': 3, 'a-000.tar': 2, 'c-002.tar': 0 });
    writeFileSync(path.join(dir, 'notes.txt'), 'not a shard');
    mkdirSync(path.join(dir, 'sub.tar'));
    mkdirSync(path.join(dir, 'nested'));
    writeFileSync(path.join(dir, 'nested', 'x.tar'), shards['a-000.tar']!);
    const events: WebDatasetIndexProgress[] = [];
    const index = await buildWebDatasetDirectoryIndex(dir, { onProgress: (e) => events.push(e) });

    assert.deepEqual(readdirSync(dir).sort(), ['a-000.tar', 'a-000.tar.idx.json', 'b-001.tar', 'b-001.tar.idx.json', 'c-002.tar', 'c-002.tar.idx.json', 'index.json', 'nested', 'notes.txt', 'sub.tar']);
    const idxA = readFileSync(path.join(dir, 'a-000.tar.idx.json'));
    assert.deepEqual(index.shards[0], {
      format: 'webdataset',
      version: 1,
      samples: 2,
      suffixes: ['cls', 'json', 'txt'],
      raw_data: { basename: 'a-000.tar', bytes: shards['a-000.tar']!.length, hashes: { sha256: sha256(shards['a-000.tar']!) } },
      zip_data: null,
      compression: null,
      hashes: ['sha256'],
      index_data: { basename: 'a-000.tar.idx.json', bytes: idxA.length, hashes: { sha256: sha256(idxA) } },
    });
    assert.deepEqual(index.shards.map((s) => [s.raw_data.basename, s.samples]), [['a-000.tar', 2], ['b-001.tar', 3], ['c-002.tar', 0]]);
    assert.deepEqual(index.shards[2]!.suffixes, []);
    const json = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8'));
    assert.equal(json.version, 2);
    assert.deepEqual(json, index);
    assert.deepEqual(await readWebDatasetDatasetIndex(dir), index);
    for (const entry of index.shards) checkShardIndex(entry, await readWebDatasetShardIndex(path.join(dir, entry.index_data.basename)));

    assert.deepEqual(events[0], { type: 'start', shards: 3, bytes: Object.values(shards).reduce((a, b) => a + b.length, 0) });
    assert.deepEqual(events.at(-1), { type: 'done', shards: 3, samples: 5, bytes: Object.values(shards).reduce((a, b) => a + b.length, 0) });
    assert.deepEqual(
      events.filter((e) => e.type === 'shard-done').map((e) => [e.shard, e.samples]),
      [['a-000.tar', 2], ['b-001.tar', 3], ['c-002.tar', 0]],
    );
    // Each shard starts, reports its bytes, then is done.
    for (const name of Object.keys(shards)) {
      const mine = events.filter((e) => 'shard' in e && e.shard === name).map((e) => e.type);
      assert.deepEqual(mine, ['shard-start', 'shard-progress', 'shard-done'], name);
    }

    // Rebuilding gives the same bytes; concurrency does not change the result.
    const before = readFileSync(path.join(dir, 'index.json'));
    await buildWebDatasetDirectoryIndex(dir, { concurrency: 3 });
    assert.ok(readFileSync(path.join(dir, 'index.json')).equals(before));
  }),
);

test(
  'WebDataset.open reads every sample by global id, equal to reading the shards in order',
  withTempDir(async (dir) => {
    await makeShards(dir, { 's-0.tar': 3, 's-1.tar': 0, 's-2.tar': 4 });
    await buildWebDatasetDirectoryIndex(dir);
    const ds = await WebDataset.open(dir);
    assert.equal(ds.length, 7);
    const sequential = [];
    for (const name of ['s-0.tar', 's-1.tar', 's-2.tar']) for await (const s of readWebDatasetShard(path.join(dir, name))) sequential.push(s);
    for (let i = ds.length - 1; i >= 0; i--) assert.deepEqual(await ds.get(i), sequential[i]);
    assert.deepEqual(ds.datasetIndex(3), { dataset: 2, offset: 0 });
    assert.equal(ds.shards.length, 3);

    // A shard replaced after indexing: caught at the next read.
    writeFileSync(path.join(dir, 's-2.tar'), Buffer.concat([readFileSync(path.join(dir, 's-2.tar')), Buffer.alloc(512)]));
    await assert.rejects(ds.get(4), (e: unknown) => e instanceof FormatError && /s-2\.tar: the file is \d+ bytes but its index says/.test(e.message));
  }),
);

test(
  'WebDataset.open refuses shard indexes that disagree with index.json',
  withTempDir(async (dir) => {
    await makeShards(dir, { 's-0.tar': 2 });
    await buildWebDatasetDirectoryIndex(dir);
    const idxFile = path.join(dir, 's-0.tar.idx.json');
    const original = readFileSync(idxFile);
    writeFileSync(idxFile, Buffer.concat([original.subarray(0, -2), Buffer.from(' \n')]));
    await assert.rejects(WebDataset.open(dir), /s-0\.tar\.idx\.json: the file's sha256 is [0-9a-f]+ but index\.json says/);
    writeFileSync(idxFile, Buffer.concat([original, Buffer.from(' ')]));
    await assert.rejects(WebDataset.open(dir), /s-0\.tar\.idx\.json: the file is \d+ bytes but index\.json says/);
  }),
);

test(
  'refuses a directory without shards, a malformed shard, and an index.json that is not WebDataset',
  withTempDir(async (dir) => {
    await assert.rejects(buildWebDatasetDirectoryIndex(dir), (e: unknown) => e instanceof ArgumentError && /holds no \*\.tar shard/.test(e.message));
    await assert.rejects(buildWebDatasetDirectoryIndex(''), ArgumentError);
    await assert.rejects(buildWebDatasetDirectoryIndex(dir, { concurrency: 0 }), /concurrency/);

    await makeShards(dir, { 'a.tar': 1 });
    writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ version: 2, shards: [{ format: 'mds', samples: 1 }] }));
    await assert.rejects(buildWebDatasetDirectoryIndex(dir), /index\.json exists and is not a WebDataset index \(a shard has format "mds"\); refusing to overwrite it/);
    writeFileSync(path.join(dir, 'index.json'), '{oops');
    await assert.rejects(buildWebDatasetDirectoryIndex(dir), /cannot be read as JSON/);
    rmSync(path.join(dir, 'index.json'));

    writeFileSync(path.join(dir, 'b.tar'), archive(member('x.txt', 'x'), member('x.TXT', 'y')));
    await assert.rejects(buildWebDatasetDirectoryIndex(dir, { concurrency: 2 }), (e: unknown) => e instanceof FormatError && /^b\.tar: sample "x"/.test(e.message));
    assert.ok(!readdirSync(dir).includes('index.json'));

    // Symbolic links to shard files are indexed like files.
    rmSync(path.join(dir, 'b.tar'));
    symlinkSync(path.join(dir, 'a.tar'), path.join(dir, 'link.tar'));
    const index = await buildWebDatasetDirectoryIndex(dir);
    assert.deepEqual(index.shards.map((s) => s.raw_data.basename), ['a.tar', 'link.tar']);
  }),
);

const ENTRY = {
  format: 'webdataset',
  version: 1,
  samples: 2,
  suffixes: ['jpg'],
  raw_data: { basename: 'a.tar', bytes: 10240, hashes: { sha256: 'a'.repeat(64) } },
  zip_data: null,
  compression: null,
  hashes: ['sha256'],
  index_data: { basename: 'a.tar.idx.json', bytes: 300, hashes: { sha256: 'b'.repeat(64) } },
};

function withShard(edit: (shard: Record<string, unknown> & typeof ENTRY) => void): unknown {
  const shard = structuredClone(ENTRY) as Record<string, unknown> & typeof ENTRY;
  edit(shard);
  return { version: 2, shards: [shard] };
}

test('parseWebDatasetDatasetIndex checks every field and names the shard', () => {
  assert.deepEqual(parseWebDatasetDatasetIndex({ version: 2, shards: [ENTRY] }), { version: 2, shards: [ENTRY] } as unknown as WebDatasetDatasetIndex);
  const cases: [unknown, RegExp][] = [
    [[], /index\.json/],
    [{ version: 1, shards: [] }, /version/],
    [{ version: 2 }, /shards/],
    [withShard((s) => (s.format = 'mds')), /shards\[0\] has format "mds", not "webdataset"/],
    [withShard((s) => (s.version = 2)), /shards\[0\]: version/],
    [withShard((s) => (s.samples = -1)), /shards\[0\]: samples/],
    [withShard((s) => (s.samples = 20)), /20 samples cannot fit in 10240 bytes \(at most 19\)/],
    [withShard((s) => (s.raw_data.basename = '../a.tar')), /shards\[0\] \("\.\.\/a\.tar"\): raw_data\.basename "\.\.\/a\.tar" is refused: it has a '\.\.' segment/],
    [withShard((s) => (s.index_data.basename = '/x.json')), /index_data\.basename "\/x\.json" is refused: it is absolute/],
    [withShard((s) => (s.index_data.basename = 'a.tar')), /index_data\.basename "a\.tar" appears twice/],
    [withShard((s) => (s.raw_data.hashes.sha256 = 'xyz')), /raw_data\.hashes\.sha256: must be 64 lowercase hex digits/],
    [withShard((s) => (s.raw_data.bytes = 10)), /raw_data\.bytes 10 is smaller than one tar block/],
    [withShard((s) => (s.zip_data = { basename: 'a.tar.gz' } as unknown as null)), /zip_data/],
    [withShard((s) => (s.hashes = ['md5'] as unknown as ['sha256'])), /hashes/],
  ];
  for (const [json, pattern] of cases) {
    assert.throws(
      () => parseWebDatasetDatasetIndex(json),
      (e: unknown) => {
        assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
        assert.match(e.message, /^index\.json/);
        assert.match(e.message, pattern);
        return true;
      },
      pattern.source,
    );
  }
  // Two shards with the same basename.
  assert.throws(() => parseWebDatasetDatasetIndex({ version: 2, shards: [ENTRY, ENTRY] }), /shards\[1\] .* appears twice/);
});

test('checkShardIndex names the field that disagrees', () => {
  const entry = parseWebDatasetDatasetIndex({ version: 2, shards: [ENTRY] }).shards[0]!;
  const shard = {
    format: 'shardline-webdataset-index' as const,
    version: 1 as const,
    basename: 'a.tar',
    bytes: 10240,
    sha256: 'a'.repeat(64),
    samples: [
      { key: 'x', members: [{ suffix: 'jpg', header: 0, offset: 512, size: 1 }] },
      { key: 'y', members: [{ suffix: 'jpg', header: 1024, offset: 1536, size: 1 }] },
    ],
  };
  checkShardIndex(entry, shard);
  assert.throws(() => checkShardIndex(entry, { ...shard, samples: shard.samples.slice(1) }), /a\.tar: index\.json says samples 2 but the shard's index says 1/);
  assert.throws(() => checkShardIndex(entry, { ...shard, bytes: 512 }), /says bytes 10240 but the shard's index says 512/);
  assert.throws(() => checkShardIndex(entry, { ...shard, sha256: 'c'.repeat(64) }), /says sha256/);
  assert.throws(() => checkShardIndex(entry, { ...shard, basename: 'b.tar' }), /says basename "a\.tar" but the shard's index says "b\.tar"/);
});
