/**
 * The DataLoader: turns a dataset and a sampler into an async stream of collated batches, in
 * process or on worker threads, the way PyTorch's DataLoader does, with the pitfalls fixed:
 * deterministic per-worker seeds, errors that name the worker and the sample, a timeout and an
 * AbortSignal, and no thread left running however a pass ends.
 */
import type { CollateFn, Collated } from '../collate/default-collate.ts';
import { defaultCollate } from '../collate/default-collate.ts';
import type { Dataset, IterableDataset } from '../dataset/dataset.ts';
import { isDataset, isIterableDataset } from '../dataset/dataset.ts';
import { AbortError, ArgumentError, ClosedError, DatasetError, ErrorCode, ShardlineError, TimeoutError } from '../errors.ts';
import { hashSeed } from '../random.ts';
import { BatchSampler } from '../sampler/batch.ts';
import { RandomSampler } from '../sampler/random.ts';
import type { BatchSampler as BatchSamplerLike, Sampler } from '../sampler/sampler.ts';
import { isSampler } from '../sampler/sampler.ts';
import { SequentialSampler } from '../sampler/sequential.ts';
import { requireFinite, requireInt, requirePositiveInt, requireSeed } from '../validate.ts';
import { Mailbox, TIMED_OUT } from './mailbox.ts';
import type { DatasetSpec, ModuleSpec, ResolvedSpec } from './module-spec.ts';
import { isModuleSpec, loadCollate, loadDataset, resolveSpec } from './module-spec.ts';
import type { DatasetKind, WorkerBootstrap } from './protocol.ts';
import type { PoolEvent } from './worker-pool.ts';
import { WorkerPool } from './worker-pool.ts';
import { batchError, formatIndices, startupError, WorkerError } from './worker-error.ts';

/** What a DataLoader reads: a dataset object (in-process only) or a module spec (any numWorkers). */
export type DataSource<T> = Dataset<T> | IterableDataset<T> | DatasetSpec;

export interface DataLoaderOptions<T = unknown, B = Collated<T>> {
  /** Samples per batch (default 1). Excludes `batchSampler`. */
  batchSize?: number;
  /** Reshuffle every epoch with a RandomSampler seeded from `seed` (default false). Excludes `sampler`. */
  shuffle?: boolean;
  /** Where indices come from (default Sequential, or Random with `shuffle`). */
  sampler?: Sampler;
  /** Yields whole batches of indices; excludes batchSize, shuffle, sampler and dropLast. */
  batchSampler?: BatchSamplerLike;
  /** Drop the last incomplete batch (default false). */
  dropLast?: boolean;
  /** Worker threads (default 0: load in the calling thread). Needs the dataset as a module spec. */
  numWorkers?: number;
  /** Batches in flight per worker (default 2; only with workers). */
  prefetchFactor?: number;
  /**
   * Collate (default `defaultCollate`): a function in-process, or a module spec whose export is a
   * factory `(args, context) => collateFn` (e.g. `padSequenceCollate` with its options as args).
   */
  collate?: CollateFn<T, B> | ModuleSpec;
  /**
   * Milliseconds to wait for one batch before a TimeoutError (default 0: no limit). Worker
   * startup (imports, dataset factory, workerInit) is not bounded by it: use `signal` for that.
   */
  timeout?: number;
  /**
   * Runs once in each worker after its dataset is built: the export is called with
   * `(getWorkerInfo(), args)`. Ignored with numWorkers 0, as in PyTorch.
   */
  workerInit?: ModuleSpec;
  /** Base seed of shuffling and of the per-worker seeds (default 0). */
  seed?: number;
  /** Keep the workers between epochs; `close()` ends them (default false). */
  persistentWorkers?: boolean;
  /** Aborting rejects the pass in progress with an AbortError and ends the workers. */
  signal?: AbortSignal;
  /** Deliver batches in sampler order (default true); false yields them as they are ready. */
  inOrder?: boolean;
  /** Epoch of the first pass (default 0). */
  epoch?: number;
}

type Interrupt = { type: 'interrupt'; error: Error };
type Outcome<B> = { ok: true; value: B } | { ok: false; error: Error };
type LoaderEvent = PoolEvent | Interrupt;

