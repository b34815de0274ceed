/**
 * BatchSender and BatchReceiver against a real nats-server, from the loader's side: a whole
 * epoch of real batches (some chunked, one above the server's max_payload) arrives exactly once
 * and in order; the credit window holds on the wire; hostile control messages are logged and
 * ignored while the loader keeps serving with bounded memory; refusals (version, job, rank, busy)
 * are clear on both sides; the per-side permissions of docs/protocol.md are enough.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ArgumentError, ClosedError, TimeoutError } from '@shardline/core';
import { connect, type NatsConnection } from 'nats';
import { connectFor, natsPerFile, startNats } from '../infra/nats.ts';
import { BatchReceiver } from '@shardline/client';
import { BatchSender } from '@shardline/loader-node';
import { decodeControlMessage, type Delivery, deliverySubjects, MAX_CONTROL_MESSAGE_BYTES, type ReceiverEvent, type Refused, type SenderEvent } from '@shardline/core/protocol';
import { CreditObserver, assertSameBatch, makeBatch, within } from './support.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const enc = new TextEncoder();

const nats = natsPerFile();

const connection = async (t: { after: (fn: () => unknown) => void }): Promise<NatsConnection> => connectFor(t, await nats());

test('an epoch of real batches, chunked ones and one above max_payload, arrives exactly once and in order', async (t) => {
  const job = 'exact-once';
  const [loaderNc, trainerNc] = [await connection(t), await connection(t)];
  assert.equal(loaderNc.info?.max_payload, 8 * MiB);
  const sender = await BatchSender.open(loaderNc, { namespace: 'test', job, rank: 1, maxCredits: 4, maxChunkBytes: 64 * KiB });
  t.after(() => sender.close());
  const big = await BatchSender.open(loaderNc, { namespace: 'test', job, rank: 2, maxCredits: 2 });
  t.after(() => big.close());

  // Mixed sizes: tiny, exactly one chunk, several chunks, and an empty batch.
  const rowBytes = [10, 64 * KiB - 200, 300 * KiB, 1, 2 * KiB, 0, 200 * KiB, 7];
  const batches = rowBytes.map((bytes, step) => makeBatch(job, 1, 0, step, bytes === 0 ? 0 : 2, Math.ceil(bytes / 2)));
  const receiver = await BatchReceiver.connect(trainerNc, { namespace: 'test', job, rank: 1, window: 3 });
  t.after(() => receiver.close());
  const producing = (async () => {
    for (const b of batches) await sender.send(b);
    await sender.endEpoch(0, batches.length);
  })();
  const got: Delivery[] = [];
  for await (const batch of receiver.epoch()) got.push(batch);
  await producing;
  assert.equal(got.length, batches.length);
  got.forEach((d, i) => assertSameBatch(d, batches[i]!, job, 1));
  await within(sender.acknowledged(), 5000, 'the last ack');
  assert.deepEqual(sender.stats().next, { epoch: 1, step: 0 });
  assert.equal(sender.stats().heldBatches, 0);
  assert.ok(sender.stats().framesPublished > batches.length, 'the large batches went in several frames');
  assert.equal(receiver.stats().duplicates, 0);

  // A batch above the server's 8 MiB max_payload, chunked by what nc.info says.
  const huge = makeBatch(job, 2, 0, 0, 1, 8 * MiB + 100);
  const r2 = await BatchReceiver.connect(trainerNc, { namespace: 'test', job, rank: 2 });
  t.after(() => r2.close());
  await big.send(huge);
  await big.endEpoch(0, 1);
  const first = await within(r2.read(), 20_000, 'the 8 MiB batch');
  assertSameBatch(first, huge, job, 2);
  assert.deepEqual(await r2.read(), { type: 'end-of-epoch', epoch: 0, batches: 1 });
  // welcome + 2 chunks + end; on a loaded machine the receiver may time out a chunk still in
  // flight and nack it, which adds a resent frame (dropped as a duplicate) but never fewer. The
  // two reads above are what proves exactly once.
  assert.ok(big.stats().framesPublished >= 1 + 2 + 1, `framesPublished ${big.stats().framesPublished}`);
});

test('send() keeps its own copy: a caller that reuses its buffer once send resolved changes nothing delivered, chunked or not', async (t) => {
  const job = 'reuse';
  const [loaderNc, trainerNc] = [await connection(t), await connection(t)];
  const sender = await BatchSender.open(loaderNc, { namespace: 'test', job, rank: 0, maxCredits: 4, maxChunkBytes: 16 * KiB });
  t.after(() => sender.close());
  // Accepted before any trainer is there: the sender holds them while the caller scribbles over its buffers.
  const batches = [makeBatch(job, 0, 0, 0, 2, 4 * KiB), makeBatch(job, 0, 0, 1, 2, 40 * KiB)];
  const originals = batches.map((b) => Uint8Array.from(b.bytes));
  for (const b of batches) {
    await sender.send(b);
    b.bytes.fill(0xee);
  }
  await sender.endEpoch(0, batches.length);
  const receiver = await BatchReceiver.connect(trainerNc, { namespace: 'test', job, rank: 0, window: 4 });
  t.after(() => receiver.close());
  const got: Delivery[] = [];
  for await (const batch of receiver.epoch()) got.push(batch);
  assert.deepEqual(got.map((d) => (d.type === 'batch' ? [...d.bytes] : [])), originals.map((o) => [...o]));
});

test('the loader never has more batches outstanding than the credit window, seen on the wire', async (t) => {
  const job = 'credits';
  const [loaderNc, trainerNc, observerNc] = [await connection(t), await connection(t), await connection(t)];
  const subjects = deliverySubjects({ namespace: 'test', job, rank: 0 });
  const observer = new CreditObserver(observerNc, subjects, 3);
  await observerNc.flush();
  const sender = await BatchSender.open(loaderNc, { namespace: 'test', job, rank: 0, maxCredits: 5, maxChunkBytes: 4 * KiB });
  t.after(() => sender.close());
  // The trainer's window (3) is below the loader's maxCredits (5): the trainer's credit binds.
  const receiver = await BatchReceiver.connect(trainerNc, { namespace: 'test', job, rank: 0, window: 3 });
  t.after(() => receiver.close());
  const n = 30;
  let maxInFlight = 0;
  const producing = (async () => {
    for (let step = 0; step < n; step++) {
      await sender.send(makeBatch(job, 0, 0, step, 2, 3 * KiB + step * 100));
      maxInFlight = Math.max(maxInFlight, sender.stats().inFlight);
    }
    await sender.endEpoch(0, n);
  })();
  let step = 0;
  for await (const batch of receiver.epoch()) {
    assert.equal(batch.step, step++);
    if (step % 7 === 0) await sleep(30); // a slow consumer: the loader runs into the window
  }
  await producing;
  await observerNc.flush();
  assert.equal(step, n);
  assert.deepEqual(observer.violations, []);
  assert.equal(observer.maxOutstanding, 3, 'the window was reached (and never passed)');
  assert.ok(maxInFlight <= 3, `in flight ${maxInFlight}`);
  assert.ok(observer.frames >= n * 2, 'batches went in two chunks each');
});

test('hostile control messages are logged and ignored; the loader keeps serving with bounded memory', async (t) => {
  const job = 'hostile-ctl';
  const [loaderNc, trainerNc, attackerNc] = [await connection(t), await connection(t), await connection(t)];
  const events: SenderEvent[] = [];
  const sender = await BatchSender.open(loaderNc, { namespace: 'test', job, rank: 0, maxCredits: 3, resetIntervalMs: 60_000, onEvent: (e) => events.push(e) });
  t.after(() => sender.close());
  const subjects = sender.subjects;
  // window = maxCredits: a forged grant in the trainer's session is clamped to what the trainer can take.
  const receiver = await BatchReceiver.connect(trainerNc, { namespace: 'test', job, rank: 0, window: 3 });
  t.after(() => receiver.close());
  const session = receiver.stats().session;

  const garbage: Array<string | Uint8Array> = [
    'not json',
    '{"type":"credit"',
    '[1,2,3]',
    'null',
    new Uint8Array([0xff, 0xfe, 0x00, 0x80]),
    new Uint8Array(1 * MiB).fill(0x7b),
    'x'.repeat(MAX_CONTROL_MESSAGE_BYTES + 1),
    JSON.stringify({ type: 'credit', version: 1, session, granted: -5 }),
    JSON.stringify({ type: 'credit', version: 1, session, granted: 1.5 }),
    JSON.stringify({ type: 'credit', version: 1, session, granted: '10' }),
    JSON.stringify({ type: 'credit', version: 2, session, granted: 10 }),
    JSON.stringify({ type: 'ack', version: 1, session, epoch: -1, step: 0 }),
    JSON.stringify({ type: 'ack', version: 1, session, epoch: 2 ** 40, step: 0 }),
    JSON.stringify({ type: 'nack', version: 1, session, epoch: 0, step: 0, chunks: Array.from({ length: 300 }, (_, i) => i) }),
    JSON.stringify({ type: 'welcome', version: 1, session }),
    JSON.stringify({ type: 'unknown', version: 1, session }),
    '{"type":"credit","version":1,"session":1,"granted":1,"__proto__":{"polluted":true}}',
  ];
  for (const g of garbage) attackerNc.publish(subjects.ctl, g);
  for (const g of garbage.slice(0, 6)) attackerNc.publish(subjects.hello, g);
  attackerNc.publish(subjects.hello, JSON.stringify({ type: 'hello', version: 1, session: 7, job: '../etc', rank: 0, clientId: 'x', hostId: 'y', credits: 1, resume: null }));
  // Well-formed but absurd or wrong, in the trainer's own session.
  attackerNc.publish(subjects.ctl, JSON.stringify({ type: 'credit', version: 1, session, granted: 1e15 }));
  attackerNc.publish(subjects.ctl, JSON.stringify({ type: 'ack', version: 1, session, epoch: 5, step: 9 }));
  attackerNc.publish(subjects.ctl, JSON.stringify({ type: 'nack', version: 1, session, epoch: 9, step: 9 }));
  for (let i = 0; i < 50; i++) attackerNc.publish(subjects.ctl, JSON.stringify({ type: 'credit', version: 1, session: 1000 + i, granted: 5 }));
  await attackerNc.flush();

  const n = 12;
  let maxHeld = 0;
  let maxInFlight = 0;
  const producing = (async () => {
    for (let step = 0; step < n; step++) {
      await sender.send(makeBatch(job, 0, 0, step, 1, 1000));
      maxHeld = Math.max(maxHeld, sender.stats().heldBatches);
      maxInFlight = Math.max(maxInFlight, sender.stats().inFlight);
    }
    await sender.endEpoch(0, n);
  })();
  let step = 0;
  for await (const batch of receiver.epoch()) {
    assert.equal(batch.step, step++);
    await sleep(5);
  }
  await producing;
  assert.equal(step, n);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.ok(maxHeld <= 3 && maxInFlight <= 3, `held ${maxHeld}, in flight ${maxInFlight}: the absurd grant was clamped`);

  const malformed = events.filter((e) => e.type === 'malformed');
  assert.ok(malformed.length >= 20, `${malformed.length} malformed messages logged`);
  const messages = malformed.map((e) => (e.type === 'malformed' ? e.error : '')).join('\n');
  for (const expected of [/not JSON/, /not valid UTF-8/, /over the limit of 8192/, /field granted/, /protocol version 2 is not supported/, /field chunks/, /type "unknown"/, /field job/]) {
    assert.match(messages, expected);
  }
  assert.deepEqual(
    events.filter((e) => e.type === 'credit-clamped').map((e) => (e.type === 'credit-clamped' ? e.allowed : 0)),
    [3],
  );
  assert.ok(events.some((e) => e.type === 'ignored' && e.message === 'ack' && /no item at epoch 5 step 9 was sent/.test(e.why)));
  assert.ok(events.some((e) => e.type === 'ignored' && e.message === 'nack'));
  const unknown = events.filter((e) => e.type === 'unknown-session');
  assert.equal(unknown.length, 51);
  assert.equal(unknown.filter((e) => e.type === 'unknown-session' && e.resetSent).length, 1, 'resets are rate-limited');
});

test('a hello of another protocol version, job or rank is refused with a clear message on both sides', async (t) => {
  const job = 'refusals';
  const [loaderNc, trainerNc] = [await connection(t), await connection(t)];
  const events: SenderEvent[] = [];
  const sender = await BatchSender.open(loaderNc, { namespace: 'test', job, rank: 4, onEvent: (e) => events.push(e) });
  t.after(() => sender.close());
  const { hello, events: eventsSubject } = sender.subjects;

  const answers: Refused[] = [];
  trainerNc.subscribe(eventsSubject, { callback: (_e, m) => answers.push(decodeControlMessage(m.data, ['refused'])) });
  await trainerNc.flush();
  const base = { type: 'hello', session: 11, job, rank: 4, clientId: 'raw', hostId: 'h', credits: 2, resume: null };
  trainerNc.publish(hello, JSON.stringify({ ...base, version: 2, futureField: [1] }));
  trainerNc.publish(hello, JSON.stringify({ ...base, version: 1, session: 12, job: 'other-job' }));
  trainerNc.publish(hello, JSON.stringify({ ...base, version: 1, session: 13, rank: 5 }));
  await within(
    (async () => {
      while (answers.length < 3) await sleep(10);
    })(),
    5000,
    'three refusals',
  );
  assert.deepEqual(
    answers.map((a) => [a.session, a.reason, a.supportedVersions]),
    [
      [11, 'version', [1]],
      [12, 'job', [1]],
      [13, 'rank', [1]],
    ],
  );
  assert.match(answers[0]!.message, /protocol version 2 is not supported; this loader speaks version 1/);
  assert.match(answers[1]!.message, /this loader serves job "refusals", the hello names job "other-job"/);
  assert.match(answers[2]!.message, /this loader serves rank 4, the hello names rank 5/);
  assert.deepEqual(
    events.filter((e) => e.type === 'refused').map((e) => (e.type === 'refused' ? e.reason : '')),
    ['version', 'job', 'rank'],
  );

  // The trainer's side: a loader that refuses makes connect() throw an ArgumentError naming the field.
  const fakeLoader = trainerNc.subscribe(deliverySubjects({ namespace: 'test', job: 'fake', rank: 0 }).hello, {
    callback: (_e, m) => {
      const h = decodeControlMessage(m.data, ['hello']);
      const refusal = { type: 'refused', version: 9, session: h.session, reason: 'version', message: 'this loader speaks version 9', supportedVersions: [9] };
      loaderNc.publish(deliverySubjects({ namespace: 'test', job: 'fake', rank: 0 }).events, JSON.stringify(refusal));
    },
  });
  t.after(() => fakeLoader.unsubscribe());
  await trainerNc.flush();
  await assert.rejects(BatchReceiver.connect(trainerNc, { namespace: 'test', job: 'fake', rank: 0 }), (e: unknown) => {
    assert.ok(e instanceof ArgumentError);
    assert.equal(e.argument, 'protocolVersion');
    assert.match(e.message, /the loader refused the hello: this loader speaks version 9/);
    return true;
  });

  // No loader at all: a TimeoutError that names the job and rank.
  await assert.rejects(
    BatchReceiver.connect(trainerNc, { namespace: 'test', job: 'nobody', rank: 3, connectTimeoutMs: 300, helloRetryMs: 100 }),
    (e: unknown) => e instanceof TimeoutError && /no welcome for job "nobody" rank 3 within 300 ms.*no loader answered/.test(e.message),
  );
});

test('a second trainer with another client id is refused as busy while the first is alive, then takes over', async (t) => {
  const job = 'busy';
  const [loaderNc, firstNc, secondNc] = [await connection(t), await connection(t), await connection(t)];
  const sender = await BatchSender.open(loaderNc, { namespace: 'test', job, rank: 0, clientTimeoutMs: 400 });
  t.after(() => sender.close());
  const first = await BatchReceiver.connect(firstNc, { namespace: 'test', job, rank: 0, clientId: 'trainer-a', heartbeatMs: 50 });
  const secondEvents: ReceiverEvent[] = [];
  await assert.rejects(
    BatchReceiver.connect(secondNc, { namespace: 'test', job, rank: 0, clientId: 'trainer-b', helloRetryMs: 100, connectTimeoutMs: 500, onEvent: (e) => secondEvents.push(e) }),
    (e: unknown) => e instanceof TimeoutError && /the last answer: rank 0 is being served to client "trainer-a"/.test(e.message),
  );
  assert.ok(secondEvents.some((e) => e.type === 'refused' && e.reason === 'busy'));
  // Once the first says bye, the second is welcome at once.
  await first.close();
  const second = await BatchReceiver.connect(secondNc, { namespace: 'test', job, rank: 0, clientId: 'trainer-b' });
  t.after(() => second.close());
  await sender.send(makeBatch(job, 0, 0, 0, 1, 10));
  assert.equal((await second.read()).type, 'batch');
  await assert.rejects(first.read(), ClosedError);
});

test('the per-side permissions of docs/protocol.md are enough, and a trainer of another job is kept out', async (t) => {
  const own = await startNats({
    allowExternal: false,
    jetstream: false,
    users: [
      {
        user: 'loader',
        password: 'l',
        publish: ['shardline.ml.perm.rank.*.data', 'shardline.ml.perm.rank.*.events'],
        subscribe: ['shardline.ml.perm.rank.*.hello', 'shardline.ml.perm.rank.*.ctl'],
      },
      {
        user: 'trainer',
        password: 't',
        publish: ['shardline.ml.perm.rank.*.hello', 'shardline.ml.perm.rank.*.ctl'],
        subscribe: ['shardline.ml.perm.rank.*.data', 'shardline.ml.perm.rank.*.events'],
      },
    ],
  });
  t.after(() => own.stop());
  const loaderNc = await connect({ servers: own.url, user: 'loader', pass: 'l' });
  t.after(() => loaderNc.close());
  const trainerNc = await connect({ servers: own.url, user: 'trainer', pass: 't' });
  t.after(() => trainerNc.close());
  const sender = await BatchSender.open(loaderNc, { namespace: 'ml', job: 'perm', rank: 0, maxChunkBytes: 1000, maxBatchBytes: MiB });
  t.after(() => sender.close());
  const receiver = await BatchReceiver.connect(trainerNc, { namespace: 'ml', job: 'perm', rank: 0 });
  t.after(() => receiver.close());
  const batch = makeBatch('perm', 0, 0, 0, 2, 1500);
  await sender.send(batch);
  assertSameBatch(await receiver.read(), batch, 'perm', 0);

  // The same trainer user may not subscribe to another job's subjects: a clear error, no hang.
  const intruderNc = await connect({ servers: own.url, user: 'trainer', pass: 't' });
  t.after(() => intruderNc.close());
  await assert.rejects(
    BatchReceiver.connect(intruderNc, { namespace: 'ml', job: 'other', rank: 0, connectTimeoutMs: 2000 }),
    (e: unknown) => e instanceof ArgumentError && e.argument === 'nc' && /cannot subscribe to shardline\.ml\.other\.rank\.0\.(events|data)/i.test(e.message),
  );
});

test('bad options and batches are ArgumentErrors naming the field', async (t) => {
  const nc = await connection(t);
  await assert.rejects(BatchSender.open(nc, { job: 'Bad.Job', rank: 0 }), /job: must be 1 to 63 lower-case letters/);
  await assert.rejects(BatchSender.open(nc, { job: 'j', namespace: 'a>b', rank: 0 }), /namespace: must be/);
  await assert.rejects(BatchSender.open(nc, { job: 'j', rank: -1 }), /rank: must be an integer/);
  await assert.rejects(BatchSender.open(nc, { job: 'j', rank: 0, maxCredits: 0 }), /maxCredits: must be in \[1, 1000000\], got 0/);
  await assert.rejects(BatchSender.open(nc, { job: 'j', rank: 0, maxChunkBytes: 10, maxBatchBytes: 10 * 65_536 + 1 }), /maxBatchBytes: .* more than 65536 chunks/);
  await assert.rejects(BatchReceiver.connect(nc, { job: 'j', rank: 0, clientId: 'has space' }), /clientId: must be 1 to 128 printable ASCII/);
  await assert.rejects(BatchReceiver.connect(nc, { job: 'j', rank: 0, resume: { epoch: 0, step: -1 } }), /resume\.step: must be an integer/);

  const sender = await BatchSender.open(nc, { namespace: 'test', job: 'bad-args', rank: 0, maxBatchBytes: 100 });
  t.after(() => sender.close());
  await assert.rejects(sender.send({ epoch: 0, step: 1, sampleIds: [], bytes: new Uint8Array(1) }), /batch: batch at epoch 0 step 1 is out of order: the stream expects epoch 0 step 0 next/);
  await assert.rejects(sender.send({ epoch: 0, step: 0, sampleIds: [-1], bytes: new Uint8Array(1) }), /batch\.sampleIds\[0\]: must be an integer/);
  await assert.rejects(sender.send({ epoch: 0, step: 0, sampleIds: [], bytes: new Uint8Array(101) }), /batch\.bytes: .* 101 bytes, more than maxBatchBytes \(100\)/);
  await assert.rejects(sender.send({ epoch: 0, step: 0, sampleIds: [], bytes: 'x' as unknown as Uint8Array }), /batch\.bytes: must be a Uint8Array/);
  await assert.rejects(sender.endEpoch(0, 3), /endEpoch: end of epoch 0 after 3 batches is out of order/);
  await sender.send({ epoch: 0, step: 0, sampleIds: [1], bytes: enc.encode('ok') });
  const aborted = AbortSignal.abort();
  await assert.rejects(sender.send({ epoch: 0, step: 1, sampleIds: [], bytes: new Uint8Array(1) }, { signal: aborted }), /aborted/);
  await sender.close();
  await assert.rejects(sender.send({ epoch: 0, step: 1, sampleIds: [], bytes: new Uint8Array(1) }), ClosedError);
});

test('bytes held stay within maxHeldBytes whatever the credits allow; a larger batch goes alone', async (t) => {
  const job = 'held-bytes';
  const [loaderNc, trainerNc] = [await connection(t), await connection(t)];
  const limit = 100 * KiB;
  const sender = await BatchSender.open(loaderNc, { namespace: 'test', job, rank: 0, maxCredits: 8, maxHeldBytes: limit });
  t.after(() => sender.close());
  // A slow trainer with a window as large as the loader's credits: only the bytes bound binds.
  const receiver = await BatchReceiver.connect(trainerNc, { namespace: 'test', job, rank: 0, window: 8 });
  t.after(() => receiver.close());
  const batches = [...Array.from({ length: 12 }, (_, step) => makeBatch(job, 0, 0, step, 2, 20 * KiB)), makeBatch(job, 0, 0, 12, 2, 100 * KiB)];
  let maxHeld = 0;
  const producing = (async () => {
    for (const b of batches) {
      await sender.send(b);
      const held = sender.stats().heldBytes;
      if (b.bytes.byteLength <= limit) assert.ok(held <= limit, `held ${held} bytes > ${limit}`);
      else assert.equal(held, b.bytes.byteLength, 'the oversized batch is held alone');
      maxHeld = Math.max(maxHeld, held);
    }
    await sender.endEpoch(0, batches.length);
  })();
  const got: Delivery[] = [];
  for await (const batch of receiver.epoch()) {
    got.push(batch);
    await sleep(5);
  }
  await producing;
  assert.equal(got.length, batches.length);
  got.forEach((d, i) => assertSameBatch(d, batches[i]!, job, 0));
  assert.ok(maxHeld > 2 * 40 * KiB, `the bound was reached (max held ${maxHeld})`);
  await assert.rejects(BatchSender.open(loaderNc, { namespace: 'test', job: 'x', rank: 0, maxHeldBytes: 0 }), /maxHeldBytes/);
});
