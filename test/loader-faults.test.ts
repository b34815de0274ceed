/**
 * The standalone loader under faults, end to end: a real nats-server, a small local MDS dataset,
 * runLoader serving whole epochs and BatchReceiver trainers reading them. Each case breaks
 * something mid-epoch — a trainer killed and replaced, the server restarted (one rank, then two
 * ranks at once), the loader stopped by its signal and started again — and checks, by decoding
 * every batch, that each step of the rank's plan was consumed exactly once with exactly the
 * plan's sample ids: no loss, no duplicate, across every process involved.
 */
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeBatch, type EpochPlan } from '@shardline/core';
import { BatchReceiver } from '@shardline/client';
import { LocalDirectorySource, type LoaderEvent, type LoaderOptions } from '@shardline/loader-node';
import type { ConnectionOptions, NatsConnection } from 'nats';
import { within } from './delivery/support.ts';
import { planOf, startLoader, writeTestDataset } from './loader/support.ts';
import { connectFor, makeTempDir, removeTempDir, startNats, type NatsServer } from './infra/index.ts';

const SAMPLES = 240;
const NS = 'faults';
// Reconnect at once and forever: the server restarts below take well under a second.
const RECONNECTING: ConnectionOptions = { reconnectTimeWait: 50, maxReconnectAttempts: -1 };
const TEST_TIMEOUT_MS = 60_000;

let datasetDir: string;
let shardSizes: number[];
const dirs: string[] = [];

before(async () => {
  datasetDir = makeTempDir('faults-dataset');
  dirs.push(datasetDir);
  shardSizes = await writeTestDataset(datasetDir, SAMPLES);
});
after(() => {
  for (const dir of dirs) removeTempDir(dir);
});


/** A nats-server of this test alone (never SHARDLINE_TEST_NATS_URL's: the tests restart it). */
async function ownServer(t: TestContext): Promise<NatsServer> {
  const server = await startNats({ jetstream: false, allowExternal: false });
  t.after(() => server.stop());
  return server;
}

const open = (t: TestContext, server: NatsServer, options: ConnectionOptions = RECONNECTING): Promise<NatsConnection> => connectFor(t, server, options);

function source(t: TestContext): LocalDirectorySource {
  const s = new LocalDirectorySource(datasetDir);
  t.after(() => s.close());
  return s;
}

function cacheDir(): string {
  const dir = makeTempDir('faults-cache');
  dirs.push(dir);
  return dir;
}

/** Options of one rank's loader: one epoch of small batches, so faults land mid-epoch. */
function loaderOptions(job: string, rank: number, worldSize: number, patch: Partial<LoaderOptions> = {}): LoaderOptions {
  return { namespace: NS, job, rank, worldSize, batchSize: 4, epochs: 1, seed: 7, shuffle: 'global', cacheDir: cacheDir(), cacheBudgetBytes: 1 << 20, maxCredits: 4, ...patch };
}

/**
 * What the trainers of one rank consumed in one epoch, from every process that read it: how
 * many times each step was consumed and the sample ids of each, checked against the plan as
 * they arrive.
 */
class Ledger {
  readonly counts = new Map<number, number>();
  readonly ids = new Map<number, number[]>();
  readonly plan: EpochPlan;
  readonly rank: number;
  readonly job: string;

  constructor(plan: EpochPlan, job: string, rank: number) {
    this.plan = plan;
    this.job = job;
    this.rank = rank;
  }

