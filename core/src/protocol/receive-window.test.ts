/** The trainer's window: reassembly, order, duplicates, memory bounds, what is missing, sessions. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { chunkLayout, decodeChunkFrame, encodeChunkFrame, type ChunkFrame } from './frame.ts';
import { ReceiveWindow } from './receive-window.ts';

const JOB = 'j';

function framesOf(session: number, epoch: number, step: number, bytes: Uint8Array, maxChunk: number): ChunkFrame[] {
  const { count, chunkSize } = chunkLayout(bytes.length, maxChunk);
  return Array.from({ length: count }, (_, index) =>
    decodeChunkFrame(encodeChunkFrame({ session, job: JOB, rank: 0, epoch, step, index, count, chunkSize, totalBytes: bytes.length }, bytes)),
  );
}

function opened(window = 4, maxBatchBytes = 1000): ReceiveWindow {
  const w = new ReceiveWindow({ job: JOB, rank: 0, window, maxBatchBytes });
  assert.deepEqual(w.begin(1), { resume: null, credits: window });
  assert.equal(w.welcome(1, { epoch: 0, step: 0 }), 'ok');
  return w;
}

const bytesOf = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

test('chunks in any order, with duplicates, give each batch once, in step order, byte-exact', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 1, max: 8 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      (sizes, maxChunk, shuffle) => {
        const w = opened(sizes.length, 1000);
        const all = sizes.flatMap((size, step) => framesOf(1, 0, step, bytesOf(size, step), maxChunk));
        // A permutation with repeats: every frame at least once, some twice.
        const order = [...all.keys()];
        for (const [i, r] of shuffle.entries()) {
          const a = i % order.length;
          const b = r % order.length;
          [order[a], order[b]] = [order[b]!, order[a]!];
        }
        const sent = [...order, ...shuffle.slice(0, 5).map((r) => r % all.length)];
        for (const i of sent) {
          const outcome = w.acceptChunk(all[i]!);
          assert.ok(outcome.status === 'stored' || outcome.status === 'duplicate', JSON.stringify(outcome));
        }
        assert.equal(w.acceptEnd(1, 0, sizes.length).status, 'stored');
        sizes.forEach((size, step) => {
          const d = w.take();
          assert.equal(d?.type, 'batch');
          assert.deepEqual(d?.type === 'batch' ? [d.step, d.bytes] : [], [step, bytesOf(size, step)]);
        });
        assert.deepEqual(w.take(), { type: 'end-of-epoch', epoch: 0, batches: sizes.length });
        assert.equal(w.take(), undefined);
        for (const f of all) assert.equal(w.acceptChunk(f).status, 'duplicate', 'everything before the position is a duplicate');
        assert.equal(w.granted, sizes.length * 2);
      },
    ),
  );
});

test('missing(): the missing chunks of the item in reassembly, the whole next item after a gap, nothing when full in order', () => {
  const w = opened(2);
  assert.deepEqual(w.missing(), { epoch: 0, step: 0 });
  const [c0, , c2] = framesOf(1, 0, 0, bytesOf(10, 0), 4);
  w.acceptChunk(c0!);
  w.acceptChunk(c2!);
  assert.deepEqual(w.missing(), { epoch: 0, step: 0, chunks: [1] });
  const w2 = opened(2);
  w2.acceptChunk(framesOf(1, 0, 1, bytesOf(3, 1), 8)[0]!);
  assert.deepEqual(w2.missing(), { epoch: 0, step: 0 }, 'step 1 arrived, step 0 did not');
  const w3 = opened(2);
  for (const step of [0, 1]) w3.acceptChunk(framesOf(1, 0, step, bytesOf(3, step), 8)[0]!);
  assert.equal(w3.readyCount, 2);
  assert.equal(w3.missing(), undefined, 'two batches ready of a window of two: the loader is out of credit');
  w3.take();
  assert.deepEqual(w3.missing(), { epoch: 0, step: 2 });
});

test('memory stays within the window: beyond it a batch is dropped, unless it comes before the farthest one held', () => {
  const w = opened(2);
  assert.equal(w.acceptChunk(framesOf(1, 0, 3, bytesOf(5, 3), 2)[0]!).status, 'stored');
  assert.equal(w.acceptChunk(framesOf(1, 0, 5, bytesOf(5, 5), 2)[0]!).status, 'stored');
  const beyond = w.acceptChunk(framesOf(1, 0, 6, bytesOf(5, 6), 2)[0]!);
  assert.deepEqual(beyond, { status: 'rejected', why: 'no room for the batch at epoch 0 step 6: 2 batches are buffered (the loader sent beyond its credit)' });
  // The item the consumer needs next always finds room: the farthest (step 5) makes way.
  for (const f of framesOf(1, 0, 0, bytesOf(1, 0), 2)) assert.equal(w.acceptChunk(f).status, 'stored');
  assert.equal(w.bufferedBatches, 2);
  assert.ok(w.bufferedBytes <= 2 * 5);
  assert.equal(w.take()?.type, 'batch');
});

test('frames of another session, job or rank, inconsistent chunks and oversized batches are not stored', () => {
  const w = opened(4, 100);
  const good = framesOf(1, 0, 1, bytesOf(10, 1), 4);
  assert.deepEqual(w.acceptChunk({ ...good[0]!, session: 2 }), { status: 'ignored' });
  assert.equal(w.acceptChunk({ ...good[0]!, job: 'k' }).status, 'rejected');
  assert.equal(w.acceptChunk({ ...good[0]!, rank: 1 }).status, 'rejected');
  w.acceptChunk(good[0]!);
  const other = framesOf(1, 0, 1, bytesOf(12, 1), 4)[1]!;
  const inconsistent = w.acceptChunk(other);
  assert.equal(inconsistent.status, 'rejected');
  assert.match(inconsistent.status === 'rejected' ? inconsistent.why : '', /says 3 chunks of 4 bytes, 12 in all; earlier chunks said 3 of 4, 10 in all/);
  assert.deepEqual(w.acceptChunk(framesOf(1, 0, 2, bytesOf(101, 2), 200)[0]!), {
    status: 'rejected',
    why: 'the batch at epoch 0 step 2 has 101 bytes, more than maxBatchBytes (100)',
  });
  const fatal = w.acceptChunk(framesOf(1, 0, 0, bytesOf(101, 0), 200)[0]!);
  assert.equal(fatal.status, 'fatal', 'the next batch can never be taken: the stream cannot go on');
  assert.equal(w.acceptEnd(1, 0, 1).status, 'rejected', 'an end marker where a batch is held');
});

test('an end marker ends its epoch: items held beyond it in that epoch are dropped; the next epoch starts at step 0', () => {
  const w = opened(4);
  w.acceptChunk(framesOf(1, 0, 3, bytesOf(2, 3), 8)[0]!); // cannot exist: epoch 0 has 1 batch
  w.acceptChunk(framesOf(1, 1, 0, bytesOf(2, 9), 8)[0]!);
  w.acceptEnd(1, 0, 1);
  w.acceptChunk(framesOf(1, 0, 0, bytesOf(2, 0), 8)[0]!);
  assert.deepEqual(
    [w.take(), w.take(), w.take(), w.take()].map((d) => (d === undefined ? 'none' : d.type === 'batch' ? `b${d.epoch}/${d.step}` : `e${d.epoch}/${d.batches}`)),
    ['b0/0', 'e0/1', 'b1/0', 'none'],
  );
  assert.equal(w.bufferedBatches, 0);
  assert.deepEqual(w.position, { epoch: 1, step: 1 });
  assert.deepEqual(w.lastConsumed, { epoch: 1, step: 0 });
});

test('a new session drops what was not consumed and resumes at the consumer position; the welcome must agree', () => {
  const w = opened(4);
  for (const step of [0, 1, 2]) w.acceptChunk(framesOf(1, 0, step, bytesOf(2, step), 8)[0]!);
  w.take();
  assert.deepEqual(w.begin(2), { resume: { epoch: 0, step: 1 }, credits: 4 });
  assert.equal(w.readyCount, 0);
  assert.deepEqual(w.acceptChunk(framesOf(2, 0, 1, bytesOf(2, 1), 8)[0]!), { status: 'ignored' }, 'nothing is stored before the welcome');
  assert.deepEqual(w.welcome(2, { epoch: 0, step: 2 }), { mismatch: "the loader's welcome starts the stream at epoch 0 step 2, the hello asked for epoch 0 step 1" });
  assert.equal(w.welcome(1, { epoch: 0, step: 1 }), 'ignored');
  assert.equal(w.welcome(2, { epoch: 0, step: 1 }), 'ok');
  assert.equal(w.acceptChunk(framesOf(2, 0, 0, bytesOf(2, 0), 8)[0]!).status, 'duplicate');
  assert.equal(w.acceptChunk(framesOf(2, 0, 1, bytesOf(2, 1), 8)[0]!).status, 'stored');
  assert.equal(w.take()?.type, 'batch');
  assert.equal(w.granted, 5, 'window + one batch consumed in this session');
});
