/**
 * StreamingDataset: an iterable dataset over an async (or sync) source of samples, with an
 * optional seeded shuffle buffer and sharding (keep every count-th sample), so a stream far
 * larger than memory can still be shuffled locally and split between workers or ranks.
 */
import { ArgumentError, ClosedError } from '../errors.ts';
import { Generator } from '../random.ts';
import { requireInt, requirePositiveInt, requireSeed } from '../validate.ts';
import type { IterableDataset } from './dataset.ts';

/** Where samples come from: an iterable, or a function returning a fresh one for each pass. */
export type StreamSource<T> = AsyncIterable<T> | Iterable<T> | (() => AsyncIterable<T> | Iterable<T>);

/** Keep the samples at positions `index`, `index + count`, `index + 2·count`, … of the source. */
export interface StreamShard {
  index: number;
  count: number;
}

export interface StreamingDatasetOptions {
  /** Shuffle through a buffer of this many samples; 1 (the default) keeps the source order. */
  bufferSize?: number;
  /** Seed of the shuffle (default 0). */
  seed?: number;
  /** Epoch of the first pass (default 0); each pass uses the current epoch, then advances it. */
  epoch?: number;
  /** How many samples the whole source yields, when known (before sharding). */
  length?: number;
  /** Keep only this shard of the source. */
  shard?: StreamShard;
}

/**
 * An iterable dataset over a stream. With `bufferSize > 1`, samples pass through a shuffle
 * buffer: the order is a deterministic function of (seed, epoch), and memory stays at
 * `bufferSize` samples. A source given as an iterable object that returns itself from its
 * iterator method (an async generator, say) can be read only once; pass a function to read it
 * for several epochs.
 *
 * @example
 * const ds = new StreamingDataset(() => readLines('data.jsonl'), { bufferSize: 1000, seed: 7 });
 * for await (const line of ds) { ... } // epoch 0
 * for await (const line of ds) { ... } // epoch 1, another order
 */
export class StreamingDataset<T> implements IterableDataset<T> {
  readonly bufferSize: number;
  readonly seed: number;
  readonly shard: Readonly<StreamShard> | undefined;
  /** Samples one pass yields (this shard's share of the source's length), if the length is known. */
  readonly length?: number;
  #source: StreamSource<T>;
  #epoch: number;
  #consumed = false;

  constructor(source: StreamSource<T>, options: StreamingDatasetOptions = {}) {
    if (typeof source !== 'function' && !isIterable(source)) {
      throw new ArgumentError('source', 'must be an AsyncIterable, an Iterable or a function returning one');
    }
    this.#source = source;
    this.bufferSize = requirePositiveInt('bufferSize', options.bufferSize ?? 1);
    this.seed = requireSeed('seed', options.seed ?? 0);
    this.#epoch = requireInt('epoch', options.epoch ?? 0);
    if (options.shard !== undefined) {
      if (typeof options.shard !== 'object' || options.shard === null) {
        throw new ArgumentError('shard', 'must be {index, count}');
      }
      const count = requirePositiveInt('shard.count', options.shard.count);
      const index = requireInt('shard.index', options.shard.index, { max: count - 1 });
      this.shard = { index, count };
    }
    if (options.length !== undefined) {
      const total = requireInt('length', options.length);
      const { index, count } = this.shard ?? { index: 0, count: 1 };
      this.length = total > index ? Math.floor((total - index - 1) / count) + 1 : 0;
    }
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** Sets the epoch the next pass uses. */
  setEpoch(epoch: number): void {
    this.#epoch = requireInt('epoch', epoch);
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    const source = this.#open();
    const g = this.bufferSize > 1 ? new Generator(this.seed, this.#epoch) : undefined;
    this.#epoch++;
    return this.#samples(source, g);
  }

  #open(): AsyncIterable<T> | Iterable<T> {
    const source = typeof this.#source === 'function' ? this.#source() : this.#source;
    if (!isIterable(source)) throw new ArgumentError('source', 'the function must return an AsyncIterable or an Iterable');
    // Open the iterator here, so that an iterator which is its own iterable (a generator) is
    // recognized: it can serve one pass only, and a second pass would silently yield nothing.
    const iterator = isAsyncIterable(source) ? source[Symbol.asyncIterator]() : (source as Iterable<T>)[Symbol.iterator]();
    if (typeof this.#source !== 'function' && (iterator as unknown) === source) {
      if (this.#consumed) {
        throw new ClosedError('the source is a one-shot iterator and was already read; pass a function that returns a fresh one');
      }
      this.#consumed = true;
    }
    return isAsyncIterable(source)
      ? { [Symbol.asyncIterator]: () => iterator as AsyncIterator<T> }
      : { [Symbol.iterator]: () => iterator as Iterator<T> };
  }

  async *#samples(source: AsyncIterable<T> | Iterable<T>, g: Generator | undefined): AsyncGenerator<T> {
    const { index: keep, count } = this.shard ?? { index: 0, count: 1 };
    const buffer: T[] = [];
    let position = 0;
    for await (const item of source) {
      const mine = position % count === keep;
      position++;
      if (!mine) continue;
      if (g === undefined) {
        yield item;
      } else if (buffer.length < this.bufferSize) {
        buffer.push(item);
      } else {
        const j = g.int(this.bufferSize);
        const out = buffer[j] as T;
        buffer[j] = item;
        yield out;
      }
    }
    if (g !== undefined) {
      g.shuffle(buffer);
      yield* buffer;
    }
  }
}

function isAsyncIterable<T>(value: unknown): value is AsyncIterable<T> {
  return value != null && typeof (value as AsyncIterable<T>)[Symbol.asyncIterator] === 'function';
}

function isIterable<T>(value: unknown): value is AsyncIterable<T> | Iterable<T> {
  return isAsyncIterable(value) || (value != null && typeof (value as Iterable<T>)[Symbol.iterator] === 'function');
}