  get consumed(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  /** Records one consumed batch after decoding it: its metadata and `id` column must be the plan's for its step. */
  record(epoch: number, step: number, bytes: Uint8Array): void {
    const { tensors, metadata } = decodeBatch(bytes);
    const expected = this.plan.batchIds(this.rank, step);
    assert.deepEqual([epoch, metadata.epoch, metadata.step, metadata.rank, metadata.job], [this.plan.epoch, this.plan.epoch, step, this.rank, this.job]);
    assert.deepEqual(metadata.sampleIds, expected, `rank ${this.rank} step ${step}: sample ids`);
    assert.deepEqual(Array.from(tensors.id!.data as BigInt64Array, Number), expected, `rank ${this.rank} step ${step}: the id column`);
    this.counts.set(step, (this.counts.get(step) ?? 0) + 1);
    this.ids.set(step, metadata.sampleIds);
  }

  /** Every step of the plan consumed exactly once, and together they are the rank's samples in plan order. */
  assertExactlyOnce(): void {
    const duplicated = [...this.counts].filter(([, n]) => n > 1).map(([step]) => step);
    const missing = Array.from({ length: this.plan.numBatches }, (_, step) => step).filter((step) => !this.counts.has(step));
    assert.deepEqual({ duplicated, missing }, { duplicated: [], missing: [] }, `rank ${this.rank}: steps consumed more than once or never`);
    assert.equal(this.counts.size, this.plan.numBatches, `rank ${this.rank}: no step beyond the plan`);
    const delivered = Array.from({ length: this.plan.numBatches }, (_, step) => this.ids.get(step)!).flat();
    const planned = Array.from({ length: this.plan.perRank }, (_, i) => this.plan.at(this.rank, i));
    assert.deepEqual(delivered, planned, `rank ${this.rank}: the epoch's samples, in plan order`);
  }
}

/**
 * Reads from `receiver` into `ledger` until the end of the epoch (returns true) or until
 * `stopAfter` batches were consumed (returns false); `onBatch` runs after each consumed batch.
 */
async function consume(receiver: BatchReceiver, ledger: Ledger, stopAfter = Infinity, onBatch: (consumed: number) => unknown = () => {}): Promise<boolean> {
  let consumed = 0;
  while (consumed < stopAfter) {
    const item = await receiver.read();
    if (item.type === 'end-of-epoch') {
      assert.deepEqual([item.epoch, item.batches], [ledger.plan.epoch, ledger.plan.numBatches], 'the end marker');
      return true;
    }
    ledger.record(item.epoch, item.step, item.bytes);
    consumed++;
    await onBatch(consumed);
  }
  return false;
}

/** Waits until `condition` holds, polling; fails after 5 s naming `what`. */
function until(condition: () => boolean, what: string): Promise<void> {
  return within(
    (async () => {
      while (!condition()) await sleep(2);
    })(),
    5000,
    what,
  );
}

function summaryOf(plan: EpochPlan): { epochs: number; batches: number; samples: number; aborted: boolean } {
  return { epochs: 1, batches: plan.numBatches, samples: plan.perRank, aborted: false };
}

function sessionsOpened(events: readonly LoaderEvent[]): number {
  return events.filter((e) => e.type === 'delivery' && e.event.type === 'welcome' && !e.event.repeated).length;
}

test('a trainer killed mid-epoch and replaced (same clientId, new connection): both together consume the plan exactly once', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const server = await ownServer(t);
  const job = 'trainer-killed';
  const options = loaderOptions(job, 0, 1);
  const plan = planOf(options, shardSizes, 0);
  assert.ok(plan.numBatches >= 40, `a long enough epoch, got ${plan.numBatches} batches`);
  const ledger = new Ledger(plan, job, 0);
  const events: LoaderEvent[] = [];
  const loading = startLoader(t, options, { source: source(t), nc: await open(t, server), onEvent: (e) => events.push(e) });

  // The first trainer consumes 13 batches (more are buffered, unconsumed) and dies: no bye, no more acks.
  const firstNc = await open(t, server);
  const first = await BatchReceiver.connect(firstNc, { namespace: NS, job, rank: 0, clientId: 'trainer-0', window: 4 });
  assert.equal(await consume(first, ledger, 13), false);
  const checkpoint = first.position;
  assert.deepEqual(checkpoint, { epoch: 0, step: 13 });
  await firstNc.close();
  await first.close();

  // Its replacement resumes from the checkpoint and takes the stream over at once.
  const secondNc = await open(t, server);
  const second = await BatchReceiver.connect(secondNc, { namespace: NS, job, rank: 0, clientId: 'trainer-0', window: 4, resume: checkpoint });
  t.after(() => second.close());
  assert.equal(await within(consume(second, ledger), 20_000, 'the rest of the epoch'), true);

  ledger.assertExactlyOnce();
  assert.deepEqual(await within(loading, 10_000, 'the loader finishing after the last ack'), summaryOf(plan));
  assert.equal(sessionsOpened(events), 2, 'one session per trainer');
});

