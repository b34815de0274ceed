/**
 * BatchReceiver and BatchSender against a real nats-server, from the trainer's side: a server
 * restart mid-epoch, a trainer killed and restarted (with and without its checkpointed
 * position), a lost chunk asked for again, a slow loader (wait time reported), hostile data and
 * events, resume points, and the reader API (abort, close, iteration).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortError, ArgumentError, ClosedError, FormatError } from '@shardline/core';
import type { NatsConnection } from 'nats';
import { connectFor, natsPerFile, startNats } from '../infra/nats.ts';
import { BatchReceiver, type BatchReceiverOptions } from '@shardline/client';
import { BatchSender, type BatchSenderOptions } from '@shardline/loader-node';
import { type Delivery, encodeChunkFrame, type OutgoingBatch, type ReceiverEvent, type SenderEvent } from '@shardline/core/protocol';
import { assertSameBatch, frameOf, losing, makeBatch, within } from './support.ts';

const KiB = 1024;
const NS = 'test';

const nats = natsPerFile();

type TestContext = { after: (fn: () => unknown) => void };


async function sender(t: TestContext, nc: NatsConnection, options: Omit<BatchSenderOptions, 'namespace'>): Promise<BatchSender> {
  const s = await BatchSender.open(nc, { namespace: NS, ...options });
  t.after(() => s.close());
  return s;
}

async function receiver(t: TestContext, nc: NatsConnection, options: Omit<BatchReceiverOptions, 'namespace'>): Promise<BatchReceiver> {
  const r = await BatchReceiver.connect(nc, { namespace: NS, ...options });
  t.after(() => r.close());
  return r;
}

/** Sends `batches` of epoch 0 and its end marker, optionally pausing before each send. */
async function produce(s: BatchSender, batches: readonly OutgoingBatch[], pauseMs = 0): Promise<void> {
  for (const b of batches) {
    if (pauseMs > 0) await sleep(pauseMs);
    await s.send(b);
  }
  await s.endEpoch(0, batches.length);
}

function epochOf(job: string, rank: number, n: number, bytes: (step: number) => number): OutgoingBatch[] {
  return Array.from({ length: n }, (_, step) => makeBatch(job, rank, 0, step, 2, Math.ceil(bytes(step) / 2)));
}

test('a nats-server restart mid-epoch: unacked batches are sent again, none lost, none twice', async (t) => {
  const server = await startNats({ jetstream: false, allowExternal: false });
  t.after(() => server.stop());
  const reconnecting = { reconnectTimeWait: 50, maxReconnectAttempts: -1 };
  const [loaderNc, trainerNc] = [await connectFor(t, server, reconnecting), await connectFor(t, server, reconnecting)];
  const job = 'server-restart';
  const events: ReceiverEvent[] = [];
  const s = await sender(t, loaderNc, { job, rank: 0, maxCredits: 6, maxChunkBytes: 8 * KiB });
  const r = await receiver(t, trainerNc, { job, rank: 0, window: 6, resendAfterMs: 100, helloRetryMs: 150, onEvent: (e) => events.push(e) });
  const batches = epochOf(job, 0, 40, (step) => 5 * KiB + step * 701);
  const producing = produce(s, batches);
  const got: Delivery[] = [];
  for await (const batch of r.epoch()) {
    got.push(batch);
    if (got.length === 12) await server.restart();
  }
  await producing;
  assert.equal(got.length, batches.length);
  got.forEach((d, i) => assertSameBatch(d, batches[i]!, job, 0));
  assert.ok(events.some((e) => e.type === 'hello' && e.why === 'reconnect'), 'the trainer said hello again after the reconnect');
  await within(s.acknowledged(), 5000, 'the last ack after the restart');
});

