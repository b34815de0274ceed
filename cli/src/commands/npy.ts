/**
 * NumPy's `.npy` files, read without NumPy: the format is small and documented
 * (numpy/lib/format.py, "NPY format"):
 *
 *     "\x93NUMPY" [major u8] [minor u8] [header length: u16 LE (v1) or u32 LE (v2, v3)]
 *     [header: a Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }]
 *     [the array's bytes, numel × itemsize]
 *
 * The header is Latin-1 (v1, v2) or UTF-8 (v3), padded with spaces and a newline. Only the numeric
 * dtypes an MDS column can hold are read (unsigned and signed integers, float16/32/64, either byte
 * order); object arrays (`|O`, which np.save pickles), structured, string, bool, complex and
 * datetime dtypes are refused by name, and nothing is ever unpickled. The header is parsed by a
 * strict little parser for Python literals, never evaluated, and capped at NumPy's own 10 000-byte
 * limit. Every row (first axis) of the array becomes one value: a scalar for a 1-D array, a Tensor
 * of the remaining axes otherwise.
 */
import { endianness } from 'node:os';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { FormatError, type Tensor, numel, tensor } from '@shardline/core';

/** `\x93NUMPY`. */
export const NPY_MAGIC = Uint8Array.of(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59);
/** NumPy refuses longer headers unless told otherwise (`max_header_size`); so do we. */
export const MAX_NPY_HEADER_BYTES = 10_000;

/** The dtypes read from `.npy` files: those an MDS `ndarray` column (and a scalar column) holds. */
export type NpyDType = 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'int8' | 'int16' | 'int32' | 'int64' | 'float16' | 'float32' | 'float64';

/** A parsed `.npy` header. */
export interface NpyHeader {
  /** Format version, e.g. `[1, 0]`. */
  readonly version: readonly [number, number];
  /** The `descr` as written, e.g. `<f4`. */
  readonly descr: string;
  readonly dtype: NpyDType;
  /** Bytes per element. */
  readonly itemSize: number;
  /** Whether the elements are stored little-endian (true for one-byte types). */
  readonly littleEndian: boolean;
  readonly shape: readonly number[];
  readonly fortranOrder: boolean;
  /** Where the array's bytes start: the length of the magic, version, length field and header. */
  readonly dataOffset: number;
  /** Bytes of array data the header implies: numel(shape) × itemSize. */
  readonly dataBytes: number;
}

const KINDS: Readonly<Record<string, Readonly<Record<number, NpyDType>>>> = {
  u: { 1: 'uint8', 2: 'uint16', 4: 'uint32', 8: 'uint64' },
  i: { 1: 'int8', 2: 'int16', 4: 'int32', 8: 'int64' },
  f: { 2: 'float16', 4: 'float32', 8: 'float64' },
};

const REFUSED_KINDS: Readonly<Record<string, string>> = {
  O: 'an object array: np.save pickles its elements, and Shardline never unpickles',
  b: 'a bool array, which MDS cannot store; save it as uint8 (a.astype(np.uint8))',
  c: 'a complex array, which MDS cannot store',
  U: 'a unicode string array; write strings from JSONL instead',
  S: 'a byte string array; write strings from JSONL instead',
  a: 'a byte string array; write strings from JSONL instead',
  V: 'a void (raw or structured) array, which MDS cannot store',
  M: 'a datetime64 array; save it as int64 (a.astype(np.int64))',
  m: 'a timedelta64 array; save it as int64 (a.astype(np.int64))',
};

const HOST_LITTLE_ENDIAN = endianness() === 'LE';

/**
 * Where the header of a `.npy` file ends, from its first bytes (at least 12, or the whole file
 * when shorter): the version and the header's byte range.
 * @param where names the file in errors.
 * @throws FormatError when the magic or version is wrong, or the header is over the limit.
 */
export function parseNpyPrelude(prefix: Uint8Array, where: string): { version: [number, number]; headerStart: number; headerEnd: number } {
  if (prefix.length < 10 || !NPY_MAGIC.every((b, i) => prefix[i] === b)) {
    throw new FormatError(`${where}: not a .npy file (it does not start with "\\x93NUMPY")`);
  }
  const major = prefix[6]!;
  const minor = prefix[7]!;
  if (major < 1 || major > 3) throw new FormatError(`${where}: .npy format version ${major}.${minor} is unknown (known: 1.0, 2.0, 3.0)`);
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  let headerStart: number;
  let headerLength: number;
  if (major === 1) {
    headerStart = 10;
    headerLength = view.getUint16(8, true);
  } else {
    if (prefix.length < 12) throw new FormatError(`${where}: the file ends inside its header length (${prefix.length} bytes)`);
    headerStart = 12;
    headerLength = view.getUint32(8, true);
  }
  if (headerLength > MAX_NPY_HEADER_BYTES) {
    throw new FormatError(`${where}: the header is ${headerLength} bytes, over the limit of ${MAX_NPY_HEADER_BYTES} (NumPy's own)`);
  }
  return { version: [major, minor], headerStart, headerEnd: headerStart + headerLength };
}

