import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FormatError } from '../../errors.ts';
import {
  type WebDatasetShardIndex,
  buildWebDatasetIndex,
  parseWebDatasetShardIndex,
  readWebDatasetShardIndex,
  serializeWebDatasetShardIndex,
  webDatasetIndexPath,
} from './shard-index.ts';
import { archive, member } from './test-tar.ts';
import { encodeWebDatasetShard } from './writer.ts';

function withTempDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'shardline-wds-index-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const VALID: WebDatasetShardIndex = {
  format: 'shardline-webdataset-index',
  version: 1,
  basename: 'shard.tar',
  bytes: 5120,
  sha256: 'a'.repeat(64),
  samples: [
    {
      key: 'a/000',
      members: [
        { suffix: 'cls', header: 0, offset: 512, size: 1 },
        { suffix: 'jpg', header: 1024, offset: 2048, size: 600 },
      ],
    },
    { key: 'a/001', members: [{ suffix: 'cls', header: 3072, offset: 3584, size: 1 }] },
  ],
};

/** VALID with one change made by `edit` on a deep copy. */
function edited(edit: (index: { [k: string]: unknown; samples: { key: string; members: Record<string, unknown>[] }[] }) => void): unknown {
  const copy = structuredClone(VALID) as unknown as Parameters<typeof edit>[0];
  edit(copy);
  return copy;
}

test(
  'buildWebDatasetIndex scans once and writes <shard>.idx.json beside the shard, with size, sha256 and offsets',
  withTempDir(async (dir) => {
    const file = path.join(dir, 'train-000.tar');
    const bytes = await encodeWebDatasetShard([
      { __key__: 'x/000', jpg: 'JPEG', cls: 3 },
      { __key__: 'x/001', jpg: 'J'.repeat(700) },
    ]);
    writeFileSync(file, bytes);
    const progress: number[] = [];
    const index = await buildWebDatasetIndex(file, { onProgress: (p) => progress.push(p.bytesRead) });
    assert.equal(webDatasetIndexPath(file), `${file}.idx.json`);
    assert.deepEqual(index, {
      format: 'shardline-webdataset-index',
      version: 1,
      basename: 'train-000.tar',
      bytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      samples: [
        {
          key: 'x/000',
          members: [
            { suffix: 'cls', header: 0, offset: 512, size: 1 },
            { suffix: 'jpg', header: 1024, offset: 1536, size: 4 },
          ],
        },
        { key: 'x/001', members: [{ suffix: 'jpg', header: 2048, offset: 2560, size: 700 }] },
      ],
    });
    assert.deepEqual(progress, [bytes.length]);
    const text = readFileSync(`${file}.idx.json`, 'utf8');
    assert.equal(text, serializeWebDatasetShardIndex(index).toString('utf8'));
    assert.equal(text.split('\n').length, 5, 'one line for the header, one per sample, one for the closing bracket');
    assert.deepEqual(await readWebDatasetShardIndex(`${file}.idx.json`), index);
    assert.deepEqual(await buildWebDatasetIndex(file, { write: false }), index);
  }),
);

test(
  'a malformed shard fails the build naming the shard and member, and writes no index',
  withTempDir(async (dir) => {
    const file = path.join(dir, 'bad.tar');
    writeFileSync(file, archive(member('ok.txt', 'x'), member('../evil.txt', 'y')));
    await assert.rejects(buildWebDatasetIndex(file), (e: unknown) => e instanceof FormatError && /^bad\.tar: member "\.\.\/evil\.txt" \(header at offset 1024\)/.test(e.message));
    await assert.rejects(readWebDatasetShardIndex(`${file}.idx.json`), { code: 'ENOENT' });
    writeFileSync(file, archive(member('a.txt', 'x')).subarray(0, 1024));
    await assert.rejects(buildWebDatasetIndex(file), /bad\.tar: truncated/);
    await assert.rejects(buildWebDatasetIndex(dir), /is not a file/);
    const controller = new AbortController();
    controller.abort();
    writeFileSync(file, archive(member('a.txt', 'x')));
    await assert.rejects(buildWebDatasetIndex(file, { signal: controller.signal }), { name: 'AbortError' });
  }),
);