/** One pass in progress: how close() and abort reach it. */
interface Pass {
  mailbox: Mailbox<LoaderEvent>;
  /** Set once the pass is interrupted: checked before every batch is handed out. */
  error: Error | null;
  interrupted: Promise<never>;
  interrupt(error: Error): void;
}

function newPass(): Pass {
  const mailbox = new Mailbox<LoaderEvent>();
  let reject!: (e: Error) => void;
  const interrupted = new Promise<never>((_, r) => (reject = r));
  interrupted.catch(() => {});
  return {
    mailbox,
    error: null,
    interrupted,
    interrupt(error) {
      if (this.error !== null) return;
      this.error = error;
      reject(error);
      mailbox.push({ type: 'interrupt', error });
    },
  };
}

/**
 * Batches from a dataset, as an async iterable: one `for await` is one epoch.
 *
 * With `numWorkers > 0` the dataset is a module spec and each worker thread builds its own copy;
 * batches of indices are handed to workers (at most `prefetchFactor` outstanding per worker, in
 * round-robin so the batch → worker mapping is reproducible) and delivered in sampler order.
 * Worker `w` of epoch `e` gets seed `hashSeed(seed, e, w)` (see `getWorkerInfo()`).
 *
 * An IterableDataset with workers: every worker iterates its own copy and batches it itself, so a
 * dataset that does not shard itself with `getWorkerInfo()` is read once per worker (PyTorch
 * semantics); batches are taken from the workers round-robin.
 *
 * A pass ends its workers when it completes (unless `persistentWorkers`), fails, is aborted, or
 * is left by `break` (unless `persistentWorkers`: the workers stay and late results are dropped).
 *
 * @example
 * await using loader = new DataLoader(
 *   { module: new URL('./my-dataset.ts', import.meta.url), export: 'create', args: { root } },
 *   { batchSize: 32, shuffle: true, numWorkers: 2, seed: 42 },
 * );
 * for (let epoch = 0; epoch < 3; epoch++) {
 *   for await (const batch of loader) train(batch);
 * }
 */
export class DataLoader<T = unknown, B = Collated<T>> implements AsyncIterable<B>, AsyncDisposable {
  readonly dataset: DataSource<T>;
  readonly batchSize: number | undefined;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly numWorkers: number;
  readonly prefetchFactor: number;
  readonly timeout: number;
  readonly seed: number;
  readonly persistentWorkers: boolean;
  readonly inOrder: boolean;
  readonly signal: AbortSignal | undefined;

  #sampler: Sampler | undefined;
  #batchSampler: BatchSamplerLike | undefined;
  #datasetSpec: ResolvedSpec | null = null;
  #kind: DatasetKind | null = null;
  #datasetLength: number | null = null;
  #localDataset: Dataset<T> | IterableDataset<T> | null = null;
  #collateFn: CollateFn<T, B> | null = null;
  #collateSpec: ResolvedSpec | null = null;
  #workerInit: ResolvedSpec | null = null;
  #epoch: number;
  #pool: WorkerPool | null = null;
  #pass: Pass | null = null;
  #iter = 0;
  #closed = false;
  #onAbort: (() => void) | null = null;

