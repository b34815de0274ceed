/**
 * Benchmark `delivery`: loader → trainer delivered bytes per second, for batches of 1, 4, 16 and
 * 64 MiB (1 and 4 MiB with --quick), on one nats-server on loopback (test/infra, max_payload 8 MiB,
 * max_pending 192 MB as a deployment for large batches sets it).
 * Batches are opaque random bytes (already encoded); every path delivers the same batch `count`
 * times per round and is timed from its first send to its last batch consumed.
 *
 * - `nats`: BatchSender → BatchReceiver over two connections (loader, trainer) with a credit window
 *   of 4 (receiver `window` = sender `maxCredits` = 4); batches over max_payload are chunked by the
 *   sender as docs/protocol.md §5 says.
 * - `bench`: nats.js's own `Bench` (pub + sub on one connection, the way `nats bench` measures) of
 *   the same bytes cut the same way: a batch that needs `k` frames on the NATS path is `k` Bench
 *   messages of ⌈B / k⌉ bytes, so message count and size match our frames (our 37 + L header bytes
 *   per frame are not counted as delivered bytes on either side). Delivered bytes/s = messages ×
 *   size / Bench's `pubsub` duration (Bench's own `bytes` adds in and out, counting them twice).
 *   Bench has no flow control, so it runs in pieces of at most 32 MiB (timeBench).
 * - `copy`: `Buffer.copy` of the batch into one reused buffer, the floor of any same-host path.
 * - `shm`: the same BatchSender → BatchReceiver with the shared-memory transport negotiated
 *   (docs/protocol.md §12): a ring of WINDOW + 1 slots in a temp dir under /dev/shm (CRC-32 off, the
 *   default), descriptors over NATS, slots released on ack.
 * - `tmpfs`: one write of the batch into a /dev/shm file and one read back (reused buffers): the
 *   floor of any file-based same-host path on this machine; `shm_vs_tmpfs_ratio` says how much of
 *   it the protocol keeps.
 *
 * Two measures explain the ratios (no goal of their own): `copy_fresh_bps_<size>`, a copy into a
 * newly allocated buffer each time (what a sender that holds its own copy and a receiver that hands
 * each batch out in its own buffer pay per byte, page faults included), and
 * `nats_cpu_over_bench_<size>`, this process's CPU time (all threads, user and system) per byte on
 * the NATS path over Bench's (both run all their NATS clients in this process: more than 1 means
 * the path is CPU-bound on work Bench does not do);
 * `protocol_floor_us_per_batch`, the time per batch of 1 KiB batches over the shared-memory path
 * (descriptor, ack and credit through nats-server), from which `shm_vs_copy_ceiling_ratio` is the
 * best shm/copy ratio any one-descriptor-per-batch path could reach here, with no copies at all.
 *
 * Rounds are interleaved (every path of a size in one round, the order reversed every other round)
 * and each ratio is the median of its per-round ratios; the raw rates are the medians of the rounds.
 * `nats_vs_bench_ratio`, `shm_vs_copy_ratio` and `shm_vs_nats_ratio` are the smallest over sizes.
 * Goals: NATS ≥ 0.8 × Bench; shm ≥ 0.5 × copy and ≥ 3 × NATS.
 *
 * Paused trainer: a loader in a child process (so that its RSS is the loader's alone) sends
 * batches of B bytes with a credit window W to a trainer that connects and never reads. The loader
 * may hold W batches (its copies); `paused_rss_over_window_bytes` is the child's peak RSS growth
 * over its baseline, minus W × B. Goal ≤ 64 MiB.
 *
 * This file is also that child: `node bench/delivery.ts --paused-loader <url> <W> <B>`.
 */
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Bench, connect, type NatsConnection } from 'nats';
import type { BenchOptions } from './run.ts';
import { BatchReceiver } from '@shardline/client';
import { BatchSender, batchSenderDefaults } from '@shardline/loader-node';
import { frameHeaderBytes } from '@shardline/core/protocol';
import { startNats } from '../test/infra/nats.ts';

const MiB = 1024 * 1024;
const NAMESPACE = 'bench';
const JOB = 'delivery';
/** Credit window of the NATS path and slots of the shared-memory ring. */
const WINDOW = 4;
/** The server's per-client max_pending in this bench. */
const MAX_PENDING = '192MB';
/** The senders' bound on bytes held, paired with MAX_PENDING (a chunk of room left): 2 batches of 64 MiB in flight. */
const MAX_HELD_BYTES = 128 * 1024 * 1024;
/** The most bytes one nats.js Bench run publishes (see timeBench). */
const BENCH_RUN_BYTES = 32 * MiB;
/** Batch size and batches per round of the protocol-floor measure. */
const FLOOR_BYTES = 1024;
const FLOOR_BATCHES = 1000;

