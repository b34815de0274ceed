/**
 * Property tests of the whole protocol without a server: the loader's and the trainer's engines
 * (SenderProtocol, ReceiverProtocol) talk through a simulated network that loses, duplicates and
 * reorders messages, drops everything at a reconnect, and sees the trainer and the loader
 * restart. Whatever the schedule, the consumer gets every item of the stream exactly once, in
 * order, with the right bytes; the loader never has more batches in flight than its credit
 * window; and both ends stay within their memory bounds.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Delivery } from './batch-transport.ts';
import { itemPosition, type StreamItem } from './credit-window.ts';
import { comparePositions, type Position } from './position.ts';
import { ReceiverProtocol, type ReceiverEvent } from './receiver-protocol.ts';
import { SenderProtocol, type Outgoing, type SenderEvent } from './sender-protocol.ts';

const JOB = 'sim-job';
const RANK = 2;

/** Deterministic bytes of the batch at (epoch, step). */
function batchBytes(epoch: number, step: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (epoch * 31 + step * 7 + i) & 0xff;
  return bytes;
}

/** The stream: for each epoch its batches (sizes given), then its end marker. */
function streamOf(epochs: readonly (readonly number[])[], firstEpoch = 0): StreamItem[] {
  const items: StreamItem[] = [];
  epochs.forEach((sizes, i) => {
    const epoch = firstEpoch + i;
    sizes.forEach((size, step) => items.push({ kind: 'batch', epoch, step, sampleIds: [epoch * 1000 + step], bytes: batchBytes(epoch, step, size) }));
    items.push({ kind: 'end', epoch, batches: sizes.length });
  });
  return items;
}

function describeDelivery(d: Delivery): string {
  return d.type === 'batch' ? `batch ${d.epoch}/${d.step}` : `end ${d.epoch}/${d.batches}`;
}

function describeItem(i: StreamItem): string {
  return i.kind === 'batch' ? `batch ${i.epoch}/${i.step}` : `end ${i.epoch}/${i.batches}`;
}

type Command =
  | { kind: 'push' }
  | { kind: 'toLoader'; pick: number }
  | { kind: 'toTrainer'; pick: number }
  | { kind: 'drop'; toLoader: boolean; pick: number }
  | { kind: 'duplicate'; toLoader: boolean; pick: number }
  | { kind: 'take' }
  | { kind: 'tick'; ms: number }
  | { kind: 'reconnect' }
  | { kind: 'restartTrainer' }
  | { kind: 'restartLoader' };

const arbCommand: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'push' } as const) },
  { weight: 8, arbitrary: fc.nat(20).map((pick) => ({ kind: 'toLoader', pick }) as const) },
  { weight: 10, arbitrary: fc.nat(20).map((pick) => ({ kind: 'toTrainer', pick }) as const) },
  { weight: 3, arbitrary: fc.record({ toLoader: fc.boolean(), pick: fc.nat(20) }).map((r) => ({ kind: 'drop', ...r }) as const) },
  { weight: 2, arbitrary: fc.record({ toLoader: fc.boolean(), pick: fc.nat(20) }).map((r) => ({ kind: 'duplicate', ...r }) as const) },
  { weight: 5, arbitrary: fc.constant({ kind: 'take' } as const) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 60 }).map((ms) => ({ kind: 'tick', ms }) as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reconnect' } as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restartTrainer' } as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restartLoader' } as const) },
);

interface Scenario {
  epochs: number[][];
  maxCredits: number;
  window: number;
  chunkBytes: number;
  commands: Command[];
}

const arbScenario: fc.Arbitrary<Scenario> = fc.record({
  epochs: fc.array(fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 6 }), { minLength: 1, maxLength: 3 }),
  maxCredits: fc.integer({ min: 1, max: 5 }),
  // A window above maxCredits is an over-eager trainer: the loader clamps it.
  window: fc.integer({ min: 1, max: 7 }),
  chunkBytes: fc.integer({ min: 1, max: 16 }),
  commands: fc.array(arbCommand, { maxLength: 250 }),
});

const RESEND_MS = 10;

