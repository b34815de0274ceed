import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { ArgumentError, FormatError } from '../../errors.ts';
import { MDS_COMPRESSIONS, compress, decompress, parseCompression } from './compression.ts';

test('compression names are Mosaic\'s: a family with an optional level in its range', () => {
  assert.deepEqual(parseCompression('zstd'), { name: 'zstd', family: 'zstd', extension: 'zstd', level: 3, supported: true });
  assert.deepEqual(parseCompression('gz:1'), { name: 'gz:1', family: 'gz', extension: 'gz', level: 1, supported: true });
  assert.equal(parseCompression('gz')!.level, 9);
  assert.equal(parseCompression('br')!.level, 11);
  assert.equal(parseCompression('bz2')!.supported, false);
  assert.equal(parseCompression('snappy')!.supported, false);
  for (const bad of ['zstd:0', 'zstd:23', 'gz:10', 'br:12', 'bz2:0', 'snappy:1', 'lz4', 'zstd:', 'zstd:03x', 'ZSTD', '', null, 3]) {
    assert.equal(parseCompression(bad), undefined, String(bad));
  }
  assert.equal(MDS_COMPRESSIONS.length, 5 + 12 + 9 + 10 + 0 + 22);
  for (const name of MDS_COMPRESSIONS) assert.ok(parseCompression(name), name);
});

test('every supported compression round-trips, and bz2 / snappy are refused by name', () => {
  const data = new Uint8Array(Buffer.concat([randomBytes(500), Buffer.alloc(3000, 7)]));
  for (const name of ['zstd', 'zstd:1', 'zstd:19', 'gz', 'gz:0', 'br', 'br:0']) {
    const c = parseCompression(name)!;
    const packed = compress(c, data);
    assert.ok(Buffer.from(decompress(c, packed, data.length, 'shard 0')).equals(data), name);
  }
  // zstd frames carry their content size (Mosaic's zstd binding reads frames without one too).
  const frame = compress(parseCompression('zstd')!, data);
  const descriptor = frame[4]!;
  assert.ok(descriptor >> 6 !== 0 || (descriptor & 0x20) !== 0, 'frame header has a content size');
  assert.throws(() => compress(parseCompression('bz2')!, data), (e: unknown) => e instanceof ArgumentError && /"bz2" is a Mosaic compression that Shardline cannot write/.test(e.message));
  assert.throws(() => decompress(parseCompression('snappy')!, data, 1, 'shard 4'), /^FormatError: shard 4: compression "snappy" is not supported by Shardline/);
});

test('decompression never produces more than the index says: bombs, corrupt data and size mismatches', () => {
  const zstd = parseCompression('zstd')!;
  const gz = parseCompression('gz')!;
  const bomb = zlib.gzipSync(Buffer.alloc(10_000_000));
  const cases: [() => unknown, RegExp][] = [
    [() => decompress(gz, bomb, 1000, 'shard 2 ("s.mds.gz")'), /^shard 2 \("s\.mds\.gz"\): decompresses to more than the 1000 bytes the index gives/],
    [() => decompress(zstd, compress(zstd, new Uint8Array(50)), 60, 'shard 1'), /^shard 1: decompresses to 50 bytes, but the index gives 60/],
    [() => decompress(zstd, new Uint8Array([1, 2, 3, 4, 5]), 10, 'shard 1'), /^shard 1: corrupt zstd data/],
    [() => decompress(gz, compress(gz, new Uint8Array(100)).subarray(0, 20), 100, 'shard 1'), /^shard 1: corrupt gz data/],
    [() => decompress(parseCompression('br')!, new Uint8Array([0xff, 0xff]), 10, 'shard 1'), /^shard 1: corrupt br data/],
  ];
  for (const [fn, pattern] of cases) {
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof FormatError, String(e));
      assert.match(e.message, pattern);
      return true;
    });
  }
});

test('property: decompressing any bytes gives the expected size or a FormatError', () => {
  fc.assert(
    fc.property(fc.constantFrom('zstd', 'gz', 'br'), fc.uint8Array({ maxLength: 64 }), fc.nat({ max: 100 }), (name, data, size) => {
      try {
        assert.equal(decompress(parseCompression(name)!, data, size, 's').length, size);
      } catch (e) {
        assert.ok(e instanceof FormatError, String(e));
      }
    }),
    { numRuns: 300 },
  );
});
