/** Data frames: round trips, chunk layouts that tile a batch, and hostile bytes that only ever give a FormatError. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FormatError } from '../errors.ts';
import { FRAME_FIXED_BYTES, FramedBatch, chunkLayout, chunkRange, decodeChunkFrame, encodeChunkFrame, frameHeaderBytes } from './frame.ts';

const header = { session: 7, job: 'mnist', rank: 3, epoch: 2, step: 9 };

test('the layout of a frame is the documented one', () => {
  const frame = encodeChunkFrame({ ...header, index: 1, count: 3, chunkSize: 4, totalBytes: 10 }, Uint8Array.from({ length: 10 }, (_, i) => i));
  assert.equal(frame.byteLength, FRAME_FIXED_BYTES + 5 + 4);
  assert.deepEqual(
    [...frame.subarray(0, 4)],
    [0x53, 0x4c, 1, 1], // "SL", version 1, kind 1
  );
  const v = new DataView(frame.buffer);
  assert.deepEqual(
    [4, 8, 12, 16, 20, 24, 28, 32].map((o) => v.getUint32(o, true)),
    [7, 3, 2, 9, 1, 3, 4, 10],
  );
  assert.equal(frame[36], 5);
  assert.equal(Buffer.from(frame.subarray(37, 42)).toString('latin1'), 'mnist');
  assert.deepEqual([...frame.subarray(42)], [4, 5, 6, 7]);
});

test('chunk layouts tile the batch: every chunk but the last is full, none is empty', () => {
  assert.deepEqual(chunkLayout(0, 5), { count: 1, chunkSize: 0 });
  assert.deepEqual(chunkLayout(5, 5), { count: 1, chunkSize: 5 });
  assert.deepEqual(chunkLayout(10, 4), { count: 3, chunkSize: 4 });
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 1, max: 5000 }), (total, max) => {
      const { count, chunkSize } = chunkLayout(total, max);
      assert.ok(chunkSize <= max);
      let covered = 0;
      for (let index = 0; index < count; index++) {
        const [begin, end] = chunkRange({ index, chunkSize, totalBytes: total });
        assert.equal(begin, covered);
        assert.ok(end > begin || total === 0);
        covered = end;
      }
      assert.equal(covered, total);
    }),
  );
});

test('any batch cut into frames and decoded in any order reassembles to the same bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 64 }), fc.nat(), (batch, max, seed) => {
      const { count, chunkSize } = chunkLayout(batch.length, max);
      const frames = Array.from({ length: count }, (_, index) => encodeChunkFrame({ ...header, index, count, chunkSize, totalBytes: batch.length }, batch));
      const out = new Uint8Array(batch.length);
      for (let i = 0; i < count; i++) {
        const f = decodeChunkFrame(frames[(i + seed) % count]!);
        assert.deepEqual({ session: f.session, job: f.job, rank: f.rank, epoch: f.epoch, step: f.step }, header);
        out.set(f.payload, f.index * f.chunkSize);
      }
      assert.deepEqual(out, batch);
    }),
  );
});

test('hostile frames are FormatErrors naming the field, and nothing else is ever thrown', () => {
  const good = encodeChunkFrame({ ...header, index: 0, count: 2, chunkSize: 4, totalBytes: 6 }, new Uint8Array(6));
  const patched = (offset: number, value: number, width: 1 | 4 = 4): Uint8Array => {
    const copy = good.slice();
    const v = new DataView(copy.buffer);
    if (width === 1) v.setUint8(offset, value);
    else v.setUint32(offset, value, true);
    return copy;
  };
  const cases: Array<[Uint8Array, RegExp]> = [
    [new Uint8Array(10), /10 bytes is shorter than the 37-byte prefix/],
    [patched(0, 0x4c53 ^ 1), /does not start with "SL"/],
    [patched(2, 2, 1), /protocol version 2 is not supported/],
    [patched(3, 9, 1), /kind 9 is unknown/],
    [patched(36, 200, 1), /shorter than its 237-byte prefix/],
    [patched(36, 4, 1), /chunk 0 of 2 must carry 4 bytes, got 5/],
    [patched(4, 0), /session must not be 0/],
    [patched(20, 2), /index 2 is outside \[0, 2\)/],
    [patched(24, 5), /count 5 does not match totalBytes 6 in chunks of 4 bytes/],
    [patched(28, 0), /count 2 does not match totalBytes 6 in chunks of 0 bytes/],
    [patched(32, 9), /count 2 does not match totalBytes 9 in chunks of 4 bytes/],
    [good.subarray(0, good.length - 1), /chunk 0 of 2 must carry 4 bytes, got 3/],
  ];
  for (const [bytes, message] of cases) assert.throws(() => decodeChunkFrame(bytes), (e: unknown) => e instanceof FormatError && message.test(e.message), String(message));
  const job = good.slice();
  job[37] = '.'.charCodeAt(0);
  assert.throws(() => decodeChunkFrame(job), /job ".nist" is not a DNS label/);

  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.nat(good.length), (noise, at) => {
      for (const bytes of [noise, Uint8Array.from([...good.subarray(0, at), ...noise])]) {
        try {
          const f = decodeChunkFrame(bytes);
          assert.ok(f.index < f.count && f.payload.byteLength <= f.totalBytes);
        } catch (error) {
          assert.ok(error instanceof FormatError, String(error));
        }
      }
    }),
  );
  assert.equal(frameHeaderBytes('mnist'), 42);
});

test('property: a FramedBatch gives exactly the frames encodeChunkFrame makes, as views, for any session; bytes() gathers the batch', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.integer({ min: 1, max: 700 }), fc.integer({ min: 1, max: 2 ** 32 - 1 }), fc.integer({ min: 1, max: 2 ** 32 - 1 }), (bytes, maxChunk, s1, s2) => {
      const scope = { job: 'mnist-2', rank: 3, epoch: 4, step: 5 };
      const framed = FramedBatch.build(scope, bytes, maxChunk);
      const { count, chunkSize } = chunkLayout(bytes.byteLength, maxChunk);
      assert.deepEqual([framed.count, framed.chunkSize, framed.totalBytes], [count, chunkSize, bytes.byteLength]);
      assert.ok(framed.fits(maxChunk));
      for (const session of [s1, s2]) {
        for (let index = 0; index < count; index++) {
          const expected = encodeChunkFrame({ ...scope, session, index, count, chunkSize, totalBytes: bytes.byteLength }, bytes);
          assert.deepEqual(framed.frame(index, session), expected);
        }
      }
      assert.deepEqual(framed.bytes(), bytes);
    }),
    { numRuns: 200 },
  );
  const framed = FramedBatch.build({ job: 'j', rank: 0, epoch: 0, step: 0 }, new Uint8Array(100), 30);
  assert.ok(!framed.fits(60), 'another chunk size is another layout');
  assert.equal(framed.frame(0, 7).buffer, framed.frame(1, 7).buffer, 'frames are views of one held buffer');
  assert.throws(() => framed.frame(4, 1), /index/);
});
