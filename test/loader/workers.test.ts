/**
 * The loader's decode stage on worker threads, end to end against a real nats-server and
 * BatchReceiver trainers: batches built on 2 workers, on the main thread, and from a zstd copy of
 * the dataset are the same bytes for one seed, each the rank's plan, every sample once per epoch
 * (a transform and collate given as module specs included); a sample that does not decode or a
 * collate that fails ends the run with an error naming the sample id or the batch; an abort while
 * the workers are busy (one of them in a loop that never yields) ends the run at once; firstStep
 * starts the first epoch mid-way; bad options are refused by name. After every run, however it
 * ended, no worker thread is left.
 */
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { ArgumentError, DatasetError, WorkerError, decodeBatch, type EpochPlan } from '@shardline/core';
import { BatchReceiver } from '@shardline/client';
import { LoaderMetrics, LocalDirectorySource, liveBatchWorkers, runLoader, type LoaderDeps, type LoaderEvent, type LoaderOptions } from '@shardline/loader-node';
import type { NatsConnection } from 'nats';
import { within } from '../delivery/support.ts';
import { makeTempDir, removeTempDir } from '../infra/supervisor.ts';
import { connectFor, startNats, type NatsServer } from '../infra/nats.ts';
import { metricValue } from '../infra/metrics-text.ts';
import { planOf, startLoader, writeTestDataset } from './support.ts';

const SAMPLES = 101;
const CORRUPT = 5;
const STEPS = new URL('../../loader-node/src/loader/fixtures/steps.ts', import.meta.url);
let server: NatsServer;
const datasets = { raw: '', zstd: '', corrupt: '' };
let shardSizes: number[];
const dirs: string[] = [];

before(async () => {
  for (const name of Object.keys(datasets) as Array<keyof typeof datasets>) dirs.push((datasets[name] = makeTempDir(`workers-${name}`)));
  let zstdSizes: number[];
  [server, shardSizes, zstdSizes] = await Promise.all([
    startNats({ jetstream: false }),
    writeTestDataset(datasets.raw, SAMPLES),
    writeTestDataset(datasets.zstd, SAMPLES, { compression: 'zstd' }),
    writeTestDataset(datasets.corrupt, 24, { corrupt: CORRUPT }),
  ]);
  assert.deepEqual(zstdSizes, shardSizes, 'the zstd copy has the same shards');
});
after(async () => {
  await server?.stop();
  for (const dir of dirs) removeTempDir(dir);
});

const connection = (t: TestContext): Promise<NatsConnection> => connectFor(t, server);

function cacheDir(): string {
  const dir = makeTempDir('workers-cache');
  dirs.push(dir);
  return dir;
}

function source(t: TestContext, dir: string): LocalDirectorySource {
  const s = new LocalDirectorySource(dir);
  t.after(() => s.close());
  return s;
}

/** A dataset of `samples` in many small shards: its folder, samples per shard and each shard file's size. */
async function manyShards(name: string, samples: number): Promise<{ dir: string; sizes: number[]; files: number[] }> {
  const dir = makeTempDir(name);
  dirs.push(dir);
  const sizes = await writeTestDataset(dir, samples);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.mds'))
    .map((f) => statSync(path.join(dir, f)).size);
  return { dir, sizes, files };
}

/** Reads items until `epochs` end markers came: every batch's bytes by `epoch:step`, in arrival order. */
async function readEpochs(receiver: BatchReceiver, epochs: number): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (let ended = 0; ended < epochs; ) {
    const item = await receiver.read();
    if (item.type === 'end-of-epoch') ended++;
    else out.set(`${item.epoch}:${item.step}`, new Uint8Array(item.bytes));
  }
  return out;
}

