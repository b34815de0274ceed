import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ArgumentError, ClosedError, DatasetError, FormatError, IndexOutOfRangeError } from '../errors.ts';
import { FixedRecordFileDataset } from './fixed-record-file.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardline-frf-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A file with a `header`-byte header and `n` float32 records of shape [2, 3]: record i holds i*10 + k. */
function writeRecords(name: string, n: number, header = 0): string {
  const file = path.join(dir, name);
  const values = Float32Array.from({ length: n * 6 }, (_, j) => Math.floor(j / 6) * 10 + (j % 6));
  fs.writeFileSync(file, Buffer.concat([Buffer.alloc(header, 0xab), Buffer.from(values.buffer)]));
  return file;
}

function writeLabels(name: string, labels: number[]): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.from(BigInt64Array.from(labels.map(BigInt)).buffer));
  return file;
}

test('reads one record at a time, async and sync, with negative indices', async () => {
  const file = writeRecords('plain.bin', 5);
  const ds = new FixedRecordFileDataset({ path: file, dtype: 'float32', sampleShape: [2, 3] });
  try {
    assert.equal(ds.length, 5);
    assert.equal(ds.recordBytes, 24);
    const r = await ds.get(3);
    assert.equal(r.data.dtype, 'float32');
    assert.deepEqual(r.data.shape, [2, 3]);
    assert.deepEqual([...r.data.data], [30, 31, 32, 33, 34, 35]);
    assert.equal(r.label, undefined);
    assert.deepEqual([...(await ds.get(-1)).data.data], [40, 41, 42, 43, 44, 45]);
    assert.deepEqual([...ds.getSync(0).data.data], [0, 1, 2, 3, 4, 5]);
    // Each get owns a fresh buffer of exactly one record.
    const [a, b] = await Promise.all([ds.get(1), ds.get(2)]);
    assert.notEqual(a.data.data.buffer, b.data.data.buffer);
    assert.equal(a.data.data.buffer.byteLength, 24);
  } finally {
    ds.close();
  }
});

test('skips the header and reads labels from a labels file', async () => {
  const file = writeRecords('header.bin', 4, 16);
  const labels = writeLabels('labels.bin', [7, 8, 9, 10]);
  using ds = new FixedRecordFileDataset({ path: file, dtype: 'float32', sampleShape: [6], headerBytes: 16, labelsPath: labels });
  assert.equal(ds.length, 4);
  const r = await ds.get(2);
  assert.deepEqual([...r.data.data], [20, 21, 22, 23, 24, 25]);
  assert.deepEqual(r.label, { dtype: 'int64', shape: [], data: BigInt64Array.from([9n]) });
  assert.deepEqual([...ds.getSync(-1).label!.data], [10n]);
});

test('refuses out-of-range indices and use after close', async () => {
  const ds = new FixedRecordFileDataset({ path: writeRecords('range.bin', 2), dtype: 'float32', sampleShape: [2, 3] });
  await assert.rejects(ds.get(2), IndexOutOfRangeError);
  await assert.rejects(ds.get(-3), IndexOutOfRangeError);
  assert.throws(() => ds.getSync(2), IndexOutOfRangeError);
  ds.close();
  ds.close();
  assert.equal(ds.closed, true);
  await assert.rejects(ds.get(0), ClosedError);
  assert.throws(() => ds.getSync(0), ClosedError);
});

test('close() during a read lets the read finish before releasing the file', async () => {
  const ds = new FixedRecordFileDataset({ path: writeRecords('inflight.bin', 3), dtype: 'float32', sampleShape: [2, 3] });
  const pending = ds.get(1);
  ds.close();
  assert.deepEqual([...(await pending).data.data], [10, 11, 12, 13, 14, 15]);
});

