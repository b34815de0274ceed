/**
 * The shared-memory transport and the trainer's wait report at the protocol level, without a
 * server: who gets an shm session, what frames each side sends, the fallback to NATS, and the
 * hostile shm frames a trainer must refuse.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FormatError } from '../errors.ts';
import { FRAME_KIND_CHUNK, FRAME_KIND_SHM, decodeChunkFrame, decodeShmFrame, encodeChunkFrame, encodeShmFrame, frameKind, type ShmFrame } from './frame.ts';
import { LOADER_MESSAGE_TYPES, decodeControlMessage, encodeControlMessage, type LoaderMessage, type TrainerMessage } from './messages.ts';
import { ReceiverProtocol, type ReceiverEvent } from './receiver-protocol.ts';
import { SenderProtocol, type Outgoing, type SenderEvent } from './sender-protocol.ts';
import type { SegmentDescriptor } from './shm/descriptor.ts';
import { HEADER_BYTES } from './shm/segment-file.ts';
import { StaleDescriptorError } from './shm/shm-reader.ts';

const RING = 'shardline-j-0-abc123';
const descriptor = (slot: number, length: number): SegmentDescriptor => ({ ring: RING, slot, generation: 1, offset: HEADER_BYTES, length });

function sender(options: { shm?: boolean; hostId?: string } = {}, events: SenderEvent[] = []): SenderProtocol {
  return new SenderProtocol({
    job: 'j',
    rank: 0,
    maxCredits: 4,
    maxBatchBytes: 1000,
    clientTimeoutMs: 1000,
    resetIntervalMs: 1000,
    loaderId: 'l',
    hostId: options.hostId ?? 'node-a',
    shm: options.shm ?? true,
    onEvent: (e) => events.push(e),
  });
}

const hello = (over: Partial<TrainerMessage> = {}): Uint8Array =>
  encodeControlMessage({ type: 'hello', version: 1, session: 5, job: 'j', rank: 0, clientId: 'c', hostId: 'node-a', credits: 4, resume: null, shm: true, ...over } as TrainerMessage);

function welcomeOf(out: readonly Outgoing[]): Extract<LoaderMessage, { type: 'welcome' }> {
  const m = decodeControlMessage(out[0]!.bytes, LOADER_MESSAGE_TYPES);
  assert.equal(m.type, 'welcome');
  return m as Extract<LoaderMessage, { type: 'welcome' }>;
}

const kinds = (out: readonly Outgoing[]): number[] => out.filter((o) => o.subject === 'data').map((o) => frameKind(o.bytes));

test('a hello offering shm from the loader host gets an shm session; placed batches go as descriptors, others as chunks', () => {
  const p = sender();
  p.push({ kind: 'batch', epoch: 0, step: 0, sampleIds: [1], bytes: new Uint8Array(10).fill(1), shm: descriptor(0, 10) });
  p.push({ kind: 'batch', epoch: 0, step: 1, sampleIds: [2], bytes: new Uint8Array(10).fill(2) });
  const out = p.onHello(hello(), 0, 4);
  assert.equal(welcomeOf(out).transport, 'shm');
  assert.equal(p.transport, 'shm');
  // Step 0 placed: one descriptor frame; step 1 not placed: three chunks of at most 4 bytes.
  assert.deepEqual(kinds(out), [FRAME_KIND_SHM, FRAME_KIND_CHUNK, FRAME_KIND_CHUNK, FRAME_KIND_CHUNK]);
  const frame = decodeShmFrame(out[1]!.bytes);
  assert.deepEqual({ ...frame }, { session: 5, job: 'j', rank: 0, epoch: 0, step: 0, totalBytes: 10, descriptor: descriptor(0, 10) });
  // A nack of the placed batch sends the descriptor again, whatever chunks it names.
  const nack = encodeControlMessage({ type: 'nack', version: 1, session: 5, epoch: 0, step: 0, chunks: [1] });
  assert.deepEqual(kinds(p.onControl(nack, 1)), [FRAME_KIND_SHM]);
});

test('no shm session without the offer, from another host, or when the loader has no ring; placed batches then go as chunks', () => {
  const cases: Array<[string, SenderProtocol, Uint8Array]> = [
    ['no offer', sender(), hello({ shm: undefined } as Partial<TrainerMessage>)],
    ['offer false', sender(), hello({ shm: false } as Partial<TrainerMessage>)],
    ['another host', sender(), hello({ hostId: 'node-b' } as Partial<TrainerMessage>)],
    ['no ring', sender({ shm: false }), hello()],
  ];
  for (const [what, p, h] of cases) {
    p.push({ kind: 'batch', epoch: 0, step: 0, sampleIds: [1], bytes: new Uint8Array(3), shm: descriptor(0, 3) });
    const out = p.onHello(h, 0, 100);
    assert.equal(welcomeOf(out).transport, 'nats', what);
    assert.deepEqual(kinds(out), [FRAME_KIND_CHUNK], what);
  }
});

function receiver(events: ReceiverEvent[] = [], shm = true): ReceiverProtocol {
  return new ReceiverProtocol({
    job: 'j',
    rank: 0,
    window: 4,
    maxBatchBytes: 1000,
    clientId: 'c',
    hostId: 'node-a',
    resendAfterMs: 100,
    heartbeatMs: 250,
    helloRetryMs: 300,
    connectTimeoutMs: 5000,
    shm,
    onEvent: (e) => events.push(e),
  });
}

function trainerMessages(out: readonly Outgoing[]): TrainerMessage[] {
  return out.map((o) => decodeControlMessage(o.bytes, ['hello', 'credit', 'ack', 'nack', 'bye']));
}

/** Runs a trainer and a loader against each other in memory, the trainer "reading" shared memory from `memory`. */
test('end to end in memory: descriptors in, the placed bytes out (not copied), acks and the wait report back', () => {
  const loaderEvents: SenderEvent[] = [];
  const p = sender({}, loaderEvents);
  const r = receiver();
  const memory = new Map<number, Uint8Array>();
  for (let step = 0; step < 3; step++) {
    const bytes = new Uint8Array(20).fill(step + 1);
    memory.set(step, bytes);
    p.push({ kind: 'batch', epoch: 0, step, sampleIds: [step], bytes, shm: descriptor(step, 20) });
  }
  p.push({ kind: 'end', epoch: 0, batches: 3 });
  const [h] = r.connect(0, 'start');
  assert.equal((trainerMessages([h!])[0] as { shm?: boolean }).shm, true, 'the hello offers shm');
  const out = p.onHello(h!.bytes, 0, 8);
  const taken: Uint8Array[] = [];
  for (const o of out) {
    const step = o.subject === 'events' ? r.onEvents(o.bytes, 1) : r.onData(o.bytes, 1);
    if (step.shm !== undefined) {
      const bytes = memory.get(step.shm.descriptor.slot)!;
      r.onShmBatch(step.shm, bytes, 2);
    }
  }
  assert.equal(r.transport, 'shm');
  r.addWait(0.25);
  r.addWait(0.5);
  const ctl: Outgoing[] = [];
  for (;;) {
    const { item, outgoing } = r.take(3);
    if (item === undefined) break;
    if (item.type === 'batch') taken.push(item.bytes);
    ctl.push(...outgoing);
  }
  assert.equal(taken.length, 3);
  for (const [i, bytes] of taken.entries()) assert.equal(bytes, memory.get(i), 'the buffer read from shared memory is handed over, not copied');
  const credits = trainerMessages(ctl).filter((m) => m.type === 'credit');
  assert.equal((credits.at(-1) as { waitedSeconds?: number }).waitedSeconds, 0.75);
  for (const o of ctl) p.onControl(o.bytes, 4);
  const waits = loaderEvents.filter((e) => e.type === 'trainer-wait');
  assert.deepEqual(
    waits.map((e) => e.seconds),
    [0.75],
    'the loader counts each reported second once, however many credits repeat the total',
  );
  assert.equal(loaderEvents.filter((e) => e.type === 'batch-acked').length, 3);
});

