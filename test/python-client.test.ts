/**
 * The Python trainer client (client/python, package `shardline`) against the TypeScript loader,
 * for real: a nats-server, a BatchSender publishing an epoch of real safetensors batches (most of
 * them cut into several chunks by a small maxChunkBytes), and the Python client reading it in a
 * child process. Every step must arrive exactly once, in order, with its sample ids and tensor
 * values; a hello of another protocol version fails clearly on the Python side; the PyTorch
 * IterableDataset yields torch tensors; two `shardline loader` processes (the CLI, reading an MDS
 * dataset through their caches) serve two Python trainers a whole epoch of their plans. The
 * client's Python unit tests run here too, so CI runs
 * them. The venv comes from scripts/setup-python.sh; these tests fail, never skip, without it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { test } from 'node:test';
import { encodeBatch, type Tensor } from '@shardline/core';
import { BatchSender, type BatchSenderOptions, type OutgoingBatch } from '@shardline/loader-node';
import { type NatsConnection } from 'nats';
import { connectFor, natsPerFile } from './infra/nats.ts';
import { makeTempDir, removeTempDir } from './infra/supervisor.ts';
import { within } from './delivery/support.ts';
import { planOf, startLoaderProcess, writeTestDataset } from './loader/support.ts';
import { REPO_ROOT, pythonPath, runPython } from './support/python.ts';

const CLIENT_DIR = path.join(REPO_ROOT, 'client', 'python');
const NAMESPACE = 'pyclient';

const nats = natsPerFile();

const connection = async (t: { after: (fn: () => unknown) => void }): Promise<NatsConnection> => connectFor(t, await nats());

/**
 * Runs Python code with the client on its path, without blocking this process (the loader runs
 * here meanwhile: runPython's spawnSync would stall it). Resolves with stdout; rejects with stderr.
 */
function python(code: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  const child = spawn(pythonPath(), ['-c', code, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, PYTHONPATH: CLIENT_DIR, PYTHONDONTWRITEBYTECODE: '1', PYTHONIOENCODING: 'utf-8' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new Error(`python exited with ${code ?? signal}${signal === 'SIGKILL' ? ` (killed after ${timeoutMs} ms)` : ''}:\n${stderr}`));
    });
  });
}

const sha256 = (bytes: ArrayBufferView): string => createHash('sha256').update(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)).digest('hex');

interface Expected {
  readonly batch: OutgoingBatch;
  /** Per tensor: dtype name as numpy spells it, shape, sha256 of its little-endian bytes. */
  readonly tensors: Record<string, { dtype: string; shape: number[]; sha256: string }>;
  readonly x: number[];
}

/** A real batch with three tensors; `pixels` bytes per row make it span several chunks. */
function makeBatch(job: string, rank: number, epoch: number, step: number, rows: number, pixels: number): Expected {
  const sampleIds = Array.from({ length: rows }, (_, i) => epoch * 100_000 + step * 100 + i);
  const x = new Float32Array(rows * 2).map((_, i) => step * 10 + i * 0.5);
  const label = BigInt64Array.from(sampleIds, (id) => BigInt(id) - 7n);
  const pix = new Uint8Array(rows * pixels).map((_, i) => (step * 31 + i * 7) & 0xff);
  const tensors: Record<string, Tensor> = {
    x: { dtype: 'float32', shape: [rows, 2], data: x },
    label: { dtype: 'int64', shape: [rows], data: label },
    pix: { dtype: 'uint8', shape: [rows, pixels], data: pix },
  };
  const bytes = encodeBatch(tensors, { job, epoch, rank, step, sampleIds });
  return {
    batch: { epoch, step, sampleIds, bytes },
    tensors: {
      x: { dtype: 'float32', shape: [rows, 2], sha256: sha256(x) },
      label: { dtype: 'int64', shape: [rows], sha256: sha256(label) },
      pix: { dtype: 'uint8', shape: [rows, pixels], sha256: sha256(pix) },
    },
    x: [...x],
  };
}