/** Checks that `batches` holds exactly steps `from` … n − 1 of `plan`, each the plan's samples, with the `id` and `x` columns of those samples. */
function assertPlan(batches: ReadonlyMap<string, Uint8Array>, plan: EpochPlan, rank: number, from = 0): void {
  const steps = [...batches.keys()].filter((k) => k.startsWith(`${plan.epoch}:`)).map((k) => Number(k.split(':')[1]));
  assert.deepEqual(steps, Array.from({ length: plan.numBatches - from }, (_, k) => from + k), `epoch ${plan.epoch}: steps in order`);
  const delivered: number[] = [];
  for (const step of steps) {
    const { tensors, metadata } = decodeBatch(batches.get(`${plan.epoch}:${step}`)!);
    const expected = plan.batchIds(rank, step);
    assert.deepEqual([metadata.epoch, metadata.step, metadata.rank, metadata.sampleIds], [plan.epoch, step, rank, expected]);
    assert.deepEqual(Array.from(tensors.id!.data as BigInt64Array, Number), expected);
    assert.deepEqual(Array.from(tensors.x!.data as Float32Array), expected.flatMap((i) => [i, i + 0.5, -i]));
    delivered.push(...expected);
  }
  const planned = Array.from({ length: plan.perRank }, (_, i) => plan.at(rank, i));
  assert.deepEqual(delivered, planned.slice(samplesBefore(plan, rank, from)), `epoch ${plan.epoch}: the rank's samples from step ${from}, once each, in plan order`);
}

/** Samples of the rank's batches before step `step`. */
function samplesBefore(plan: EpochPlan, rank: number, step: number): number {
  let n = 0;
  for (let k = 0; k < step; k++) n += plan.batchIds(rank, k).length;
  return n;
}

test('2 workers, the main thread and a zstd copy deliver the same bytes for one seed, each batch the plan', async (t) => {
  const job = 'same-bytes';
  const base = { job, rank: 1, worldSize: 2, batchSize: 8, epochs: 2, seed: 3, shuffle: 'global', cacheBudgetBytes: 1 << 20 } as const;
  const runs = [
    { namespace: 'raw-w2', dir: datasets.raw, workers: 2 },
    { namespace: 'raw-w0', dir: datasets.raw, workers: 0 },
    { namespace: 'zstd-w2', dir: datasets.zstd, workers: 2 },
  ];
  const [loaderNc, trainerNc] = [await connection(t), await connection(t)];
  const metrics = new LoaderMetrics();
  const results = await Promise.all(
    runs.map(async ({ namespace, dir, workers }) => {
      const done = startLoader(t, { ...base, namespace, workers, cacheDir: cacheDir() }, { source: source(t, dir), nc: loaderNc, ...(namespace === 'raw-w2' ? { metrics } : {}) });
      const receiver = await BatchReceiver.connect(trainerNc, { namespace, job, rank: 1, window: 3 });
      try {
        const batches = await readEpochs(receiver, 2);
        return { batches, summary: await within(done, 10_000, `${namespace} finishing`) };
      } finally {
        await receiver.close();
      }
    }),
  );
  const plans = [0, 1].map((epoch) => planOf(base, shardSizes, epoch));
  for (const [k, { batches, summary }] of results.entries()) {
    for (const plan of plans) assertPlan(batches, plan, 1);
    assert.deepEqual(summary, { epochs: 2, batches: 2 * plans[0]!.numBatches, samples: 2 * plans[0]!.perRank, aborted: false });
    if (k === 0) continue;
    assert.deepEqual([...batches.keys()], [...results[0]!.batches.keys()]);
    for (const [key, bytes] of batches) assert.ok(Buffer.from(bytes).equals(Buffer.from(results[0]!.batches.get(key)!)), `${runs[k]!.namespace} ${key}: the same bytes as raw-w2`);
  }
  const text = await metrics.text();
  assert.equal(metricValue(text, 'shardline_batch_build_seconds_count'), 2 * plans[0]!.numBatches, 'one build time per batch');
  assert.ok(metricValue(text, 'shardline_batch_build_seconds_sum') > 0);
  assert.equal(metricValue(text, 'shardline_pipeline_queue_depth'), 0, 'nothing left in the stages');
  assert.equal(liveBatchWorkers(), 0, 'no worker thread outlives runLoader');
});

