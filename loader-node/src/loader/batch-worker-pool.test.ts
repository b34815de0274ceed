/**
 * The decode stage on worker threads against the same stage on the main thread, over a small MDS
 * dataset on disk: the same jobs give the same bytes (a transform included); a failing transform
 * or collate names the sample id or batch and leaves the pool working; a bad spec fails
 * `ready()` by name; a lease the cache refuses fails the batch with the cache's own error; and
 * `close()` or `abort()` end everything at once, busy threads included, leaving no lease and no
 * thread.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { AbortError, ArgumentError, DatasetError, MDSDataset, MDSWriter, WorkerError, decodeBatch, mdsStoredFile } from '@shardline/core';
import type { ShardLease } from '../dataset/shard-sample-reader.ts';
import type { BatchJob } from './batch-builder.ts';
import { BatchWorkerPool, liveBatchWorkers } from './batch-worker-pool.ts';
import { InProcessDecodeStage } from './decode-stage.ts';
import { loadSteps, resolveModuleSpec, type ResolvedModuleSpec } from './module-spec.ts';

const STEPS = new URL('./fixtures/steps.ts', import.meta.url);
const root = mkdtempSync(path.join(tmpdir(), 'batch-worker-pool-'));
let dataset: MDSDataset;
let held = 0;

before(async () => {
  const writer = new MDSWriter({ out: root, columns: { id: 'int64', x: 'ndarray:float32:3', text: 'str' }, sizeLimit: 400 });
  for (let i = 0; i < 40; i++) await writer.write({ id: BigInt(i), x: { dtype: 'float32', shape: [3], data: new Float32Array([i, i / 2, -i]) }, text: `s${i}` });
  await writer.finish();
  dataset = await MDSDataset.open(root);
});
after(() => rmSync(root, { recursive: true, force: true }));

async function lease(shard: number): Promise<ShardLease> {
  const info = dataset.index.shards[shard]!;
  held++;
  let released = false;
  return {
    file: path.join(root, mdsStoredFile(info).basename),
    info,
    release: () => {
      if (!released) held--;
      released = true;
    },
  };
}

function jobOf(step: number, sampleIds: number[]): BatchJob {
  const located = sampleIds.map((id) => dataset.locate(id));
  return { epoch: 1, step, sampleIds, shards: located.map((l) => l.shard), offsets: located.map((l) => l.offset) };
}

function spec(exportName: string, args: unknown): ResolvedModuleSpec {
  return resolveModuleSpec('transform', { module: STEPS, export: exportName, args });
}

function pool(steps: { collate?: ResolvedModuleSpec; transform?: ResolvedModuleSpec } = {}, lend: typeof lease = lease): BatchWorkerPool {
  return new BatchWorkerPool({
    workers: 2,
    data: { job: 'pool', rank: 1, seed: 5, collate: steps.collate ?? null, transform: steps.transform ?? null, maxDecodedShards: 2 },
    lease: lend,
  });
}

test('workers build the bytes the main thread builds, each job its own batch, every lease returned', async (t) => {
  const transform = spec('scaleX', { factor: 3 });
  const workers = pool({ transform });
  t.after(() => workers.close());
  const main = new InProcessDecodeStage({ job: 'pool', rank: 1, seed: 5, lease, ...(await loadSteps({ collate: null, transform })) });
  await workers.ready();
  assert.equal(liveBatchWorkers(), 2);
  const jobs = [[0, 1, 2, 3], [39, 5, 22, 5], [17], [8, 30, 12, 0, 33, 2]].map((ids, step) => jobOf(step, ids));
  // All at once: the pool spreads them and answers out of order.
  const [fromWorkers, fromMain] = await Promise.all([Promise.all(jobs.map((j) => workers.build(j))), Promise.all(jobs.map((j) => main.build(j)))]);
  jobs.forEach((job, k) => {
    const bytes = fromWorkers[k]!.bytes;
    assert.ok(Buffer.from(bytes).equals(Buffer.from(fromMain[k]!.bytes)), `step ${job.step}: same bytes`);
    const { tensors, metadata } = decodeBatch(bytes);
    assert.deepEqual([metadata.job, metadata.epoch, metadata.rank, metadata.step, metadata.sampleIds], ['pool', 1, 1, job.step, job.sampleIds]);
    assert.deepEqual(Array.from(tensors.x!.data as Float32Array), job.sampleIds.flatMap((i) => [3 * i, (3 * i) / 2, -3 * i]));
    assert.deepEqual(Array.from(tensors.seen!.data as Int32Array), job.sampleIds.flatMap((id, p) => [id, 1, job.step, p]));
    assert.deepEqual(fromWorkers[k]!.skipped, ['text']);
    assert.ok(fromWorkers[k]!.seconds > 0);
  });
  // Buffers go back to the workers and come back as batches again.
  for (const built of fromWorkers) workers.recycle(built.bytes.buffer as ArrayBuffer);
  const again = await workers.build(jobs[3]!);
  assert.ok(Buffer.from(again.bytes).equals(Buffer.from(fromMain[3]!.bytes)));
  assert.equal(held, 0, 'every lease was returned');
  assert.equal(workers.building, 0);
  await workers.close();
  assert.equal(liveBatchWorkers(), 0, 'no thread outlives close()');
});

test('a transform that throws names the sample id, and the stage goes on with other batches', async (t) => {
  const transform = spec('failOn', { sampleId: 22 });
  const workers = pool({ transform });
  t.after(() => workers.close());
  await workers.ready();
  await assert.rejects(workers.build(jobOf(4, [3, 22, 7])), (e: unknown) => {
    assert.ok(e instanceof WorkerError, String(e));
    assert.match(e.message, /^batch worker \d failed: transform failed on sample 22 \(position 1 of epoch 1 step 4\): RangeError: the transform refuses sample 22$/);
    assert.deepEqual([e.sampleIndex, e.batch, e.indices], [22, 4, [3, 22, 7]]);
    assert.match(e.workerStack ?? '', /steps\.ts/, "the worker's own stack");
    return true;
  });
  assert.deepEqual(decodeBatch((await workers.build(jobOf(5, [3, 7]))).bytes).metadata.sampleIds, [3, 7]);
  const main = new InProcessDecodeStage({ job: 'pool', rank: 1, seed: 5, lease, ...(await loadSteps({ collate: null, transform })) });
  await assert.rejects(main.build(jobOf(4, [3, 22, 7])), (e: unknown) => {
    assert.ok(e instanceof DatasetError, String(e));
    assert.equal(e.message, 'transform failed on sample 22 (position 1 of epoch 1 step 4): RangeError: the transform refuses sample 22');
    assert.equal(e.index, 22);
    return true;
  });
  assert.equal(held, 0);
});

test('a collate that fails names the batch and its samples', async (t) => {
  const workers = pool({ collate: resolveModuleSpec('collate', { module: STEPS, export: 'failingCollate', args: { sampleId: 9 } }) });
  t.after(() => workers.close());
  await workers.ready();
  await assert.rejects(workers.build(jobOf(2, [1, 9])), /^WorkerError: batch worker \d failed: collate failed on epoch 1 step 2 \(samples \[1, 9\]\): ShapeMismatchError: x: the batch with sample 9 does not stack$/);
});

test('a spec that does not load fails ready() with an ArgumentError naming it, and every build after', async () => {
  const cases: Array<[{ collate?: ResolvedModuleSpec; transform?: ResolvedModuleSpec }, string]> = [
    [{ transform: spec('notAFactory', null) }, 'transform.export'],
    [{ collate: resolveModuleSpec('collate', { module: STEPS, export: 'returnsNothing' }) }, 'collate.export'],
    [{ collate: resolveModuleSpec('collate', { module: new URL('./fixtures/missing.ts', import.meta.url) }) }, 'collate.module'],
  ];
  for (const [steps, name] of cases) {
    const workers = pool(steps);
    try {
      await assert.rejects(workers.ready(), (e: unknown) => e instanceof ArgumentError && e.argument === name && /in batch worker \d/.test(e.message), name);
      await assert.rejects(workers.build(jobOf(0, [1])), (e: unknown) => e instanceof ArgumentError && e.argument === name);
    } finally {
      await workers.close();
    }
  }
  assert.equal(liveBatchWorkers(), 0);
  assert.throws(() => resolveModuleSpec('collate', { module: './relative.ts' }), (e: unknown) => e instanceof ArgumentError && e.argument === 'collate.module');
  assert.throws(() => resolveModuleSpec('collate', { module: STEPS, args: { f: () => 1 } }), (e: unknown) => e instanceof ArgumentError && e.argument === 'collate.args');
});

test("a lease the cache refuses fails the batch with the cache's own error and returns the job's other leases", async (t) => {
  class Quarantined extends Error {}
  const bad = dataset.locate(30).shard;
  const workers = pool({}, (shard) => (shard === bad ? Promise.reject(new Quarantined(`shard ${shard} is quarantined`)) : lease(shard)));
  t.after(() => workers.close());
  await workers.ready();
  await assert.rejects(workers.build(jobOf(0, [0, 30])), (e: unknown) => e instanceof Quarantined);
  assert.equal(held, 0);
  assert.deepEqual(decodeBatch((await workers.build(jobOf(1, [0, 1]))).bytes).metadata.sampleIds, [0, 1], 'the worker goes on');
});

test('close() and abort() end busy threads at once, a thread that never yields included', async (t) => {
  const workers = pool({ transform: spec('burn', { ms: 200, foreverOn: 13 }) });
  t.after(() => workers.close());
  await workers.ready();
  const stuck = workers.build(jobOf(0, [13]));
  const busy = workers.build(jobOf(1, [1, 2, 3]));
  const reason = new AbortError('stopped by the test');
  await new Promise((r) => setTimeout(r, 100));
  workers.abort(reason);
  await assert.rejects(stuck, (e: unknown) => e === reason);
  await assert.rejects(busy, (e: unknown) => e === reason);
  await assert.rejects(workers.build(jobOf(2, [1])), (e: unknown) => e === reason, 'later builds too');
  const started = performance.now();
  await workers.close();
  assert.ok(performance.now() - started < 2000, 'terminated, not waited for');
  assert.equal(liveBatchWorkers(), 0);
  assert.equal(held, 0, 'the leases of given-up jobs were returned');
});
