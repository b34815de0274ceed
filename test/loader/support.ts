/**
 * Helpers for the loader tests: a small MDS dataset on disk whose samples say who they are
 * (the `id` column is the global sample id), and a trainer that reads whole epochs and checks
 * every batch against the rank's plan.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { EpochPlan, MDSWriter, decodeBatch, type MDSSample } from '@shardline/core';
import type { BatchReceiver } from '@shardline/client';
import { loaderDefaults, runLoader, type LoaderDeps, type LoaderOptions, type LoaderSummary } from '@shardline/loader-node';

/** Sample i: its id (int64), a float32 vector derived from it, and a string column (not a tensor). */
export function sampleOf(i: number): MDSSample {
  return {
    id: BigInt(i),
    x: { dtype: 'float32', shape: [3], data: new Float32Array([i, i + 0.5, -i]) },
    text: `sample ${i}`,
  };
}

/**
 * Writes `samples` samples as an MDS dataset of several small shards into `dir`; returns the
 * shard sizes. `compression` compresses the shards; `corrupt` gives that sample a `text` that is
 * not UTF-8 (its shard's hashes still match: only decoding the sample finds it).
 */
export async function writeTestDataset(dir: string, samples: number, options: { compression?: string; corrupt?: number } = {}): Promise<number[]> {
  const writer = new MDSWriter({ out: dir, columns: { id: 'int64', x: 'ndarray:float32:3', text: 'str' }, sizeLimit: 1200, hashes: ['xxh64'], compression: options.compression ?? null });
  for (let i = 0; i < samples; i++) await writer.write(i === options.corrupt ? { ...sampleOf(i), text: Uint8Array.of(0xc3, 0x28) } : sampleOf(i));
  const index = await writer.finish();
  return index.shards.map((s) => s.samples);
}

/** The plan a loader with these options computes for `epoch`. */
export function planOf(options: Pick<LoaderOptions, 'worldSize' | 'batchSize'> & Partial<LoaderOptions>, shardSizes: readonly number[], epoch: number): EpochPlan {
  const o = { ...loaderDefaults(), ...options };
  return new EpochPlan({ shardSizes, worldSize: o.worldSize, seed: o.seed, epoch, shuffle: o.shuffle, dropLast: o.dropLast, batchSize: o.batchSize });
}

/**
 * Reads one epoch from `receiver` and checks it against the plan: every step in order, each
 * batch's metadata and its `id` tensor equal to `plan.batchIds(rank, step)`, the `x` tensor
 * derived from the ids. Returns the sample ids read, in order.
 */
export async function readCheckedEpoch(receiver: BatchReceiver, plan: EpochPlan, job: string, rank: number): Promise<number[]> {
  const ids: number[] = [];
  let step = 0;
  for await (const delivered of receiver.epoch()) {
    assert.deepEqual([delivered.epoch, delivered.step], [plan.epoch, step]);
    const { tensors, metadata } = decodeBatch(delivered.bytes);
    const expected = plan.batchIds(rank, step);
    assert.deepEqual({ job: metadata.job, epoch: metadata.epoch, rank: metadata.rank, step: metadata.step }, { job, epoch: plan.epoch, rank, step });
    assert.deepEqual(metadata.sampleIds, expected, `rank ${rank} epoch ${plan.epoch} step ${step}: sample ids`);
    assert.deepEqual(Array.from(tensors.id!.data as BigInt64Array, Number), expected, 'the id column travels with its sample');
    assert.deepEqual(Array.from(tensors.x!.data as Float32Array), expected.flatMap((i) => [i, i + 0.5, -i]));
    assert.equal(tensors.text, undefined, 'strings are not tensors and stay off the wire');
    ids.push(...metadata.sampleIds);
    step++;
  }
  assert.equal(step, plan.numBatches, `rank ${rank} epoch ${plan.epoch}: batches`);
  return ids;
}

/** A `shardline loader` child process: its exit code once it ends, and what it wrote to stderr. */
export interface LoaderProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr(): string;
}

const CLI_MAIN = path.join(import.meta.dirname, '..', '..', 'cli', 'src', 'main.ts');

/**
 * Starts `shardline loader <args>` with this Node (stdout ignored, stderr kept for messages);
 * the process is killed when the test ends if it is still running.
 */
export function startLoaderProcess(t: { after: (fn: () => unknown) => void }, args: readonly string[], env?: NodeJS.ProcessEnv): LoaderProcess {
  const child = spawn(process.execPath, [CLI_MAIN, 'loader', ...args], { stdio: ['ignore', 'ignore', 'pipe'], ...(env === undefined ? {} : { env }) });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, exited, stderr: () => stderr };
}

/**
 * Starts runLoader for a test; when the test ends (a failure included) the loader is stopped and
 * awaited, so nothing of it outlives the test. `signal` also stops it, as SIGTERM would.
 */
export function startLoader(t: { after: (fn: () => unknown) => void }, options: LoaderOptions, deps: Omit<LoaderDeps, 'signal'>, signal?: AbortSignal): Promise<LoaderSummary> {
  const cleanup = new AbortController();
  const done = runLoader(options, { ...deps, signal: signal === undefined ? cleanup.signal : AbortSignal.any([signal, cleanup.signal]) });
  t.after(async () => {
    cleanup.abort();
    await done.catch(() => {});
  });
  return done;
}