test('a transform and a collate given as module specs run the same on workers and on the main thread', async (t) => {
  const job = 'specs';
  const base = {
    job,
    rank: 0,
    worldSize: 1,
    batchSize: 16,
    epochs: 1,
    seed: 9,
    shuffle: 'shard-aware',
    cacheBudgetBytes: 1 << 20,
    transform: { module: STEPS, export: 'scaleX', args: { factor: -2 } },
    collate: { module: STEPS, export: 'failingCollate', args: { sampleId: -1 } }, // never fails: defaultCollate
  } as const;
  const [loaderNc, trainerNc] = [await connection(t), await connection(t)];
  const plan = planOf(base, shardSizes, 0);
  const [fromWorkers, fromMain] = await Promise.all(
    [
      { namespace: 'specs-w2', dir: datasets.zstd, workers: 2 },
      { namespace: 'specs-w0', dir: datasets.raw, workers: 0 },
    ].map(async ({ namespace, dir, workers }) => {
      const done = startLoader(t, { ...base, namespace, workers, cacheDir: cacheDir() }, { source: source(t, dir), nc: loaderNc });
      const receiver = await BatchReceiver.connect(trainerNc, { namespace, job, rank: 0, window: 2 });
      try {
        const batches = await readEpochs(receiver, 1);
        await within(done, 10_000, `${namespace} finishing`);
        return batches;
      } finally {
        await receiver.close();
      }
    }),
  );
  assert.equal(fromWorkers!.size, plan.numBatches);
  for (const [key, bytes] of fromWorkers!) {
    assert.ok(Buffer.from(bytes).equals(Buffer.from(fromMain!.get(key)!)), `${key}: the same bytes`);
    const { tensors, metadata } = decodeBatch(bytes);
    assert.deepEqual(Array.from(tensors.x!.data as Float32Array), metadata.sampleIds.flatMap((i) => [-2 * i, -2 * (i + 0.5), 2 * i]));
    assert.deepEqual(Array.from(tensors.seen!.data as Int32Array), metadata.sampleIds.flatMap((id, p) => [id, 0, metadata.step, p]));
  }
});

test('a sample that does not decode ends the run with an error naming it, on workers and on the main thread', async (t) => {
  const nc = await connection(t);
  for (const workers of [2, 0]) {
    const dir = cacheDir();
    const run = runLoader(
      { namespace: 'corrupt', job: `corrupt-w${workers}`, rank: 0, worldSize: 1, batchSize: 4, epochs: 1, shuffle: 'none', cacheDir: dir, cacheBudgetBytes: 1 << 20, workers },
      { source: source(t, datasets.corrupt), nc },
    );
    await assert.rejects(within(run, 10_000, 'the run failing'), (e: unknown) => {
      assert.ok(workers > 0 ? e instanceof WorkerError : e instanceof DatasetError, `workers ${workers}: ${String(e)}`);
      const where = `sample ${CORRUPT} \\(position 1 of epoch 0 step 1\\) could not be read: FormatError: shard \\d+ \\("shard\\.\\d+\\.mds"\\), sample \\d+, column "text": `;
      assert.match((e as Error).message, new RegExp(workers > 0 ? `^batch worker \\d failed: ${where}` : `^${where}`));
      if (e instanceof WorkerError) assert.deepEqual([e.sampleIndex, e.batch, e.indices, e.causeCode], [CORRUPT, 1, [4, 5, 6, 7], 'ERR_FORMAT']);
      return true;
    });
    assert.equal(liveBatchWorkers(), 0, `workers ${workers}: no thread left`);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temporary files left in the cache');
  }
});

test('a collate that fails in a worker ends the run naming the batch and its samples; no thread is left', async (t) => {
  const nc = await connection(t);
  const run = runLoader(
    {
      namespace: 'collate',
      job: 'collate',
      rank: 0,
      worldSize: 1,
      batchSize: 4,
      epochs: 1,
      shuffle: 'none',
      cacheDir: cacheDir(),
      cacheBudgetBytes: 1 << 20,
      collate: { module: STEPS, export: 'failingCollate', args: { sampleId: 9 } },
    },
    { source: source(t, datasets.raw), nc },
  );
  await assert.rejects(within(run, 10_000, 'the run failing'), /^WorkerError: batch worker \d failed: collate failed on epoch 0 step 2 \(samples \[8, 9, 10, 11\]\): ShapeMismatchError: /);
  assert.equal(liveBatchWorkers(), 0);
});