test('a trainer killed mid-epoch and restarted with the same id resumes: no batch lost, none twice', async (t) => {
  const server = await nats();
  const job = 'trainer-restart';
  const loaderNc = await connectFor(t, server);
  const s = await sender(t, loaderNc, { job, rank: 1, maxCredits: 4, maxChunkBytes: 4 * KiB });
  const batches = epochOf(job, 1, 24, (step) => 1 * KiB + step * 613);
  const producing = produce(s, batches);
  const got: Delivery[] = [];

  // The first process consumes 7 batches and dies: no bye; its buffered, unconsumed batches are gone.
  const firstNc = await connectFor(t, server);
  const first = await BatchReceiver.connect(firstNc, { namespace: NS, job, rank: 1, clientId: 'trainer-1', window: 4 });
  for (let i = 0; i < 7; i++) got.push(await first.read());
  const checkpoint = first.position;
  assert.deepEqual(checkpoint, { epoch: 0, step: 7 });
  await firstNc.close();
  await first.close();

  // The second resumes from its checkpoint: the loader takes it over at once (same client id).
  const secondNc = await connectFor(t, server);
  const second = await receiver(t, secondNc, { job, rank: 1, clientId: 'trainer-1', window: 4, resume: checkpoint });
  for (let i = 0; i < 10; i++) got.push(await second.read());

  // The third resumes with no checkpoint, after its predecessor's last ack reached the loader.
  await within(
    (async () => {
      while (s.stats().floor.step !== 17) await sleep(10);
    })(),
    5000,
    'the ack of step 16',
  );
  await secondNc.close();
  await second.close();
  const thirdNc = await connectFor(t, server);
  const third = await receiver(t, thirdNc, { job, rank: 1, clientId: 'trainer-1', window: 4, resume: null });
  assert.deepEqual(third.position, { epoch: 0, step: 17 }, 'the welcome starts the stream after the last ack');
  for await (const batch of third.epoch()) got.push(batch);
  assert.deepEqual(third.position, { epoch: 1, step: 0 });
  await producing;
  assert.equal(got.length, batches.length);
  got.forEach((d, i) => assertSameBatch(d, batches[i]!, job, 1));
});

test('a resume point before what the loader holds is refused; one ahead skips what the trainer has', async (t) => {
  const server = await nats();
  const [loaderNc, trainerNc] = [await connectFor(t, server), await connectFor(t, server)];
  const late = await sender(t, loaderNc, { job: 'resume-early', rank: 0, start: { epoch: 2, step: 5 } });
  await assert.rejects(
    BatchReceiver.connect(trainerNc, { namespace: NS, job: 'resume-early', rank: 0, resume: { epoch: 2, step: 1 } }),
    (e: unknown) =>
      e instanceof ArgumentError &&
      e.argument === 'resume' &&
      /resume point epoch 2 step 1 is before the oldest item this loader holds \(epoch 2 step 5\)/.test(e.message),
  );
  assert.deepEqual(late.stats().next, { epoch: 2, step: 5 });

  const events: SenderEvent[] = [];
  const s = await sender(t, loaderNc, { job: 'resume-ahead', rank: 0, onEvent: (e) => events.push(e) });
  const r = await receiver(t, trainerNc, { job: 'resume-ahead', rank: 0, resume: { epoch: 0, step: 3 } });
  const batches = epochOf('resume-ahead', 0, 6, () => 100);
  await produce(s, batches);
  const got: Delivery[] = [];
  for await (const b of r.epoch()) got.push(b);
  assert.deepEqual(
    got.map((d) => (d.type === 'batch' ? d.step : -1)),
    [3, 4, 5],
  );
  assert.deepEqual(
    events.filter((e) => e.type === 'batch-acked' && e.how === 'resume').map((e) => (e.type === 'batch-acked' ? e.step : -1)),
    [0, 1, 2],
  );
});