/** Opens a loader for `job` rank `rank` and publishes `batches` then the epoch's end marker. */
async function serveEpoch(nc: NatsConnection, job: string, rank: number, batches: readonly Expected[], extra: Partial<BatchSenderOptions> = {}) {
  const sender = await BatchSender.open(nc, { namespace: NAMESPACE, job, rank, maxCredits: 4, maxBatchBytes: 1024 * 1024, maxChunkBytes: 4096, ...extra });
  const producing = (async () => {
    for (const { batch } of batches) await sender.send(batch);
    await sender.endEpoch(0, batches.length);
    await sender.acknowledged();
  })();
  producing.catch(() => {}); // awaited by the test; a failure is reported there
  return { sender, producing };
}

const READ_EPOCH = String.raw`
import asyncio, hashlib, json, sys
import shardline

url, job, rank = sys.argv[1], sys.argv[2], int(sys.argv[3])
shm = sys.argv[4] if len(sys.argv) > 4 else True
extra = {"host_id": sys.argv[5]} if len(sys.argv) > 5 else {}

async def main():
    items = []
    stream = shardline.batches(job, rank, nats_url=url, namespace="${NAMESPACE}", window=3, epochs=1, connect_timeout=20, shm=shm, **extra)
    async for item in stream:
        if isinstance(item, shardline.EndOfEpoch):
            items.append({"end": item.epoch, "batches": item.batches})
            continue
        items.append({
            "job": item.job, "rank": item.rank, "epoch": item.epoch, "step": item.step, "sample_ids": item.sample_ids,
            "tensors": {name: {"dtype": str(a.dtype), "shape": list(a.shape), "sha256": hashlib.sha256(a.tobytes()).hexdigest()}
                        for name, a in item.tensors.items()},
            "x": item.tensors["x"].ravel().tolist(),
        })
    stats = stream.stats()
    print(json.dumps({"items": items, "reads": stream.reads, "wait_seconds": stream.wait_seconds, "state": stats["state"], "duplicates": stats["duplicates"],
                      "transport": stats["transport"], "shm_batches": stats["shm_batches"]}))

asyncio.run(main())
`;

test('the Python client reads an epoch of chunked batches exactly once, in order, with the right values', async (t) => {
  const job = 'py-epoch';
  const rank = 2;
  const nc = await connection(t);
  const expected = [1, 3, 0, 5, 2, 4].map((k, step) => makeBatch(job, rank, 0, step, k === 0 ? 0 : 3, k * 3000));
  assert.ok(expected.some((e) => e.batch.bytes.byteLength > 3 * 4096), 'some batches span several chunks');
  const { sender, producing } = await serveEpoch(nc, job, rank, expected);
  t.after(() => sender.close());

  const out = JSON.parse(await python(READ_EPOCH, [(await nats()).url, job, String(rank)])) as {
    items: Array<Record<string, unknown>>;
    reads: number;
    wait_seconds: number;
    state: string;
  };
  await producing; // every item, end marker included, was acked by the Python client
  assert.equal(out.items.length, expected.length + 1);
  for (const [step, e] of expected.entries()) {
    assert.deepEqual(out.items[step], {
      job,
      rank,
      epoch: 0,
      step,
      sample_ids: [...e.batch.sampleIds],
      tensors: e.tensors,
      x: e.x,
    });
  }
  assert.deepEqual(out.items[expected.length], { end: 0, batches: expected.length });
  assert.equal(out.reads, expected.length + 1);
  assert.ok(out.wait_seconds >= 0, 'the data-wait time is measured');
  assert.equal(out.state, 'closed', 'epochs=1 closes the stream after the end marker');
});