test('a failed shared-memory read ends the shm offer: a new hello without it, and the batch comes again as chunks', () => {
  const events: ReceiverEvent[] = [];
  const r = receiver(events);
  const p = sender();
  p.push({ kind: 'batch', epoch: 0, step: 0, sampleIds: [1], bytes: new Uint8Array(6).fill(7), shm: descriptor(0, 6) });
  const [h] = r.connect(0, 'start');
  const out = p.onHello(h!.bytes, 0, 100);
  let pending: ShmFrame | undefined;
  for (const o of out) pending = (o.subject === 'events' ? r.onEvents(o.bytes, 1) : r.onData(o.bytes, 1)).shm ?? pending;
  assert.ok(pending !== undefined);
  const [again] = r.shmFailed(pending, new FormatError('segment does not exist'), 2);
  const second = trainerMessages([again!])[0] as { type: string; shm?: boolean; session: number };
  assert.equal(second.type, 'hello');
  assert.equal(second.shm, undefined, 'no offer after a failure');
  assert.ok(events.some((e) => e.type === 'shm-failed' && /does not exist/.test(e.error)));
  const out2 = p.onHello(again!.bytes, 3, 100);
  assert.equal(welcomeOf(out2).transport, 'nats');
  for (const o of out2) {
    if (o.subject === 'events') r.onEvents(o.bytes, 4);
    else r.onData(o.bytes, 4);
  }
  const { item } = r.take(5);
  assert.ok(item?.type === 'batch');
  assert.deepEqual([...item.bytes], [7, 7, 7, 7, 7, 7]);
  // A failure report for a frame of an older session changes nothing.
  assert.deepEqual(r.shmFailed(pending, new Error('late'), 6), []);
});

