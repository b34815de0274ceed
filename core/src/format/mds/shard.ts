/**
 * The MDS shard file (uncompressed), as Mosaic streaming's `MDSWriter.encode_joint_shard` writes
 * it, all integers little-endian uint32:
 *
 *     [samples: n] [offsets: n + 1] [config: the writer's settings as JSON] [sample 0] … [sample n-1]
 *
 * `offsets[i]` is where sample i starts in the file and `offsets[n]` is the file's length, so
 * sample i is reachable in O(1). A sample is `[size of each variable-size column]` (uint32 each,
 * in column order) followed by each column's encoded value, in column order; fixed-size columns
 * have no size entry. Reading checks the whole layout once (count against the index, offsets in
 * order and inside the file, the last one at its end) and each sample's column sizes when read;
 * anything wrong is a FormatError naming the shard and sample.
 */
import { ArgumentError, FormatError } from '../../errors.ts';
import type { Dataset } from '../../dataset/dataset.ts';
import { normalizeIndex } from '../../validate.ts';
import { type ColumnCodec, type MDSSample, type MDSValue, codecForIndex } from './encodings.ts';
import type { MDSShardInfo } from './index-file.ts';
import { pythonJsonDumps } from './python-json.ts';

/** A shard's columns: names and codecs, in the shard's column order. */
export interface ShardColumns {
  readonly names: readonly string[];
  readonly codecs: readonly ColumnCodec[];
}

/** The columns of a shard entry of an index. */
export function shardColumns(info: MDSShardInfo, label: string): ShardColumns {
  return {
    names: info.columnNames,
    codecs: info.columnEncodings.map((e, k) => codecForIndex(e, `${label}: column ${JSON.stringify(info.columnNames[k])}`)),
  };
}

/**
 * The config a Mosaic writer puts in every shard after the offsets: its settings as
 * `json.dumps(config, sort_keys=True)`.
 */
export function shardConfigText(info: Pick<MDSShardInfo, 'columnEncodings' | 'columnNames' | 'columnSizes' | 'compression' | 'hashes' | 'sizeLimit'>): string {
  return pythonJsonDumps(
    {
      column_encodings: [...info.columnEncodings],
      column_names: [...info.columnNames],
      column_sizes: [...info.columnSizes],
      compression: info.compression,
      format: 'mds',
      hashes: [...info.hashes],
      size_limit: info.sizeLimit,
      version: 2,
    },
    { sortKeys: true },
  );
}

/**
 * Encodes one sample: the sizes of its variable-size columns, then every column's value.
 * @param where names the sample in errors (e.g. `samples[3]`).
 * @throws ArgumentError naming the column when a value is missing or does not fit its encoding,
 *   or when the sample has a column the shard does not.
 */
export function encodeSample(columns: ShardColumns, sample: Readonly<Record<string, unknown>>, where = 'sample'): Uint8Array {
  if (typeof sample !== 'object' || sample === null || Array.isArray(sample)) {
    throw new ArgumentError(where, 'must be an object mapping column names to values');
  }
  for (const key of Object.keys(sample)) {
    if (!columns.names.includes(key)) throw new ArgumentError(`${where}.${key}`, `is not a column (columns: ${columns.names.join(', ')})`);
  }
  const values: Uint8Array[] = [];
  const sizes: number[] = [];
  let total = 0;
  columns.names.forEach((name, k) => {
    if (!Object.hasOwn(sample, name)) throw new ArgumentError(`${where}.${name}`, 'is missing');
    const codec = columns.codecs[k]!;
    const data = codec.encode(sample[name], `${where}.${name}`);
    if (codec.size === null) {
      if (data.length > MAX_UINT32) throw new ArgumentError(`${where}.${name}`, `encodes to ${data.length} bytes, more than a shard can hold`);
      sizes.push(data.length);
    }
    values.push(data);
    total += data.length;
  });
  const out = new Uint8Array(4 * sizes.length + total);
  const view = new DataView(out.buffer);
  sizes.forEach((size, k) => view.setUint32(4 * k, size, true));
  let at = 4 * sizes.length;
  for (const v of values) {
    out.set(v, at);
    at += v.length;
  }
  return out;
}

const MAX_UINT32 = 2 ** 32 - 1;

/**
 * Assembles a shard file from encoded samples and the writer's config text.
 * @throws ArgumentError when the file would not fit uint32 offsets.
 */
export function encodeShard(samples: readonly Uint8Array[], configText: string): Uint8Array {
  const config = new TextEncoder().encode(configText);
  const header = 4 + 4 * (samples.length + 1);
  const total = samples.reduce((n, s) => n + s.length, header + config.length);
  if (total > MAX_UINT32) throw new ArgumentError('samples', `a shard of ${total} bytes does not fit uint32 offsets (at most ${MAX_UINT32})`);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, samples.length, true);
  out.set(config, header);
  let at = header + config.length;
  samples.forEach((s, i) => {
    view.setUint32(4 + 4 * i, at, true);
    out.set(s, at);
    at += s.length;
  });
  view.setUint32(4 + 4 * samples.length, at, true);
  return out;
}

