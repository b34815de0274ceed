/**
 * Entry point of a DataLoader worker thread. It builds its own dataset (and collate, and runs the
 * init hook) from the module specs in `workerData`, then answers the loader's messages: batches
 * of indices for a map-style dataset, credits for an IterableDataset. Results go back with their
 * ArrayBuffers transferred, not copied. Never run directly.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { defaultCollate } from '../collate/default-collate.ts';
import type { CollateFn } from '../collate/default-collate.ts';
import { buffersOf, transferListOf } from '../collate/transfer.ts';
import type { Dataset, IterableDataset } from '../dataset/dataset.ts';
import { isDataset } from '../dataset/dataset.ts';
import { loadCollate, loadDataset, loadExport } from './module-spec.ts';
import type { FromWorker, ToWorker, WorkerBootstrap } from './protocol.ts';
import { serializeError } from './worker-error.ts';
import { getWorkerInfo, setWorkerInfo } from './worker-info.ts';

if (parentPort === null) throw new Error('worker.ts runs only as a DataLoader worker thread');
const port = parentPort;
const boot = workerData as WorkerBootstrap;

/** A dataset's failure on one sample, so the error can name it. */
class SampleFailure {
  readonly index: number;
  readonly error: unknown;
  constructor(index: number, error: unknown) {
    this.index = index;
    this.error = error;
  }
}

function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

/**
 * Posts a batch, moving its buffers; a batch that cannot be cloned becomes an error message.
 * Buffers that belong to the samples are copied, not moved: the dataset may still hold them.
 */
function sendBatch(iter: number, seq: number, data: unknown, samples: readonly unknown[]): void {
  try {
    send({ type: 'batch', iter, seq, data }, transferListOf(data, buffersOf(samples)));
  } catch (e) {
    send({ type: 'error', iter, seq, error: serializeError(new Error(`the batch cannot be sent to the main thread: ${(e as Error).message}`, { cause: e })) });
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as PromiseLike<unknown>).then === 'function';
}

async function loadSamples(dataset: Dataset<unknown>, indices: readonly number[]): Promise<unknown[]> {
  const samples = new Array<unknown>(indices.length);
  const pending: Promise<unknown>[] = [];
  for (let k = 0; k < indices.length; k++) {
    const index = indices[k]!;
    let value: unknown;
    try {
      value = dataset.get(index);
    } catch (e) {
      throw new SampleFailure(index, e);
    }
    if (isThenable(value)) {
      pending.push(
        Promise.resolve(value).then(
          (v) => (samples[k] = v),
          (e: unknown) => {
            throw new SampleFailure(index, e);
          },
        ),
      );
    } else {
      samples[k] = value;
    }
  }
  if (pending.length > 0) await Promise.all(pending);
  return samples;
}

async function main(): Promise<void> {
  let dataset: Dataset<unknown> | IterableDataset<unknown>;
  let collate: CollateFn;
  try {
    const context = { id: boot.id, numWorkers: boot.numWorkers, seed: boot.seed, epoch: boot.epoch };
    dataset = await loadDataset(boot.dataset, context);
    setWorkerInfo({ ...context, dataset });
    if (boot.workerInit !== null) {
      const init = await loadExport('workerInit', boot.workerInit);
      await init(getWorkerInfo(), boot.workerInit.args);
    }
    collate = boot.collate === null ? (defaultCollate as CollateFn) : await loadCollate(boot.collate, context);
  } catch (e) {
    send({ type: 'init-error', error: serializeError(e) });
    // Stay alive until the loader terminates us, so it sees this message before any exit.
    port.on('message', () => {});
    return;
  }

  if (isDataset(dataset)) {
    serveMapStyle(dataset, collate);
  } else {
    serveIterable(dataset, collate);
  }
  send({ type: 'ready', kind: isDataset(dataset) ? 'map' : 'iterable', length: datasetLength(dataset) });
}

function datasetLength(d: Dataset<unknown> | IterableDataset<unknown>): number | null {
  const n = d.length;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 ? n : null;
}

function updateEpoch(message: { epoch: number; seed: number }): void {
  const info = getWorkerInfo()!;
  setWorkerInfo({ ...info, epoch: message.epoch, seed: message.seed });
}

function serveMapStyle(dataset: Dataset<unknown>, collate: CollateFn): void {
  const queue: { iter: number; seq: number; indices: number[] }[] = [];
  let running = false;
  const pump = async (): Promise<void> => {
    running = true;
    while (queue.length > 0) {
      const task = queue.shift()!;
      try {
        const samples = await loadSamples(dataset, task.indices);
        sendBatch(task.iter, task.seq, await collate(samples), samples);
      } catch (e) {
        const failure = e instanceof SampleFailure ? e : undefined;
        const message: FromWorker = { type: 'error', iter: task.iter, seq: task.seq, error: serializeError(failure ? failure.error : e) };
        if (failure) message.sampleIndex = failure.index;
        send(message);
      }
    }
    running = false;
  };
  port.on('message', (message: ToWorker) => {
    if (message.type === 'epoch') {
      updateEpoch(message);
    } else if (message.type === 'batch') {
      queue.push(message);
      if (!running) void pump();
    }
  });
}

function serveIterable(dataset: IterableDataset<unknown>, collate: CollateFn): void {
  let pass: { iter: number; credits: number; stopped: boolean; wake: (() => void) | null } | null = null;

  const run = async (state: NonNullable<typeof pass>): Promise<void> => {
    const waitCredit = (): Promise<void> | undefined =>
      state.credits > 0 || state.stopped ? undefined : new Promise<void>((resolve) => (state.wake = resolve));
    let iterator: AsyncIterator<unknown> | undefined;
    let position = 0;
    let seq = 0;
    try {
      iterator = dataset[Symbol.asyncIterator]();
      for (;;) {
        await waitCredit();
        if (state.stopped) break;
        const samples: unknown[] = [];
        let done = false;
        while (samples.length < boot.batchSize) {
          let r: IteratorResult<unknown>;
          try {
            r = await iterator.next();
          } catch (e) {
            throw new SampleFailure(position, e);
          }
          if (r.done) {
            done = true;
            break;
          }
          samples.push(r.value);
          position++;
        }
        if (state.stopped) break;
        if (samples.length > 0 && (samples.length === boot.batchSize || !boot.dropLast)) {
          state.credits--;
          sendBatch(state.iter, seq++, await collate(samples), samples);
        }
        if (done) {
          iterator = undefined;
          send({ type: 'end', iter: state.iter, batches: seq });
          break;
        }
      }
    } catch (e) {
      const failure = e instanceof SampleFailure ? e : undefined;
      const message: FromWorker = { type: 'error', iter: state.iter, seq, error: serializeError(failure ? failure.error : e) };
      if (failure) message.sampleIndex = failure.index;
      send(message);
    } finally {
      if (iterator?.return) await Promise.resolve(iterator.return()).catch(() => {});
    }
  };

  port.on('message', (message: ToWorker) => {
    switch (message.type) {
      case 'epoch':
        updateEpoch(message);
        break;
      case 'iterate': {
        if (pass) {
          pass.stopped = true;
          pass.wake?.();
        }
        pass = { iter: message.iter, credits: 0, stopped: false, wake: null };
        void run(pass);
        break;
      }
      case 'credit':
        if (pass && pass.iter === message.iter) {
          pass.credits += message.n;
          const wake = pass.wake;
          pass.wake = null;
          wake?.();
        }
        break;
      case 'stop':
        if (pass && pass.iter === message.iter) {
          pass.stopped = true;
          pass.wake?.();
        }
        break;
      default:
        break;
    }
  });
}

void main();