test('an abort while the workers are busy ends the run at once, a worker that never yields included', async (t) => {
  const nc = await connection(t);
  // A batch costs 4 × 60 ms; in the second run sample 2 (step 0) never finishes its transform.
  for (const transform of [{ ms: 60 }, { ms: 1, foreverOn: 2 }]) {
    const controller = new AbortController();
    const events: LoaderEvent[] = [];
    const done = startLoader(
      t,
      {
        namespace: 'abort',
        job: `abort-${transform.foreverOn ?? 'busy'}`,
        rank: 0,
        worldSize: 1,
        batchSize: 4,
        epochs: 1,
        shuffle: 'none',
        cacheDir: cacheDir(),
        cacheBudgetBytes: 1 << 20,
        transform: { module: STEPS, export: 'burn', args: transform },
      },
      { source: source(t, datasets.raw), nc, onEvent: (e) => events.push(e) },
      controller.signal,
    );
    while (!events.some((e) => e.type === 'epoch-started')) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(liveBatchWorkers(), 2, 'the workers are running');
    const stopped = performance.now();
    controller.abort();
    const summary = await within(done, 3000, 'the loader stopping');
    assert.ok(performance.now() - stopped < 1500, `stopped at once, took ${(performance.now() - stopped).toFixed(0)} ms`);
    assert.equal(summary.aborted, true);
    assert.equal(liveBatchWorkers(), 0, 'no thread left');
  }
});

test('a cache of the shard-aware window fetches each shard about once per epoch, with 2 workers and on the main thread (no thrash)', async (t) => {
  // Many small shards; a rank reads a window of 4 (the plan's shardWindow) at a time, every batch
  // touching each of them, and the cache holds exactly 4 of the largest.
  const { dir, sizes, files } = await manyShards('workers-window', 1200);
  assert.ok(sizes.length >= 30, `${sizes.length} shards`);
  const totalBytes = files.reduce((a, b) => a + b, 0);
  const base = { namespace: 'window', rank: 0, worldSize: 1, batchSize: 16, epochs: 1, seed: 9, shuffle: 'shard-aware', cacheBudgetBytes: 4 * Math.max(...files) } as const;
  for (const workers of [2, 0]) {
    const job = `window-${workers}`;
    const [loaderNc, trainerNc] = [await connection(t), await connection(t)];
    const metrics = new LoaderMetrics();
    const done = startLoader(t, { ...base, job, workers, cacheDir: cacheDir() }, { source: source(t, dir), nc: loaderNc, metrics });
    const receiver = await BatchReceiver.connect(trainerNc, { namespace: 'window', job, rank: 0, window: 4 });
    try {
      assertPlan(await readEpochs(receiver, 1), planOf(base, sizes, 0), 0);
    } finally {
      await receiver.close();
    }
    await within(done, 20_000, 'the loader finishing');
    const text = await metrics.text();
    const fetched = metricValue(text, 'shardline_cache_bytes_in_total');
    // Each shard once, and some again where windows meet (batches there need shards of both, and
    // several batches are built at once: ~1.5 times the dataset on workers, ~2.2 on the main
    // thread, whose builds all interleave); a schedule that lost track of the window's shards
    // fetched them again for every batch (7 times the dataset here).
    assert.ok(fetched >= totalBytes && fetched <= 3 * totalBytes, `workers ${workers}: fetched ${fetched} bytes of a ${totalBytes}-byte dataset`);
  }
});

test('a cache smaller than what the batches in flight read is reported once, and the run still delivers every batch', async (t) => {
  const { dir, sizes, files } = await manyShards('workers-small-cache', 600);
  const base = { namespace: 'small', rank: 0, worldSize: 1, batchSize: 16, epochs: 2, seed: 2, workers: 2 } as const;
  const runs = [
    // A global shuffle's batch reads from many shards: 4 shards of cache cannot hold them.
    { job: 'global-small', shuffle: 'global', cacheBudgetBytes: 4 * Math.max(...files), warned: true },
    { job: 'global-whole', shuffle: 'global', cacheBudgetBytes: files.reduce((a, b) => a + b, 0), warned: false },
  ] as const;
  for (const { job, shuffle, cacheBudgetBytes, warned } of runs) {
    const [loaderNc, trainerNc] = [await connection(t), await connection(t)];
    const events: LoaderEvent[] = [];
    const options = { ...base, job, shuffle, cacheBudgetBytes };
    const done = startLoader(t, { ...options, cacheDir: cacheDir() }, { source: source(t, dir), nc: loaderNc, onEvent: (e) => events.push(e) });
    const receiver = await BatchReceiver.connect(trainerNc, { namespace: 'small', job, rank: 0, window: 4 });
    try {
      const batches = await readEpochs(receiver, 2);
      for (const epoch of [0, 1]) assertPlan(batches, planOf(options, sizes, epoch), 0);
    } finally {
      await receiver.close();
    }
    await within(done, 30_000, 'the loader finishing');
    const reported = events.filter((e) => e.type === 'cache-too-small');
    if (!warned) {
      assert.deepEqual(reported, [], `${job}: the cache holds the dataset`);
      continue;
    }
    assert.equal(reported.length, 1, `${job}: once per run, not per epoch`);
    const [event] = reported as Array<Extract<LoaderEvent, { type: 'cache-too-small' }>>;
    assert.equal(event!.epoch, 0);
    assert.equal(event!.budgetBytes, cacheBudgetBytes);
    assert.equal(event!.shuffle, 'global');
    assert.ok(event!.workingSetBytes > cacheBudgetBytes, `${event!.workingSetBytes} > ${cacheBudgetBytes}`);
  }
});