type Path = 'nats' | 'bench' | 'copy' | 'tmpfs' | 'shm';
const PATHS: readonly Path[] = ['nats', 'bench', 'copy', 'tmpfs', 'shm'];

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};
const mb = (bps: number): string => `${(bps / 1e6).toFixed(0)} MB/s`;

/** BatchSender → BatchReceiver for one batch size; each round is one epoch of the stream. */
class NatsPath {
  readonly sender: BatchSender;
  readonly receiver: BatchReceiver;
  #epoch = 0;

  private constructor(sender: BatchSender, receiver: BatchReceiver) {
    this.sender = sender;
    this.receiver = receiver;
  }

  /** With `shmDirectory`, both ends use the shared-memory transport through that folder. */
  static async open(loader: NatsConnection, trainer: NatsConnection, rank: number, batchBytes: number, shmDirectory?: string): Promise<NatsPath> {
    const scope = { namespace: NAMESPACE, job: JOB, rank };
    const shm = shmDirectory === undefined ? false : { directory: shmDirectory };
    const sender = await BatchSender.open(loader, { ...scope, maxCredits: WINDOW, maxBatchBytes: batchBytes, maxHeldBytes: MAX_HELD_BYTES, shm });
    const receiver = await BatchReceiver.connect(trainer, { ...scope, window: WINDOW, maxBatchBytes: batchBytes, clientId: `bench-trainer-${rank}`, shm });
    const path = new NatsPath(sender, receiver);
    if (shmDirectory !== undefined) {
      await path.time(new Uint8Array(16), 1);
      if (receiver.stats().transport !== 'shm') throw new Error('shm: the session did not negotiate shared memory');
    }
    return path;
  }

  /** Delivered bytes per second of `count` sends of `batch`. */
  async time(batch: Uint8Array, count: number): Promise<number> {
    const epoch = this.#epoch++;
    const expected = count * batch.byteLength;
    let finished = 0;
    const consume = (async () => {
      let bytes = 0;
      for await (const b of this.receiver.epoch()) {
        bytes += b.bytes.byteLength;
        if (bytes === expected) finished = performance.now();
      }
      return bytes;
    })();
    const started = performance.now();
    // The batch is never changed, so it is handed over: the sender keeps it without a copy.
    for (let step = 0; step < count; step++) await this.sender.send({ epoch, step, sampleIds: [], bytes: batch, transfer: true });
    await this.sender.endEpoch(epoch, count);
    const bytes = await consume;
    if (bytes !== expected) throw new Error(`nats: the trainer got ${bytes} bytes in epoch ${epoch}, expected ${expected}`);
    return expected / ((finished - started) / 1000);
  }

  async close(): Promise<void> {
    await this.receiver.close();
    await this.sender.close();
  }
}

/**
 * The machine's floor for any file-based same-host path: one write of the batch into a file in
 * /dev/shm and one read back into a reused buffer (no protocol, no checks).
 */
function timeTmpfs(batch: Buffer, into: Buffer, fd: number, count: number): number {
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    writeSync(fd, batch, 0, batch.byteLength, 0);
    readSync(fd, into, 0, into.byteLength, 0);
  }
  return (count * batch.byteLength) / ((performance.now() - started) / 1000);
}

/**
 * nats.js Bench pub/sub of `count` batches cut into `frames` messages each; delivered bytes/s.
 * Bench publishes all its messages at once without flow control, so one run stays at most
 * {@link BENCH_RUN_BYTES} (the server cuts off a client with more than 64 MiB pending, a slow
 * consumer): larger amounts are several runs whose `pubsub` durations add up.
 */
async function timeBench(nc: NatsConnection, batchBytes: number, frames: number, count: number): Promise<number> {
  const size = Math.ceil(batchBytes / frames);
  const perRun = Math.max(1, Math.floor(BENCH_RUN_BYTES / size));
  let left = frames * count;
  let ms = 0;
  while (left > 0) {
    const msgs = Math.min(left, perRun);
    const metrics = await new Bench(nc, { msgs, size, pub: true, sub: true, callbacks: true }).run();
    const pubsub = metrics.find((m) => m.name === 'pubsub');
    if (pubsub === undefined) throw new Error('nats Bench reported no pubsub metric');
    ms += pubsub.duration;
    left -= msgs;
  }
  return (frames * count * size) / (ms / 1000);
}