test('a lost chunk is asked for again and only that chunk is sent again', async (t) => {
  const server = await nats();
  const job = 'lost-chunk';
  let dropped = 0;
  const loaderNc = losing(await connectFor(t, server), (_subject, data) => {
    const f = frameOf(data);
    if (f !== undefined && f.step === 3 && f.index === 1 && dropped === 0) {
      dropped++;
      return true;
    }
    return false;
  });
  const trainerNc = await connectFor(t, server);
  const senderEvents: SenderEvent[] = [];
  const receiverEvents: ReceiverEvent[] = [];
  const s = await sender(t, loaderNc, { job, rank: 0, maxChunkBytes: 1 * KiB, onEvent: (e) => senderEvents.push(e) });
  const r = await receiver(t, trainerNc, { job, rank: 0, resendAfterMs: 50, onEvent: (e) => receiverEvents.push(e) });
  const batches = epochOf(job, 0, 6, () => 3 * KiB);
  const producing = produce(s, batches);
  const got: Delivery[] = [];
  for await (const b of r.epoch()) got.push(b);
  await producing;
  assert.equal(dropped, 1);
  got.forEach((d, i) => assertSameBatch(d, batches[i]!, job, 0));
  assert.deepEqual(
    receiverEvents.filter((e) => e.type === 'nack'),
    [{ type: 'nack', epoch: 0, step: 3, chunks: [1] }],
  );
  assert.deepEqual(
    senderEvents.filter((e) => e.type === 'resent'),
    [{ type: 'resent', epoch: 0, step: 3, frames: 1 }],
  );
});

test('a slow loader: the consumer waits, the wait time is reported, nothing is lost', async (t) => {
  const server = await nats();
  const job = 'slow-loader';
  const [loaderNc, trainerNc] = [await connectFor(t, server), await connectFor(t, server)];
  const waits: number[] = [];
  const s = await sender(t, loaderNc, { job, rank: 0 });
  const r = await receiver(t, trainerNc, { job, rank: 0, resendAfterMs: 20, onWait: (ms) => waits.push(ms) });
  const batches = epochOf(job, 0, 6, () => 500);
  const producing = produce(s, batches, 60);
  const got: Delivery[] = [];
  for await (const b of r.epoch()) got.push(b);
  await producing;
  got.forEach((d, i) => assertSameBatch(d, batches[i]!, job, 0));
  assert.equal(waits.length, 7, 'one wait per read: 6 batches and the end marker');
  assert.ok(waits.filter((ms) => ms >= 30).length >= 5, `the consumer waited for the slow loader: ${waits.map((w) => w.toFixed(0)).join(', ')}`);
  const stats = r.stats();
  assert.equal(stats.reads, 7);
  assert.ok(Math.abs(stats.waitMs - waits.reduce((a, b) => a + b, 0)) < 1e-6);
  assert.ok(stats.nacks > 0, 'the receiver asked for the next batch while the loader was slow');
  // A nack can cross the batch it asks for: the copy sent again is dropped as a duplicate.
  assert.ok(stats.duplicates <= stats.nacks, `${stats.duplicates} duplicates, ${stats.nacks} nacks`);
});

test('garbage on the data and events subjects is logged and ignored', async (t) => {
  const server = await nats();
  const job = 'hostile-data';
  const [loaderNc, trainerNc, attackerNc] = [await connectFor(t, server), await connectFor(t, server), await connectFor(t, server)];
  const events: ReceiverEvent[] = [];
  const s = await sender(t, loaderNc, { job, rank: 0 });
  const r = await receiver(t, trainerNc, { job, rank: 0, maxBatchBytes: 64 * KiB, onEvent: (e) => events.push(e) });
  const session = r.stats().session;
  const { data, events: eventsSubject } = s.subjects;
  const frame = (over: Partial<Parameters<typeof encodeChunkFrame>[0]>, bytes = new Uint8Array(10)) =>
    encodeChunkFrame({ session, job, rank: 0, epoch: 0, step: 0, index: 0, count: 1, chunkSize: bytes.length, totalBytes: bytes.length, ...over }, bytes);
  const junk = randomBytes(100);
  junk[0] = 0; // never "SL" by chance
  attackerNc.publish(data, junk);
  attackerNc.publish(data, new Uint8Array(0));
  attackerNc.publish(data, frame({ job: 'other-job' }));
  attackerNc.publish(data, frame({ rank: 7 }));
  attackerNc.publish(data, frame({ session: session + 1 }));
  // A frame of a future batch claiming 200,000 bytes in 2000 chunks of 100 (the header patched by hand).
  const huge = frame({ step: 3 }, new Uint8Array(100));
  const view = new DataView(huge.buffer, huge.byteOffset, huge.byteLength);
  view.setUint32(24, 2000, true);
  view.setUint32(32, 200_000, true);
  attackerNc.publish(data, huge);
  attackerNc.publish(data, frame({}).subarray(0, 52)); // 3 of its 10 bytes
  attackerNc.publish(eventsSubject, 'not json');
  attackerNc.publish(eventsSubject, JSON.stringify({ type: 'end-of-epoch', version: 1, session, epoch: 0, batches: -1 }));
  attackerNc.publish(eventsSubject, JSON.stringify({ type: 'reset', version: 1, session: session + 1, reason: 'not yours' }));
  attackerNc.publish(eventsSubject, JSON.stringify({ type: 'welcome', version: 1, session }));
  await attackerNc.flush();

  const batches = epochOf(job, 0, 5, (step) => 1000 + step);
  const producing = produce(s, batches);
  const got: Delivery[] = [];
  for await (const b of r.epoch()) got.push(b);
  await producing;
  got.forEach((d, i) => assertSameBatch(d, batches[i]!, job, 0));
  const why = events.map((e) => (e.type === 'rejected' ? e.why : e.type === 'malformed' ? e.error : '')).join('\n');
  for (const expected of [
    /data frame: does not start with "SL"/,
    /data frame: 0 bytes is shorter/,
    /frame is for job "other-job" rank 0/,
    /frame is for job "hostile-data" rank 7/,
    /the batch at epoch 0 step 3 has 200000 bytes, more than maxBatchBytes \(65536\)/,
    /data frame: chunk 0 of 1 must carry 10 bytes, got 3/,
    /control message: not JSON/,
    /control message "end-of-epoch": field batches/,
    /control message "welcome": field job/,
  ]) {
    assert.match(why, expected);
  }
  assert.equal(events.filter((e) => e.type === 'hello').length, 1, 'the reset of another session was ignored');
});