test('firstStep starts the first epoch at that step; later epochs are whole', async (t) => {
  const job = 'first-step';
  const base = { namespace: 'first', job, rank: 0, worldSize: 1, batchSize: 8, seed: 4, shuffle: 'global', cacheBudgetBytes: 1 << 20, firstEpoch: 3 } as const;
  const [loaderNc, trainerNc] = [await connection(t), await connection(t)];
  const plans = [3, 4].map((epoch) => planOf(base, shardSizes, epoch));
  const n = plans[0]!.numBatches;
  for (const firstStep of [5, n]) {
    const events: LoaderEvent[] = [];
    const done = startLoader(t, { ...base, epochs: 2, firstStep, cacheDir: cacheDir() }, { source: source(t, datasets.raw), nc: loaderNc, onEvent: (e) => events.push(e) });
    // A replacement trainer resumes where the old one stopped.
    const receiver = await BatchReceiver.connect(trainerNc, { namespace: 'first', job, rank: 0, window: 3, resume: { epoch: 3, step: firstStep } });
    try {
      const batches = await readEpochs(receiver, 2);
      assertPlan(batches, plans[0]!, 0, firstStep);
      assertPlan(batches, plans[1]!, 0);
      assert.equal(batches.size, 2 * n - firstStep);
    } finally {
      await receiver.close();
    }
    assert.deepEqual(await within(done, 10_000, 'the loader finishing'), {
      epochs: 2,
      batches: 2 * n - firstStep,
      samples: plans[0]!.perRank - samplesBefore(plans[0]!, 0, firstStep) + plans[1]!.perRank,
      aborted: false,
    });
    const started = events.filter((e) => e.type === 'epoch-started').map((e) => [e.epoch, e.firstStep]);
    assert.deepEqual(started, [[3, firstStep], [4, 0]]);
  }
});

test('bad options are refused by name, and leave no thread', async (t) => {
  const nc = await connection(t);
  const good: LoaderOptions = { job: 'bad', rank: 0, worldSize: 1, batchSize: 8, epochs: 1, cacheDir: cacheDir(), cacheBudgetBytes: 1 << 20 };
  const src = source(t, datasets.raw);
  const cases: Array<[Partial<LoaderOptions>, Partial<LoaderDeps>, string]> = [
    [{ workers: -1 }, {}, 'workers'],
    [{ workers: 1.5 }, {}, 'workers'],
    [{ workers: 'two' as never }, {}, 'workers'],
    [{ firstStep: -1 }, {}, 'firstStep'],
    [{ firstStep: 14 }, {}, 'firstStep'], // 101 samples in batches of 8: 13 batches
    [{}, { collate: (rows) => rows }, 'collate'],
    [{ workers: 0, collate: { module: STEPS, export: 'failingCollate' } }, { collate: (rows) => rows }, 'collate'],
    [{ collate: { module: './steps.ts' } }, {}, 'collate.module'],
    [{ transform: { module: STEPS, export: 'notAFactory' } }, {}, 'transform.export'],
    [{ workers: 0, transform: { module: STEPS, export: 'returnsNothing' } }, {}, 'transform.export'],
  ];
  for (const [patch, deps, name] of cases) {
    await assert.rejects(
      runLoader({ ...good, ...patch }, { source: src, nc, ...deps }),
      (e: unknown) => e instanceof ArgumentError && e.argument === name && (name !== 'firstStep' || patch.firstStep === -1 || /epoch 0 has 13 batches/.test(e.message)),
      `${JSON.stringify(patch)}: ${name}`,
    );
    assert.equal(liveBatchWorkers(), 0, `${name}: no thread left`);
  }
});