function timeCopy(batch: Buffer, into: Buffer, count: number): number {
  const started = performance.now();
  for (let i = 0; i < count; i++) batch.copy(into);
  return (count * batch.byteLength) / ((performance.now() - started) / 1000);
}

/**
 * `Buffer.copy` of the batch into a newly allocated buffer each time (the last two kept alive, as
 * a trainer keeps the batches it works on): what any path that hands out or holds its own copy of
 * a batch pays per byte, page faults included. Not a goal's baseline; it explains the NATS ratios.
 */
function timeFreshCopy(batch: Buffer, count: number): number {
  const kept: Buffer[] = [];
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const into = Buffer.allocUnsafe(batch.byteLength);
    batch.copy(into);
    kept.push(into);
    if (kept.length > 2) kept.shift();
  }
  return (count * batch.byteLength) / ((performance.now() - started) / 1000);
}

/** The paused-trainer measure: peak RSS growth of a loader child whose trainer never reads. */
async function pausedTrainer(url: string, trainer: NatsConnection, batchBytes: number, log: (line: string) => void): Promise<{ growth: number; window: number }> {
  const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--paused-loader', url, String(WINDOW), String(batchBytes)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, number>> => {
    const { value, done } = await lines.next();
    if (done === true) throw new Error('the paused loader child exited early');
    return JSON.parse(value as string) as Record<string, number>;
  };
  let receiver: BatchReceiver | undefined;
  try {
    const ready = await next();
    // The loader holds min(W batches, what fits in its maxHeldBytes — at least one batch).
    const held = Math.min(WINDOW, Math.max(1, Math.floor(batchSenderDefaults().maxHeldBytes / batchBytes)));
    receiver = await BatchReceiver.connect(trainer, { namespace: NAMESPACE, job: JOB, rank: 1000, window: WINDOW, maxBatchBytes: batchBytes, clientId: 'bench-paused' });
    for (let waited = 0; receiver.stats().bufferedBatches < held; waited += 20) {
      if (waited > 30_000) throw new Error(`the paused trainer buffered only ${receiver.stats().bufferedBatches} of ${held} batches in 30 s`);
      await sleep(20);
    }
    await sleep(1500); // the loader keeps trying to send; nothing more may be held or published
    child.stdin.write('report\n');
    const report = await next();
    log(
      `paused trainer (W ${WINDOW}, B ${batchBytes / MiB} MiB): loader RSS ${(ready.rss! / MiB).toFixed(0)} → peak ${(report.peakRss! / MiB).toFixed(0)} MiB, ` +
        `held ${report.heldBatches} batches, accepted ${report.accepted} sends, trainer buffered ${receiver.stats().bufferedBatches}`,
    );
    return { growth: report.peakRss! - ready.rss!, window: held * batchBytes };
  } finally {
    await receiver?.close();
    child.kill();
  }
}

/** The child of {@link pausedTrainer}: a loader that sends until told to report. */
async function pausedLoader(url: string, window: number, batchBytes: number): Promise<void> {
  const nc = await connect({ servers: url });
  const sender = await BatchSender.open(nc, { namespace: NAMESPACE, job: JOB, rank: 1000, maxCredits: window, maxBatchBytes: batchBytes });
  const batch = randomFillSync(Buffer.allocUnsafe(batchBytes));
  (globalThis as { gc?: () => void }).gc?.();
  await sleep(200);
  const rss = process.memoryUsage.rss();
  let peakRss = rss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 10);
  process.stdout.write(`${JSON.stringify({ rss })}\n`);
  let accepted = 0;
  const stop = new AbortController();
  const sending = (async () => {
    for (let step = 0; ; step++) {
      await sender.send({ epoch: 0, step, sampleIds: [], bytes: batch }, { signal: stop.signal });
      accepted++;
    }
  })().catch(() => {});
  for await (const line of createInterface({ input: process.stdin })) {
    if (line !== 'report') continue;
    clearInterval(sampler);
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    process.stdout.write(`${JSON.stringify({ peakRss, accepted, heldBatches: sender.stats().heldBatches })}\n`);
    break;
  }
  stop.abort();
  await sending;
  await sender.close();
  await nc.close();
  process.exit(0);
}

