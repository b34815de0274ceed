/**
 * Entry point of a batch worker thread (started by BatchWorkerPool, never run directly). It loads
 * the collate and transform from their module specs, says `ready`, then builds the batches it is
 * given, one at a time and in the order given: each shard it reads is asked of the main thread,
 * which owns the cache, and released as soon as it was read. Its file reads block: nothing else
 * runs on this thread, and a read from the page cache costs less than a trip through libuv's pool. A built batch's buffer is
 * transferred to the main thread; spares come back with later jobs to encode into.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BatchBuilder, BuildFailure, LeaseFailure, type BatchJob } from './batch-builder.ts';
import { loadSteps } from './module-spec.ts';
import { serializeError } from '@shardline/core/internal';
import type { BatchWorkerData, FromBatchWorker, ToBatchWorker } from './worker-protocol.ts';
import type { ShardLease } from '../dataset/shard-sample-reader.ts';

if (parentPort === null) throw new Error('batch-worker.ts runs only as a loader batch worker thread');
const port = parentPort;
const data = workerData as BatchWorkerData;

/** The main thread gave the job up (aborted, or failed there): build nothing more, answer nothing. */
class JobGivenUp extends Error {}

function post(message: FromBatchWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

// Jobs run one at a time, so the job that asks for a lease is always the current one.
let current = -1;
let pendingLease: { readonly seq: number; resolve(message: Extract<ToBatchWorker, { type: 'lease' }>): void; reject(error: Error): void } | undefined;

function lease(shard: number): Promise<ShardLease> {
  const seq = current;
  return new Promise<ShardLease>((resolve, reject) => {
    pendingLease = {
      seq,
      resolve: ({ file, info }) => {
        let released = false;
        resolve({
          file,
          info,
          release: () => {
            if (released) return;
            released = true;
            post({ type: 'release', seq, shard });
          },
        });
      },
      reject,
    };
    post({ type: 'acquire', seq, shard });
  });
}

async function main(): Promise<void> {
  let builder: BatchBuilder;
  try {
    const { collate, transform } = await loadSteps(data);
    builder = new BatchBuilder({ job: data.job, rank: data.rank, seed: data.seed, lease, collate, transform, maxDecodedShards: data.maxDecodedShards, syncReads: true });
  } catch (error) {
    post({ type: 'init-error', error: serializeError(error) });
    // Stay until the pool terminates us, so it reads this message before any exit.
    port.on('message', () => {});
    return;
  }
  const queue: Array<{ seq: number; job: BatchJob }> = [];
  let running = false;
  const pump = async (): Promise<void> => {
    running = true;
    while (queue.length > 0) {
      const { seq, job } = queue.shift()!;
      current = seq;
      try {
        const built = await builder.build(job);
        const buffer = built.bytes.buffer as ArrayBuffer;
        post({ type: 'built', seq, buffer, length: built.bytes.byteLength, skipped: [...built.skipped], seconds: built.seconds, stageSeconds: built.stageSeconds }, [buffer]);
      } catch (error) {
        if (error instanceof LeaseFailure && error.error instanceof JobGivenUp) continue;
        if (error instanceof BuildFailure) {
          const failed: FromBatchWorker = { type: 'failed', seq, stage: error.stage, error: serializeError(error.error) };
          if (error.position !== undefined) failed.position = error.position;
          post(failed);
        } else {
          post({ type: 'failed', seq, stage: 'read', error: serializeError(error) });
        }
      }
    }
    running = false;
  };
  port.on('message', (message: ToBatchWorker) => {
    switch (message.type) {
      case 'build':
        if (message.spare !== undefined) builder.recycle(message.spare);
        queue.push({ seq: message.seq, job: message.job });
        if (!running) void pump();
        break;
      case 'lease':
      case 'refused': {
        const waiting = pendingLease;
        if (waiting === undefined || waiting.seq !== message.seq) break;
        pendingLease = undefined;
        if (message.type === 'lease') waiting.resolve(message);
        else waiting.reject(new JobGivenUp(`job ${message.seq} was given up`));
        break;
      }
      default:
        break;
    }
  });
  post({ type: 'ready' });
}

void main();