test('a batch larger than maxBatchBytes at the next position fails the stream with a clear error', async (t) => {
  const server = await nats();
  const job = 'too-big';
  const [loaderNc, trainerNc] = [await connectFor(t, server), await connectFor(t, server)];
  const s = await sender(t, loaderNc, { job, rank: 0 });
  const r = await receiver(t, trainerNc, { job, rank: 0, maxBatchBytes: 1000 });
  await s.send(makeBatch(job, 0, 0, 0, 1, 2000));
  await assert.rejects(r.read(), (e: unknown) => e instanceof FormatError && /epoch 0 step 0 has \d+ bytes, more than maxBatchBytes \(1000\)/.test(e.message));
  await assert.rejects(r.read(), FormatError);
});

test('reads can be aborted; close() rejects pending reads and ends iteration', async (t) => {
  const server = await nats();
  const job = 'reader-api';
  const [loaderNc, trainerNc] = [await connectFor(t, server), await connectFor(t, server)];
  const s = await sender(t, loaderNc, { job, rank: 0 });
  const r = await receiver(t, trainerNc, { job, rank: 0 });
  await assert.rejects(r.read({ signal: AbortSignal.abort() }), AbortError);
  const controller = new AbortController();
  const pending = r.read({ signal: controller.signal });
  controller.abort();
  await assert.rejects(pending, AbortError);

  // An aborted read takes nothing: the next one gets the first batch.
  await s.send(makeBatch(job, 0, 0, 0, 1, 10));
  const first = await r.read();
  assert.equal(first.type === 'batch' ? first.step : -1, 0);

  const iterated: Delivery[] = [];
  const iterating = (async () => {
    for await (const item of r) iterated.push(item);
  })();
  await s.send(makeBatch(job, 0, 0, 1, 1, 10));
  await within(
    (async () => {
      while (iterated.length < 1) await sleep(5);
    })(),
    5000,
    'the iterator yielding batch 1',
  );
  const waiting = assert.rejects(r.read(), ClosedError);
  await r.close();
  await within(iterating, 5000, 'the end of iteration at close()');
  await waiting;
  await assert.rejects(r.read(), ClosedError);
  await r.close();

  // The connection closing under a pending read fails it: no read waits forever.
  const lastNc = await connectFor(t, server);
  const last = await receiver(t, lastNc, { job, rank: 0 });
  const orphan = assert.rejects(last.read(), (e: unknown) => e instanceof ClosedError && /NATS connection .* closed/.test(e.message));
  await lastNc.close();
  await within(orphan, 5000, 'the pending read failing');
});