/** Runs one scenario and checks the invariants after every step; returns the events seen. */
function simulate(s: Scenario): { sender: SenderEvent[]; receiver: ReceiverEvent[] } {
  const stream = streamOf(s.epochs);
  const senderEvents: SenderEvent[] = [];
  const receiverEvents: ReceiverEvent[] = [];
  let now = 0;
  const makeSender = (start: Position): SenderProtocol =>
    new SenderProtocol({
      job: JOB,
      rank: RANK,
      maxCredits: s.maxCredits,
      maxBatchBytes: 1 << 20,
      start,
      clientTimeoutMs: 60_000,
      resetIntervalMs: 0,
      loaderId: 'loader-sim',
      hostId: 'node-a',
      onEvent: (e) => senderEvents.push(e),
    });
  let sender = makeSender({ epoch: 0, step: 0 });
  const makeReceiver = (resume: ReceiverProtocol['window']['position']): ReceiverProtocol =>
    new ReceiverProtocol({
      job: JOB,
      rank: RANK,
      window: s.window,
      maxBatchBytes: 1 << 20,
      resume,
      clientId: 'trainer-2',
      hostId: 'node-a',
      resendAfterMs: RESEND_MS,
      heartbeatMs: 25,
      helloRetryMs: 30,
      connectTimeoutMs: Number.POSITIVE_INFINITY,
      onEvent: (e) => receiverEvents.push(e),
    });

  let receiver = makeReceiver(null);
  let toLoader: Outgoing[] = [...receiver.connect(now, 'start')];
  let toTrainer: Outgoing[] = [];
  let pushed = 0;
  const consumed: Delivery[] = [];

  const check = (where: string): void => {
    const w = sender.window;
    assert.ok(w.inFlight <= s.maxCredits, `${where}: ${w.inFlight} batches in flight, maxCredits ${s.maxCredits}`);
    assert.ok(w.heldBatches <= s.maxCredits, `${where}: the loader holds ${w.heldBatches} batches, maxCredits ${s.maxCredits}`);
    assert.ok(receiver.window.bufferedBatches <= s.window, `${where}: the trainer buffers ${receiver.window.bufferedBatches} batches, window ${s.window}`);
    assert.equal(receiver.failure, undefined, `${where}: the receiver failed`);
  };
  const push = (): void => {
    const item = stream[pushed];
    if (item === undefined || !sender.window.hasRoom(item.kind)) return;
    toTrainer.push(...sender.push(item));
    pushed++;
  };
  const toLoaderAt = (i: number): void => {
    const [m] = toLoader.splice(i, 1);
    if (m === undefined) return;
    toTrainer.push(...(m.subject === 'hello' ? sender.onHello(m.bytes, now, s.chunkBytes) : sender.onControl(m.bytes, now)));
  };
  const toTrainerAt = (i: number): void => {
    const [m] = toTrainer.splice(i, 1);
    if (m === undefined) return;
    const step = m.subject === 'data' ? receiver.onData(m.bytes, now) : receiver.onEvents(m.bytes, now);
    toLoader.push(...step.outgoing);
  };
  const take = (): void => {
    const { item, outgoing } = receiver.take(now);
    if (item === undefined) return;
    toLoader.push(...outgoing);
    const expected = stream[consumed.length];
    assert.ok(expected !== undefined, `the consumer got ${describeDelivery(item)} after the whole stream`);
    assert.equal(describeDelivery(item), describeItem(expected), `item ${consumed.length} of the stream`);
    if (item.type === 'batch' && expected.kind === 'batch') assert.deepEqual(item.bytes, expected.bytes, `bytes of ${describeItem(expected)}`);
    consumed.push(item);
  };
  const tick = (ms: number): void => {
    now += ms;
    toLoader.push(...receiver.tick(now));
  };

  for (const c of s.commands) {
    switch (c.kind) {
      case 'push':
        push();
        break;
      case 'toLoader':
        if (toLoader.length > 0) toLoaderAt(c.pick % toLoader.length);
        break;
      case 'toTrainer':
        if (toTrainer.length > 0) toTrainerAt(c.pick % toTrainer.length);
        break;
      case 'drop': {
        const q = c.toLoader ? toLoader : toTrainer;
        if (q.length > 0) q.splice(c.pick % q.length, 1);
        break;
      }
      case 'duplicate': {
        const q = c.toLoader ? toLoader : toTrainer;
        if (q.length > 0) q.push(q[c.pick % q.length]!);
        break;
      }
      case 'take':
        take();
        break;
      case 'tick':
        tick(c.ms);
        break;
      case 'reconnect':
        // A server restart: everything in flight is lost, and the trainer says hello again.
        toLoader = [];
        toTrainer = [];
        toLoader.push(...receiver.connect(now, 'reconnect'));
        break;
      case 'restartTrainer': {
        // The trainer process dies; a new one resumes from its checkpointed position.
        const resume = receiver.window.position;
        receiver = makeReceiver(resume);
        toLoader.push(...receiver.connect(now, 'start'));
        break;
      }
      case 'restartLoader': {
        // The loader process dies; its replacement starts at the last acked position (what the
        // coordinator's cursor holds) and the pipeline produces the stream again from there.
        const floor = sender.window.floor;
        sender = makeSender(floor);
        pushed = stream.findIndex((item) => comparePositions(itemPosition(item), floor) === 0);
        if (pushed < 0) pushed = stream.length;
        break;
      }
    }
    check(c.kind);
  }

  // A quiet network from here on: the stream must complete, and the loader must be left holding
  // nothing (acks lost to a stale session are repaired by the reset and the next hello).
  const settle = (): void => {
    for (let busy = true; busy; ) {
      busy = false;
      while (pushed < stream.length && sender.window.hasRoom(stream[pushed]!.kind)) {
        push();
        busy = true;
      }
      while (toLoader.length > 0 || toTrainer.length > 0) {
        while (toLoader.length > 0) toLoaderAt(0);
        while (toTrainer.length > 0) toTrainerAt(0);
        busy = true;
        check('quiet delivery');
      }
      while (receiver.window.readyCount > 0) {
        take();
        busy = true;
      }
    }
  };
  for (let round = 0; consumed.length < stream.length || sender.window.heldItems > 0; round++) {
    assert.ok(
      round < 1_000,
      `no progress: ${consumed.length} of ${stream.length} items consumed, ${sender.window.heldItems} held by the loader after 1000 quiet rounds`,
    );
    settle();
    if (consumed.length < stream.length || sender.window.heldItems > 0) tick(RESEND_MS);
    check('quiet round');
  }
  return { sender: senderEvents, receiver: receiverEvents };
}

