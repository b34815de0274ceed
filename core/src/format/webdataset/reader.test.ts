import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { ClosedError, FormatError, IndexOutOfRangeError } from '../../errors.ts';
import { type WebDatasetSample, WebDatasetShardReader, readWebDatasetShard } from './reader.ts';
import { type WebDatasetShardIndex, buildWebDatasetIndex } from './shard-index.ts';
import { archive, chunked, longName, member, pax } from './test-tar.ts';
import { type WebDatasetSampleInput, encodeWebDatasetShard } from './writer.ts';

type Plain = Record<string, string>;

/** A sample with its fields as latin1 strings, for deepEqual. */
function plain(sample: WebDatasetSample): Plain {
  return Object.fromEntries(Object.entries(sample).map(([k, v]) => [k, typeof v === 'string' ? v : v.toString('latin1')]));
}

async function collect(source: Parameters<typeof readWebDatasetShard>[0], options = {}): Promise<Plain[]> {
  const out: Plain[] = [];
  for await (const s of readWebDatasetShard(source, options)) out.push(plain(s));
  return out;
}

let counter = 0;
/** Writes bytes to a temporary shard file, indexes it, and cleans up after `fn`. */
async function withShard(bytes: Uint8Array, fn: (file: string, index: WebDatasetShardIndex) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'shardline-wds-reader-'));
  try {
    const file = path.join(dir, `shard-${counter++}.tar`);
    writeFileSync(file, bytes);
    await fn(file, await buildWebDatasetIndex(file));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function readAll(reader: WebDatasetShardReader): Promise<Plain[]> {
  const out: Plain[] = [];
  for (let i = 0; i < reader.length; i++) out.push(plain(await reader.get(i)));
  return out;
}

test('groups consecutive members by key as WebDataset does, skipping what it skips', async () => {
  const tar = archive(
    member('__meta__', 'shard metadata'),
    member('__index__/a.json', 'more metadata'),
    member('data/', '', { type: '5' }),
    member('data/000.jpg', 'J0'),
    member('data/000.JSON', '{"a":0}'),
    member('data/000.seg.png', 'P0'),
    member('README', 'no suffix: skipped'),
    member('data/link.txt', '', { type: '2' }),
    member('data/001.jpg', 'J1'),
    member('data/000.txt', 'key seen again: a new sample'),
  );
  const expected = [
    { __key__: 'data/000', jpg: 'J0', json: '{"a":0}', 'seg.png': 'P0' },
    { __key__: 'data/001', jpg: 'J1' },
    { __key__: 'data/000', txt: 'key seen again: a new sample' },
  ];
  assert.deepEqual(await collect(tar), expected);
  assert.deepEqual(await collect(chunked(tar, 13), { shard: 'chunked.tar' }), expected);
  await withShard(tar, async (file, index) => {
    assert.deepEqual(await collect(file), expected);
    assert.deepEqual(await collect(createReadStream(file)), expected);
    assert.deepEqual(index.samples.map((s) => [s.key, s.members.map((m) => m.suffix)]), [
      ['data/000', ['jpg', 'json', 'seg.png']],
      ['data/001', ['jpg']],
      ['data/000', ['txt']],
    ]);
    const reader = await WebDatasetShardReader.open(index, file);
    assert.deepEqual(await readAll(reader), expected);
    await reader.close();
  });
});

test('a repeated suffix within a sample is a FormatError naming the shard, key and both members', async () => {
  const tar = archive(member('x.jpg', '1'), member('x.JPG', '2'));
  await assert.rejects(collect(tar, { shard: 'dup.tar' }), (e: unknown) => {
    assert.ok(e instanceof FormatError);
    assert.match(e.message, /^dup\.tar: sample "x": member "x\.JPG" \(offset 1536\) repeats the suffix "jpg" of member "x\.jpg"/);
    return true;
  });
  await assert.rejects(collect(archive(member('x.__key__', '1'))), /repeats the suffix "__key__" of the reserved field/);
});

test('a __proto__ suffix is a plain field', async () => {
  const [sample] = await collect(archive(member('x.__proto__', 'p')));
  assert.deepEqual(Object.keys(sample!), ['__key__', '__proto__']);
  assert.equal(Object.getPrototypeOf(sample), Object.prototype);
});

test('maxMemberBytes bounds what a sample may hold', async () => {
  await assert.rejects(collect(archive(member('x.bin', 'z'.repeat(100))), { maxMemberBytes: 99 }), /member "x\.bin" is 100 bytes, over the limit of 99/);
  await assert.rejects(collect(archive(), { maxMemberBytes: 0 }), /maxMemberBytes/);
  await assert.rejects(collect(42 as unknown as Uint8Array), /source/);
});

test('breaking out of a file read closes the file', async () => {
  const tar = await encodeWebDatasetShard(Array.from({ length: 50 }, (_, i) => ({ __key__: `k${String(i).padStart(3, '0')}`, bin: new Uint8Array(40_000) })));
  await withShard(tar, async (file) => {
    const stream = createReadStream(file, { highWaterMark: 4096 });
    for await (const s of readWebDatasetShard(stream)) {
      assert.equal(s.__key__, 'k000');
      break;
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(stream.destroyed);
  });
});

test('random access reads pax and GNU long-name members, fetching back-to-back members in one read', async (t) => {
  const long = `${'d'.repeat(130)}/x`;
  const tar = archive(pax({ path: 'ü/a.jpg' }), member('p', 'A'), member('ü/a.txt', 'T'), longName(`${long}.jpg`), member('l', 'L', { magic: 'gnu' }), member('__sep__', 'gap'), pax({ path: `${long}.txt` }), member('p2', 'LT'));
  await withShard(tar, async (file, index) => {
    const reads: [number, number][] = [];
    const handle = await open(file);
    t.after(() => handle.close());
    const reader = await WebDatasetShardReader.open(index, async (offset, length) => {
      reads.push([offset, length]);
      const b = Buffer.alloc(length);
      await handle.read(b, 0, length, offset);
      return b;
    });
    assert.deepEqual(await readAll(reader), [
      { __key__: 'ü/a', jpg: 'A', txt: 'T' },
      { __key__: long, jpg: 'L', txt: 'LT' },
    ]);
    // Sample 0: one read from the pax header to the end of a.txt; sample 1: two reads around __sep__.
    assert.deepEqual(reads.map(([o]) => o), [0, index.samples[1]!.members[0]!.header, index.samples[1]!.members[1]!.header]);
    assert.equal(reader.key(-1), long);
    await assert.rejects(reader.get(2), IndexOutOfRangeError);
    assert.deepEqual(plain(await reader.get(-2)), { __key__: 'ü/a', jpg: 'A', txt: 'T' });
  });
});

test('random access checks every member header against the index', async () => {
  const samples: WebDatasetSampleInput[] = [
    { __key__: 'a', txt: 'first', cls: 1 },
    { __key__: 'b', txt: 'second', cls: 2 },
  ];
  const tar = await encodeWebDatasetShard(samples);
  await withShard(tar, async (file, index) => {
    // The index of another shard of the same size: names disagree.
    const other = await encodeWebDatasetShard([
      { __key__: 'x', txt: 'first', cls: 1 },
      { __key__: 'y', txt: 'second', cls: 2 },
    ]);
    assert.equal(other.length, tar.length);
    const swapped = await WebDatasetShardReader.open(index, async (offset, length) => other.subarray(offset, offset + length));
    await assert.rejects(swapped.get(1), (e: unknown) => {
      assert.ok(e instanceof FormatError);
      assert.match(e.message, new RegExp(`^${path.basename(file)}: sample 1 \\(key "b"\\): the index says member "cls" .* but the tar has file "y\\.cls"`));
      return true;
    });

    // Offsets moved by one block land on data, not a header: a checksum failure, with context.
    const shifted: WebDatasetShardIndex = {
      ...index,
      samples: index.samples.map((s) => ({ ...s, members: s.members.map((m) => ({ ...m, header: m.header + 512, offset: m.offset + 512 })) })),
    };
    const moved = await WebDatasetShardReader.open(shifted, file);
    await assert.rejects(moved.get(0), /sample 0 \(key "a"\): reading member "cls" .* as the index places it: .*checksum/);
    await moved.close();

    // A size that disagrees with the header.
    const resized: WebDatasetShardIndex = {
      ...index,
      samples: [{ key: 'a', members: [{ ...index.samples[0]!.members[0]!, size: 2 }] }],
    };
    const wrong = await WebDatasetShardReader.open(resized, file);
    await assert.rejects(wrong.get(0), /the index says member "cls" \(header at 0, 2 bytes at offset 512\) but the tar has file "a\.cls" \(header at 0, 1 bytes/);
    await wrong.close();

    // An index that never went through the parser is validated on open.
    const hostile = { ...index, samples: [{ key: 'a', members: [{ suffix: 'cls', header: -512, offset: 0, size: 1 }] }] };
    await assert.rejects(WebDatasetShardReader.open(hostile, file), (e: unknown) => e instanceof FormatError && /samples\[0\]\.members\[0\]\.header/.test(e.message));
    await assert.rejects(WebDatasetShardReader.open(JSON.parse('{"samples": 1}'), file), FormatError);

    // A range reader returning the wrong length.
    const short = await WebDatasetShardReader.open(index, async (offset, length) => tar.subarray(offset, offset + length - 1));
    await assert.rejects(short.get(0), /returned \d+ bytes/);

    // A file that is not the indexed size, and a hash check on open.
    await assert.rejects(WebDatasetShardReader.open({ ...index, bytes: index.bytes + 512 }, file), /is \d+ bytes but its index says/);
    await assert.rejects(WebDatasetShardReader.open({ ...index, sha256: '0'.repeat(64) }, file, { verifyHash: true }), /sha256 is [0-9a-f]{64} but its index says 0{64}/);
    const verified = await WebDatasetShardReader.open(index, file, { verifyHash: true });
    assert.deepEqual(plain(await verified.get(0)), { __key__: 'a', cls: '1', txt: 'first' });
    await verified.close();
    await assert.rejects(verified.get(0), ClosedError);
    // maxMemberBytes is checked against the index before reading.
    const capped = await WebDatasetShardReader.open(index, file, { maxMemberBytes: 5 });
    await assert.rejects(capped.get(1), /member "txt" is 6 bytes, over the limit of 5/);
    await capped.close();
  });
});

// Short ASCII keys mostly; now and then keys that need a pax header (non-ASCII, or too long for ustar).
const keyArb = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.array(fc.stringMatching(/^[a-z0-9_-]{1,4}$/), { maxLength: 2 }), fc.stringMatching(/^[a-zA-Z0-9_-]{1,8}$/)) },
  { weight: 1, arbitrary: fc.tuple(fc.constant(['ünï', 'd'.repeat(120)]), fc.constantFrom('ç', '日本', 'k'.repeat(90))) },
)
  .map(([dirs, base]) => [...dirs, base].join('/'))
  .filter((k) => !k.startsWith('_'));
