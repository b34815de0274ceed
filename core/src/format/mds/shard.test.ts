import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, FormatError, IndexOutOfRangeError } from '../../errors.ts';
import { codecForWriter } from './encodings.ts';
import type { MDSShardInfo } from './index-file.ts';
import { MDSShard, type ShardColumns, encodeSample, encodeShard, shardConfigText } from './shard.ts';

const COLUMNS: ShardColumns = {
  names: ['id', 'text', 'vec'],
  codecs: ['uint16', 'str', 'ndarray:uint8'].map((e, k) => codecForWriter(e, ['id', 'text', 'vec'][k]!)),
};

function info(raw: Uint8Array, samples: number): MDSShardInfo {
  return {
    columnEncodings: ['uint16', 'str', 'ndarray:uint8'],
    columnNames: ['id', 'text', 'vec'],
    columnSizes: [2, null, null],
    compression: null,
    format: 'mds',
    hashes: [],
    rawData: { basename: 'shard.00007.mds', bytes: raw.length, hashes: {} },
    zipData: null,
    samples,
    sizeLimit: null,
    version: 2,
  };
}

const CONFIG = shardConfigText(info(new Uint8Array(), 0));
const sample = (i: number) => ({ id: i, text: 'x'.repeat(i), vec: { dtype: 'uint8' as const, shape: [1], data: Uint8Array.of(i) } });

function shardOf(count: number): Uint8Array {
  return encodeShard(Array.from({ length: count }, (_, i) => encodeSample(COLUMNS, sample(i))), CONFIG);
}

