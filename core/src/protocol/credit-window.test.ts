/** The loader's window: order, room, sessions and refusals, credit (clamped), acks and nacks. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import { CreditWindow, type HelloRequest, type StreamItem } from './credit-window.ts';

const batch = (epoch: number, step: number): StreamItem => ({ kind: 'batch', epoch, step, sampleIds: [step], bytes: new Uint8Array(10) });
const end = (epoch: number, batches: number): StreamItem => ({ kind: 'end', epoch, batches });
const hello = (over: Partial<HelloRequest> = {}): HelloRequest => ({ session: 1, job: 'j', rank: 0, clientId: 'a', hostId: 'h', credits: 2, resume: null, ...over });
const make = (maxCredits = 3) => new CreditWindow({ job: 'j', rank: 0, maxCredits, clientTimeoutMs: 1000 });

function drain(w: CreditWindow): string[] {
  const out: string[] = [];
  for (let item = w.takePublishable(); item !== undefined; item = w.takePublishable()) out.push(item.kind === 'batch' ? `b${item.epoch}/${item.step}` : `e${item.epoch}/${item.batches}`);
  return out;
}

test('items must come in stream order, and only while there is room', () => {
  const w = make(2);
  assert.throws(() => w.push(batch(0, 1)), (e: unknown) => e instanceof ArgumentError && /batch at epoch 0 step 1 is out of order: the stream expects epoch 0 step 0 next/.test(e.message));
  w.push(batch(0, 0));
  assert.throws(() => w.push(end(0, 2)), /end of epoch 0 after 2 batches is out of order: the stream expects epoch 0 step 1 next \(a batch, or the end of epoch 0 after 1 batches\)/);
  w.push(batch(0, 1));
  assert.equal(w.hasRoom('batch'), false);
  assert.throws(() => w.push(batch(0, 2)), /window: holds 2 batches already/);
  assert.equal(w.hasRoom('end'), true);
  w.push(end(0, 2));
  assert.deepEqual(w.next, { epoch: 1, step: 0 });
  assert.equal(w.heldBatches, 2);
  assert.equal(w.heldBytes, 20);
});

test('nothing is published without a session, and batches only within the credit; end markers need none', () => {
  const w = make(3);
  for (const item of [batch(0, 0), batch(0, 1), end(0, 2), batch(1, 0)]) w.push(item);
  assert.deepEqual(drain(w), []);
  assert.equal(w.hello(hello({ credits: 1 }), 0).type, 'welcome');
  assert.deepEqual(drain(w), ['b0/0']);
  assert.equal(w.inFlight, 1);
  assert.deepEqual(w.credit(1, 2, 0), { status: 'ok' });
  assert.deepEqual(drain(w), ['b0/1', 'e0/2']);
  assert.deepEqual(w.credit(1, 1, 0), { status: 'ok' }, 'a smaller (stale) grant changes nothing');
  assert.deepEqual(drain(w), []);
  assert.deepEqual(w.credit(1, 3, 0), { status: 'ok' });
  assert.deepEqual(drain(w), ['b1/0']);
  assert.deepEqual(w.credit(99, 10, 0), { status: 'unknown-session' });
});

test('a grant beyond maxCredits is clamped, reported once, and never lets more than maxCredits be in flight', () => {
  const w = make(2);
  w.push(batch(0, 0));
  w.push(batch(0, 1));
  const welcome = w.hello(hello({ credits: 1_000_000 }), 0);
  assert.equal(welcome.type, 'welcome');
  assert.deepEqual(w.credit(1, 1e15, 0), { status: 'ok', clamped: { requested: 1e15, allowed: 2 } });
  assert.deepEqual(w.credit(1, 1e15 + 1, 0), { status: 'ok' }, 'reported once while it stays clamped');
  assert.deepEqual(drain(w), ['b0/0', 'b0/1']);
  assert.deepEqual(w.ack(1, { epoch: 0, step: 0 }, 0), { status: 'ok', acked: [batch(0, 0)] });
  w.push(batch(0, 2)); // room again after the ack
  assert.deepEqual(drain(w), ['b0/2']);
  assert.equal(w.inFlight, 2);
  assert.equal(w.hasRoom('batch'), false);
});

test('acks are cumulative, stale ones change nothing, and an ack of something never sent is invalid', () => {
  const w = make(4);
  for (const item of [batch(0, 0), batch(0, 1), end(0, 2), batch(1, 0)]) w.push(item);
  w.hello(hello({ credits: 2 }), 0);
  assert.deepEqual(drain(w), ['b0/0', 'b0/1', 'e0/2']);
  assert.deepEqual(w.ack(1, { epoch: 1, step: 0 }, 0), { status: 'invalid', why: 'no item at epoch 1 step 0 was sent (the oldest unacked item is at epoch 0 step 0)' });
  assert.deepEqual(w.ack(1, { epoch: 0, step: 7 }, 0).status, 'invalid');
  const acked = w.ack(1, { epoch: 0, step: 2 }, 0);
  assert.deepEqual(acked, { status: 'ok', acked: [batch(0, 0), batch(0, 1), end(0, 2)] });
  assert.deepEqual(w.floor, { epoch: 1, step: 0 });
  assert.deepEqual(w.ack(1, { epoch: 0, step: 1 }, 0), { status: 'stale' });
  assert.deepEqual(w.ack(2, { epoch: 0, step: 1 }, 0), { status: 'unknown-session' });
  assert.equal(w.heldItems, 1);
});

test('a nack returns an item only when it was sent in this session', () => {
  const w = make(4);
  for (const item of [batch(0, 0), batch(0, 1)]) w.push(item);
  w.hello(hello({ credits: 1 }), 0);
  drain(w);
  assert.deepEqual(w.nack(1, { epoch: 0, step: 0 }, 0), { status: 'ok', item: batch(0, 0) });
  assert.deepEqual(w.nack(1, { epoch: 0, step: 1 }, 0), { status: 'ignored', why: 'epoch 0 step 1 was not sent in this session yet' });
  assert.deepEqual(w.nack(1, { epoch: 0, step: 5 }, 0), { status: 'ignored', why: 'no item at epoch 0 step 5 is held' });
  w.ack(1, { epoch: 0, step: 0 }, 0);
  assert.deepEqual(w.nack(1, { epoch: 0, step: 0 }, 0), { status: 'ignored', why: 'epoch 0 step 0 was acked already' });
});

test('hellos: job and rank must match, a live session of another client is busy, the same client takes over', () => {
  const w = make();
  assert.deepEqual(w.hello(hello({ job: 'k' }), 0), { type: 'refused', reason: 'job', message: 'this loader serves job "j", the hello names job "k"' });
  assert.deepEqual(w.hello(hello({ rank: 1 }), 0), { type: 'refused', reason: 'rank', message: 'this loader serves rank 0, the hello names rank 1' });
  assert.equal(w.hello(hello(), 0).type, 'welcome');
  const busy = w.hello(hello({ session: 2, clientId: 'b' }), 500);
  assert.equal(busy.type, 'refused');
  assert.match(busy.type === 'refused' ? busy.message : '', /rank 0 is being served to client "a", heard from 500 ms ago; another client may take over after 1000 ms of silence/);
  w.touch(1, 900);
  assert.equal(w.hello(hello({ session: 2, clientId: 'b' }), 1800).type, 'refused', 'the touch kept client a alive');
  assert.equal(w.hello(hello({ session: 3, clientId: 'a' }), 1800).type, 'welcome', 'the same client takes over at once');
  assert.equal(w.hello(hello({ session: 4, clientId: 'b' }), 2801).type, 'welcome', 'after clientTimeoutMs of silence, another client may');
  assert.equal(w.session?.clientId, 'b');
  assert.deepEqual(w.bye(4), { status: 'ok' });
  assert.equal(w.hello(hello({ session: 5, clientId: 'c' }), 2802).type, 'welcome', 'after a bye, at once');
});

test('a repeated hello of the current session is answered again without restarting it', () => {
  const w = make();
  w.push(batch(0, 0));
  w.hello(hello({ credits: 1 }), 0);
  assert.deepEqual(drain(w), ['b0/0']);
  assert.deepEqual(w.hello(hello({ credits: 1 }), 1), { type: 'welcome', next: { epoch: 0, step: 0 }, dropped: [], duplicate: true });
  assert.deepEqual(drain(w), [], 'nothing is sent twice');
});

test('resume points: before the floor is refused, ahead drops what the trainer has and skips it when pushed', () => {
  const w = new CreditWindow({ job: 'j', rank: 0, maxCredits: 4, clientTimeoutMs: 0, start: { epoch: 2, step: 3 } });
  const early = w.hello(hello({ resume: { epoch: 2, step: 2 } }), 0);
  assert.equal(early.type, 'refused');
  assert.match(early.type === 'refused' ? early.message : '', /resume point epoch 2 step 2 is before the oldest item this loader holds \(epoch 2 step 3\)/);
  w.push(batch(2, 3));
  w.push(batch(2, 4));
  const ahead = w.hello(hello({ resume: { epoch: 2, step: 4 } }), 0);
  assert.deepEqual(ahead, { type: 'welcome', next: { epoch: 2, step: 4 }, dropped: [batch(2, 3)], duplicate: false });
  const further = w.hello(hello({ session: 2, resume: { epoch: 2, step: 7 } }), 0);
  assert.equal(further.type, 'welcome');
  assert.equal(w.push(batch(2, 5)), 'skipped');
  assert.equal(w.push(batch(2, 6)), 'skipped');
  assert.equal(w.push(batch(2, 7)), 'held');
  assert.deepEqual(drain(w), ['b2/7']);
});

test('a new session sends every held item again, in order, from the floor', () => {
  const w = make(4);
  for (const item of [batch(0, 0), batch(0, 1), batch(0, 2)]) w.push(item);
  w.hello(hello({ credits: 4 }), 0);
  assert.deepEqual(drain(w), ['b0/0', 'b0/1', 'b0/2']);
  w.ack(1, { epoch: 0, step: 0 }, 0);
  w.hello(hello({ session: 2, credits: 4 }), 0);
  assert.deepEqual(drain(w), ['b0/1', 'b0/2']);
  assert.deepEqual(w.session, { id: 2, clientId: 'a', hostId: 'h', granted: 4, sent: 2, acked: 0, start: { epoch: 0, step: 1 } });
});

test('whatever the trainer sends, the window holds and has in flight at most maxCredits batches', () => {
  type Op = { op: 'push' } | { op: 'credit'; n: number } | { op: 'ack'; i: number } | { op: 'hello'; credits: number; ahead: number } | { op: 'take' };
  const arbOp: fc.Arbitrary<Op> = fc.oneof(
    fc.constant({ op: 'push' } as const),
    fc.integer({ min: 0, max: 1e9 }).map((n) => ({ op: 'credit', n }) as const),
    fc.nat(10).map((i) => ({ op: 'ack', i }) as const),
    fc.record({ credits: fc.nat(100), ahead: fc.nat(3) }).map((r) => ({ op: 'hello', ...r }) as const),
    fc.constant({ op: 'take' } as const),
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 6 }), fc.array(arbOp, { maxLength: 80 }), (max, ops) => {
      const w = make(max);
      let session = 0;
      let step = 0;
      for (const o of ops) {
        if (o.op === 'push' && w.hasRoom('batch')) w.push(batch(0, step++));
        if (o.op === 'credit') w.credit(session, o.n, 0);
        if (o.op === 'ack') w.ack(session, { epoch: 0, step: w.floor.step + o.i }, 0);
        if (o.op === 'hello') w.hello(hello({ session: ++session, credits: o.credits, resume: { epoch: 0, step: w.floor.step + o.ahead } }), 0);
        if (o.op === 'take') w.takePublishable();
        assert.ok(w.heldBatches <= max && w.inFlight <= max && w.inFlight >= 0);
      }
    }),
  );
});