test('any schedule of loss, duplication, reordering, reconnects and restarts delivers each item exactly once, in order', () => {
  const seen = new Set<string>();
  fc.assert(
    fc.property(arbScenario, (s) => {
      const events = simulate(s);
      for (const e of [...events.sender, ...events.receiver]) seen.add(e.type);
    }),
    { numRuns: 300 },
  );
  // The schedules did reach the recovery paths.
  for (const type of ['resent', 'unknown-session', 'reset', 'nack', 'duplicate', 'batch-acked', 'credit-clamped']) {
    assert.ok(seen.has(type), `no run produced a "${type}" event`);
  }
});

test('a lossless run sends nothing twice and never nacks', () => {
  fc.assert(
    fc.property(
      fc.record({
        epochs: fc.array(fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 6 }), { minLength: 1, maxLength: 3 }),
        maxCredits: fc.integer({ min: 1, max: 5 }),
        chunkBytes: fc.integer({ min: 1, max: 16 }),
        commands: fc.array(
          fc.oneof(
            fc.constant({ kind: 'push' } as const),
            fc.constant({ kind: 'toLoader', pick: 0 } as const),
            fc.constant({ kind: 'toTrainer', pick: 0 } as const),
            fc.constant({ kind: 'take' } as const),
          ),
          { maxLength: 200 },
        ),
      }),
      (s) => {
        // resendAfterMs never elapses: ticks only happen in the quiet phase, one resend interval each,
        // and by then everything in flight has been delivered.
        const events = simulate({ ...s, window: s.maxCredits });
        assert.deepEqual(
          events.sender.filter((e) => e.type === 'resent'),
          [],
        );
        assert.deepEqual(
          events.receiver.filter((e) => e.type === 'duplicate'),
          [],
        );
      },
    ),
    { numRuns: 200 },
  );
});

test('a window above maxCredits is clamped and reported once per session', () => {
  const events = simulate({ epochs: [[5, 5, 5, 5, 5, 5]], maxCredits: 2, window: 6, chunkBytes: 4, commands: [] });
  const clamps = events.sender.filter((e) => e.type === 'credit-clamped');
  assert.equal(clamps.length, 1);
  assert.deepEqual(clamps[0], { type: 'credit-clamped', session: clamps[0]!.type === 'credit-clamped' ? clamps[0]!.session : 0, requested: 6, allowed: 2 });
});
