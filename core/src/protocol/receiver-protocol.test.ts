/** The trainer's engine with a hand-driven clock: hello retries, the connect timeout, refusals, heartbeats, nack pacing. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArgumentError, TimeoutError } from '../errors.ts';
import { encodeChunkFrame } from './frame.ts';
import { decodeControlMessage, encodeControlMessage, type LoaderMessage, type TrainerMessage } from './messages.ts';
import { ReceiverProtocol, type ReceiverEvent } from './receiver-protocol.ts';
import type { Outgoing } from './sender-protocol.ts';

const options = { job: 'j', rank: 0, window: 2, maxBatchBytes: 1000, clientId: 'c', hostId: 'h', resendAfterMs: 100, heartbeatMs: 250, helloRetryMs: 300, connectTimeoutMs: 1000 };

function decode(out: readonly Outgoing[]): TrainerMessage[] {
  return out.map((o) => decodeControlMessage(o.bytes, ['hello', 'credit', 'ack', 'nack', 'bye']));
}

function welcome(session: number, over: Partial<LoaderMessage> = {}): Uint8Array {
  return encodeControlMessage({ type: 'welcome', version: 1, session, job: 'j', rank: 0, next: { epoch: 0, step: 0 }, maxCredits: 4, maxBatchBytes: 1000, loaderId: 'l', hostId: 'h', ...over } as LoaderMessage);
}

test('hellos are retried with a new session each time until connectTimeoutMs, then the stream fails naming job and rank', () => {
  const p = new ReceiverProtocol(options);
  const [first] = decode(p.connect(0, 'start'));
  assert.equal(first?.type, 'hello');
  assert.deepEqual(p.tick(299), []);
  const [second] = decode(p.tick(300));
  assert.ok(second?.type === 'hello' && first?.type === 'hello' && second.session !== first.session);
  p.tick(600);
  p.tick(900);
  assert.deepEqual(p.tick(1000), []);
  assert.equal(p.state, 'failed');
  assert.ok(p.failure instanceof TimeoutError);
  assert.match(p.failure.message, /no welcome for job "j" rank 0 within 1000 ms \(connectTimeoutMs\): no loader answered/);
});

test('a refusal fails the stream with an ArgumentError naming the field; busy is retried', () => {
  const busy = new ReceiverProtocol(options);
  busy.connect(0, 'start');
  const refusal = (session: number, reason: string) =>
    encodeControlMessage({ type: 'refused', version: 1, session, reason, message: `because ${reason}`, supportedVersions: [1] } as LoaderMessage);
  busy.onEvents(refusal(busy.session, 'busy'), 10);
  assert.equal(busy.state, 'connecting');
  busy.tick(1000);
  assert.match(busy.failure?.message ?? '', /the last answer: because busy/);

  for (const [reason, argument] of [['version', 'protocolVersion'], ['job', 'job'], ['rank', 'rank'], ['resume', 'resume']] as const) {
    const p = new ReceiverProtocol(options);
    p.connect(0, 'start');
    p.onEvents(refusal(p.session + 1, reason), 1);
    assert.equal(p.state, 'connecting', 'a refusal of another session is not ours');
    p.onEvents(refusal(p.session, reason), 1);
    assert.ok(p.failure instanceof ArgumentError && p.failure.argument === argument);
    assert.match(p.failure.message, new RegExp(`the loader refused the hello: because ${reason}`));
  }
});

test('a welcome that does not match the hello is dropped and logged, and quoted if the connect times out', () => {
  const events: ReceiverEvent[] = [];
  const p = new ReceiverProtocol({ ...options, resume: { epoch: 1, step: 2 }, onEvent: (e) => events.push(e) });
  p.connect(0, 'start');
  p.onEvents(welcome(p.session, { job: 'k' } as Partial<LoaderMessage>), 1);
  p.onEvents(welcome(p.session), 2);
  assert.equal(p.state, 'connecting');
  assert.deepEqual(
    events.filter((e) => e.type === 'rejected').map((e) => (e.type === 'rejected' ? e.why : '')),
    [
      'the welcome names job "k" rank 0, this stream is job "j" rank 0',
      "the loader's welcome starts the stream at epoch 0 step 0, the hello asked for epoch 1 step 2",
    ],
  );
  p.onEvents(welcome(p.session, { next: { epoch: 1, step: 2 } } as Partial<LoaderMessage>), 3);
  assert.equal(p.state, 'open');

  const stuck = new ReceiverProtocol({ ...options, helloRetryMs: 5000, resume: { epoch: 1, step: 2 } });
  stuck.connect(0, 'start');
  stuck.onEvents(welcome(stuck.session), 1);
  stuck.tick(1000);
  assert.match(stuck.failure?.message ?? '', /within 1000 ms \(connectTimeoutMs\): the last answer: the loader's welcome starts the stream at epoch 0 step 0/);
});

test('when open: a nack after resendAfterMs of silence, no faster; a heartbeat credit every heartbeatMs', () => {
  const p = new ReceiverProtocol(options);
  p.connect(0, 'start');
  p.onEvents(welcome(p.session), 0);
  assert.deepEqual(p.tick(99), []);
  assert.deepEqual(decode(p.tick(100)), [{ type: 'nack', version: 1, session: p.session, epoch: 0, step: 0 }]);
  assert.deepEqual(p.tick(150), [], 'nacks are paced');
  // One chunk of two arrives: progress, then a nack for the missing chunk only.
  const bytes = new Uint8Array(8);
  p.onData(encodeChunkFrame({ session: p.session, job: 'j', rank: 0, epoch: 0, step: 0, index: 0, count: 2, chunkSize: 4, totalBytes: 8 }, bytes), 160);
  assert.deepEqual(p.tick(200), []);
  const out = decode(p.tick(260));
  assert.deepEqual(out[0], { type: 'nack', version: 1, session: p.session, epoch: 0, step: 0, chunks: [1] });
  assert.deepEqual(out[1], { type: 'credit', version: 1, session: p.session, granted: 2, waitedSeconds: 0 }, 'the heartbeat');
  p.onData(encodeChunkFrame({ session: p.session, job: 'j', rank: 0, epoch: 0, step: 0, index: 1, count: 2, chunkSize: 4, totalBytes: 8 }, bytes), 270);
  const { item, outgoing } = p.take(280);
  assert.equal(item?.type, 'batch');
  assert.deepEqual(decode(outgoing), [
    { type: 'ack', version: 1, session: p.session, epoch: 0, step: 0 },
    { type: 'credit', version: 1, session: p.session, granted: 3, waitedSeconds: 0 },
  ]);
  assert.deepEqual(decode(p.close()), [{ type: 'bye', version: 1, session: p.session }]);
  assert.equal(p.state, 'closed');
});

test('a reset of the current session starts a new one from the consumer position', () => {
  const p = new ReceiverProtocol(options);
  p.connect(0, 'start');
  p.onEvents(welcome(p.session), 0);
  const old = p.session;
  const reset = (session: number) => encodeControlMessage({ type: 'reset', version: 1, session, reason: 'restarted' });
  assert.deepEqual(p.onEvents(reset(old + 1), 1).outgoing, []);
  const [hello] = decode(p.onEvents(reset(old), 1).outgoing);
  assert.ok(hello?.type === 'hello' && hello.session !== old);
  assert.deepEqual(hello.type === 'hello' ? hello.resume : undefined, { epoch: 0, step: 0 });
  assert.equal(p.state, 'connecting');
});

test('with adoptFrames, a one-chunk batch is the frame bytes themselves; a chunked one, or without it, is a copy', () => {
  for (const adoptFrames of [true, false]) {
    const p = new ReceiverProtocol({ ...options, window: 4, adoptFrames });
    p.connect(0, 'start');
    p.onEvents(welcome(p.session), 1);
    const one = encodeChunkFrame({ session: p.session, job: 'j', rank: 0, epoch: 0, step: 0, index: 0, count: 1, chunkSize: 6, totalBytes: 6 }, new Uint8Array([1, 2, 3, 4, 5, 6]));
    p.onData(one, 2);
    const batch = new Uint8Array([7, 8, 9, 10]);
    for (const index of [0, 1]) {
      p.onData(encodeChunkFrame({ session: p.session, job: 'j', rank: 0, epoch: 0, step: 1, index, count: 2, chunkSize: 2, totalBytes: 4 }, batch), 3);
    }
    const first = p.take(4).item;
    const second = p.take(5).item;
    assert.ok(first?.type === 'batch' && second?.type === 'batch');
    assert.deepEqual([...first.bytes], [1, 2, 3, 4, 5, 6]);
    assert.deepEqual([...second.bytes], [7, 8, 9, 10]);
    assert.equal(first.bytes.buffer === one.buffer, adoptFrames, adoptFrames ? 'kept as a view of the frame' : 'copied');
    assert.notEqual(second.bytes.buffer, batch.buffer);
  }
});

test('a late tick (the process was busy) does not nack what may be waiting behind it; silence after that does', () => {
  const p = new ReceiverProtocol(options);
  p.connect(0, 'start');
  p.onEvents(welcome(p.session), 1);
  p.tick(40);
  p.onData(encodeChunkFrame({ session: p.session, job: 'j', rank: 0, epoch: 0, step: 0, index: 0, count: 2, chunkSize: 4, totalBytes: 8 }, new Uint8Array(8)), 50);
  // Busy for 2 s: the timer fires late; the other chunk may be sitting in the socket.
  assert.deepEqual(decode(p.tick(2050)).filter((m) => m.type === 'nack'), [], 'no nack from a tick that waited on a busy loop');
  assert.deepEqual(decode(p.tick(2100)).filter((m) => m.type === 'nack'), []);
  const [nack] = decode(p.tick(2150)).filter((m) => m.type === 'nack');
  assert.deepEqual(nack, { type: 'nack', version: 1, session: p.session, epoch: 0, step: 0, chunks: [1] }, 'real silence after it still asks');
});

test('repeated nacks of one item back off (2x, 4x, 8x resendAfterMs); progress resets them', () => {
  const p = new ReceiverProtocol(options);
  p.connect(0, 'start');
  p.onEvents(welcome(p.session), 0);
  const chunk = (index: number) =>
    encodeChunkFrame({ session: p.session, job: 'j', rank: 0, epoch: 0, step: 0, index, count: 3, chunkSize: 4, totalBytes: 12 }, new Uint8Array(12));
  p.onData(chunk(0), 0);
  const nacksAt: number[] = [];
  for (let now = 50; now <= 3000; now += 50) if (decode(p.tick(now)).some((m) => m.type === 'nack')) nacksAt.push(now);
  assert.deepEqual(nacksAt.slice(0, 5), [100, 300, 700, 1500, 2300], 'gaps of 1x, 2x, 4x, 8x, then 8x');
  p.onData(chunk(1), 3000);
  const after: number[] = [];
  for (let now = 3050; now <= 3400; now += 50) if (decode(p.tick(now)).some((m) => m.type === 'nack')) after.push(now);
  assert.deepEqual(after, [3100, 3300], 'a chunk arrived: back to 1x');
});

test('with a resendAfterMs below the timer period, ticks a period apart still nack', () => {
  const p = new ReceiverProtocol({ ...options, resendAfterMs: 4 });
  p.connect(0, 'start');
  p.onEvents(welcome(p.session), 0);
  p.onData(encodeChunkFrame({ session: p.session, job: 'j', rank: 0, epoch: 0, step: 0, index: 0, count: 2, chunkSize: 4, totalBytes: 8 }, new Uint8Array(8)), 0);
  let nacks = 0;
  for (let now = 5; now <= 40; now += 5) nacks += decode(p.tick(now)).filter((m) => m.type === 'nack').length;
  assert.ok(nacks >= 2, `${nacks} nacks in 40 ms of silence with ticks every 5 ms`);
});