const fieldsArb = fc.dictionary(
  fc.stringMatching(/^[a-z0-9][a-z0-9.]{0,5}$/).filter((s) => !s.endsWith('.') && !s.includes('..')),
  fc.oneof(fc.uint8Array({ maxLength: 1500 }), fc.string({ maxLength: 50 })),
  { minKeys: 1, maxKeys: 4 },
);

test('property: write → index → random access equals the streamed read and the input, in any order', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(keyArb, fieldsArb), { maxLength: 12 }).map((list) => list.filter(([k], i) => i === 0 || k !== list[i - 1]![0])),
      fc.nat(),
      async (list, seed) => {
        const samples = list.map(([key, fields]) => ({ __key__: key, ...fields }));
        const tar = await encodeWebDatasetShard(samples);
        const expected = samples.map((s) =>
          Object.fromEntries(
            Object.entries(s)
              .filter(([k]) => k === '__key__' || !k.startsWith('_'))
              .map(([k, v]) => [k, typeof v === 'string' && k !== '__key__' ? Buffer.from(v, 'utf8').toString('latin1') : typeof v === 'string' ? v : Buffer.from(v).toString('latin1')]),
          ),
        );
        const streamed = await collect(tar);
        assert.deepEqual(streamed.map((s) => ({ ...s })), expected.map((s) => ({ ...s })));
        await withShard(tar, async (file, index) => {
          assert.equal(index.samples.length, samples.length);
          const reader = await WebDatasetShardReader.open(index, file);
          // Any order: a permutation from the seed.
          const order = streamed.map((_, i) => i).sort((a, b) => ((a * 7919 + seed) % 101) - ((b * 7919 + seed) % 101) || a - b);
          for (const i of order) assert.deepEqual(plain(await reader.get(i)), streamed[i]);
          await reader.close();
        });
      },
    ),
    { numRuns: 40 },
  );
});

test('property: a corrupted shard under a valid index gives samples or FormatErrors, never another error', async () => {
  const tar = await encodeWebDatasetShard([
    { __key__: 'a', txt: 'x'.repeat(600), cls: 1 },
    { __key__: `${'d'.repeat(120)}/b`, json: { b: 1 } },
    { __key__: 'ü', txt: 'u' },
  ]);
  await withShard(tar, async (_file, index) => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(tar.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(2), async (edits, i) => {
        const bytes = Buffer.from(tar);
        for (const [at, value] of edits) bytes[at] = value;
        const reader = await WebDatasetShardReader.open(index, async (offset, length) => bytes.subarray(offset, offset + length));
        try {
          const sample = await reader.get(i);
          assert.equal(sample.__key__, index.samples[i]!.key);
        } catch (e) {
          assert.ok(e instanceof FormatError, `unexpected ${String(e)}`);
          assert.match(e.message, new RegExp(`sample ${i} `));
        }
      }),
      { numRuns: 200 },
    );
  });
});
