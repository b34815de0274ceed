/**
 * The TypeScript trainer client against a real nats-server and a real BatchSender: batches() over
 * two epochs (every batch once, in order, its tensors intact, trained on with tfjs), a break
 * mid-epoch and a resume from the checkpointed position, a connection opened from options and
 * closed with the stream, epoch() loops, option checks, batches whose metadata names another
 * place, and abort, close and callback errors.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { AbortError, ArgumentError, encodeBatch, FormatError } from '@shardline/core';
import type { OutgoingBatch } from '@shardline/core/protocol';
import { BatchSender } from '@shardline/loader-node';
import * as tf from '@tensorflow/tfjs';
import { connect, type NatsConnection } from 'nats';
import { batches, toTfjs, type TrainerBatch } from '@shardline/client';
import { freePort } from '../infra/supervisor.ts';
import { connectFor, natsPerFile, type NatsServer } from '../infra/nats.ts';
import { within } from '../delivery/support.ts';

const NS = 'test';
const ROWS = 4;

const nats = natsPerFile();
before(async () => {
  await tf.setBackend('cpu');
});

type TestContext = { after: (fn: () => unknown) => void };


async function sender(t: TestContext, nc: NatsConnection, job: string, rank: number): Promise<BatchSender> {
  const s = await BatchSender.open(nc, { namespace: NS, job, rank });
  t.after(() => s.close());
  return s;
}

/** Row i of the batch at (epoch, step): x = [epoch, step·10 + i], target = step + i, label = i. */
function makeBatch(job: string, rank: number, epoch: number, step: number, metadata: { job?: string; rank?: number; epoch?: number; step?: number } = {}): OutgoingBatch {
  const sampleIds = Array.from({ length: ROWS }, (_, i) => epoch * 1000 + step * ROWS + i);
  const x = new Float32Array(ROWS * 2);
  const target = new Float32Array(ROWS);
  const label = new Uint8Array(ROWS);
  for (let i = 0; i < ROWS; i++) {
    x.set([epoch, step * 10 + i], i * 2);
    target[i] = step + i;
    label[i] = i;
  }
  const bytes = encodeBatch(
    { x: { dtype: 'float32', shape: [ROWS, 2], data: x }, target: { dtype: 'float32', shape: [ROWS, 1], data: target }, label: { dtype: 'uint8', shape: [ROWS], data: label } },
    { job, rank, epoch, step, sampleIds, ...metadata },
  );
  return { epoch, step, sampleIds, bytes };
}

/** Sends `epochs` epochs of `steps` batches each, with their end markers. */
async function produce(s: BatchSender, job: string, rank: number, epochs: number, steps: number): Promise<OutgoingBatch[]> {
  const sent: OutgoingBatch[] = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let step = 0; step < steps; step++) {
      const b = makeBatch(job, rank, epoch, step);
      sent.push(b);
      await s.send(b);
    }
    await s.endEpoch(epoch, steps);
  }
  return sent;
}

function assertBatch(got: TrainerBatch, epoch: number, step: number): void {
  assert.deepEqual([got.epoch, got.step], [epoch, step]);
  assert.deepEqual(got.sampleIds, Array.from({ length: ROWS }, (_, i) => epoch * 1000 + step * ROWS + i));
  assert.deepEqual(got.tensors.x!.shape, [ROWS, 2]);
  assert.deepEqual(Array.from(got.tensors.x!.data as Float32Array), Array.from({ length: ROWS }, (_, i) => [epoch, step * 10 + i]).flat());
  assert.deepEqual(Array.from(got.tensors.label!.data as Uint8Array), [0, 1, 2, 3]);
}

/** The server's client connections named `name` (from the monitoring endpoint). */
async function connectionsNamed(server: NatsServer, name: string): Promise<number> {
  const body = (await (await fetch(`${server.monitorUrl}/connz?limit=1024`)).json()) as { connections?: { name?: string }[] };
  return (body.connections ?? []).filter((c) => c.name === name).length;
}

