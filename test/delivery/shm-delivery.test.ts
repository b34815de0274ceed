/**
 * The shared-memory fast path against a real nats-server: negotiation by host and offer, batches
 * through segment files with NATS carrying descriptors, slots released on ack, the fallback to
 * NATS when the trainer cannot see the loader's segments or the loader has no ring, and the
 * trainer's wait time arriving at the loader.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatchReceiver, type BatchReceiverOptions } from '@shardline/client';
import type { OutgoingBatch, ReceiverEvent, SenderEvent } from '@shardline/core/protocol';
import { BatchSender, type BatchSenderOptions } from '@shardline/loader-node';
import type { NatsConnection } from 'nats';
import { connectFor, natsPerFile } from '../infra/nats.ts';
import { assertSameBatch, makeBatch, within } from './support.ts';

const NS = 'test';
const nats = natsPerFile();

type TestContext = { after: (fn: () => unknown) => void };

async function folder(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'shardline-shm-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function pair(
  t: TestContext,
  sendOptions: Omit<BatchSenderOptions, 'namespace' | 'rank'>,
  receiveOptions: Omit<BatchReceiverOptions, 'namespace' | 'rank' | 'job'>,
): Promise<{ s: BatchSender; r: BatchReceiver; loaderNc: NatsConnection }> {
  const server = await nats();
  const [loaderNc, trainerNc] = [await connectFor(t, server), await connectFor(t, server)];
  const s = await BatchSender.open(loaderNc, { namespace: NS, rank: 0, hostId: 'node-a', ...sendOptions });
  t.after(() => s.close());
  const r = await BatchReceiver.connect(trainerNc, { namespace: NS, job: sendOptions.job, rank: 0, hostId: 'node-a', resendAfterMs: 100, ...receiveOptions });
  t.after(() => r.close());
  return { s, r, loaderNc };
}

function epochOf(job: string, n: number, rowBytes: number): OutgoingBatch[] {
  return Array.from({ length: n }, (_, step) => makeBatch(job, 0, 0, step, 4, rowBytes + step * 37));
}

async function deliverEpoch(s: BatchSender, r: BatchReceiver, batches: readonly OutgoingBatch[], job: string, transfer = false): Promise<void> {
  const producing = (async () => {
    for (const b of batches) await s.send(transfer ? { ...b, transfer } : b);
    await s.endEpoch(0, batches.length);
  })();
  let i = 0;
  for await (const batch of r.epoch()) assertSameBatch(batch, batches[i++]!, job, 0);
  await producing;
  assert.equal(i, batches.length, 'every batch exactly once, in order');
  await within(s.acknowledged(), 5000, 'the loader saw every ack');
}

test('same host, both willing: every batch goes through shared memory, descriptors over NATS, slots freed on ack, files gone on close', async (t) => {
  const dir = await folder(t);
  const job = 'shm-same-host';
  const events: SenderEvent[] = [];
  // Batches of ~200 KiB against a server max_payload of 1 MiB would be one chunk each over NATS; a tiny maxChunkBytes makes a NATS fallback visible in the frame count.
  const { s, r } = await pair(t, { job, maxCredits: 4, maxChunkBytes: 16 * 1024, shm: { directory: dir, checksum: true }, onEvent: (e) => events.push(e) }, { window: 4, shm: { directory: dir } });
  const ring = events.find((e) => e.type === 'shm-ring');
  assert.ok(ring?.type === 'shm-ring' && ring.slots === 5, 'the ring has maxCredits + 1 slots');
  assert.equal((await readdir(dir)).length, 5);
  const batches = epochOf(job, 24, 50 * 1024);
  // Handed over (no copy in the sender), with the optional CRC checked by the trainer on every batch.
  await deliverEpoch(s, r, batches, job, true);
  const sent = s.stats();
  assert.equal(sent.transport, 'shm');
  assert.equal(sent.shmBatches, batches.length);
  assert.equal(r.stats().shmBatches, batches.length);
  assert.equal(r.stats().transport, 'shm');
  // One descriptor frame per batch (and a few resends at most), never the bytes: far fewer bytes than the batches.
  const batchBytes = batches.reduce((n, b) => n + b.bytes.byteLength, 0);
  assert.ok(sent.bytesPublished < batchBytes / 50, `published ${sent.bytesPublished} bytes for ${batchBytes} bytes of batches`);
  await s.close();
  assert.deepEqual(await readdir(dir), [], 'closing the sender removes its segment files');
});

test('the trainer cannot see the loader segments (another folder): one failed read, then the epoch completes over NATS exactly once', async (t) => {
  const [loaderDir, trainerDir] = [await folder(t), await folder(t)];
  const job = 'shm-not-shared';
  const events: ReceiverEvent[] = [];
  const { s, r } = await pair(t, { job, maxCredits: 4, shm: { directory: loaderDir } }, { window: 4, shm: { directory: trainerDir }, onEvent: (e) => events.push(e) });
  const batches = epochOf(job, 12, 8 * 1024);
  await deliverEpoch(s, r, batches, job);
  assert.equal(events.filter((e) => e.type === 'shm-failed').length, 1, 'one failure, then no more offers');
  assert.ok(events.some((e) => e.type === 'shm-failed' && /does not exist/.test(e.error)));
  assert.equal(r.stats().transport, 'nats');
  assert.equal(s.stats().transport, 'nats');
});

test('no shared memory across hosts, without the trainer offer, or when the ring cannot be created; delivery is unchanged', async (t) => {
  const dir = await folder(t);
  const cases: Array<[string, Omit<BatchSenderOptions, 'namespace' | 'rank' | 'job'>, Omit<BatchReceiverOptions, 'namespace' | 'rank' | 'job'>]> = [
    ['another host', { shm: { directory: dir } }, { hostId: 'node-b', shm: { directory: dir } }],
    ['trainer declines', { shm: { directory: dir } }, { shm: false }],
    ['no such folder', { shm: { directory: join(dir, 'missing') } }, { shm: { directory: dir } }],
  ];
  for (const [i, [what, sendOptions, receiveOptions]] of cases.entries()) {
    const job = `shm-off-${i}`;
    const events: SenderEvent[] = [];
    const { s, r } = await pair(t, { job, maxCredits: 4, ...sendOptions, onEvent: (e) => events.push(e) }, { window: 4, ...receiveOptions });
    await deliverEpoch(s, r, epochOf(job, 6, 4096), job);
    assert.equal(s.stats().transport, 'nats', what);
    assert.equal(s.stats().shmBatches, 0, what);
    if (what === 'no such folder') assert.ok(events.some((e) => e.type === 'shm-unavailable' && /ENOENT|no such/i.test(e.error)), 'the sender says why it has no ring');
  }
});

test('a trainer that waits for batches reports it: the loader hears about as many seconds as the trainer waited', async (t) => {
  const job = 'trainer-wait';
  let reported = 0;
  const { s, r } = await pair(
    t,
    { job, maxCredits: 4, onEvent: (e) => (e.type === 'trainer-wait' ? (reported += e.seconds) : undefined) },
    { window: 4, heartbeatMs: 100, shm: false },
  );
  const batches = epochOf(job, 8, 1024);
  const producing = (async () => {
    for (const b of batches) {
      await sleep(40); // a slow loader: the trainer waits ~40 ms per batch
      await s.send(b);
    }
    await s.endEpoch(0, batches.length);
  })();
  for await (const _ of r.epoch()) {
    // consume
  }
  await producing;
  const waited = r.stats().waitMs / 1000;
  assert.ok(waited > 0.2, `the trainer waited ${waited} s`);
  // Heartbeat credits carry the total; give the last one time to arrive.
  const deadline = Date.now() + 3000;
  while (Math.abs(reported - waited) > 0.01 && Date.now() < deadline) await sleep(50);
  assert.ok(Math.abs(reported - waited) <= 0.01, `the loader heard ${reported} s, the trainer waited ${waited} s`);
});
