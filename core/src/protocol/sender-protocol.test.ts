/** The loader's engine without a server: what it publishes for each message, and that no input makes it throw. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import { FramedBatch, decodeChunkFrame } from './frame.ts';
import { LOADER_MESSAGE_TYPES, decodeControlMessage, encodeControlMessage, type TrainerMessage } from './messages.ts';
import { SenderProtocol, type Outgoing, type SenderEvent } from './sender-protocol.ts';

const enc = new TextEncoder();

function make(events: SenderEvent[] = []): SenderProtocol {
  return new SenderProtocol({ job: 'j', rank: 0, maxCredits: 2, maxBatchBytes: 100, clientTimeoutMs: 1000, resetIntervalMs: 1000, loaderId: 'l', hostId: 'h', onEvent: (e) => events.push(e) });
}

const hello = (over: object = {}): Uint8Array =>
  encodeControlMessage({ type: 'hello', version: 1, session: 5, job: 'j', rank: 0, clientId: 'c', hostId: 'h', credits: 1, resume: null, ...over } as TrainerMessage);
const ctl = (m: object): Uint8Array => encodeControlMessage({ version: 1, session: 5, ...m } as TrainerMessage);

function describe(out: readonly Outgoing[]): string[] {
  return out.map((o) => {
    if (o.subject === 'data') {
      const f = decodeChunkFrame(o.bytes);
      return `data ${f.epoch}/${f.step} chunk ${f.index}/${f.count}`;
    }
    const m = decodeControlMessage(o.bytes, LOADER_MESSAGE_TYPES);
    return `${o.subject} ${m.type}`;
  });
}

test('a hello is answered with a welcome and then the items its credit allows, chunked', () => {
  const p = make();
  assert.deepEqual(p.push({ kind: 'batch', epoch: 0, step: 0, sampleIds: [1], bytes: new Uint8Array(10) }), [], 'nothing before a session');
  p.push({ kind: 'batch', epoch: 0, step: 1, sampleIds: [2], bytes: new Uint8Array(3) });
  assert.deepEqual(describe(p.onHello(hello(), 0, 4)), ['events welcome', 'data 0/0 chunk 0/3', 'data 0/0 chunk 1/3', 'data 0/0 chunk 2/3']);
  assert.deepEqual(describe(p.onControl(ctl({ type: 'nack', epoch: 0, step: 0, chunks: [2, 2, 9] }), 1)), ['data 0/0 chunk 2/3'], 'each asked chunk once, unknown ones skipped');
  assert.deepEqual(describe(p.onControl(ctl({ type: 'credit', granted: 2 }), 1)), ['data 0/1 chunk 0/1']);
  assert.deepEqual(describe(p.push({ kind: 'end', epoch: 0, batches: 2 })), ['events end-of-epoch']);
  assert.deepEqual(describe(p.onControl(ctl({ type: 'nack', epoch: 0, step: 2 }), 1)), ['events end-of-epoch']);
  assert.throws(() => p.push({ kind: 'batch', epoch: 1, step: 0, sampleIds: [], bytes: new Uint8Array(101) }), (e: unknown) => e instanceof ArgumentError && e.argument === 'batch.bytes');
});

test('a hello of another version is refused with a bounded message, whatever its version field holds', () => {
  const events: SenderEvent[] = [];
  const p = make(events);
  for (const version of [2, 'x'.repeat(5000), { a: 1 }, null, -1]) {
    const out = p.onHello(enc.encode(JSON.stringify({ type: 'hello', version, session: 9 })), 0, 100);
    assert.equal(out.length, 1);
    const refused = decodeControlMessage(out[0]!.bytes, ['refused']);
    assert.equal(refused.reason, 'version');
    assert.ok(refused.message.length < 200);
  }
  assert.deepEqual(p.onHello(enc.encode(JSON.stringify({ type: 'hello', version: 2 })), 0, 100), [], 'no session to answer: only logged');
  assert.equal(events.filter((e) => e.type === 'refused').length, 5);
});

test('no sequence of received bytes makes the loader throw, and it never exceeds its window', () => {
  const arbMessage = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.record({
      type: fc.constantFrom('hello', 'credit', 'ack', 'nack', 'bye', 'welcome'),
      version: fc.constantFrom(1, 1, 1, 2),
      session: fc.constantFrom(5, 6, 0),
      granted: fc.oneof(fc.nat(10), fc.constant(1e15)),
      epoch: fc.nat(2),
      step: fc.nat(4),
      chunks: fc.option(fc.array(fc.nat(5), { minLength: 1, maxLength: 4 }), { nil: undefined }),
      job: fc.constantFrom('j', 'k'),
      rank: fc.constantFrom(0, 1),
      clientId: fc.constantFrom('c', 'd'),
      hostId: fc.constant('h'),
      credits: fc.nat(5),
      resume: fc.option(fc.record({ epoch: fc.nat(1), step: fc.nat(3) }), { nil: null }),
    }).map((m) => enc.encode(JSON.stringify(m))),
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), arbMessage), { maxLength: 60 }), (messages) => {
      const p = make();
      let step = 0;
      for (const [isHello, bytes] of messages) {
        if (p.window.hasRoom('batch')) p.push({ kind: 'batch', epoch: 0, step: step++, sampleIds: [], bytes: new Uint8Array(5) });
        const out = isHello ? p.onHello(bytes, step, 3) : p.onControl(bytes, step);
        for (const o of out) assert.ok(o.bytes.byteLength > 0);
        assert.ok(p.window.heldBatches <= 2 && p.window.inFlight <= 2);
      }
    }),
  );
});

test('a batch held as frames is published as views when the session layout fits, and re-cut from its bytes when not', () => {
  const bytes = Uint8Array.from({ length: 10 }, (_, i) => i);
  const framedItem = (maxChunk: number, step: number) => {
    const framed = FramedBatch.build({ job: 'j', rank: 0, epoch: 0, step }, bytes, maxChunk);
    return {
      kind: 'batch' as const,
      epoch: 0,
      step,
      sampleIds: [step],
      get bytes() {
        return framed.bytes();
      },
      framed,
    };
  };
  const p = make();
  p.push(framedItem(4, 0)); // the session's layout (chunks of 4)
  p.push(framedItem(8, 1)); // another layout: cut again
  const out = p.onHello(hello({ credits: 2 }), 0, 4).filter((o) => o.subject === 'data');
  assert.deepEqual(describe(out), ['data 0/0 chunk 0/3', 'data 0/0 chunk 1/3', 'data 0/0 chunk 2/3', 'data 0/1 chunk 0/3', 'data 0/1 chunk 1/3', 'data 0/1 chunk 2/3']);
  for (const step of [0, 1]) {
    const payload = out.map((o) => decodeChunkFrame(o.bytes)).filter((f) => f.step === step).flatMap((f) => [...f.payload]);
    assert.deepEqual(payload, [...bytes], `step ${step}: the batch's bytes`);
    assert.ok(out.map((o) => decodeChunkFrame(o.bytes)).every((f) => f.session === 5));
  }
});