/**
 * Parses a header's dict literal (its bytes, as stored) into a {@link NpyHeader}.
 * @throws FormatError naming the file and the field at fault.
 */
export function parseNpyHeader(header: Uint8Array, version: readonly [number, number], dataOffset: number, where: string): NpyHeader {
  let text: string;
  try {
    text = version[0] >= 3 ? new TextDecoder('utf-8', { fatal: true }).decode(header) : new TextDecoder('latin1').decode(header);
  } catch (cause) {
    throw new FormatError(`${where}: the header is not valid UTF-8`, { cause });
  }
  const value = parsePythonLiteral(text, where);
  if (!(value instanceof Map)) throw new FormatError(`${where}: the header must be a dict, got ${describe(value)}`);
  for (const key of value.keys()) {
    if (key !== 'descr' && key !== 'fortran_order' && key !== 'shape') {
      throw new FormatError(`${where}: the header has the unknown key ${JSON.stringify(key)} (expected descr, fortran_order, shape)`);
    }
  }
  for (const key of ['descr', 'fortran_order', 'shape']) {
    if (!value.has(key)) throw new FormatError(`${where}: the header has no ${JSON.stringify(key)}`);
  }
  const descr = value.get('descr');
  if (typeof descr !== 'string') {
    throw new FormatError(`${where}: descr is ${describe(descr)}: a structured dtype, which MDS cannot store (only plain numeric arrays)`);
  }
  const fortranOrder = value.get('fortran_order');
  if (typeof fortranOrder !== 'boolean') throw new FormatError(`${where}: fortran_order must be True or False, got ${describe(fortranOrder)}`);
  const shapeValue = value.get('shape');
  if (!Array.isArray(shapeValue)) throw new FormatError(`${where}: shape must be a tuple, got ${describe(shapeValue)}`);
  const shape = shapeValue.map((d, i) => {
    if (typeof d !== 'bigint' || d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FormatError(`${where}: shape[${i}] must be an integer ≥ 0, got ${describe(d)}`);
    }
    return Number(d);
  });
  const { dtype, itemSize, littleEndian } = parseDescr(descr, where);
  let dataBytes = itemSize;
  for (const d of shape) {
    dataBytes *= d;
    if (!Number.isSafeInteger(dataBytes)) throw new FormatError(`${where}: shape (${shape.join(', ')}) of ${descr} is too large to be a file`);
  }
  // Fortran and C order lay out the same bytes when at most one axis is longer than 1.
  if (fortranOrder && shape.filter((d) => d > 1).length > 1) {
    throw new FormatError(`${where}: the array is stored in Fortran order, which is not supported; save np.ascontiguousarray(a) instead`);
  }
  return { version: [version[0], version[1]], descr, dtype, itemSize, littleEndian, shape, fortranOrder, dataOffset, dataBytes };
}

function parseDescr(descr: string, where: string): { dtype: NpyDType; itemSize: number; littleEndian: boolean } {
  const m = /^([<>|=]?)([A-Za-z])(\d*)(.*)$/.exec(descr);
  const kind = m?.[2];
  if (m === null || kind === undefined) throw new FormatError(`${where}: descr ${JSON.stringify(descr)} is not a NumPy dtype`);
  const refused = REFUSED_KINDS[kind];
  if (refused !== undefined) throw new FormatError(`${where}: descr ${JSON.stringify(descr)} is ${refused}`);
  const size = Number(m[3]);
  const dtype = m[4] === '' ? KINDS[kind]?.[size] : undefined;
  if (dtype === undefined) {
    throw new FormatError(`${where}: descr ${JSON.stringify(descr)} is not supported; MDS holds uint8-64, int8-64 and float16/32/64`);
  }
  const order = m[1]!;
  if (order === '|' && size !== 1) throw new FormatError(`${where}: descr ${JSON.stringify(descr)} has no byte order but ${size}-byte elements`);
  const littleEndian = size === 1 || order === '<' || ((order === '=' || order === '') && HOST_LITTLE_ENDIAN);
  return { dtype, itemSize: size, littleEndian };
}

// ---------------------------------------------------------------------------------------------
// Python literals: what np.save writes in a header (dict, tuple, list, str, int, True/False/None).

/** A parsed Python literal: dict → Map, tuple and list → array, int → bigint. */
export type PythonLiteral = null | boolean | bigint | string | readonly PythonLiteral[] | ReadonlyMap<PythonLiteral, PythonLiteral>;