/**
 * Random access to the samples of one uncompressed shard file. Construction checks the layout
 * against the index entry; each `get` decodes one sample.
 *
 * @example
 * const shard = new MDSShard(index.shards[0], await readFile('data/shard.00000.mds'));
 * shard.get(0); // { label: 7n, text: 'hello' }
 */
export class MDSShard implements Dataset<MDSSample> {
  /** The shard's entry in the index. */
  readonly info: MDSShardInfo;
  /** Number of samples. */
  readonly length: number;
  /** How errors name this shard, e.g. `shard 3 ("shard.00003.mds")`. */
  readonly label: string;
  readonly #data: Uint8Array;
  readonly #view: DataView;
  readonly #columns: ShardColumns;
  /** Number of columns without a fixed size (each has a uint32 size at the start of a sample). */
  readonly #variable: number;

  /**
   * @param info the shard's (validated) index entry
   * @param data the uncompressed shard file; kept and viewed, not copied
   * @param label how errors name the shard (default: its raw basename)
   * @throws FormatError when the file does not match the entry or its layout is broken.
   */
  constructor(info: MDSShardInfo, data: Uint8Array, label = `shard ${JSON.stringify(info.rawData.basename)}`) {
    this.info = info;
    this.label = label;
    this.#columns = shardColumns(info, label);
    this.#variable = info.columnSizes.filter((s) => s === null).length;
    // A plain Uint8Array view (a Buffer's subarray and slice behave differently).
    this.#data = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.#view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const fail = (message: string): never => {
      throw new FormatError(`${label}: ${message}`);
    };
    if (data.length !== info.rawData.bytes) fail(`the file has ${data.length} bytes, the index says ${info.rawData.bytes}`);
    if (data.length < 4) fail(`${data.length} bytes is too short for the sample count`);
    const n = this.#view.getUint32(0, true);
    if (n !== info.samples) fail(`the file holds ${n} samples, the index says ${info.samples}`);
    const header = 4 + 4 * (n + 1);
    if (header > data.length) fail(`the offsets of ${n} samples (${header} bytes) run past the end of the file (${data.length} bytes)`);
    let previous = header;
    for (let i = 0; i <= n; i++) {
      const offset = this.#view.getUint32(4 + 4 * i, true);
      if (offset < previous) {
        fail(i === 0 ? `sample 0 starts at ${offset}, inside the header (${header} bytes)` : `sample ${i - 1} ends at ${offset}, before it starts (${previous}): offsets out of order`);
      }
      if (offset > data.length) fail(`sample ${i === n ? n - 1 : i} ${i === n ? 'ends' : 'starts'} at ${offset}, past the end of the file (${data.length} bytes)`);
      previous = offset;
    }
    if (previous !== data.length) fail(`the last sample ends at ${previous} but the file has ${data.length} bytes`);
    this.length = n;
  }

  /** The encoded bytes of sample `index` (a view of the shard file). */
  sampleBytes(index: number): Uint8Array {
    const i = normalizeIndex(index, this.length, 'sample index');
    const begin = this.#view.getUint32(4 + 4 * i, true);
    const end = this.#view.getUint32(8 + 4 * i, true);
    return this.#data.subarray(begin, end);
  }

  /**
   * Decodes sample `index` (negative counts from the end).
   * @throws IndexOutOfRangeError for an index outside the shard; FormatError for corrupt bytes.
   */
  get(index: number): MDSSample {
    const i = normalizeIndex(index, this.length, 'sample index');
    return this.#decode(this.sampleBytes(i), `${this.label}, sample ${i}`);
  }

  #decode(data: Uint8Array, where: string): MDSSample {
    const { names, codecs } = this.#columns;
    const head = 4 * this.#variable;
    if (data.length < head) throw new FormatError(`${where}: ${data.length} bytes cannot hold the sizes of its ${this.#variable} variable-size columns`);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const sizes: number[] = [];
    let v = 0;
    let total = head;
    for (const codec of codecs) {
      const size = codec.size ?? view.getUint32(4 * v++, true);
      sizes.push(size);
      total += size;
    }
    if (total !== data.length) {
      throw new FormatError(`${where}: its column sizes add up to ${total} bytes, but the sample has ${data.length}`);
    }
    const sample: Record<string, MDSValue> = {};
    let at = head;
    names.forEach((name, k) => {
      const size = sizes[k]!;
      // defineProperty: a column named "__proto__" is data, never the prototype.
      Object.defineProperty(sample, name, {
        value: codecs[k]!.decode(data.subarray(at, at + size), `${where}, column ${JSON.stringify(name)}`),
        enumerable: true,
        writable: true,
        configurable: true,
      });
      at += size;
    });
    return sample;
  }
}