test('a trainer killed mid-epoch and replaced without a checkpoint, after its acks arrived: the plan exactly once', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const server = await ownServer(t);
  const job = 'trainer-killed-null';
  const options = loaderOptions(job, 0, 1);
  const plan = planOf(options, shardSizes, 0);
  const ledger = new Ledger(plan, job, 0);
  const acked: number[] = [];
  const loading = startLoader(t, options, {
    source: source(t),
    nc: await open(t, server),
    onEvent: (e) => {
      if (e.type === 'delivery' && e.event.type === 'batch-acked') acked.push(e.event.step);
    },
  });

  const firstNc = await open(t, server);
  const first = await BatchReceiver.connect(firstNc, { namespace: NS, job, rank: 0, clientId: 'trainer-0', window: 4 });
  assert.equal(await consume(first, ledger, 9), false);
  // resume: null means "after the last ack the loader got", so wait until the ack of step 8 is there.
  await until(() => acked.includes(8), 'the ack of step 8');
  await firstNc.close();
  await first.close();

  const secondNc = await open(t, server);
  const second = await BatchReceiver.connect(secondNc, { namespace: NS, job, rank: 0, clientId: 'trainer-0', window: 4, resume: null });
  t.after(() => second.close());
  assert.deepEqual(second.position, { epoch: 0, step: 9 }, 'the welcome starts after the last ack');
  assert.equal(await within(consume(second, ledger), 20_000, 'the rest of the epoch'), true);

  ledger.assertExactlyOnce();
  assert.deepEqual(await within(loading, 10_000, 'the loader finishing after the last ack'), summaryOf(plan));
});

test('nats-server restarted mid-epoch while runLoader serves: the epoch completes exactly once', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const server = await ownServer(t);
  const job = 'server-restart';
  const options = loaderOptions(job, 0, 1);
  const plan = planOf(options, shardSizes, 0);
  const ledger = new Ledger(plan, job, 0);
  const events: LoaderEvent[] = [];
  const loading = startLoader(t, options, { source: source(t), nc: await open(t, server), onEvent: (e) => events.push(e) });
  const hellos: string[] = [];
  const receiver = await BatchReceiver.connect(await open(t, server), {
    namespace: NS,
    job,
    rank: 0,
    window: 4,
    resendAfterMs: 100,
    helloRetryMs: 150,
    onEvent: (e) => {
      if (e.type === 'hello') hellos.push(e.why);
    },
  });
  t.after(() => receiver.close());

  // The trainer keeps reading (and waiting) while the server is down.
  let restarting: Promise<void> | undefined;
  const reading = consume(receiver, ledger, Infinity, (n) => {
    if (n === 17) restarting = server.restart();
  });
  assert.equal(await within(reading, 30_000, 'the epoch through a server restart'), true);
  await restarting;

  ledger.assertExactlyOnce();
  assert.ok(hellos.includes('reconnect'), `the trainer said hello again after the reconnect (hellos: ${hellos.join(', ')})`);
  assert.ok(sessionsOpened(events) >= 2, 'the loader opened a new session after the restart');
  assert.deepEqual(await within(loading, 10_000, 'the loader finishing after the last ack'), summaryOf(plan));
});

test('two ranks served at once through one server restart: each rank completes exactly once', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const server = await ownServer(t);
  const job = 'two-ranks-restart';
  const ranks = [0, 1].map((rank) => {
    const options = loaderOptions(job, rank, 2);
    const plan = planOf(options, shardSizes, 0);
    return { rank, options, plan, ledger: new Ledger(plan, job, rank), events: [] as LoaderEvent[] };
  });
  const shared = source(t);
  // Separate connections per loader and per trainer, as separate processes would have.
  const loaderNcs = await Promise.all(ranks.map(() => open(t, server)));
  const loadings = ranks.map((r, i) => startLoader(t, r.options, { source: shared, nc: loaderNcs[i]!, onEvent: (e) => r.events.push(e) }));
  const receivers = await Promise.all(
    ranks.map(async ({ rank }) => {
      const receiver = await BatchReceiver.connect(await open(t, server), { namespace: NS, job, rank, window: 4, resendAfterMs: 100, helloRetryMs: 150 });
      t.after(() => receiver.close());
      return receiver;
    }),
  );

  let restarting: Promise<void> | undefined;
  const reading = ranks.map((r, i) =>
    consume(receivers[i]!, r.ledger, Infinity, (n) => {
      // Rank 0's 11th batch restarts the server under both ranks.
      if (r.rank === 0 && n === 11) restarting = server.restart();
    }),
  );
  assert.deepEqual(await within(Promise.all(reading), 30_000, 'both epochs through a server restart'), [true, true]);
  await restarting;

  const seen = new Map<number, number>();
  for (const r of ranks) {
    r.ledger.assertExactlyOnce();
    assert.ok(sessionsOpened(r.events) >= 2, `rank ${r.rank}: a new session after the restart`);
    for (const ids of r.ledger.ids.values()) for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  for (const [i, loading] of loadings.entries()) {
    assert.deepEqual(await within(loading, 10_000, `rank ${i} finishing after the last ack`), summaryOf(ranks[i]!.plan));
  }
  // 240 samples on 2 ranks: no padding, so the two ranks together are the dataset, each sample once.
  assert.equal(seen.size, SAMPLES);
  assert.deepEqual([...new Set(seen.values())], [1]);
});

