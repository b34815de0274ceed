/**
 * The batch wire format: one batch is one safetensors blob (huggingface/safetensors), so any
 * trainer decodes it with an existing library. Layout: an 8-byte little-endian header length N, N
 * bytes of JSON header (padded with spaces to a multiple of 8) mapping tensor names to
 * `{dtype, shape, data_offsets}` plus `__metadata__` (string → string), then the raw little-endian
 * tensor bytes. Our encoder writes exactly what the reference `safetensors` package writes for the
 * same tensors and metadata (tensors sorted by dtype, largest alignment first, then by name), so
 * every tensor's data is aligned for a zero-copy typed-array view.
 *
 * The generic codec (`encodeSafetensors`, `decodeSafetensors`) takes any string metadata; the
 * batch helpers (`encodeBatch`, `decodeBatch`, `BatchEncoder`) add the batch fields of
 * batch-metadata.ts. Decoding validates hostile input and throws only FormatError.
 */
import { ArgumentError, FormatError, ShapeMismatchError } from '../errors.ts';
import { type DType, type Tensor, type TypedArray, isDType, typedArrayConstructor } from '../tensor.ts';
import {
  type BatchMetadata,
  type DecodedBatchMetadata,
  batchMetadataFromStrings,
  batchMetadataToStrings,
  isWellFormed,
} from './batch-metadata.ts';

/** Largest header the reference implementation accepts (bytes). */
export const MAX_HEADER_BYTES = 100_000_000;

/** safetensors' dtype code for each of our dtypes. */
export const SAFETENSORS_DTYPE = {
  float64: 'F64',
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint64: 'U64',
  uint32: 'U32',
  uint16: 'U16',
  uint8: 'U8',
  bool: 'BOOL',
} as const satisfies Record<DType, string>;
export type SafetensorsDType = (typeof SAFETENSORS_DTYPE)[DType];

const DTYPE_BY_CODE: ReadonlyMap<string, DType> = new Map(
  Object.entries(SAFETENSORS_DTYPE).map(([dtype, code]) => [code, dtype as DType]),
);

// The reference sorts tensors by its Dtype enum in descending order, then by name. That enum is
// declared in increasing alignment (BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64,
// U64), so the data of every tensor starts aligned to its element size.
const WRITE_RANK: Readonly<Record<DType, number>> = {
  uint64: 0,
  int64: 1,
  float64: 2,
  float32: 3,
  uint32: 4,
  int32: 5,
  bfloat16: 6,
  float16: 7,
  uint16: 8,
  int16: 9,
  int8: 10,
  uint8: 11,
  bool: 12,
};

const METADATA_KEY = '__metadata__';
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The tensors and metadata of a decoded safetensors blob. */
export interface DecodedSafetensors {
  /** Tensors in file order; data are views of the input where alignment allows. */
  readonly tensors: Record<string, Tensor>;
  /** The `__metadata__` map, or undefined when the header has none. */
  readonly metadata: Record<string, string> | undefined;
}

/** A decoded batch. */
export interface DecodedBatch {
  readonly tensors: Record<string, Tensor>;
  readonly metadata: DecodedBatchMetadata;
}

export interface DecodeSafetensorsOptions {
  /**
   * Copy every tensor's data instead of returning views of the input. Use it when the input
   * buffer is reused afterwards (a pooled network buffer). Default false.
   */
  readonly copy?: boolean;
}

interface PlannedTensor {
  readonly name: string;
  readonly tensor: Tensor;
  readonly bytes: number;
}

