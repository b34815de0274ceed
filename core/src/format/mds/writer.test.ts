import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { ArgumentError, ClosedError } from '../../errors.ts';
import type { MDSSample } from './encodings.ts';
import { parseMDSIndex } from './index-file.ts';
import { MDSDataset } from './reader.ts';
import { shardConfigText } from './shard.ts';
import { MDS_DEFAULT_SIZE_LIMIT, MDSWriter, type MDSWriterOptions, parseMDSSizeLimit } from './writer.ts';

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(tmpdir(), 'shardline-mds-writer-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function writeAll(options: MDSWriterOptions, samples: readonly Record<string, unknown>[]) {
  const writer = new MDSWriter(options);
  for (const s of samples) await writer.write(s);
  return writer.finish();
}

function throwsArgument(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ArgumentError, `expected ArgumentError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('parseMDSSizeLimit reads Mosaic\'s forms: bytes, "1024b", "100kb", "1.5mb"; 0 and null mean no limit', () => {
  assert.equal(parseMDSSizeLimit(undefined), MDS_DEFAULT_SIZE_LIMIT);
  assert.equal(MDS_DEFAULT_SIZE_LIMIT, 67108864);
  assert.equal(parseMDSSizeLimit(null), null);
  assert.equal(parseMDSSizeLimit(0), null);
  assert.equal(parseMDSSizeLimit('0'), null);
  assert.equal(parseMDSSizeLimit(1000), 1000);
  assert.equal(parseMDSSizeLimit(1000.9), 1000);
  assert.equal(parseMDSSizeLimit('1024'), 1024);
  assert.equal(parseMDSSizeLimit(' 1024B '), 1024);
  assert.equal(parseMDSSizeLimit('100kb'), 102400);
  assert.equal(parseMDSSizeLimit('1.5mb'), 1572864);
  assert.equal(parseMDSSizeLimit('3GB'), 3 * 2 ** 30);
  assert.equal(parseMDSSizeLimit(2 ** 32 - 1), 2 ** 32 - 1);
  for (const bad of ['abc', '1.5b', '10 xb', '', 'kb', -1, 2 ** 32, '4gb', Infinity, NaN, true]) {
    throwsArgument(() => parseMDSSizeLimit(bad as never), /^sizeLimit: /);
  }
});

test('options are validated, naming the option (and the column for encodings)', async () => {
  await withDir(async (dir) => {
    const out = path.join(dir, 'ds');
    const ok = { out, columns: { a: 'int' } };
    throwsArgument(() => new MDSWriter({ ...ok, columns: { a: 'int', obj: 'pkl' } }), /^columns\.obj: encoding "pkl" is pickle.*never unpickles/);
    throwsArgument(() => new MDSWriter({ ...ok, columns: { img: 'jpg' } }), /^columns\.img: unknown encoding "jpg" \(Mosaic calls it "jpeg"\)/);
    throwsArgument(() => new MDSWriter({ ...ok, columns: { x: 'ndarray:int32:0' } }), /^columns\.x: ndarray shape dimension "0"/);
    throwsArgument(() => new MDSWriter({ ...ok, columns: [] as never }), /^columns: must be an object/);
    throwsArgument(() => new MDSWriter({ ...ok, compression: 'lz4' }), /^compression: "lz4" is not a Mosaic compression/);
    throwsArgument(() => new MDSWriter({ ...ok, compression: 'snappy' }), /^compression: "snappy" cannot be written by Shardline/);
    throwsArgument(() => new MDSWriter({ ...ok, hashes: ['xxh64', 'sha1'] }), /^hashes: must be unique and sorted, as Mosaic requires/);
    throwsArgument(() => new MDSWriter({ ...ok, hashes: ['sha1', 'sha1'] }), /^hashes: must be unique and sorted/);
    throwsArgument(() => new MDSWriter({ ...ok, hashes: ['sha1', 'crc' as never] }), /^hashes\[1\]: unknown hash algorithm "crc"/);
    throwsArgument(() => new MDSWriter({ ...ok, sizeLimit: '1pb' }), /^sizeLimit: must be less than 2\^32/);
    throwsArgument(() => new MDSWriter({ ...ok, out: '' }), /^out: must be a non-empty directory path/);
    writeFileSync(path.join(dir, 'file'), 'x');
    throwsArgument(() => new MDSWriter({ ...ok, out: path.join(dir, 'file') }), /^out: .*file exists and is not a directory/);
    assert.ok(!existsSync(out), 'nothing is created for invalid options');
    mkdirSync(out);
    writeFileSync(path.join(out, 'old.txt'), 'keep me');
    throwsArgument(() => new MDSWriter(ok), /^out: .* is not empty \(1 entries\); pass existOk: true/);
    await writeAll({ ...ok, existOk: true }, [{ a: 1 }]);
    assert.deepEqual(readdirSync(out).sort(), ['index.json', 'old.txt', 'shard.00000.mds']);
  });
});

test('columns are sorted by code point and every setting lands in the index as Mosaic writes it', async () => {
  await withDir(async (dir) => {
    const columns = { z: 'str', '\u{1D538}': 'uint8', '\uFB01': 'float32', A: 'ndarray:uint8:2' };
    const index = await writeAll({ out: dir, columns, compression: 'gz:3', hashes: ['md5', 'sha256'], sizeLimit: '1kb' }, [
      { z: 'a', '\u{1D538}': 1, '\uFB01': 0.5, A: { dtype: 'uint8', shape: [2], data: Uint8Array.of(1, 2) } },
    ]);
    const shard = index.shards[0]!;
    assert.deepEqual(shard.columnNames, ['A', 'z', '\uFB01', '\u{1D538}']);
    assert.deepEqual(shard.columnEncodings, ['ndarray:uint8:2', 'str', 'float32', 'uint8']);
    assert.deepEqual(shard.columnSizes, [2, null, 4, 1]);
    assert.equal(shard.compression, 'gz:3');
    assert.equal(shard.sizeLimit, 1024);
    assert.deepEqual(Object.keys(shard.rawData.hashes), ['md5', 'sha256']);
    assert.deepEqual(readdirSync(dir).sort(), ['index.json', 'shard.00000.mds.gz']);
    // What is on disk parses to what finish() returned.
    assert.deepEqual(parseMDSIndex(readFileSync(path.join(dir, 'index.json'))), index);
    // The shard's config is the one Mosaic's reader ignores but writes: check it is there.
    const ds = await MDSDataset.open(dir, { verifyHashes: true });
    assert.equal((await ds.shard(0)).length, 1);
    assert.match(readFileSync(path.join(dir, 'index.json'), 'utf8'), /^\{"shards": \[\{"column_encodings": \["ndarray:uint8:2", "str", "float32", "uint8"\], "column_names": \["A", "z", "\\ufb01", "\\ud835\\udd38"\]/);
  });
});

test('a bad sample is refused naming the column, and the writer goes on; write after finish is a ClosedError', async () => {
  await withDir(async (dir) => {
    const writer = new MDSWriter({ out: dir, columns: { id: 'uint8', text: 'str' } });
    await writer.write({ id: 1, text: 'a' });
    await assert.rejects(writer.write({ id: 300, text: 'b' }), (e: unknown) => e instanceof ArgumentError && /^sample\.id: 300 is out of range for uint8/.test(e.message));
    await assert.rejects(writer.write({ id: 2 }), /sample\.text: is missing/);
    await assert.rejects(writer.write({ id: 2, text: 'c', extra: 1 }), /sample\.extra: is not a column/);
    await writer.write({ id: 2, text: 'c' });
    const index = await writer.finish();
    assert.equal(await writer.finish(), index);
    await assert.rejects(writer.write({ id: 3, text: 'd' }), ClosedError);
    const ds = await MDSDataset.open(dir);
    assert.deepStrictEqual([await ds.get(0), await ds.get(1)], [{ id: 1, text: 'a' }, { id: 2, text: 'c' }]);
  });
});

test('an empty dataset has an index with no shards; await using finishes the dataset', async () => {
  await withDir(async (dir) => {
    const empty = path.join(dir, 'empty');
    assert.deepEqual(await writeAll({ out: empty, columns: { a: 'int' } }, []), { version: 2, shards: [] });
    assert.equal(readFileSync(path.join(empty, 'index.json'), 'utf8'), '{"shards": [], "version": 2}');
    const scoped = path.join(dir, 'scoped');
    {
      await using writer = new MDSWriter({ out: scoped, columns: { a: 'str' } });
      await writer.write({ a: 'x' });
    }
    assert.deepStrictEqual(await (await MDSDataset.open(scoped)).get(0), { a: 'x' });
  });
});

test('a shard write that fails is reported by write or finish', async () => {
  await withDir(async (dir) => {
    const writer = new MDSWriter({ out: dir, columns: { a: 'bytes' }, sizeLimit: 300 });
    // Make the shard's final name a directory: the rename fails.
    mkdirSync(path.join(dir, 'shard.00000.mds'));
    await writer.write({ a: new Uint8Array(10) });
    await assert.rejects(async () => {
      for (let i = 0; i < 10; i++) await writer.write({ a: new Uint8Array(100) });
    }, /EISDIR|EEXIST|ENOTEMPTY|directory/);
    await assert.rejects(writer.finish(), /EISDIR|EEXIST|ENOTEMPTY|directory/);
    assert.deepEqual(readdirSync(dir), ['shard.00000.mds'], 'no temporary file is left behind');
  });
});

/** Mosaic's rollover rule, as a model: the number of samples in each shard. */
function mosaicShards(sampleBytes: readonly number[], limit: number | null, header: number): number[] {
  const shards: number[] = [];
  let count = 0;
  let size = header;
  for (const bytes of sampleBytes) {
    if (limit !== null && limit < size + bytes + 4) {
      shards.push(count);
      count = 0;
      size = header;
    }
    count++;
    size += bytes + 4;
  }
  if (count > 0) shards.push(count);
  return shards;
}

test('property: rollover follows Mosaic; no shard of two or more samples exceeds size_limit; samples read back in order', async () => {
  const columns = { data: 'bytes', id: 'uint32' };
  const header = 8 + Buffer.byteLength(shardConfigText({ columnEncodings: ['bytes', 'uint32'], columnNames: ['data', 'id'], columnSizes: [null, 4], compression: null, hashes: [], sizeLimit: 400 }));
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.nat({ max: 300 }), { maxLength: 25 }),
      fc.oneof(fc.integer({ min: 100, max: 1500 }), fc.constant(0)),
      async (lengths, limitArg) => {
        // A three-digit limit keeps the config (and so the header) the same length as the model's.
        const limit = limitArg === 0 ? null : Math.max(100, Math.min(limitArg, 999));
        await withDir(async (dir) => {
          const samples = lengths.map((n, id) => ({ data: new Uint8Array(n).fill(id % 256), id }));
          const index = await writeAll({ out: dir, columns, sizeLimit: limit ?? 0 }, samples);
          const expectedHeader = limit === null ? header + 1 : header; // "null" is one byte longer than "400"
          assert.deepEqual(index.shards.map((s) => s.samples), mosaicShards(lengths.map((n) => n + 4 + 4), limit, expectedHeader));
          for (const shard of index.shards) {
            if (limit !== null && shard.samples >= 2) assert.ok(shard.rawData.bytes <= limit, `${shard.rawData.bytes} > ${limit}`);
          }
          const ds = await MDSDataset.open(dir, { maxOpenShards: 1 });
          assert.equal(ds.length, samples.length);
          let i = 0;
          for await (const s of ds) assert.deepStrictEqual(s, samples[i++]);
        });
      },
    ),
    { numRuns: 40 },
  );
});

test('property: any samples of any encodings, written then read, are the same samples', async () => {
  const columns = {
    i: 'int64', u: 'uint16', f: 'float64', h: 'float16', s: 'str', b: 'bytes', j: 'json', n: 'ndarray', q: 'str_int', l: 'list[png]',
  };
  const sample: fc.Arbitrary<MDSSample> = fc.record({
    i: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    u: fc.integer({ min: 0, max: 65535 }),
    f: fc.double(),
    h: fc.double().map(Math.f16round),
    s: fc.string({ unit: 'binary' }),
    b: fc.uint8Array({ maxLength: 50 }),
    j: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<MDSSample[string]>,
    n: fc.array(fc.integer({ min: -128, max: 127 }), { minLength: 1, maxLength: 12 }).map((v) => ({ dtype: 'int8' as const, shape: [1, v.length], data: Int8Array.from(v) })),
    q: fc.bigInt(),
    l: fc.array(fc.uint8Array({ maxLength: 5 }), { maxLength: 3 }),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(sample, { maxLength: 15 }), fc.constantFrom(null, 'zstd', 'gz:1', 'br:1'), async (raw, compression) => {
      const samples = raw.map((s) => structuredClone(s));
      await withDir(async (dir) => {
        await writeAll({ out: dir, columns, compression, hashes: ['xxh3_64'], sizeLimit: 600 }, samples);
        const ds = await MDSDataset.open(dir, { verifyHashes: true });
        const read = [];
        for (let id = 0; id < ds.length; id++) read.push(await ds.get(id));
        assert.deepStrictEqual(read, samples);
      });
    }),
    { numRuns: 30 },
  );
});