test('on the loader host the Python client reads batches through shared memory: same values, descriptors over NATS', async (t) => {
  const job = 'py-shm';
  const rank = 1;
  const nc = await connection(t);
  const dir = makeTempDir('py-shm');
  t.after(() => removeTempDir(dir));
  const expected = Array.from({ length: 12 }, (_, step) => makeBatch(job, rank, 0, step, 3, 2000 + step * 500));
  const { sender, producing } = await serveEpoch(nc, job, rank, expected, { hostId: 'node-a', shm: { directory: dir } });
  t.after(() => sender.close());
  const out = JSON.parse(await python(READ_EPOCH, [(await nats()).url, job, String(rank), dir, 'node-a'])) as {
    items: Array<Record<string, unknown>>;
    transport: string;
    shm_batches: number;
  };
  await producing;
  for (const [step, e] of expected.entries()) assert.deepEqual(out.items[step], { job, rank, epoch: 0, step, sample_ids: [...e.batch.sampleIds], tensors: e.tensors, x: e.x });
  assert.equal(out.transport, 'shm');
  // Batches the loader took before the trainer's hello (its window and one more) go as chunks; the rest through shared memory.
  assert.ok(out.shm_batches >= expected.length - 5 && out.shm_batches === sender.stats().shmBatches, `${out.shm_batches} batches through shared memory`);
});

test('a hello of another protocol version fails on the Python side with an error naming the versions', async (t) => {
  const job = 'py-version';
  const nc = await connection(t);
  const sender = await BatchSender.open(nc, { namespace: NAMESPACE, job, rank: 0 });
  t.after(() => sender.close());
  const code = String.raw`
import asyncio, json, sys
import shardline

async def main():
    try:
        await shardline.batches(sys.argv[2], 0, nats_url=sys.argv[1], namespace="${NAMESPACE}", protocol_version=2, connect_timeout=10).read()
    except shardline.ProtocolVersionError as error:
        print(json.dumps({"error": type(error).__name__, "message": str(error), "reason": error.reason,
                          "supported": list(error.supported_versions), "refused": isinstance(error, shardline.RefusedError)}))

asyncio.run(main())
`;
  const out = JSON.parse(await python(code, [(await nats()).url, job])) as Record<string, unknown>;
  assert.equal(out.error, 'ProtocolVersionError');
  assert.equal(out.reason, 'version');
  assert.deepEqual(out.supported, [1]);
  assert.equal(out.refused, true);
  assert.match(String(out.message), /protocol version 2/);
  assert.match(String(out.message), /speaks \[1\]/);
});

test('the PyTorch IterableDataset yields dicts of torch tensors with the batches\' values', async (t) => {
  const job = 'py-torch';
  const rank = 0;
  const nc = await connection(t);
  const expected = [2, 1, 3].map((k, step) => makeBatch(job, rank, 0, step, 2, k * 2500));
  const { sender, producing } = await serveEpoch(nc, job, rank, expected);
  t.after(() => sender.close());
  const code = String.raw`
import hashlib, json, sys
import torch
from torch.utils.data import DataLoader
from shardline import ShardlineIterableDataset

dataset = ShardlineIterableDataset(sys.argv[2], 0, nats_url=sys.argv[1], namespace="${NAMESPACE}", device="cpu", with_metadata=True, connect_timeout=20)
got = []
try:
    for batch in DataLoader(dataset, batch_size=None, num_workers=0):
        meta = batch.pop("_shardline")
        got.append({
            "step": meta["step"], "sample_ids": meta["sample_ids"],
            "types": sorted({type(v).__name__ for v in batch.values()}),
            "dtypes": {k: str(v.dtype) for k, v in batch.items()},
            "sha256": {k: hashlib.sha256(v.numpy().tobytes()).hexdigest() for k, v in batch.items()},
        })
    waited = dataset.wait_seconds
finally:
    dataset.close()
print(json.dumps({"batches": got, "waited": waited}))
`;
  const out = JSON.parse(await python(code, [(await nats()).url, job])) as {
    batches: Array<{ step: number; sample_ids: number[]; types: string[]; dtypes: Record<string, string>; sha256: Record<string, string> }>;
    waited: number;
  };
  await producing;
  assert.equal(out.batches.length, expected.length);
  for (const [step, e] of expected.entries()) {
    const b = out.batches[step]!;
    assert.equal(b.step, step);
    assert.deepEqual(b.sample_ids, [...e.batch.sampleIds]);
    assert.deepEqual(b.types, ['Tensor']);
    assert.deepEqual(b.dtypes, { x: 'torch.float32', label: 'torch.int64', pix: 'torch.uint8' });
    assert.deepEqual(b.sha256, { x: e.tensors.x!.sha256, label: e.tensors.label!.sha256, pix: e.tensors.pix!.sha256 });
  }
  assert.ok(out.waited >= 0);
});