/** What an encoder needs to write a blob, computed once per blob. */
interface Plan {
  readonly header: string;
  /** UTF-8 length of `header` before padding. */
  readonly headerBytes: number;
  /** Header length N as written (padded to a multiple of 8). */
  readonly paddedHeaderBytes: number;
  readonly tensors: readonly PlannedTensor[];
  readonly total: number;
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (Array.isArray(value)) return `[${value.slice(0, 8).map(show).join(', ')}${value.length > 8 ? ', …' : ''}]`;
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

// Strings in UTF-8 byte order (what Rust's str Ord uses), not UTF-16 code-unit order: the two
// differ between U+E000–U+FFFF and characters beyond U+FFFF (surrogate pairs).
function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

function checkTensor(name: string, t: Tensor): number {
  const where = `tensors[${JSON.stringify(name)}]`;
  if (typeof t !== 'object' || t === null) throw new ArgumentError(where, `must be a tensor, got ${show(t)}`);
  if (!isDType(t.dtype)) throw new ArgumentError(`${where}.dtype`, `unknown dtype ${show(t.dtype)}`);
  const ctor = typedArrayConstructor(t.dtype);
  if (!(t.data instanceof ctor)) {
    const got = ArrayBuffer.isView(t.data) ? t.data.constructor.name : show(t.data);
    throw new ArgumentError(`${where}.data`, `dtype ${t.dtype} needs a ${ctor.name}, got ${got}`);
  }
  if (!Array.isArray(t.shape)) throw new ArgumentError(`${where}.shape`, `must be an array, got ${show(t.shape)}`);
  let count = 1;
  for (let i = 0; i < t.shape.length; i++) {
    const d: unknown = t.shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new ArgumentError(`${where}.shape[${i}]`, `must be an integer ≥ 0, got ${show(d)}`);
    }
    count *= d;
  }
  if (t.data.length !== count) {
    throw new ShapeMismatchError(
      `${where}: data has ${t.data.length} elements but shape [${t.shape.join(', ')}] needs ${count}`,
    );
  }
  if (t.dtype === 'bool') {
    const data = t.data as Uint8Array;
    for (let i = 0; i < data.length; i++) {
      if (data[i]! > 1) throw new ArgumentError(`${where}.data[${i}]`, `a bool must be 0 or 1, got ${data[i]}`);
    }
  }
  return t.data.byteLength;
}

function plan(tensors: Readonly<Record<string, Tensor>>, metadata: Readonly<Record<string, string>> | undefined): Plan {
  if (typeof tensors !== 'object' || tensors === null || Array.isArray(tensors)) {
    throw new ArgumentError('tensors', `must be an object mapping names to tensors, got ${show(tensors)}`);
  }
  const planned: PlannedTensor[] = [];
  for (const name of Object.keys(tensors)) {
    if (name === METADATA_KEY) throw new ArgumentError('tensors', `${METADATA_KEY} is reserved and cannot name a tensor`);
    if (!isWellFormed(name)) throw new ArgumentError('tensors', `tensor name ${show(name)} has a lone surrogate`);
    const tensor = tensors[name]!;
    planned.push({ name, tensor, bytes: checkTensor(name, tensor) });
  }
  planned.sort((a, b) => WRITE_RANK[a.tensor.dtype] - WRITE_RANK[b.tensor.dtype] || compareUtf8(a.name, b.name));

  // Built by hand to match serde_json's compact output byte for byte; JSON.stringify escapes
  // strings exactly as serde_json does (short escapes for \b \f \n \r \t " \\, \u00XX for other
  // control characters, everything else raw).
  const parts: string[] = [];
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      throw new ArgumentError('metadata', `must be an object of strings, got ${show(metadata)}`);
    }
    const entries: string[] = [];
    for (const key of Object.keys(metadata)) {
      const value: unknown = metadata[key];
      if (typeof value !== 'string') throw new ArgumentError(`metadata.${key}`, `must be a string, got ${show(value)}`);
      if (!isWellFormed(key) || !isWellFormed(value)) {
        throw new ArgumentError(`metadata.${key}`, 'key and value must not contain lone surrogates');
      }
      entries.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
    }
    parts.push(`"${METADATA_KEY}":{${entries.join(',')}}`);
  }
  let offset = 0;
  for (const { name, tensor, bytes } of planned) {
    const code = SAFETENSORS_DTYPE[tensor.dtype];
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${code}","shape":[${tensor.shape.join(',')}],"data_offsets":[${offset},${offset + bytes}]}`,
    );
    offset += bytes;
  }
  const header = `{${parts.join(',')}}`;
  const headerBytes = Buffer.byteLength(header, 'utf8');
  if (headerBytes > MAX_HEADER_BYTES) {
    throw new ArgumentError(
      'metadata',
      `the header (tensor names and metadata) would be ${headerBytes} bytes, over the ${MAX_HEADER_BYTES}-byte limit`,
    );
  }
  const paddedHeaderBytes = headerBytes + ((8 - (headerBytes % 8)) % 8);
  return { header, headerBytes, paddedHeaderBytes, tensors: planned, total: 8 + paddedHeaderBytes + offset };
}