function rejects(raw: Uint8Array, samples: number, pattern: RegExp, { read = false, bytes = raw.length } = {}): void {
  assert.throws(
    () => {
      const shard = new MDSShard({ ...info(raw, samples), rawData: { basename: 'shard.00007.mds', bytes, hashes: {} } }, raw, 'shard 7');
      if (read) for (let i = 0; i < shard.length; i++) shard.get(i);
    },
    (e: unknown) => {
      assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

test('the config is Mosaic\'s get_config() as json.dumps(sort_keys=True)', () => {
  assert.equal(
    CONFIG,
    '{"column_encodings": ["uint16", "str", "ndarray:uint8"], "column_names": ["id", "text", "vec"], "column_sizes": [2, null, null], ' +
      '"compression": null, "format": "mds", "hashes": [], "size_limit": null, "version": 2}',
  );
});

test('a sample is the sizes of its variable columns, then every value; a shard is count, offsets, config, samples', () => {
  const s = encodeSample(COLUMNS, { id: 258, text: 'ab', vec: { dtype: 'uint8', shape: [2], data: Uint8Array.of(7, 8) } });
  // text: 2 bytes; vec (dtype fixed by the encoding): shape byte + 1 dim + 2 values = 4 bytes;
  // then 0x0102, "ab", the array.
  assert.equal(Buffer.from(s).toString('hex'), '02000000' + '04000000' + '0201' + '6162' + '04' + '02' + '0708');
  const raw = encodeShard([s, new Uint8Array(0)], 'CFG');
  const view = new DataView(raw.buffer);
  assert.equal(view.getUint32(0, true), 2);
  const start = 4 + 12 + 3;
  assert.deepEqual([view.getUint32(4, true), view.getUint32(8, true), view.getUint32(12, true)], [start, start + s.length, start + s.length]);
  assert.equal(new TextDecoder().decode(raw.subarray(16, 19)), 'CFG');
  assert.equal(raw.length, start + s.length);
});

test('MDSShard gives random access to every sample, negative indexes from the end', () => {
  const raw = shardOf(5);
  const shard = new MDSShard(info(raw, 5), raw);
  assert.equal(shard.length, 5);
  for (const i of [3, 0, 4, 1]) assert.deepStrictEqual(shard.get(i), sample(i));
  assert.deepStrictEqual(shard.get(-1), sample(4));
  assert.throws(() => shard.get(5), IndexOutOfRangeError);
  assert.throws(() => shard.get(-6), IndexOutOfRangeError);
  assert.deepStrictEqual(shard.sampleBytes(2), encodeSample(COLUMNS, sample(2)));
  // An empty shard is valid.
  const empty = shardOf(0);
  assert.equal(new MDSShard(info(empty, 0), empty).length, 0);
});

test('encodeSample refuses missing and unknown columns, naming them', () => {
  assert.throws(() => encodeSample(COLUMNS, { id: 1, text: 'a' }, 'samples[3]'), (e: unknown) => e instanceof ArgumentError && /^samples\[3\]\.vec: is missing/.test(e.message));
  assert.throws(() => encodeSample(COLUMNS, { ...sample(1), extra: 1 }), /: sample\.extra: is not a column \(columns: id, text, vec\)/);
  assert.throws(() => encodeSample(COLUMNS, { ...sample(1), id: -1 }), /: sample\.id: -1 is out of range for uint16/);
  assert.throws(() => encodeSample(COLUMNS, null as never), /: sample: must be an object/);
});

test('corrupt shard files are FormatErrors naming the shard and sample', () => {
  const raw = shardOf(3);
  const header = 4 + 4 * 4;
  const at = (i: number) => new DataView(raw.buffer).getUint32(4 + 4 * i, true);
  const withU32 = (offset: number, value: number) => {
    const copy = raw.slice();
    new DataView(copy.buffer).setUint32(offset, value, true);
    return copy;
  };
  rejects(raw.subarray(0, raw.length - 1), 3, /^shard 7: the file has \d+ bytes, the index says \d+/, { bytes: raw.length });
  rejects(raw, 4, /^shard 7: the file holds 3 samples, the index says 4/);
  rejects(raw.subarray(0, 2), 3, /too short for the sample count/);
  rejects(withU32(0, 1000), 1000, /the offsets of 1000 samples \(4008 bytes\) run past the end of the file/);
  rejects(withU32(4, 8), 3, /sample 0 starts at 8, inside the header \(20 bytes\)/);
  rejects(withU32(8, at(2) + 1), 3, /sample 1 ends at \d+, before it starts \(\d+\): offsets out of order/);
  rejects(withU32(8, raw.length + 10), 3, /sample 1 starts at \d+, past the end of the file/);
  rejects(withU32(16, raw.length + 10), 3, /sample 2 ends at \d+, past the end of the file/);
  rejects(withU32(16, raw.length - 1), 3, /the last sample ends at \d+ but the file has \d+ bytes/);
  assert.ok(at(0) > header);
  // A sample whose column sizes disagree with its length.
  const bad = withU32(at(1), 50);
  rejects(bad, 3, /^shard 7, sample 1: its column sizes add up to \d+ bytes, but the sample has \d+/, { read: true });
  // A sample too short for its size prefixes.
  const short = encodeShard([new Uint8Array(5)], CONFIG);
  rejects(short, 1, /^shard 7, sample 0: 5 bytes cannot hold the sizes of its 2 variable-size columns/, { read: true });
  // A value that its codec refuses names the column.
  const badArray = encodeShard([Uint8Array.of(0, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0x7, 0x04, 0x01)], CONFIG);
  rejects(badArray, 1, /^shard 7, sample 0, column "vec": ndarray shape of 1 axes runs past the end of the value/, { read: true });
});

test('property: any corruption of a shard file is caught as a FormatError or still decodes', () => {
  const raw = shardOf(6);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat({ max: raw.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 0, max: raw.length }),
      (edits, length) => {
        const copy = raw.slice(0, length);
        for (const [at, value] of edits) if (at < copy.length) copy[at] = value;
        try {
          const shard = new MDSShard(info(copy, 6), copy);
          for (let i = 0; i < shard.length; i++) shard.get(i);
        } catch (e) {
          assert.ok(e instanceof FormatError, String(e));
        }
      },
    ),
    { numRuns: 1000 },
  );
});

test('property: samples encoded into a shard decode to themselves', () => {
  const arb = fc.array(
    fc.record({
      id: fc.integer({ min: 0, max: 65535 }),
      text: fc.string({ unit: 'binary' }),
      vec: fc.uint8Array({ minLength: 1, maxLength: 8 }).map((d) => ({ dtype: 'uint8' as const, shape: [d.length], data: d })),
    }),
    { maxLength: 20 },
  );
  fc.assert(
    fc.property(arb, (samples) => {
      const raw = encodeShard(samples.map((s) => encodeSample(COLUMNS, s)), CONFIG);
      const shard = new MDSShard(info(raw, samples.length), raw);
      samples.forEach((s, i) => assert.deepStrictEqual(shard.get(i), structuredClone(s)));
    }),
    { numRuns: 100 },
  );
});