/**
 * Stops a loader by its signal while the trainer holds a received, unconsumed (so unacked) batch,
 * then serves the rest of the epoch with a new loader for the same rank. The trainer reads on as
 * soon as the loader starts draining (`reads-on`), or only once it returned (`stalled`, when the
 * drain can only time out).
 */
async function abortAndResume(t: TestContext, job: string, trainer: 'reads-on' | 'stalled', drainTimeoutMs?: number): Promise<void> {
  const server = await ownServer(t);
  const options = loaderOptions(job, 0, 1, { drainTimeoutMs });
  const plan = planOf(options, shardSizes, 0);
  const ledger = new Ledger(plan, job, 0);
  const shared = source(t);
  const nc = await open(t, server);
  const controller = new AbortController();
  const firstEvents: LoaderEvent[] = [];
  const first = startLoader(t, options, { source: shared, nc, onEvent: (e) => firstEvents.push(e) }, controller.signal);
  let firstSettled = false;
  void first.finally(() => (firstSettled = true)).catch(() => {});

  // One trainer throughout: the second loader answers its heartbeat with `reset`, and it says
  // hello again with its position.
  const receiver = await BatchReceiver.connect(await open(t, server), { namespace: NS, job, rank: 0, clientId: 'trainer-0', window: 4, helloRetryMs: 150 });
  t.after(() => receiver.close());
  let aborted: number | undefined;
  const reading = consume(receiver, ledger, Infinity, async (n) => {
    if (n !== 15) return;
    await until(() => receiver.stats().ready > 0, 'a batch received and not consumed');
    aborted = performance.now();
    controller.abort();
    const draining = (): boolean => firstEvents.some((e) => e.type === 'draining');
    await until(() => firstSettled || (trainer === 'reads-on' && draining()), 'the loader draining or returning');
  });

  const summary = await within(first, 10_000, 'the aborted loader returning');
  const stopSeconds = (performance.now() - aborted!) / 1000;
  t.diagnostic(`${trainer}: the aborted loader returned ${stopSeconds.toFixed(3)} s after the abort, ${summary.batches} batches accepted`);
  assert.ok(stopSeconds < 5, `returned ${stopSeconds.toFixed(2)} s after the abort`);
  assert.equal(summary.aborted, true);
  assert.ok(summary.batches < plan.numBatches, `stopped mid-epoch (${summary.batches} of ${plan.numBatches} batches accepted)`);
  const draining = firstEvents.find((e) => e.type === 'draining');
  assert.ok(draining?.type === 'draining' && draining.heldBatches > 0, 'the loader waited for the trainer to ack what it held');
  if (trainer === 'stalled') assert.ok(stopSeconds >= (drainTimeoutMs! - 50) / 1000, `the drain waited its drainTimeoutMs (${stopSeconds.toFixed(3)} s)`);

  // runLoader restarts at an epoch (firstEpoch), not at a step: the new loader prepares the epoch
  // from step 0 and its sender drops what comes before the trainer's resume point.
  await until(() => receiver.stats().ready === 0, 'the trainer consuming what it had received');
  const position = receiver.position;
  assert.ok(position !== null && position.epoch === 0 && position.step > 15 && position.step < plan.numBatches, `a mid-epoch position after the held batches: ${JSON.stringify(position)}`);
  const secondEvents: LoaderEvent[] = [];
  const second = startLoader(t, { ...options, firstEpoch: position.epoch }, { source: shared, nc, onEvent: (e) => secondEvents.push(e) });
  assert.equal(await within(reading, 20_000, 'the rest of the epoch from the new loader'), true);

  ledger.assertExactlyOnce();
  assert.deepEqual(await within(second, 10_000, 'the new loader finishing after the last ack'), summaryOf(plan));
  const welcome = secondEvents.find((e) => e.type === 'delivery' && e.event.type === 'welcome');
  assert.ok(welcome?.type === 'delivery' && welcome.event.type === 'welcome');
  assert.deepEqual(welcome.event.next, position, "the new loader starts at the trainer's position");
}

test("a loader aborted mid-epoch drains to its trainer and returns promptly; a new loader from the trainer's position finishes the epoch exactly once", { timeout: TEST_TIMEOUT_MS }, (t) =>
  abortAndResume(t, 'loader-abort', 'reads-on'),
);

test('a loader aborted while its trainer stalls returns after drainTimeoutMs; a new loader finishes the epoch exactly once', { timeout: TEST_TIMEOUT_MS }, (t) =>
  abortAndResume(t, 'loader-abort-stalled', 'stalled', 400),
);