function swapBytes(bytes: Uint8Array, width: number): void {
  for (let i = 0; i + width <= bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

function write(p: Plan, target: Uint8Array): number {
  const n = p.paddedHeaderBytes;
  // N < 2^32 (the header limit is 10^8), so the high four bytes are zero.
  target[0] = n & 0xff;
  target[1] = (n >>> 8) & 0xff;
  target[2] = (n >>> 16) & 0xff;
  target[3] = (n >>> 24) & 0xff;
  target.fill(0, 4, 8);
  utf8.encodeInto(p.header, target.subarray(8, 8 + p.headerBytes));
  target.fill(0x20, 8 + p.headerBytes, 8 + n);
  let at = 8 + n;
  for (const { tensor, bytes } of p.tensors) {
    const data = tensor.data;
    target.set(new Uint8Array(data.buffer, data.byteOffset, bytes), at);
    if (!LITTLE_ENDIAN && data.BYTES_PER_ELEMENT > 1) swapBytes(target.subarray(at, at + bytes), data.BYTES_PER_ELEMENT);
    at += bytes;
  }
  return p.total;
}

/**
 * Encodes tensors and optional string metadata as one safetensors blob, byte for byte what the
 * reference `safetensors.numpy.save(tensors, metadata)` writes. Metadata keys are written in the
 * object's own order (the reference uses a hash map, so its order varies from call to call).
 * Without metadata the header has no `__metadata__` key.
 * @example
 * const blob = encodeSafetensors({ w: tensor('float32', [2], new Float32Array([1, 2])) }, { format: 'np' });
 */
export function encodeSafetensors(
  tensors: Readonly<Record<string, Tensor>>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const p = plan(tensors, metadata);
  const out = new Uint8Array(p.total);
  write(p, out);
  return out;
}

/** Bytes {@link encodeSafetensors} would produce for these tensors and metadata. */
export function encodedSafetensorsSize(
  tensors: Readonly<Record<string, Tensor>>,
  metadata?: Readonly<Record<string, string>>,
): number {
  return plan(tensors, metadata).total;
}

/**
 * Encodes into `target` from its first byte and returns the number of bytes written. Throws an
 * ArgumentError naming the size needed when `target` is too small (nothing is written then).
 */
export function encodeSafetensorsInto(
  target: Uint8Array,
  tensors: Readonly<Record<string, Tensor>>,
  metadata?: Readonly<Record<string, string>>,
): number {
  if (!(target instanceof Uint8Array)) throw new ArgumentError('target', `must be a Uint8Array, got ${show(target)}`);
  const p = plan(tensors, metadata);
  if (p.total > target.length) throw new ArgumentError('target', `needs ${p.total} bytes, got ${target.length}`);
  return write(p, target);
}

function checkLeadingDimensions(tensors: Readonly<Record<string, Tensor>>, rows: number, fail: (message: string) => never): void {
  for (const name of Object.keys(tensors)) {
    const shape = tensors[name]!.shape;
    // Scalars are batch-level values (a temperature, a step count); everything else has one row per sample.
    if (shape.length > 0 && shape[0] !== rows) {
      fail(`tensor ${JSON.stringify(name)} has leading dimension ${shape[0]} but the batch has ${rows} sample ids`);
    }
  }
}

function batchPlan(tensors: Readonly<Record<string, Tensor>>, metadata: BatchMetadata): Plan {
  const strings = batchMetadataToStrings(metadata);
  const p = plan(tensors, strings);
  checkLeadingDimensions(tensors, metadata.sampleIds.length, (message) => {
    throw new ShapeMismatchError(message);
  });
  return p;
}

/**
 * Encodes one batch: its tensors plus the batch metadata in `__metadata__`. Every tensor of rank
 * ≥ 1 must have one row per sample id (a ShapeMismatchError names the tensor otherwise); scalars
 * are allowed. Deterministic: the same batch always gives the same bytes.
 * @example
 * const blob = encodeBatch(
 *   { label: tensor('int64', [2], new BigInt64Array([1n, 0n])) },
 *   { job: 'mnist', epoch: 0, rank: 3, step: 17, sampleIds: [40, 7] },
 * );
 */
export function encodeBatch(tensors: Readonly<Record<string, Tensor>>, metadata: BatchMetadata): Uint8Array {
  const p = batchPlan(tensors, metadata);
  const out = new Uint8Array(p.total);
  write(p, out);
  return out;
}

/** Bytes {@link encodeBatch} would produce for this batch. */
export function encodedSize(tensors: Readonly<Record<string, Tensor>>, metadata: BatchMetadata): number {
  return batchPlan(tensors, metadata).total;
}

/**
 * Encodes batches into one reusable buffer, so a steady stream of batches allocates no new
 * buffer per batch. The buffer grows (to at least double) when a batch does not fit.
 * @example
 * const encoder = new BatchEncoder({ initialCapacity: 1 << 20 });
 * const blob = encoder.encode(tensors, metadata); // valid until the next encode()
 * publish(blob);
 */
export class BatchEncoder {
  #buffer: Uint8Array;

  /**
   * @param options.buffer a caller-owned buffer to encode into while batches fit in it.
   * @param options.initialCapacity bytes to allocate up front when no buffer is given (default 64 KiB).
   */
  constructor(options: { buffer?: Uint8Array; initialCapacity?: number } = {}) {
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', `must be an object, got ${show(options)}`);
    const { buffer, initialCapacity } = options;
    if (buffer !== undefined) {
      if (!(buffer instanceof Uint8Array)) throw new ArgumentError('options.buffer', `must be a Uint8Array, got ${show(buffer)}`);
      if (initialCapacity !== undefined) throw new ArgumentError('options.initialCapacity', 'cannot be given together with options.buffer');
      this.#buffer = buffer;
    } else {
      const capacity = initialCapacity ?? 64 * 1024;
      if (!Number.isSafeInteger(capacity) || capacity < 0) {
        throw new ArgumentError('options.initialCapacity', `must be an integer ≥ 0, got ${show(capacity)}`);
      }
      this.#buffer = new Uint8Array(capacity);
    }
  }

  /** Current size of the reusable buffer in bytes. */
  get capacity(): number {
    return this.#buffer.length;
  }

  /**
   * Encodes a batch exactly as {@link encodeBatch} does and returns a view of the reusable
   * buffer. The view is overwritten by the next call: send or copy it before encoding again.
   */
  encode(tensors: Readonly<Record<string, Tensor>>, metadata: BatchMetadata): Uint8Array {
    const p = batchPlan(tensors, metadata);
    if (p.total > this.#buffer.length) {
      this.#buffer = new Uint8Array(Math.max(p.total, 2 * this.#buffer.length));
    }
    return this.#buffer.subarray(0, write(p, this.#buffer));
  }
}

interface TensorEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

function fail(message: string, cause?: unknown): never {
  throw new FormatError(`safetensors: ${message}`, cause === undefined ? undefined : { cause });
}

function readIndex(name: string, field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    fail(`tensor ${JSON.stringify(name)}: ${field} must be an integer ≥ 0, got ${show(value)}`);
  }
  return value;
}

function readEntry(name: string, info: unknown): TensorEntry {
  const what = `tensor ${JSON.stringify(name)}`;
  if (typeof info !== 'object' || info === null || Array.isArray(info)) {
    fail(`${what}: must be an object {dtype, shape, data_offsets}, got ${show(info)}`);
  }
  const { dtype: code, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (code === undefined) fail(`${what}: missing field "dtype"`);
  const dtype = typeof code === 'string' ? DTYPE_BY_CODE.get(code) : undefined;
  if (dtype === undefined) {
    fail(`${what}: unsupported dtype ${show(code)} (supported: ${[...DTYPE_BY_CODE.keys()].join(' ')})`);
  }
  if (!Array.isArray(shape)) fail(`${what}: shape must be an array of integers, got ${show(shape)}`);
  const dims = shape.map((d, i) => readIndex(name, `shape[${i}]`, d));
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    fail(`${what}: data_offsets must be [begin, end], got ${show(offsets)}`);
  }
  const begin = readIndex(name, 'data_offsets[0]', offsets[0]);
  const end = readIndex(name, 'data_offsets[1]', offsets[1]);
  if (end < begin) fail(`${what}: data_offsets [${begin}, ${end}] end before they begin`);
  return { name, dtype, shape: dims, begin, end };
}

function view(bytes: Uint8Array, at: number, entry: TensorEntry, copy: boolean): TypedArray {
  const ctor = typedArrayConstructor(entry.dtype);
  const width = ctor.BYTES_PER_ELEMENT;
  const count = (entry.end - entry.begin) / width;
  const absolute = bytes.byteOffset + at;
  if (!copy && absolute % width === 0 && LITTLE_ENDIAN) return new ctor(bytes.buffer, absolute, count);
  // Misaligned for the typed array (an input that starts at an odd offset), asked to copy, or a
  // big-endian host: copy into a fresh, aligned array.
  const out = new ctor(count);
  const raw = new Uint8Array(out.buffer, 0, entry.end - entry.begin);
  raw.set(bytes.subarray(at, at + raw.length));
  if (!LITTLE_ENDIAN && width > 1) swapBytes(raw, width);
  return out;
}

/**
 * Decodes a safetensors blob. Tensor data are zero-copy views of `bytes` where the data is
 * aligned for its typed array (always, for blobs we write into an aligned buffer), else copies.
 * Rejects hostile input with a FormatError naming the tensor or field: a short buffer, a header
 * length past the end or over {@link MAX_HEADER_BYTES}, a header that is not UTF-8 JSON or not an
 * object, unknown dtypes, bad shapes, offsets that are not contiguous from 0 (gaps, overlaps), do
 * not cover the data exactly, or do not match shape × dtype size, non-string metadata, and bool
 * bytes other than 0 and 1.
 * @example
 * const { tensors, metadata } = decodeSafetensors(await readFile('model.safetensors'));
 */
export function decodeSafetensors(bytes: Uint8Array, options: DecodeSafetensorsOptions = {}): DecodedSafetensors {
  if (!(bytes instanceof Uint8Array)) throw new ArgumentError('bytes', `must be a Uint8Array, got ${show(bytes)}`);
  const copy = options?.copy ?? false;
  if (typeof copy !== 'boolean') throw new ArgumentError('options.copy', `must be a boolean, got ${show(copy)}`);
  if (bytes.length < 8) fail(`${bytes.length} bytes is too short for the 8-byte header length`);
  const low = bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! * 2 ** 24);
  const high = bytes[4]! | (bytes[5]! << 8) | (bytes[6]! << 16) | (bytes[7]! * 2 ** 24);
  const n = high * 2 ** 32 + low;
  if (high !== 0 || n > MAX_HEADER_BYTES) fail(`header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit`);
  if (8 + n > bytes.length) fail(`header length ${n} runs past the end of the ${bytes.length}-byte buffer`);

  let text: string;
  try {
    text = strictUtf8.decode(bytes.subarray(8, 8 + n));
  } catch (e) {
    fail('the header is not valid UTF-8', e);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`the header is not valid JSON (${e instanceof Error ? e.message : String(e)})`, e);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    fail(`the header must be a JSON object, got ${Array.isArray(header) ? 'an array' : show(header)}`);
  }

  let metadata: Record<string, string> | undefined;
  const entries: TensorEntry[] = [];
  for (const [key, value] of Object.entries(header)) {
    if (key !== METADATA_KEY) {
      entries.push(readEntry(key, value));
      continue;
    }
    if (value === null) continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      fail(`${METADATA_KEY} must be an object of strings, got ${Array.isArray(value) ? 'an array' : show(value)}`);
    }
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (typeof v !== 'string') fail(`${METADATA_KEY}.${k} must be a string, got ${show(v)}`);
    }
    // fromEntries, not assignment, so a "__proto__" key stays a plain field.
    metadata = Object.fromEntries(Object.entries(value as Record<string, string>));
  }

  // As the reference does: order by offsets, then require them contiguous from 0.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  let expected = 0;
  for (const e of entries) {
    const what = `tensor ${JSON.stringify(e.name)}`;
    if (e.begin < expected) fail(`${what}: data_offsets [${e.begin}, ${e.end}] overlap the previous tensor, which ends at ${expected}`);
    if (e.begin > expected) fail(`${what}: data_offsets [${e.begin}, ${e.end}] leave a gap after byte ${expected}`);
    const width = typedArrayConstructor(e.dtype).BYTES_PER_ELEMENT;
    let count = 1;
    for (const d of e.shape) count *= d;
    if (count * width !== e.end - e.begin) {
      fail(
        `${what}: shape [${e.shape.join(', ')}] of ${SAFETENSORS_DTYPE[e.dtype]} needs ${count * width} bytes but data_offsets [${e.begin}, ${e.end}] hold ${e.end - e.begin}`,
      );
    }
    if (e.end > dataLength) fail(`${what}: data_offsets end at ${e.end}, past the ${dataLength} data bytes after the header`);
    expected = e.end;
  }
  if (expected !== dataLength) fail(`the tensors cover ${expected} data bytes but ${dataLength} follow the header`);

  const tensors: [string, Tensor][] = [];
  for (const e of entries) {
    const data = view(bytes, dataStart + e.begin, e, copy);
    if (e.dtype === 'bool') {
      const flags = data as Uint8Array;
      for (let i = 0; i < flags.length; i++) {
        if (flags[i]! > 1) fail(`tensor ${JSON.stringify(e.name)}: BOOL element ${i} is ${flags[i]}, not 0 or 1`);
      }
    }
    tensors.push([e.name, { dtype: e.dtype, shape: e.shape, data }]);
  }
  return { tensors: Object.fromEntries(tensors), metadata };
}

/**
 * Decodes a batch: {@link decodeSafetensors} plus the batch metadata, required and checked
 * (FormatError naming the field), and one row per sample id in every tensor of rank ≥ 1.
 * @example
 * const { tensors, metadata } = decodeBatch(message.data);
 * console.log(metadata.epoch, metadata.step, metadata.sampleIds.length);
 */
export function decodeBatch(bytes: Uint8Array, options: DecodeSafetensorsOptions = {}): DecodedBatch {
  const { tensors, metadata } = decodeSafetensors(bytes, options);
  const batch = batchMetadataFromStrings(metadata);
  checkLeadingDimensions(tensors, batch.sampleIds.length, (message) => {
    throw new FormatError(`batch: ${message}`);
  });
  return { tensors, metadata: batch };
}