  constructor(dataset: DataSource<T>, options: DataLoaderOptions<T, B> = {}) {
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object');
    this.numWorkers = requireInt('numWorkers', options.numWorkers ?? 0, { min: 0, max: 1024 });
    const workers = this.numWorkers > 0;

    this.dataset = dataset;
    if (isDataset<T>(dataset)) {
      this.#kind = 'map';
      this.#datasetLength = requireInt('dataset.length', dataset.length);
      this.#localDataset = dataset;
    } else if (isIterableDataset<T>(dataset)) {
      this.#kind = 'iterable';
      if (dataset.length !== undefined) this.#datasetLength = requireInt('dataset.length', dataset.length);
      this.#localDataset = dataset;
    } else if (isModuleSpec(dataset)) {
      this.#datasetSpec = resolveSpec('dataset', dataset);
      if (dataset.length !== undefined) this.#datasetLength = requireInt('dataset.length', dataset.length);
    } else {
      throw new ArgumentError('dataset', 'must be a Dataset, an IterableDataset or a module spec { module, export?, args? }');
    }
    if (workers && this.#datasetSpec === null) {
      throw new ArgumentError(
        'dataset',
        `with numWorkers ${this.numWorkers} must be a module spec { module, export, args }: each worker thread builds its own dataset`,
      );
    }

    const { batchSampler, sampler } = options;
    if (batchSampler !== undefined) {
      if (options.batchSize !== undefined || options.shuffle || sampler !== undefined || options.dropLast) {
        throw new ArgumentError('batchSampler', 'is mutually exclusive with batchSize, shuffle, sampler and dropLast');
      }
      if (!isSampler(batchSampler)) throw new ArgumentError('batchSampler', 'must be a batch sampler (iterable of index arrays with a length)');
    }
    if (sampler !== undefined) {
      if (options.shuffle) throw new ArgumentError('shuffle', 'is mutually exclusive with sampler');
      if (!isSampler(sampler)) throw new ArgumentError('sampler', 'must be a Sampler (iterable of indices with a length)');
    }
    this.#batchSampler = batchSampler;
    this.#sampler = sampler;
    this.batchSize = batchSampler === undefined ? requirePositiveInt('batchSize', options.batchSize ?? 1) : undefined;
    this.shuffle = options.shuffle ?? false;
    this.dropLast = options.dropLast ?? false;
    if (typeof this.shuffle !== 'boolean') throw new ArgumentError('shuffle', `must be a boolean, got ${String(this.shuffle)}`);
    if (typeof this.dropLast !== 'boolean') throw new ArgumentError('dropLast', `must be a boolean, got ${String(this.dropLast)}`);
    if (this.#kind === 'iterable') this.#checkIterableOptions();

    if (options.prefetchFactor !== undefined && !workers) {
      throw new ArgumentError('prefetchFactor', 'only applies with numWorkers > 0');
    }
    this.prefetchFactor = requirePositiveInt('prefetchFactor', options.prefetchFactor ?? 2, 1024);
    this.persistentWorkers = options.persistentWorkers ?? false;
    if (typeof this.persistentWorkers !== 'boolean') {
      throw new ArgumentError('persistentWorkers', `must be a boolean, got ${String(this.persistentWorkers)}`);
    }
    if (this.persistentWorkers && !workers) throw new ArgumentError('persistentWorkers', 'needs numWorkers > 0');
    this.timeout = requireFinite('timeout', options.timeout ?? 0, { min: 0 });
    this.seed = requireSeed('seed', options.seed ?? 0);
    this.#epoch = requireInt('epoch', options.epoch ?? 0);
    this.inOrder = options.inOrder ?? true;
    if (typeof this.inOrder !== 'boolean') throw new ArgumentError('inOrder', `must be a boolean, got ${String(this.inOrder)}`);

    const collate = options.collate;
    if (typeof collate === 'function') {
      if (workers) {
        throw new ArgumentError('collate', 'with numWorkers > 0 must be a module spec whose export is a collate factory');
      }
      this.#collateFn = collate;
    } else if (collate !== undefined) {
      this.#collateSpec = resolveSpec('collate', collate);
    }
    if (options.workerInit !== undefined) this.#workerInit = resolveSpec('workerInit', options.workerInit);

    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new ArgumentError('signal', 'must be an AbortSignal');
    this.signal = signal;
    if (signal !== undefined && !signal.aborted) {
      this.#onAbort = () => {
        // End the threads now, even if the consumer is not waiting on the loader at this moment.
        this.#pass?.interrupt(abortError(signal));
        void this.#endPool();
      };
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  /** The epoch the next pass will load (each pass advances it by one). */
  get epoch(): number {
    return this.#epoch;
  }

  /** Sets the epoch of the next pass (e.g. when resuming from a checkpoint). */
  setEpoch(epoch: number): void {
    this.#epoch = requireInt('epoch', epoch);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Batches per epoch. For an IterableDataset it assumes one stream of `dataset.length` samples;
   * with workers each worker batches its own share, so the true count can be a little higher.
   * Throws a DatasetError while the length is unknown (a module spec without `length`, before the
   * first pass).
   */
  get length(): number {
    if (this.#batchSampler !== undefined) return this.#batchSampler.length;
    const n = this.#datasetLength;
    if (this.#kind === 'iterable') {
      if (n === null) throw new DatasetError('DataLoader.length: this IterableDataset has no length');
      return this.dropLast ? Math.floor(n / this.batchSize!) : Math.ceil(n / this.batchSize!);
    }
    if (this.#sampler !== undefined || n !== null) return this.#batchSamplerFor(n ?? 0).length;
    throw new DatasetError(
      'DataLoader.length: the dataset length is not known until its module is loaded: give the dataset spec a `length`, or a sampler, or read it after the first pass has started',
    );
  }

  [Symbol.asyncIterator](): AsyncIterator<B> {
    return this.#run();
  }

  /** Ends the workers (persistent ones included) and any pass in progress; later passes throw ClosedError. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#onAbort !== null) this.signal?.removeEventListener('abort', this.#onAbort);
    this.#pass?.interrupt(new ClosedError('the DataLoader was closed during the pass'));
    await this.#endPool();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #endPool(): Promise<void> {
    const pool = this.#pool;
    this.#pool = null;
    await pool?.terminate();
  }

  #checkIterableOptions(): void {
    if (this.#batchSampler !== undefined || this.#sampler !== undefined || this.shuffle) {
      throw new ArgumentError(
        this.#batchSampler !== undefined ? 'batchSampler' : this.#sampler !== undefined ? 'sampler' : 'shuffle',
        'does not apply to an IterableDataset (it decides its own order)',
      );
    }
  }

  #batchSamplerFor(length: number): BatchSamplerLike {
    if (this.#batchSampler === undefined) {
      const sampler =
        this.#sampler ?? (this.shuffle ? new RandomSampler(length, { seed: this.seed }) : new SequentialSampler(length));
      this.#batchSampler = new BatchSampler(sampler, { batchSize: this.batchSize!, dropLast: this.dropLast });
    }
    return this.#batchSampler;
  }

  #setKind(kind: DatasetKind, length: number | null): void {
    if (this.#datasetLength !== null && length !== null && length !== this.#datasetLength) {
      throw new ArgumentError('dataset.length', `is ${this.#datasetLength} but the dataset built from the spec has ${length} samples`);
    }
    this.#kind = kind;
    this.#datasetLength ??= length;
    if (kind === 'iterable') this.#checkIterableOptions();
    if (kind === 'map' && this.#datasetLength === null) {
      throw new DatasetError('the map-style dataset built from the spec has no valid length');
    }
  }

  async *#run(): AsyncGenerator<B, void, undefined> {
    if (this.#closed) throw new ClosedError('the DataLoader is closed');
    if (this.signal?.aborted) throw abortError(this.signal);
    if (this.#pass !== null) {
      throw new ShardlineError(
        ErrorCode.InvalidArgument,
        'DataLoader: a pass is already in progress; finish it, break out of it or call return() on its iterator first',
      );
    }
    const pass = newPass();
    this.#pass = pass;
    const epoch = this.#epoch++;
    const iter = ++this.#iter;
    try {
      if (this.numWorkers === 0) yield* this.#runInProcess(pass, epoch);
      else yield* this.#runWorkers(pass, epoch, iter);
    } finally {
      this.#pass = null;
    }
  }

  /** Awaits `work`, unless the pass is interrupted or the timeout passes first. */
  async #guard<V>(pass: Pass, work: Promise<V>, what: () => string): Promise<V> {
    if (pass.error !== null) throw pass.error;
    const racers: Promise<V>[] = [work, pass.interrupted];
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (this.timeout > 0) {
      racers.push(
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new TimeoutError(`${what()} was not loaded within ${this.timeout} ms`)), this.timeout);
        }),
      );
    }
    try {
      return await Promise.race(racers);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  async *#runInProcess(pass: Pass, epoch: number): AsyncGenerator<B, void, undefined> {
    if (this.#localDataset === null) {
      const dataset = (await this.#guard(pass, loadDataset(this.#datasetSpec!, null), () => 'the dataset')) as
        | Dataset<T>
        | IterableDataset<T>;
      this.#setKind(isDataset(dataset) ? 'map' : 'iterable', isDataset(dataset) ? dataset.length : (dataset.length ?? null));
      this.#localDataset = dataset;
    }
    if (this.#collateFn === null) {
      this.#collateFn =
        this.#collateSpec === null
          ? (defaultCollate as CollateFn<T, B>)
          : ((await this.#guard(pass, loadCollate(this.#collateSpec, null), () => 'the collate module')) as CollateFn<T, B>);
    }
    const dataset = this.#localDataset;
    const collate = this.#collateFn;

    if (isDataset<T>(dataset)) {
      const batches = this.#batchSamplerFor(dataset.length);
      batches.setEpoch?.(epoch);
      let seq = 0;
      for (const indices of batches) {
        const load = async (): Promise<B> => {
          const samples = await Promise.all(indices.map((i) => dataset.get(i)));
          return await collate(samples);
        };
        const b = seq++;
        const batch = await this.#guard(pass, load(), () => `batch ${b} (indices ${formatIndices(indices)})`);
        if (pass.error !== null) throw pass.error;
        yield batch;
      }
      return;
    }

    const iterator = dataset[Symbol.asyncIterator]();
    let done = false;
    try {
      for (let seq = 0; !done; seq++) {
        const samples: T[] = [];
        while (samples.length < this.batchSize!) {
          const r = await this.#guard(pass, Promise.resolve(iterator.next()), () => `batch ${seq}`);
          if (r.done) {
            done = true;
            break;
          }
          samples.push(r.value);
        }
        if (samples.length === this.batchSize || (samples.length > 0 && !this.dropLast)) {
          const batch = await this.#guard(pass, Promise.resolve(collate(samples)), () => `batch ${seq}`);
          if (pass.error !== null) throw pass.error;
          yield batch;
        }
      }
    } finally {
      if (!done) await iterator.return?.();
    }
  }

  #startPool(pass: Pass, epoch: number): WorkerPool {
    const bootOf = (id: number): WorkerBootstrap => ({
      id,
      numWorkers: this.numWorkers,
      seed: hashSeed(this.seed, epoch, id),
      epoch,
      dataset: this.#datasetSpec!,
      collate: this.#collateSpec,
      workerInit: this.#workerInit,
      batchSize: this.batchSize ?? 1,
      dropLast: this.dropLast,
    });
    return new WorkerPool(this.numWorkers, bootOf, (e) => pass.mailbox.push(e));
  }

  async *#runWorkers(pass: Pass, epoch: number, iter: number): AsyncGenerator<B, void, undefined> {
    let pool = this.#pool;
    if (pool !== null && (pool.broken !== null || pool.terminated)) {
      await this.#endPool();
      pool = null;
    }
    const fresh = pool === null;
    if (pool === null) {
      pool = this.#startPool(pass, epoch);
      this.#pool = pool;
    } else {
      pool.setSink((e) => pass.mailbox.push(e));
      for (let w = 0; w < pool.size; w++) pool.post(w, { type: 'epoch', epoch, seed: hashSeed(this.seed, epoch, w) });
    }
    pool.ref();

    let outcome: 'done' | 'failed' | 'left' = 'left';
    try {
      if (fresh) await this.#awaitReady(pass, pool);
      if (this.#kind === 'map') yield* this.#mapEpoch(pass, pool, epoch, iter);
      else yield* this.#iterableEpoch(pass, pool, iter);
      outcome = 'done';
    } catch (e) {
      outcome = 'failed';
      throw e;
    } finally {
      const keep = this.persistentWorkers && outcome !== 'failed' && !this.#closed && !this.signal?.aborted;
      if (keep && this.#pool === pool) {
        if (outcome === 'left' && this.#kind === 'iterable') {
          for (let w = 0; w < pool.size; w++) pool.post(w, { type: 'stop', iter });
        }
        // Results of an abandoned pass are dropped; a crash while idle is remembered by the pool.
        pool.setSink(() => {});
        pool.unref();
      } else {
        if (this.#pool === pool) this.#pool = null;
        await pool.terminate();
      }
    }
  }

  async #awaitReady(pass: Pass, pool: WorkerPool): Promise<void> {
    const ready: ({ kind: DatasetKind; length: number | null } | null)[] = new Array(pool.size).fill(null);
    let count = 0;
    while (count < pool.size) {
      const e = await pass.mailbox.take();
      if (e === TIMED_OUT) continue;
      switch (e.type) {
        case 'ready':
          if (ready[e.workerId] === null) count++;
          ready[e.workerId] = { kind: e.kind, length: e.length };
          break;
        case 'init-error':
          throw startupError(e.workerId, e.error);
        case 'crash':
          throw new WorkerError(`worker ${e.workerId} crashed while starting: ${e.error.name}: ${e.error.message}`, {
            workerId: e.workerId,
            cause: e.error,
          });
        case 'exit':
          throw new WorkerError(`worker ${e.workerId} exited with code ${e.code} while starting`, { workerId: e.workerId });
        case 'interrupt':
          throw e.error;
        default:
          break;
      }
    }
    const first = ready[0]!;
    ready.forEach((r, w) => {
      if (r!.kind !== first.kind || r!.length !== first.length) {
        throw new DatasetError(
          `workers built different datasets: worker 0 has a ${first.kind} dataset of length ${first.length}, worker ${w} a ${r!.kind} dataset of length ${r!.length}`,
        );
      }
    });
    this.#setKind(first.kind, first.length);
  }

  /** Failure events every epoch loop treats the same way. */
  #failure(e: LoaderEvent, pending: (workerId: number) => string): Error | null {
    switch (e.type) {
      case 'interrupt':
        return e.error;
      case 'crash':
        return new WorkerError(
          `worker ${e.workerId} crashed${pending(e.workerId)}: ${e.error.name}: ${e.error.message}`,
          { workerId: e.workerId, cause: e.error },
        );
      case 'exit':
        return new WorkerError(`worker ${e.workerId} exited unexpectedly with code ${e.code}${pending(e.workerId)}`, {
          workerId: e.workerId,
        });
      default:
        return null;
    }
  }

  async *#mapEpoch(pass: Pass, pool: WorkerPool, epoch: number, iter: number): AsyncGenerator<B, void, undefined> {
    const batches = this.#batchSamplerFor(this.#datasetLength!);
    batches.setEpoch?.(epoch);
    const source = batches[Symbol.iterator]();
    const n = pool.size;
    const outstanding = new Array<number>(n).fill(0);
    const inFlight = new Map<number, { workerId: number; indices: number[] }>();
    // Results by batch position; a failed batch waits its turn too, so with inOrder the caller
    // gets every batch before the failing one, then its error.
    const arrived = new Map<number, Outcome<B>>();
    let dispatched = 0;
    let delivered = 0;
    let exhausted = false;
    let deadline: number | undefined;

    const dispatch = (): void => {
      while (!exhausted) {
        let w = dispatched % n;
        if (!this.inOrder) for (let k = 0; k < n; k++) if (outstanding[k]! < outstanding[w]!) w = k;
        if (outstanding[w]! >= this.prefetchFactor) return;
        const next = source.next();
        if (next.done) {
          exhausted = true;
          return;
        }
        const indices = Array.from(next.value);
        pool.post(w, { type: 'batch', iter, seq: dispatched, indices });
        inFlight.set(dispatched, { workerId: w, indices });
        outstanding[w]!++;
        dispatched++;
      }
    };
    const pending = (workerId: number): string => {
      const mine = [...inFlight].filter(([seq, t]) => t.workerId === workerId && !arrived.has(seq)).map(([seq]) => seq);
      return mine.length > 0 ? ` while loading batch${mine.length > 1 ? 'es' : ''} ${mine.join(', ')}` : '';
    };

    for (;;) {
      if (pass.error !== null) throw pass.error;
      dispatch();
      let seq: number | undefined;
      if (this.inOrder) {
        if (arrived.has(delivered)) seq = delivered;
      } else {
        seq = arrived.keys().next().value;
      }
      if (seq !== undefined) {
        const result = arrived.get(seq)!;
        if (!result.ok) throw result.error;
        arrived.delete(seq);
        outstanding[inFlight.get(seq)!.workerId]!--;
        inFlight.delete(seq);
        delivered++;
        deadline = undefined;
        yield result.value;
        continue;
      }
      if (exhausted && delivered === dispatched) return;

      if (this.timeout > 0) deadline ??= performance.now() + this.timeout;
      const e = await pass.mailbox.take(deadline === undefined ? undefined : deadline - performance.now());
      if (e === TIMED_OUT) {
        const late = this.inOrder ? delivered : Math.min(...[...inFlight.keys()].filter((s) => !arrived.has(s)));
        const task = inFlight.get(late)!;
        throw new TimeoutError(
          `batch ${late} (indices ${formatIndices(task.indices)}) from worker ${task.workerId} was not loaded within ${this.timeout} ms`,
        );
      }
      if (e.type === 'batch' || e.type === 'error') {
        if (e.iter !== iter || !inFlight.has(e.seq)) continue;
        if (e.type === 'batch') {
          arrived.set(e.seq, { ok: true, value: e.data as B });
          continue;
        }
        const where: { batch: number; indices: number[]; sampleIndex?: number } = {
          batch: e.seq,
          indices: inFlight.get(e.seq)!.indices,
        };
        if (e.sampleIndex !== undefined) where.sampleIndex = e.sampleIndex;
        const error = batchError(e.workerId, e.error, where);
        if (!this.inOrder) throw error;
        arrived.set(e.seq, { ok: false, error });
        continue;
      }
      const failure = this.#failure(e, pending);
      if (failure !== null) throw failure;
    }
  }

  async *#iterableEpoch(pass: Pass, pool: WorkerPool, iter: number): AsyncGenerator<B, void, undefined> {
    const n = pool.size;
    const queues: Outcome<B>[][] = Array.from({ length: n }, () => []);
    const ended = new Array<boolean>(n).fill(false);
    for (let w = 0; w < n; w++) {
      pool.post(w, { type: 'iterate', iter });
      pool.post(w, { type: 'credit', iter, n: this.prefetchFactor });
    }
    let next = 0;
    let delivered = 0;
    let deadline: number | undefined;
    const pending = (w: number): string => (ended[w] ? '' : ' while loading its next batch');

    for (;;) {
      if (pass.error !== null) throw pass.error;
      // In order: strict round-robin over the workers that still have batches to give.
      let from: number | undefined;
      let waitingOn: number | undefined;
      for (let k = 0; k < n && from === undefined && waitingOn === undefined; k++) {
        const w = this.inOrder ? (next + k) % n : k;
        if (queues[w]!.length > 0) from = w;
        else if (!ended[w] && this.inOrder) waitingOn = w;
      }
      if (from !== undefined) {
        const result = queues[from]!.shift()!;
        if (!result.ok) throw result.error;
        if (!ended[from]) pool.post(from, { type: 'credit', iter, n: 1 });
        next = (from + 1) % n;
        delivered++;
        deadline = undefined;
        yield result.value;
        continue;
      }
      if (ended.every(Boolean)) return;

      if (this.timeout > 0) deadline ??= performance.now() + this.timeout;
      const e = await pass.mailbox.take(deadline === undefined ? undefined : deadline - performance.now());
      if (e === TIMED_OUT) {
        const who = waitingOn ?? ended.findIndex((x) => !x);
        throw new TimeoutError(`batch ${delivered} from worker ${who} was not loaded within ${this.timeout} ms`);
      }
      if (e.type === 'batch' || e.type === 'end' || e.type === 'error') {
        if (e.iter !== iter) continue;
        if (e.type === 'batch') queues[e.workerId]!.push({ ok: true, value: e.data as B });
        else if (e.type === 'end') ended[e.workerId] = true;
        else {
          const where: { sampleIndex?: number } = {};
          if (e.sampleIndex !== undefined) where.sampleIndex = e.sampleIndex;
          const error = batchError(e.workerId, e.error, where);
          if (!this.inOrder) throw error;
          // The worker's pass is over; its error comes out when the round-robin reaches it.
          queues[e.workerId]!.push({ ok: false, error });
          ended[e.workerId] = true;
        }
        continue;
      }
      const failure = this.#failure(e, pending);
      if (failure !== null) throw failure;
    }
  }
}

function abortError(signal: AbortSignal): AbortError {
  return new AbortError('the DataLoader was aborted', { cause: signal.reason });
}