const MAX_DEPTH = 32;

/**
 * Parses one Python literal of the kinds np.save writes. Nothing is evaluated.
 * @throws FormatError naming `where` and the position for anything else.
 */
export function parsePythonLiteral(text: string, where: string): PythonLiteral {
  let at = 0;
  const fail = (message: string): never => {
    throw new FormatError(`${where}: header: ${message} at character ${at}`);
  };
  const skipSpace = (): void => {
    while (at < text.length && /\s/.test(text[at]!)) at++;
  };
  const value = (depth: number): PythonLiteral => {
    if (depth > MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH}`);
    skipSpace();
    const c = text[at];
    if (c === undefined) return fail('unexpected end');
    if (c === '{') return dict(depth);
    if (c === '(' || c === '[') return sequence(depth, c);
    if (c === "'" || c === '"') return string(c);
    const word = /^(?:[+-]?\d+[lL]?|True|False|None)/.exec(text.slice(at, at + 40));
    if (word === null) return fail(`unexpected ${JSON.stringify(c)}`);
    at += word[0].length;
    if (word[0] === 'True') return true;
    if (word[0] === 'False') return false;
    if (word[0] === 'None') return null;
    if (/^[\w.]/.test(text[at] ?? '')) fail('a number must be an integer');
    return BigInt(word[0].replace(/[lL]$/, ''));
  };
  const expect = (c: string): void => {
    skipSpace();
    if (text[at] !== c) fail(`expected ${JSON.stringify(c)}`);
    at++;
  };
  // Items up to `close`, with an optional trailing comma; reports whether a comma was seen.
  const items = (close: string, item: () => void): boolean => {
    let comma = false;
    skipSpace();
    while (text[at] !== close) {
      item();
      skipSpace();
      if (text[at] === ',') {
        at++;
        comma = true;
        skipSpace();
      } else if (text[at] !== close) {
        fail(`expected "," or ${JSON.stringify(close)}`);
      }
    }
    at++;
    return comma;
  };
  const dict = (depth: number): PythonLiteral => {
    at++;
    const map = new Map<PythonLiteral, PythonLiteral>();
    items('}', () => {
      const key = value(depth + 1);
      if (typeof key !== 'string') fail('dict keys must be strings');
      if (map.has(key)) fail(`the key ${JSON.stringify(key)} appears twice`);
      expect(':');
      map.set(key, value(depth + 1));
    });
    return map;
  };
  const sequence = (depth: number, open: string): PythonLiteral => {
    at++;
    const out: PythonLiteral[] = [];
    const comma = items(open === '(' ? ')' : ']', () => out.push(value(depth + 1)));
    // `(3)` is the integer 3 in Python, not a tuple.
    if (open === '(' && out.length === 1 && !comma) return out[0]!;
    return out;
  };
  const string = (quote: string): string => {
    at++;
    let out = '';
    for (;;) {
      const c = text[at++];
      if (c === undefined || c === '\n') return fail('unterminated string');
      if (c === quote) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = text[at++];
      if (e === '\\' || e === "'" || e === '"') out += e;
      else if (e === 'n') out += '\n';
      else if (e === 't') out += '\t';
      else fail(`unsupported escape \\${e ?? ''}`);
    }
  };
  const result = value(0);
  skipSpace();
  if (at !== text.length) fail('unexpected text after the header');
  return result;
}

function describe(value: unknown): string {
  if (value === null) return 'None';
  if (typeof value === 'bigint') return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list or tuple';
  if (value instanceof Map) return 'a dict';
  return String(value);
}

// ---------------------------------------------------------------------------------------------
// Files

/** One row of an array: a scalar for 1-D arrays, a Tensor of the other axes otherwise. */
export type NpyRow = number | bigint | Tensor;

// Rows are read in chunks of about this many bytes, so small rows do not cost a read each.
const CHUNK_BYTES = 1 << 20;

/**
 * A `.npy` file opened for reading row by row (first axis), with its header checked against the
 * file's size.
 * @example
 * const file = await NpyFile.open('data/x.npy');
 * for await (const row of file.rows()) console.log(row); // Tensor { dtype: 'float32', shape: [3, 4] }
 */
export class NpyFile {
  readonly path: string;
  readonly header: NpyHeader;
  /** Rows: the length of the first axis. */
  readonly length: number;
  /** The shape of one row: the shape without its first axis ([] for a 1-D array). */
  readonly rowShape: readonly number[];
  /** Bytes of one row. */
  readonly rowBytes: number;

  private constructor(file: string, header: NpyHeader) {
    this.path = file;
    this.header = header;
    this.length = header.shape[0]!;
    this.rowShape = header.shape.slice(1);
    this.rowBytes = numel(this.rowShape) * header.itemSize;
  }

  /**
   * Reads and checks the header: a known dtype, a shape with a first axis, rows of at least one
   * element, and a file exactly as long as the header says.
   * @throws FormatError naming the file.
   */
  static async open(file: string): Promise<NpyFile> {
    const where = path.basename(file);
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      const prefix = await readExactly(handle, 0, Math.min(size, 12));
      const { version, headerStart, headerEnd } = parseNpyPrelude(prefix, where);
      if (headerEnd > size) throw new FormatError(`${where}: the file is ${size} bytes, it ends inside its ${headerEnd - headerStart}-byte header`);
      const header = parseNpyHeader(await readExactly(handle, headerStart, headerEnd - headerStart), version, headerEnd, where);
      const expected = headerEnd + header.dataBytes;
      if (size < expected) {
        throw new FormatError(`${where}: truncated: shape (${header.shape.join(', ')}) of ${header.descr} needs ${header.dataBytes} bytes of data, the file has ${size - headerEnd}`);
      }
      if (size > expected) throw new FormatError(`${where}: ${size - expected} bytes follow the array's data (the file is ${size} bytes, the header implies ${expected})`);
      if (header.shape.length === 0) throw new FormatError(`${where}: a 0-d array has no rows to make samples of`);
      if (header.shape.slice(1).includes(0)) {
        throw new FormatError(`${where}: rows of shape (${header.shape.slice(1).join(', ')}) are empty, which MDS cannot store`);
      }
      return new NpyFile(file, header);
    } finally {
      await handle.close();
    }
  }

  /** The MDS encoding of one row: `ndarray:<dtype>:<row shape>`, or the scalar dtype for a 1-D array. */
  get mdsEncoding(): string {
    return this.rowShape.length === 0 ? this.header.dtype : `ndarray:${this.header.dtype}:${this.rowShape.join(',')}`;
  }

  /** Every row in order. Memory holds one chunk (about 1 MiB, at least a row) at a time. */
  async *rows(): AsyncGenerator<NpyRow> {
    if (this.length === 0) return;
    const { dataOffset, itemSize, littleEndian, dtype } = this.header;
    const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / this.rowBytes));
    const handle = await open(this.path, 'r');
    try {
      for (let first = 0; first < this.length; first += perChunk) {
        const count = Math.min(perChunk, this.length - first);
        const chunk = await readExactly(handle, dataOffset + first * this.rowBytes, count * this.rowBytes);
        if (littleEndian !== HOST_LITTLE_ENDIAN) swapBytes(chunk, itemSize);
        for (let r = 0; r < count; r++) {
          const bytes = chunk.subarray(r * this.rowBytes, (r + 1) * this.rowBytes);
          yield this.rowShape.length === 0 ? scalar(dtype, bytes) : rowTensor(dtype, this.rowShape, bytes);
        }
      }
    } finally {
      await handle.close();
    }
  }
}