test('the Python client unit tests pass (python -m unittest discover client/python/tests)', () => {
  const code = String.raw`
import sys, unittest
sys.path.insert(0, ${JSON.stringify(CLIENT_DIR)})
suite = unittest.defaultTestLoader.discover(${JSON.stringify(path.join(CLIENT_DIR, 'tests'))}, top_level_dir=${JSON.stringify(CLIENT_DIR)})
result = unittest.TextTestRunner(stream=sys.stderr, verbosity=1).run(suite)
print(result.testsRun)
sys.exit(0 if result.wasSuccessful() else 1)
`;
  const ran = Number(runPython(code, { timeoutMs: 120_000 }).trim());
  assert.ok(ran >= 20, `expected the client's unit tests to run, ${ran} ran`);
});

test('the Python client reads two ranks of an epoch from `shardline loader` processes: every sample of each plan once', async (t) => {
  const job = 'py-from-cli';
  const datasetDir = makeTempDir('py-cli-dataset');
  t.after(() => removeTempDir(datasetDir));
  const shardSizes = await writeTestDataset(datasetDir, 90);
  const server = await nats();
  const options = { worldSize: 2, batchSize: 4, seed: 11, shuffle: 'global' as const };
  const loaders = [0, 1].map((rank) => {
    const cacheDir = makeTempDir(`py-cli-cache-${rank}`);
    t.after(() => removeTempDir(cacheDir));
    return startLoaderProcess(t, ['--job', job, '--namespace', NAMESPACE, '--rank', String(rank), '--world-size', '2',
      '--dataset', datasetDir, '--nats-url', server.url, '--cache-dir', cacheDir, '--cache-budget', '1mb', '--batch-size', '4', '--epochs', '1',
      '--seed', '11', '--shuffle', 'global', '--metrics-port', '0', '--log-level', 'warn']);
  });
  const outputs = await Promise.all([0, 1].map((rank) => python(READ_EPOCH, [server.url, job, String(rank)])));
  const seen = new Set<number>();
  for (const [rank, output] of outputs.entries()) {
    const plan = planOf(options, shardSizes, 0);
    const { items } = JSON.parse(output) as { items: Array<{ step?: number; sample_ids?: number[]; end?: number; batches?: number }> };
    const batches = items.filter((i) => i.end === undefined);
    assert.equal(batches.length, plan.numBatches, `rank ${rank}: every batch`);
    batches.forEach((b, step) => {
      assert.equal(b.step, step);
      assert.deepEqual(b.sample_ids, plan.batchIds(rank, step), `rank ${rank} step ${step}: the plan's samples`);
      for (const id of b.sample_ids!) seen.add(id);
    });
    assert.deepEqual(items.at(-1), { end: 0, batches: plan.numBatches });
  }
  assert.equal(seen.size, 90, 'the two ranks together read every sample of the dataset');
  for (const [rank, loader] of loaders.entries()) {
    assert.equal(await within(loader.exited, 20_000, `loader ${rank} exiting after its trainer acked the epoch`), 0, loader.stderr());
  }
});
