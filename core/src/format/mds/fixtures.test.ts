/**
 * The datasets under fixtures/ were written by Mosaic's own MDSWriter (scripts/make-mds-fixtures.py):
 * we read every one to the values Mosaic's reader decoded, and our writer, given the same
 * samples, writes the same bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FormatError } from '../../errors.ts';
import { decompress, parseCompression } from './compression.ts';
import { formatMDSIndex, mdsIndexToJson, parseMDSIndex } from './index-file.ts';
import { MDSDataset } from './reader.ts';
import { FIXTURES, loadExpected, reviveSample } from './test-values.ts';
import { MDSWriter } from './writer.ts';

const expected = loadExpected();

test('the fixtures come from mosaicml-streaming 0.13.0 and cover every encoding Mosaic writes', () => {
  assert.equal(expected.streaming, '0.13.0');
  const encodings = new Set(Object.values(expected.datasets).flatMap((d) => Object.values(d.columns).map((e) => e.split(':')[0])));
  for (const e of ['uint8', 'uint16', 'uint32', 'uint64', 'int8', 'int16', 'int32', 'int64', 'int', 'float16', 'float32', 'float64',
    'str', 'bytes', 'json', 'str_int', 'str_float', 'str_decimal', 'ndarray', 'jpeg', 'png', 'pil', 'list[jpeg]', 'list[png]',
    'list[pil]', 'jpeg_array', 'pkl']) {
    assert.ok(encodings.has(e), e);
  }
  const compressions = new Set(Object.values(expected.datasets).map((d) => d.compression?.split(':')[0] ?? null));
  assert.deepEqual([...compressions].sort(), ['br', 'gz', 'zstd', null].sort());
  assert.ok(expected.datasets['rollover-zstd']!.shard_samples.length > 2);
});

for (const [name, want] of Object.entries(expected.datasets)) {
  const dir = path.join(FIXTURES, name);

  if (want.refused_column !== undefined) {
    test(`${name}: a pkl column is refused, naming the column`, async () => {
      await assert.rejects(MDSDataset.open(dir), (e: unknown) => {
        assert.ok(e instanceof FormatError);
        assert.match(e.message, new RegExp(`column "${want.refused_column}": encoding "pkl" is pickle.*never unpickles`));
        return true;
      });
    });
    continue;
  }

  test(`${name}: reads every sample to the values Mosaic decoded, verifying every hash`, async () => {
    const ds = await MDSDataset.open(dir, { verifyHashes: true });
    assert.deepEqual(ds.index.shards.map((s) => s.samples), want.shard_samples);
    const samples = want.samples!.map((s) => reviveSample(want.columns, s));
    assert.equal(ds.length, samples.length);
    for (let i = 0; i < samples.length; i++) assert.deepStrictEqual(await ds.get(i), samples[i], `sample ${i}`);
    const iterated = [];
    for await (const s of ds) iterated.push(s);
    assert.deepStrictEqual(iterated, samples);
    for (const shard of ds.index.shards) {
      assert.equal(shard.compression, want.compression);
      assert.deepEqual(shard.hashes, want.hashes);
      assert.equal(shard.sizeLimit, want.size_limit);
    }
  });

  test(`${name}: index.json parses and formats back to Mosaic's exact bytes`, () => {
    const text = readFileSync(path.join(dir, 'index.json'), 'utf8');
    assert.equal(formatMDSIndex(parseMDSIndex(text)), text);
  });

  test(`${name}: our writer writes the same shards and index as Mosaic's`, async () => {
    const out = mkdtempSync(path.join(tmpdir(), `shardline-mds-${name}-`));
    try {
      const writer = new MDSWriter({
        out,
        columns: want.columns,
        compression: want.compression,
        hashes: want.hashes as never,
        sizeLimit: want.size_limit,
      });
      for (const s of want.samples!) await writer.write(reviveSample(want.columns, s));
      const ours = await writer.finish();
      const theirs = parseMDSIndex(readFileSync(path.join(dir, 'index.json')));
      if (want.compression === null) {
        // Byte for byte: every file, index.json included.
        assert.deepEqual(readdirSync(out).sort(), readdirSync(dir).sort());
        for (const file of readdirSync(dir)) assert.ok(readFileSync(path.join(out, file)).equals(readFileSync(path.join(dir, file))), file);
        return;
      }
      // Compressors differ between libraries: the raw shards and their hashes must be identical,
      // and the index identical apart from the compressed files' sizes and digests.
      const strip = (index: typeof ours) => (mdsIndexToJson(index).shards as Record<string, unknown>[]).map(({ zip_data: _, ...rest }) => rest);
      assert.deepEqual(strip(ours), strip(theirs));
      const compression = parseCompression(want.compression)!;
      ours.shards.forEach((shard, s) => {
        const theirShard = theirs.shards[s]!;
        assert.equal(shard.zipData!.basename, theirShard.zipData!.basename);
        const mine = decompress(compression, readFileSync(path.join(out, shard.zipData!.basename)), shard.rawData.bytes, 'ours');
        const reference = decompress(compression, readFileSync(path.join(dir, theirShard.zipData!.basename)), theirShard.rawData.bytes, 'theirs');
        assert.ok(Buffer.from(mine).equals(Buffer.from(reference)), `shard ${s}`);
      });
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
}

test('decodeImages: jpeg and png columns of the Mosaic fixture decode to uint8 [H, W, C] tensors', async () => {
  const plain = await MDSDataset.open(path.join(FIXTURES, 'all-encodings'));
  const decoded = await MDSDataset.open(path.join(FIXTURES, 'all-encodings'), { decodeImages: true });
  const first = await decoded.get(0);
  // Sample 0: jpeg is a 2×2 red RGB image, png a 2×1 grey (L) one, widened to RGB.
  const jpeg = first.jpeg as { dtype: string; shape: number[]; data: Uint8Array };
  assert.equal(jpeg.dtype, 'uint8');
  assert.deepEqual(jpeg.shape, [2, 2, 3]);
  for (let p = 0; p < 4; p++) assert.ok(jpeg.data[p * 3]! > 240 && jpeg.data[p * 3 + 1]! < 16, 'red survives JPEG');
  assert.deepEqual(first.png, { dtype: 'uint8', shape: [1, 2, 3], data: new Uint8Array(6).fill(128) });
  // Other columns are untouched, and without the option the stored bytes come back.
  assert.deepEqual(first.bytes, (await plain.get(0)).bytes);
  assert.ok((await plain.get(0)).png instanceof Uint8Array);
  const gray = await MDSDataset.open(path.join(FIXTURES, 'all-encodings'), { decodeImages: 1 });
  assert.deepEqual(((await gray.get(0)).png as { shape: number[] }).shape, [1, 2, 1]);
});