test('two epochs: every batch once, in order, with its tensors; toTfjs trains a tfjs model on them', async (t) => {
  const server = await nats();
  const job = 'two-epochs';
  const [loaderNc, trainerNc] = [await connectFor(t, server), await connectFor(t, server)];
  const s = await sender(t, loaderNc, job, 1);
  const producing = produce(s, job, 1, 2, 5);
  const waits: number[] = [];
  const stream = batches({ job, rank: 1, namespace: NS, nats: trainerNc, epochs: 2, window: 3, onWait: (ms) => waits.push(ms) });

  const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
  model.compile({ optimizer: tf.train.sgd(1e-4), loss: 'meanSquaredError' });
  const got: TrainerBatch[] = [];
  const tensorsBefore = tf.memory().numTensors;
  for await (const batch of stream) {
    got.push(batch);
    const { x, target, label } = toTfjs(batch);
    assert.equal(label!.dtype, 'int32');
    const loss = await model.trainOnBatch(x!, target!);
    assert.ok(Number.isFinite(loss as number), `loss ${String(loss)}`);
    tf.dispose([x!, target!, label!]);
  }
  assert.ok(tf.memory().numTensors <= tensorsBefore + 4, 'the batch tensors were disposed (the optimizer keeps its own state)');
  const sent = await producing;

  assert.deepEqual(
    got.map((b) => [b.epoch, b.step]),
    sent.map((b) => [b.epoch, b.step]),
  );
  got.forEach((b) => assertBatch(b, b.epoch, b.step));
  assert.equal(stream.closed, true, 'the stream closed itself after its 2 epochs');
  assert.deepEqual(stream.position, { epoch: 2, step: 0 });
  const stats = stream.stats();
  assert.deepEqual([stats.batches, stats.epochs, stats.reads], [10, 2, 12]);
  assert.equal(stats.bytes, sent.reduce((n, b) => n + b.bytes.byteLength, 0));
  assert.equal(waits.length, 12, 'onWait once per read');
  assert.ok(Math.abs(stats.waitSeconds - waits.reduce((a, b) => a + b, 0) / 1000) < 1e-9);
  assert.equal(trainerNc.isClosed(), false, "the caller's connection stays open");
  await within(s.acknowledged(), 5000, 'the loader seeing every item acknowledged');
});