test('an empty shard has an empty index', async () => {
  const parsed = parseWebDatasetShardIndex(JSON.parse(serializeWebDatasetShardIndex({ ...VALID, samples: [] }).toString()));
  assert.deepEqual(parsed.samples, []);
});

test('serialization round-trips through the parser', () => {
  assert.deepEqual(parseWebDatasetShardIndex(JSON.parse(serializeWebDatasetShardIndex(VALID).toString())), VALID);
});

test('parseWebDatasetShardIndex refuses every broken rule with a FormatError naming the file, sample and member', () => {
  const cases: [unknown, RegExp][] = [
    [null, /^x\.idx\.json: /],
    [edited((i) => (i.format = 'other')), /format/],
    [edited((i) => (i.version = 2)), /version/],
    [edited((i) => (i.extra = 1)), /extra|Unrecognized/],
    [edited((i) => (i.sha256 = 'ABC')), /sha256: must be 64 lowercase hex digits/],
    [edited((i) => (i.bytes = -1)), /bytes/],
    [edited((i) => (i.bytes = 1.5)), /bytes/],
    [edited((i) => (i.bytes = 100)), /bytes 100 is smaller than one 512-byte tar block/],
    [edited((i) => (i.basename = '../shard.tar')), /basename "\.\.\/shard\.tar" is refused: it has a '\.\.' segment/],
    [edited((i) => (i.basename = '/abs.tar')), /absolute/],
    [edited((i) => (i.basename = 'a\\b.tar')), /backslash/],
    [edited((i) => (i.basename = 'a\0.tar')), /control character/],
    [edited((i) => (i.samples[0]!.members = [])), /samples\[0\]\.members/],
    [edited((i) => (i.samples[0]!.members[0]!.offset = -512)), /samples\[0\]\.members\[0\]\.offset/],
    [edited((i) => (i.samples[0]!.members[0]!.size = 2 ** 60)), /size/],
    [edited((i) => (i.samples[1]!.key = 'a/000')), /sample 1 \(key "a\/000"\) has the key of the sample before it/],
    [edited((i) => (i.samples[0]!.key = '../a')), /sample 0 \(key "\.\.\/a"\): the key is refused/],
    [edited((i) => (i.samples[0]!.key = 'a.b')), /sample 0 .* member 0 \("cls"\): "a\.b\.cls" is not a member name/],
    [edited((i) => (i.samples[0]!.members[0]!.suffix = 'CLS')), /member 0 \("CLS"\): .* is not a member name/],
    [edited((i) => (i.samples[0]!.members[0]!.suffix = 'a/b')), /is not a member name/],
    [edited((i) => (i.samples[0]!.key = '__meta__/x')), /is not a member name/],
    [edited((i) => (i.samples[0]!.members[1]!.suffix = 'cls')), /member 1 \("cls"\): the suffix is repeated/],
    [edited((i) => (i.samples[0]!.members[0]!.header = 100)), /multiples of 512/],
    [edited((i) => (i.samples[0]!.members[0]!.offset = 0)), /data offset 0 is not after its header at 0/],
    [edited((i) => (i.samples[0]!.members[1]!.header = 512)), /member 1 \("jpg"\): header at 512 overlaps the previous member, which ends at 1024/],
    [edited((i) => (i.samples[1]!.members[0]!.size = 5000)), /sample 1 .* 5000 bytes at offset 3584 run past the end of the 5120-byte shard/],
  ];
  for (const [json, pattern] of cases) {
    assert.throws(
      () => parseWebDatasetShardIndex(json, 'x.idx.json'),
      (e: unknown) => {
        assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
        assert.match(e.message, /^x\.idx\.json/);
        assert.match(e.message, pattern);
        return true;
      },
      pattern.source,
    );
  }
});

test(
  'readWebDatasetShardIndex refuses a file that is not JSON, naming it',
  withTempDir(async (dir) => {
    const file = path.join(dir, 'x.tar.idx.json');
    writeFileSync(file, '{"format": ');
    await assert.rejects(readWebDatasetShardIndex(file), (e: unknown) => e instanceof FormatError && e.message.includes(file) && /not valid JSON/.test(e.message));
  }),
);