async function readExactly(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(out, filled, length - filled, position + filled);
    if (bytesRead === 0) throw new FormatError(`the file ended at ${position + filled} while reading ${length} bytes at ${position}`);
    filled += bytesRead;
  }
  return out;
}

function swapBytes(data: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let i = 0; i + width <= data.length; i += width) data.subarray(i, i + width).reverse();
}

function scalar(dtype: NpyDType, bytes: Uint8Array): number | bigint {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'uint8':
      return v.getUint8(0);
    case 'int8':
      return v.getInt8(0);
    case 'uint16':
      return v.getUint16(0, HOST_LITTLE_ENDIAN);
    case 'int16':
      return v.getInt16(0, HOST_LITTLE_ENDIAN);
    case 'uint32':
      return v.getUint32(0, HOST_LITTLE_ENDIAN);
    case 'int32':
      return v.getInt32(0, HOST_LITTLE_ENDIAN);
    case 'uint64':
      return v.getBigUint64(0, HOST_LITTLE_ENDIAN);
    case 'int64':
      return v.getBigInt64(0, HOST_LITTLE_ENDIAN);
    case 'float16':
      return v.getFloat16(0, HOST_LITTLE_ENDIAN);
    case 'float32':
      return v.getFloat32(0, HOST_LITTLE_ENDIAN);
    case 'float64':
      return v.getFloat64(0, HOST_LITTLE_ENDIAN);
  }
}

function rowTensor(dtype: NpyDType, shape: readonly number[], bytes: Uint8Array): Tensor {
  // A copy into a fresh buffer: typed arrays need aligned offsets, and the chunk is reused.
  const t = tensor(dtype, shape);
  new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).set(bytes);
  return t;
}