test('break mid-epoch, then a new batches() resuming from the position: no duplicate, no gap; connections from options close with the stream', async (t) => {
  const server = await nats();
  const job = 'break-resume';
  const s = await sender(t, await connectFor(t, server), job, 0);
  const producing = produce(s, job, 0, 1, 8);
  const name = `shardline-trainer-${NS}-${job}-rank-0`;
  const common = { job, rank: 0, namespace: NS, clientId: 'trainer-a', nats: { servers: server.url } };

  const first = batches({ ...common, window: 2 });
  t.after(() => first.close());
  const got: TrainerBatch[] = [];
  for await (const batch of first) {
    got.push(batch);
    if (got.length === 1) assert.equal(await connectionsNamed(server, name), 1, 'the stream opened its own connection');
    if (got.length === 3) break;
  }
  assert.equal(first.closed, true, 'break closed the stream');
  const checkpoint = first.position;
  assert.deepEqual(checkpoint, { epoch: 0, step: 3 });
  await within(
    (async () => {
      while ((await connectionsNamed(server, name)) !== 0) await new Promise((r) => setTimeout(r, 20));
    })(),
    5000,
    'the connection of the first stream closing',
  );

  const second = batches({ ...common, resume: checkpoint, epochs: 1 });
  t.after(() => second.close());
  for await (const batch of second) got.push(batch);
  await producing;
  assert.deepEqual(
    got.map((b) => b.step),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  got.forEach((b) => assertBatch(b, 0, b.step));
  assert.equal(second.stats().batches, 5);
  await within(
    (async () => {
      while ((await connectionsNamed(server, name)) !== 0) await new Promise((r) => setTimeout(r, 20));
    })(),
    5000,
    'the connection of the second stream closing',
  );
});

test('epoch() reads one epoch per loop; leaving it early keeps the stream; await using closes it', async (t) => {
  const server = await nats();
  const job = 'epoch-loops';
  const [loaderNc, trainerNc] = [await connectFor(t, server), await connectFor(t, server)];
  const s = await sender(t, loaderNc, job, 2);
  const producing = produce(s, job, 2, 2, 3);
  let outside: ReturnType<typeof batches> | undefined;
  {
    await using stream = batches({ job, rank: 2, namespace: NS, nats: trainerNc });
    outside = stream;
    const steps: string[] = [];
    for await (const b of stream.epoch()) {
      steps.push(`${b.epoch}.${b.step}`);
      break;
    }
    assert.equal(stream.closed, false, 'a break out of epoch() leaves the stream open');
    for await (const b of stream.epoch()) steps.push(`${b.epoch}.${b.step}`);
    assert.deepEqual(stream.position, { epoch: 1, step: 0 }, 'the checkpoint position after epoch 0');
    assert.equal(stream.stats().epochs, 1);
    for await (const b of stream.epoch()) steps.push(`${b.epoch}.${b.step}`);
    assert.deepEqual(steps, ['0.0', '0.1', '0.2', '1.0', '1.1', '1.2']);
    await producing;
  }
  assert.equal(outside.closed, true, 'await using closed the stream');
  assert.equal(trainerNc.isClosed(), false);
  for await (const b of outside.epoch()) assert.fail(`a closed stream gave batch ${b.step}`);
  await assert.rejects(outside.read(), (e: unknown) => e instanceof Error && e.name === 'ClosedError');
});

test('bad options are refused at once, naming the option', async () => {
  const server = await nats();
  const good = { job: 'j', rank: 0, nats: { servers: server.url } };
  const closedNc = await connect({ servers: server.url });
  await closedNc.close();
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ job: 'Bad_Job' }, 'job', /DNS label/],
    [{ job: undefined }, 'job', /DNS label/],
    [{ rank: -1 }, 'rank', /integer in \[0, 4294967295\], got -1/],
    [{ rank: 1.5 }, 'rank', /got 1.5/],
    [{ namespace: 'a.b' }, 'namespace', /DNS label/],
    [{ nats: undefined }, 'nats', /NatsConnection or connection options/],
    [{ nats: 'nats://x:4222' }, 'nats', /NatsConnection or connection options/],
    [{ nats: { servers: [] } }, 'nats.servers', /non-empty array/],
    [{ nats: { servers: 42 } }, 'nats.servers', /got 42/],
    [{ nats: { servers: 'nats://x', credsFile: '' } }, 'nats.credsFile', /path of a .creds file/],
    [{ nats: closedNc }, 'nats', /closed/],
    [{ window: 0 }, 'window', /\[1, 1000000\], got 0/],
    [{ resume: { epoch: -1, step: 0 } }, 'resume.epoch', /got -1/],
    [{ resume: 'start' }, 'resume', /must be an object/],
    [{ epochs: 0 }, 'epochs', /got 0/],
    [{ clientId: 'has space' }, 'clientId', /printable ASCII/],
    [{ signal: {} }, 'signal', /AbortSignal/],
    [{ onWait: 5 }, 'onWait', /function/],
    [{ receiver: { window: 3 } }, 'receiver.window', /top-level option window/],
    [{ receiver: [] }, 'receiver', /BatchReceiver options/],
    [{ windw: 3 }, 'windw', /is not an option of batches\(\)/],
  ];
  for (const [override, argument, pattern] of cases) {
    assert.throws(
      () => batches({ ...good, ...override } as never),
      (e: unknown) => e instanceof ArgumentError && e.argument === argument && pattern.test(e.message),
      `${Object.keys(override).join()} → ${argument}`,
    );
  }
  assert.throws(() => batches(null as never), (e: unknown) => e instanceof ArgumentError && e.argument === 'options');

  // Checked by the receiver at connect, also naming the option.
  const tuned = batches({ ...good, receiver: { connectTimeoutMs: -5 } });
  await assert.rejects(tuned.read(), (e: unknown) => e instanceof ArgumentError && e.argument === 'connectTimeoutMs');
  assert.equal(tuned.closed, true);
  // A server that is not there.
  const nowhere = batches({ ...good, nats: { servers: `nats://127.0.0.1:${await freePort()}` } });
  await assert.rejects(nowhere.read(), (e: unknown) => e instanceof ArgumentError && e.argument === 'nats.servers' && /cannot connect/.test(e.message));
  const unreadable = batches({ ...good, nats: { servers: server.url, credsFile: '/nonexistent/trainer.creds' } });
  await assert.rejects(unreadable.connect(), (e: unknown) => e instanceof ArgumentError && e.argument === 'nats.credsFile');
});

