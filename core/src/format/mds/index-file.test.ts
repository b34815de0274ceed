import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { FormatError } from '../../errors.ts';
import { MAX_MDS_SHARD_BYTES, formatMDSIndex, parseMDSIndex, unsafeBasenameReason } from './index-file.ts';
import { FIXTURES } from './test-values.ts';

const ROLLOVER = readFileSync(path.join(FIXTURES, 'rollover-zstd', 'index.json'), 'utf8');

/** A valid index (Mosaic's rollover fixture) with `edit` applied to a copy of its JSON. */
function edited(edit: (index: { version: unknown; shards: Record<string, unknown>[] }) => void): string {
  const index = JSON.parse(ROLLOVER) as { version: unknown; shards: Record<string, unknown>[] };
  edit(index);
  return JSON.stringify(index);
}

function rejects(text: string | Uint8Array | unknown, pattern: RegExp): void {
  assert.throws(() => parseMDSIndex(text), (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('parses Mosaic\'s index: every field, camelCased', () => {
  const index = parseMDSIndex(ROLLOVER);
  assert.equal(index.version, 2);
  assert.equal(index.shards.length, 4);
  const s = index.shards[1]!;
  assert.deepEqual(s.columnNames, ['id', 'text', 'vec']);
  assert.deepEqual(s.columnEncodings, ['int', 'str', 'ndarray:float32']);
  assert.deepEqual(s.columnSizes, [8, null, null]);
  assert.equal(s.compression, 'zstd:7');
  assert.deepEqual(s.hashes, ['sha1', 'xxh64']);
  assert.equal(s.samples, 1);
  assert.equal(s.sizeLimit, 600);
  assert.equal(s.rawData.basename, 'shard.00001.mds');
  assert.equal(s.zipData!.basename, 'shard.00001.mds.zstd');
  assert.match(s.zipData!.hashes.xxh64!, /^[0-9a-f]{16}$/);
  // Text, bytes and parsed JSON all work, and formatting gives Mosaic's bytes back.
  assert.deepEqual(parseMDSIndex(new TextEncoder().encode(ROLLOVER)), index);
  assert.deepEqual(parseMDSIndex(JSON.parse(ROLLOVER)), index);
  assert.equal(formatMDSIndex(index), ROLLOVER);
});

test('hostile or broken index.json files are FormatErrors naming the shard and field', () => {
  const cases: [string | Uint8Array | unknown, RegExp][] = [
    ['', /^index\.json: invalid JSON/],
    [new Uint8Array([0x7b, 0xff, 0x7d]), /^index\.json: invalid UTF-8/],
    ['[]', /must be a JSON object with "version" and "shards"/],
    [null, /must be a JSON object/],
    ['{"version": 2}', /^index\.json: shards: /],
    ['{"version": 1, "shards": []}', /^index\.json: version: is 1, only version 2 is supported/],
    [edited((i) => (i.shards[0]!.version = 3)), /^index\.json: shard 0 \("shard\.00000\.mds"\): version: is 3/],
    [edited((i) => (i.shards[1]!.format = 'json')), /shard 1 \("shard\.00001\.mds"\): format: "json" is not supported \(only "mds"\)/],
    [edited((i) => (i.shards[0]!.samples = -1)), /shard 0 .*: samples: /],
    [edited((i) => (i.shards[0]!.samples = 1.5)), /shard 0 .*: samples: /],
    [edited((i) => (i.shards[0]!.samples = 2 ** 32)), /shard 0 .*: samples: /],
    [edited((i) => (i.shards[0]!.samples = '4')), /shard 0 .*: samples: /],
    [edited((i) => (i.shards[0]!.samples = 1000)), /raw_data\.bytes: 500 bytes cannot hold the header of 1000 samples \(4008 bytes\)/],
    [edited((i) => ((i.shards[2]!.raw_data as Record<string, unknown>).bytes = -5)), /shard 2 .*: raw_data\.bytes: /],
    [edited((i) => ((i.shards[2]!.raw_data as Record<string, unknown>).bytes = 2 ** 40)), /shard 2 .*: raw_data\.bytes: /],
    [edited((i) => ((i.shards[2]!.zip_data as Record<string, unknown>).bytes = null)), /shard 2 .*: zip_data\.bytes: /],
    [edited((i) => ((i.shards[0]!.raw_data as Record<string, unknown>).hashes = { sha1: 'XYZ' })), /raw_data\.hashes\.sha1: must be a lowercase hex digest/],
    [edited((i) => ((i.shards[0]!.raw_data as Record<string, unknown>).hashes = { sha999: 'ab' })), /raw_data\.hashes: unknown hash algorithm "sha999"/],
    [edited((i) => (i.shards[0]!.hashes = ['sha1', 'crc32'])), /shard 0 .*: hashes: unknown hash algorithm "crc32"/],
    [edited((i) => (i.shards[0]!.hashes = ['sha1', 'sha1'])), /hashes: lists an algorithm twice/],
    [edited((i) => (i.shards[0]!.compression = 'lzma')), /compression: "lzma" is not a Mosaic compression/],
    [edited((i) => (i.shards[0]!.compression = 'zstd:23')), /compression: "zstd:23" is not a Mosaic compression/],
    [edited((i) => (i.shards[0]!.compression = null)), /zip_data: is set but compression is null/],
    [edited((i) => (i.shards[0]!.zip_data = null)), /zip_data: is null but compression is "zstd:7"/],
    [edited((i) => (i.shards[0]!.column_sizes = [8, null])), /column_names: 3 names, 3 encodings and 2 sizes/],
    [edited((i) => (i.shards[0]!.column_sizes = [4, null, null])), /column_sizes\[0\]: column "id" with encoding "int" has size 8, the index says 4/],
    [edited((i) => (i.shards[0]!.column_names = ['id', 'id', 'vec'])), /column_names: column "id" appears twice/],
    [edited((i) => (i.shards[0]!.column_encodings = ['int', 'pkl', 'ndarray:float32'])), /shard 0 \("shard\.00000\.mds"\): column "text": encoding "pkl" is pickle/],
    [edited((i) => (i.shards[0]!.column_encodings = ['int', 'text', 'ndarray:float32'])), /column "text": unknown encoding "text"/],
    [edited((i) => ((i.shards[3]!.zip_data as Record<string, unknown>).basename = 'shard.00003.mds')), /shard 3 .*: zip_data\.basename: is the same file as raw_data\.basename/],
    [edited((i) => ((i.shards[3]!.raw_data as Record<string, unknown>).basename = 'shard.00000.mds')), /shard 3 .*: raw_data\.basename: "shard\.00000\.mds" is also a file of shard 0/],
    [edited((i) => ((i.shards[1]!.zip_data as Record<string, unknown>).basename = '../../etc/passwd')), /shard 1 .*: zip_data\.basename: "\.\.\/\.\.\/etc\/passwd" is not a safe relative key: it has a '\.\.' segment/],
    [edited((i) => ((i.shards[1]!.raw_data as Record<string, unknown>).basename = '/etc/passwd')), /raw_data\.basename: "\/etc\/passwd" is not a safe relative key: it is absolute/],
    [edited((i) => ((i.shards[1]!.raw_data as Record<string, unknown>).basename = 'a\\b')), /raw_data\.basename: .* it contains a backslash/],
    [edited((i) => ((i.shards[1]!.raw_data as Record<string, unknown>).basename = 'a\u0000b')), /raw_data\.basename: .* control or format character U\+0000/],
    [edited((i) => ((i.shards[1]!.raw_data as Record<string, unknown>).basename = 123)), /shard 1: raw_data\.basename: /],
    ['{"version": 2, "shards": [1]}', /^index\.json: shard 0: /],
  ];
  for (const [input, pattern] of cases) rejects(input, pattern);
});

test('unsafeBasenameReason refuses every way out of the dataset root', () => {
  const unsafe: [string, RegExp][] = [
    ['', /empty/], ['..', /'\.\.' segment/], ['a/../b', /'\.\.' segment/], ['./a', /'\.' segment/], ['/abs', /absolute/],
    ['a//b', /empty segment/], ['a/', /empty segment/], ['a\\b', /backslash/], ['C:x', /drive letter/], ['a%2e%2e', /percent-encoded/],
    ['\uff0e\uff0e', /NFKC/], ['a\u202eb', /format character U\+202E/], ['a\nb', /U\+000A/], ['\ud800', /lone UTF-16 surrogate/],
    ['x'.repeat(1025), /over the limit of 1024/],
  ];
  for (const [name, pattern] of unsafe) assert.match(unsafeBasenameReason(name) ?? 'safe', pattern, JSON.stringify(name));
  for (const name of ['shard.00000.mds', 'train/shard.00001.mds.zstd', 'a b/é.mds', '...hidden']) assert.equal(unsafeBasenameReason(name), undefined, name);
});

test('limits follow uint32 offsets: a shard file of 2^32 - 1 bytes is accepted, 2^32 is not', () => {
  assert.equal(parseMDSIndex(edited((i) => ((i.shards[0]!.raw_data as Record<string, unknown>).bytes = MAX_MDS_SHARD_BYTES))).shards[0]!.rawData.bytes, MAX_MDS_SHARD_BYTES);
  rejects(edited((i) => ((i.shards[0]!.raw_data as Record<string, unknown>).bytes = MAX_MDS_SHARD_BYTES + 1)), /raw_data\.bytes/);
});

test('property: any mutation of a valid index parses or is a FormatError, never another error', () => {
  const paths = ['version', 'shards', 'column_encodings', 'column_names', 'column_sizes', 'compression', 'format', 'hashes', 'raw_data', 'zip_data', 'samples', 'size_limit', 'basename', 'bytes'];
  const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(-1, 2 ** 53, 1e308, '..', '/x', 'pkl', 'ndarray:int8:1', null));
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 3 }), fc.constantFrom(...paths), anyValue, (shard, key, value) => {
      const text = edited((index) => {
        const target = index.shards[shard]!;
        if (key === 'version') index.version = value;
        else if (key === 'shards') (index as Record<string, unknown>).shards = value;
        else if (key === 'basename' || key === 'bytes') (target.raw_data as Record<string, unknown>)[key] = value;
        else target[key] = value;
      });
      try {
        parseMDSIndex(text);
      } catch (e) {
        assert.ok(e instanceof FormatError, String(e));
      }
    }),
    { numRuns: 500 },
  );
});