export async function run(o: BenchOptions): Promise<Record<string, number>> {
  const sizes = (o.quick ? [1, 4] : [1, 4, 16, 64]).map((m) => m * MiB);
  const rounds = o.quick ? 3 : 5;
  const bytesPerRound = (o.quick ? 32 : 128) * MiB;
  const began = performance.now();
  // As a deployment would (docs/operations.md): a client's pending bytes above what a loader may
  // have in flight (maxHeldBytes, 48 MiB) plus one 64 MiB batch, so no trainer is cut as a slow consumer.
  const nats = await startNats({ jetstream: false, allowExternal: false, maxPending: MAX_PENDING });
  const shmDir = mkdtempSync('/dev/shm/shardline-bench-delivery-');
  const loader = await connect({ servers: nats.url, name: 'bench-loader' });
  const trainer = await connect({ servers: nats.url, name: 'bench-trainer' });
  const bench = await connect({ servers: nats.url, name: 'bench-bench' });
  const maxPayload = loader.info!.max_payload;
  const chunk = maxPayload - frameHeaderBytes(JOB);
  o.log(`delivery: nats-server at ${nats.url}, max_payload ${maxPayload} bytes (chunks of ${chunk}), max_pending ${MAX_PENDING}; ${rounds} rounds, window ${WINDOW}; shm in ${shmDir}`);
  const metrics: Record<string, number> = {};
  const ratios = { natsVsBench: [] as number[], shmVsCopy: [] as number[], shmVsNats: [] as number[], shmVsTmpfs: [] as number[] };
  try {
    for (const [rank, size] of sizes.entries()) {
      const name = `${size / MiB}mib`;
      const count = Math.max(4, Math.round(bytesPerRound / size));
      const frames = Math.ceil(size / chunk);
      const batch = randomFillSync(Buffer.allocUnsafe(size));
      const into = Buffer.allocUnsafe(size);
      const natsPath = await NatsPath.open(loader, trainer, rank, size);
      const shmPath = await NatsPath.open(loader, trainer, 100 + rank, size, shmDir);
      const tmpfsFd = openSync(`${shmDir}/tmpfs-baseline`, 'w+');
      const measure: Record<Path, () => Promise<number>> = {
        nats: () => natsPath.time(batch, count),
        bench: () => timeBench(bench, size, frames, count),
        copy: async () => timeCopy(batch, into, count),
        tmpfs: async () => timeTmpfs(batch, into, tmpfsFd, count),
        shm: () => shmPath.time(batch, count),
      };
      try {
        for (const p of PATHS) await measure[p](); // warm-up: connections, JIT, page faults of /dev/shm
        const rates: Record<Path, number[]> = { nats: [], bench: [], copy: [], tmpfs: [], shm: [] };
        const perRound = { natsVsBench: [] as number[], shmVsCopy: [] as number[], shmVsNats: [] as number[], shmVsTmpfs: [] as number[], natsCpuOverBench: [] as number[] };
        for (let r = 0; r < rounds; r++) {
          const got = {} as Record<Path, number>;
          const cpu = {} as Record<Path, number>;
          for (const p of r % 2 === 0 ? PATHS : [...PATHS].reverse()) {
            const before = process.cpuUsage();
            got[p] = await measure[p]();
            const used = process.cpuUsage(before);
            cpu[p] = (used.user + used.system) / 1e6;
          }
          // This process's CPU seconds per byte delivered, ours over Bench's (both run all their NATS clients here).
          perRound.natsCpuOverBench.push(cpu.nats / cpu.bench);
          for (const p of PATHS) rates[p].push(got[p]);
          perRound.natsVsBench.push(got.nats / got.bench);
          perRound.shmVsCopy.push(got.shm / got.copy);
          perRound.shmVsNats.push(got.shm / got.nats);
          perRound.shmVsTmpfs.push(got.shm / got.tmpfs);
          o.log(`  ${name} round ${r + 1}/${rounds} (${count} batches, ${frames} frame(s) each): ` + PATHS.map((p) => `${p} ${mb(got[p])}`).join(', '));
        }
        for (const p of PATHS) metrics[`${p}_bps_${name}`] = Math.round(median(rates[p]));
        const fresh = median(Array.from({ length: rounds }, () => timeFreshCopy(batch, count)));
        metrics[`copy_fresh_bps_${name}`] = Math.round(fresh);
        metrics[`nats_cpu_over_bench_${name}`] = Number(median(perRound.natsCpuOverBench).toFixed(3));
        metrics[`fresh_vs_copy_ratio_${name}`] = Number((fresh / metrics[`copy_bps_${name}`]!).toFixed(3));
        ratios.natsVsBench.push(median(perRound.natsVsBench));
        ratios.shmVsCopy.push(median(perRound.shmVsCopy));
        ratios.shmVsNats.push(median(perRound.shmVsNats));
        ratios.shmVsTmpfs.push(median(perRound.shmVsTmpfs));
        const s = natsPath.receiver.stats();
        o.log(
          `  ${name}: copy into a new buffer each time ${mb(fresh)} (${(fresh / metrics[`copy_bps_${name}`]!).toFixed(2)} of copy into a reused one); ` +
            `CPU per byte, nats path over Bench ${median(perRound.natsCpuOverBench).toFixed(2)}`,
        );
        o.log(
          `${name}: nats/bench ${median(perRound.natsVsBench).toFixed(3)}, shm/copy ${median(perRound.shmVsCopy).toFixed(3)}, shm/nats ${median(perRound.shmVsNats).toFixed(2)}, shm/tmpfs ${median(perRound.shmVsTmpfs).toFixed(2)} ` +
            `(receiver: ${s.nacks} nacks, ${s.duplicates} duplicates, ${s.hellos} hellos)`,
        );
        // Nacks between rounds (the trainer waiting for an epoch not produced yet) are ignored by the loader; duplicates would be real resends.
        metrics[`nats_duplicates_${name}`] = s.duplicates;
      } finally {
        metrics[`shm_batches_${name}`] = shmPath.sender.stats().shmBatches;
        await natsPath.close();
        await shmPath.close();
        closeSync(tmpfsFd);
      }
    }

    // The protocol's floor: one batch of FLOOR_BYTES per round over the shared-memory path costs
    // the descriptor, the ack and the credit through nats-server and little else. No delivery that
    // sends one descriptor per batch can move a batch of B bytes faster than B per that time, so
    // (B / floor) / copy rate bounds shm_vs_copy_ratio from above, however few copies it makes.
    const floorPath = await NatsPath.open(loader, trainer, 900, FLOOR_BYTES, shmDir);
    try {
      const floorBatch = randomFillSync(Buffer.allocUnsafe(FLOOR_BYTES));
      await floorPath.time(floorBatch, FLOOR_BATCHES); // warm-up
      const perBatch: number[] = [];
      for (let r = 0; r < rounds; r++) perBatch.push((FLOOR_BYTES / (await floorPath.time(floorBatch, FLOOR_BATCHES))) * 1e6);
      const floorUs = median(perBatch);
      metrics.protocol_floor_us_per_batch = Number(floorUs.toFixed(1));
      const ceilings = sizes.map((size) => size / (floorUs / 1e6) / metrics[`copy_bps_${size / MiB}mib`]!);
      metrics.shm_vs_copy_ceiling_ratio = Number(Math.min(...ceilings).toFixed(3));
      o.log(
        `protocol floor: ${floorUs.toFixed(0)} µs per ${FLOOR_BYTES}-byte batch over shared memory (window ${WINDOW}); ` +
          `ceiling of shm/copy with no copies at all: ${sizes.map((size, i) => `${size / MiB} MiB ${ceilings[i]!.toFixed(2)}`).join(', ')}`,
      );
    } finally {
      await floorPath.close();
    }

    const pausedBytes = (o.quick ? 4 : 16) * MiB;
    const paused = await pausedTrainer(nats.url, trainer, pausedBytes, o.log);
    const round = (x: number): number => Number(x.toFixed(3));
    const result: Record<string, number> = {
      nats_vs_bench_ratio: round(Math.min(...ratios.natsVsBench)),
      shm_vs_copy_ratio: round(Math.min(...ratios.shmVsCopy)),
      shm_vs_nats_ratio: round(Math.min(...ratios.shmVsNats)),
      shm_vs_tmpfs_ratio: round(Math.min(...ratios.shmVsTmpfs)),
      paused_rss_over_window_bytes: paused.growth - paused.window,
      paused_rss_growth_bytes: paused.growth,
      paused_window_bytes: paused.window,
      ...metrics,
      max_payload: maxPayload,
      window: WINDOW,
      rounds,
      seconds: Number(((performance.now() - began) / 1000).toFixed(1)),
    };
    return result;
  } finally {
    await Promise.allSettled([loader.close(), trainer.close(), bench.close()]);
    await nats.stop();
    rmSync(shmDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--paused-loader') {
  const [url, window, batchBytes] = process.argv.slice(3);
  await pausedLoader(url!, Number(window), Number(batchBytes));
}