test('a batch whose metadata names another step or job than it was delivered as is refused', async (t) => {
  const server = await nats();
  const [loaderNc, trainerNc] = [await connectFor(t, server), await connectFor(t, server)];
  for (const [job, metadata, pattern] of [
    ['wrong-step', { step: 1 }, /delivered as job "wrong-step" rank 0 epoch 0 step 0: metadata.step is 1 where 0 was expected/],
    ['wrong-job', { job: 'other', epoch: 3 }, /metadata.job is "other" where "wrong-job" was expected, metadata.epoch is 3 where 0 was expected/],
  ] as const) {
    const s = await sender(t, loaderNc, job, 0);
    const stream = batches({ job, rank: 0, namespace: NS, nats: trainerNc });
    await s.send({ ...makeBatch(job, 0, 0, 0, metadata), epoch: 0, step: 0 });
    const reading = (async () => {
      for await (const b of stream) assert.fail(`trained on batch ${b.step}`);
    })();
    await assert.rejects(reading, (e: unknown) => e instanceof FormatError && pattern.test(e.message));
    assert.equal(stream.closed, true);
  }
  assert.equal(trainerNc.isClosed(), false);
});

test('abort ends the loop with an AbortError; close() ends it quietly; a throwing onWait fails the read', async (t) => {
  const server = await nats();
  const [loaderNc, trainerNc] = [await connectFor(t, server), await connectFor(t, server)];
  await sender(t, loaderNc, 'aborted', 0);
  const controller = new AbortController();
  const aborted = batches({ job: 'aborted', rank: 0, namespace: NS, nats: trainerNc, signal: controller.signal });
  await aborted.connect();
  const loop = (async () => {
    for await (const b of aborted) assert.fail(`got batch ${b.step}`);
  })();
  setTimeout(() => controller.abort(), 20);
  await assert.rejects(within(loop, 5000, 'the abort'), AbortError);
  assert.equal(aborted.closed, true);
  await assert.rejects(batches({ job: 'aborted', rank: 0, namespace: NS, nats: trainerNc, signal: AbortSignal.abort() }).read(), AbortError);

  await sender(t, loaderNc, 'closed', 0);
  const closing = batches({ job: 'closed', rank: 0, namespace: NS, nats: trainerNc });
  const quiet = (async () => {
    let n = 0;
    for await (const _ of closing) n++;
    return n;
  })();
  await closing.connect();
  await closing.close();
  assert.equal(await within(quiet, 5000, 'the end of the loop at close()'), 0);

  const s = await sender(t, loaderNc, 'bad-callback', 0);
  const failing = batches({
    job: 'bad-callback',
    rank: 0,
    namespace: NS,
    nats: trainerNc,
    onWait: () => {
      throw new Error('metrics are down');
    },
  });
  await s.send(makeBatch('bad-callback', 0, 0, 0));
  await assert.rejects(failing.read(), /metrics are down/);
  assert.equal(failing.closed, true);
  assert.equal(trainerNc.isClosed(), false);
});