test('a truncated file is a FormatError naming the file and the sizes', () => {
  const file = writeRecords('truncated.bin', 3);
  fs.truncateSync(file, 3 * 24 - 5);
  assert.throws(
    () => new FixedRecordFileDataset({ path: file, dtype: 'float32', sampleShape: [2, 3] }),
    (e: unknown) =>
      e instanceof FormatError && e.message.includes(file) && /file size 67 bytes/.test(e.message) && /19 bytes left over/.test(e.message),
  );
  const tiny = path.join(dir, 'tiny.bin');
  fs.writeFileSync(tiny, Buffer.alloc(4));
  assert.throws(
    () => new FixedRecordFileDataset({ path: tiny, dtype: 'uint8', sampleShape: [1], headerBytes: 8 }),
    (e: unknown) => e instanceof FormatError && /shorter than its header/.test(e.message),
  );
});

test('a file that shrinks after opening gives a DatasetError naming the record', async () => {
  const file = writeRecords('shrinks.bin', 3);
  using ds = new FixedRecordFileDataset({ path: file, dtype: 'float32', sampleShape: [2, 3] });
  fs.truncateSync(file, 24 + 10);
  await assert.rejects(ds.get(1), (e: unknown) => e instanceof DatasetError && e.index === 1 && /truncated: read 10 of 24/.test(e.message));
  assert.throws(() => ds.getSync(2), (e: unknown) => e instanceof DatasetError && /read 0 of 24/.test(e.message));
});

test('a labels file of the wrong size is a FormatError', () => {
  const file = writeRecords('labelled.bin', 3);
  const labels = writeLabels('short-labels.bin', [1, 2]);
  assert.throws(
    () => new FixedRecordFileDataset({ path: file, dtype: 'float32', sampleShape: [6], labelsPath: labels }),
    (e: unknown) => e instanceof FormatError && e.message.includes(labels) && /has 16 bytes but 3 records of int64 need 24/.test(e.message),
  );
});

test('works on a sparse file larger than 4 GiB (positions beyond 32 bits)', async () => {
  const file = path.join(dir, 'huge.bin');
  const recordBytes = 1 << 20;
  const records = 5 * 1024; // 5 GiB, sparse: only the last record is written
  const last = Buffer.alloc(recordBytes, 7);
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, last, 0, recordBytes, (records - 1) * recordBytes);
  } finally {
    fs.closeSync(fd);
  }
  using ds = new FixedRecordFileDataset({ path: file, dtype: 'uint8', sampleShape: [recordBytes] });
  assert.equal(ds.length, records);
  const r = await ds.get(-1);
  assert.equal(r.data.data.length, recordBytes);
  assert.ok((r.data.data as Uint8Array).every((b) => b === 7));
  assert.equal((await ds.get(records - 2)).data.data[0], 0);
});

test('refuses bad options, naming the argument', () => {
  const file = writeRecords('args.bin', 1);
  const isArg = (name: string) => (e: unknown) => e instanceof ArgumentError && e.argument === name;
  const base = { path: file, dtype: 'float32' as const, sampleShape: [6] };
  assert.throws(() => new FixedRecordFileDataset(null as never), isArg('options'));
  assert.throws(() => new FixedRecordFileDataset({ ...base, path: '' }), isArg('path'));
  assert.throws(() => new FixedRecordFileDataset({ ...base, path: path.join(dir, 'missing.bin') }), isArg('path'));
  assert.throws(() => new FixedRecordFileDataset({ ...base, dtype: 'float128' as never }), isArg('dtype'));
  assert.throws(() => new FixedRecordFileDataset({ ...base, sampleShape: 6 as never }), isArg('sampleShape'));
  assert.throws(() => new FixedRecordFileDataset({ ...base, sampleShape: [2, 0] }), isArg('sampleShape[1]'));
  assert.throws(() => new FixedRecordFileDataset({ ...base, headerBytes: -1 }), isArg('headerBytes'));
  assert.throws(() => new FixedRecordFileDataset({ ...base, labelsPath: path.join(dir, 'nope') }), isArg('labelsPath'));
  assert.throws(() => new FixedRecordFileDataset({ ...base, labelsPath: file, labelsDtype: 'x' as never }), isArg('labelsDtype'));
});