test('a trainer refuses shm frames it did not agree to, for another job, or in a nats session; a loader cannot force shm', () => {
  const events: ReceiverEvent[] = [];
  const r = receiver(events, false);
  const [h] = r.connect(0, 'start');
  const session = (trainerMessages([h!])[0] as { session: number }).session;
  assert.equal((trainerMessages([h!])[0] as { shm?: boolean }).shm, undefined);
  const welcome = encodeControlMessage({ type: 'welcome', version: 1, session, job: 'j', rank: 0, next: { epoch: 0, step: 0 }, maxCredits: 4, maxBatchBytes: 1000, loaderId: 'l', hostId: 'node-a', transport: 'shm' });
  r.onEvents(welcome, 1);
  assert.equal(r.transport, 'nats', 'a welcome saying shm to a trainer that did not offer it is not obeyed');
  const step = r.onData(encodeShmFrame({ session, job: 'j', rank: 0, epoch: 0, step: 0, totalBytes: 4 }, descriptor(0, 4)), 2);
  assert.equal(step.shm, undefined);
  assert.ok(events.some((e) => e.type === 'rejected' && /transport is nats/.test(e.why)));
});

test('shm frames round-trip; hostile ones are FormatErrors naming the problem, and never decode as chunks', () => {
  const header = { session: 9, job: 'mnist', rank: 3, epoch: 2, step: 7, totalBytes: 4096 };
  const frame = encodeShmFrame(header, descriptor(1, 4096));
  assert.equal(frameKind(frame), FRAME_KIND_SHM);
  assert.deepEqual({ ...decodeShmFrame(frame) }, { ...header, descriptor: descriptor(1, 4096) });
  assert.throws(() => decodeChunkFrame(frame), /kind 2 is not a batch chunk/);
  const chunk = encodeChunkFrame({ ...header, index: 0, count: 1, chunkSize: 4096, totalBytes: 4096 }, new Uint8Array(4096));
  assert.throws(() => decodeShmFrame(chunk), /kind 1 is not a shared-memory descriptor/);
  const withPayload = (payload: string): Uint8Array => {
    const prefix = frame.subarray(0, frame.byteLength - JSON.stringify(descriptor(1, 4096)).length);
    const bytes = new Uint8Array(prefix.byteLength + payload.length);
    bytes.set(prefix);
    bytes.set(new TextEncoder().encode(payload), prefix.byteLength);
    return bytes;
  };
  assert.throws(() => decodeShmFrame(withPayload('not json')), /not JSON/);
  assert.throws(() => decodeShmFrame(withPayload(JSON.stringify(descriptor(1, 10)))), /names 10 bytes, the header says 4096/);
  assert.throws(() => decodeShmFrame(withPayload(JSON.stringify({ ...descriptor(1, 4096), ring: '../../etc/passwd' }))), /ring must be a name/);
  assert.throws(() => decodeShmFrame(withPayload(' '.repeat(600))), /over 512 bytes/);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(600), (noise, at) => {
      const bytes = frame.slice();
      bytes.set(noise.subarray(0, Math.max(0, bytes.byteLength - at)), Math.min(at, bytes.byteLength));
      try {
        decodeShmFrame(bytes);
      } catch (error) {
        assert.ok(error instanceof FormatError, String(error));
      }
    }),
  );
});

test('a late copy of a descriptor is never read, and a stale slot does not end shared memory', () => {
  const events: ReceiverEvent[] = [];
  const r = receiver(events);
  const p = sender();
  p.push({ kind: 'batch', epoch: 0, step: 0, sampleIds: [1], bytes: new Uint8Array(5), shm: descriptor(0, 5) });
  p.push({ kind: 'batch', epoch: 0, step: 1, sampleIds: [2], bytes: new Uint8Array(5), shm: descriptor(1, 5) });
  const [h] = r.connect(0, 'start');
  const out = p.onHello(h!.bytes, 0, 100);
  const frames = new Map<number, ShmFrame>();
  for (const o of out) {
    const step = o.subject === 'events' ? r.onEvents(o.bytes, 1) : r.onData(o.bytes, 1);
    if (step.shm !== undefined) frames.set(step.shm.step, step.shm);
  }
  r.onShmBatch(frames.get(0)!, new Uint8Array(5), 2);
  assert.equal(r.take(3).item?.type, 'batch');
  // The loader's copy of step 0's frame arrives again after the trainer consumed it (its slot may hold another batch by now).
  const late = r.onData(encodeShmFrame({ session: r.session, job: 'j', rank: 0, epoch: 0, step: 0, totalBytes: 5 }, descriptor(0, 5)), 4);
  assert.equal(late.shm, undefined, 'not read');
  assert.ok(events.some((e) => e.type === 'duplicate' && e.step === 0));
  // Step 1's slot turned out stale: dropped, shared memory stays, a nack will ask again.
  const stale = new StaleDescriptorError('segment x', 1, 2, '');
  assert.deepEqual(r.shmFailed(frames.get(1)!, stale, 5), []);
  assert.equal(r.transport, 'shm');
  assert.ok(!events.some((e) => e.type === 'shm-failed'));
});
