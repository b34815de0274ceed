/**
 * MDS column encodings (`streaming.base.format.mds.encodings`): how one column's value becomes
 * bytes in a sample and back, byte for byte as Mosaic streaming 0.13 does it. Each encoding name
 * maps to a codec with an optional fixed size (fixed-size columns have no length prefix in a
 * sample).
 *
 * What a column decodes to:
 * - `uint8` … `uint32`, `int8` … `int32`, `float16`, `float32`, `float64`: number
 * - `uint64`, `int64`, `int` (int64), `str_int`: bigint
 * - `str`, `str_decimal` (the decimal's text): string; `str_float`: number
 * - `bytes`, and the image encodings `jpeg`, `png`, `pil`: their raw bytes (Uint8Array; `pil` is
 *   Mosaic's `[width u32][height u32][mode length u32][mode][pixels]`)
 * - `list[jpeg]`, `list[png]`, `list[pil]`, `jpeg_array` / `jpegarray`: an array of raw images
 *   (an empty `jpeg_array` reads as `[]`; Mosaic's own reader refuses it)
 * - `json`: the JSON value (Python's dialect: NaN and Infinity allowed)
 * - `ndarray`, `ndarray:<dtype>`, `ndarray:<dtype>:<d0,d1,…>`: a Tensor (dtype and shape from the
 *   encoding when fixed there, from the sample otherwise)
 *
 * `pkl` (pickle) is refused by name: unpickling runs arbitrary code, and we never do it.
 * Writing accepts the same types (plus a safe-integer number for the bigint columns), and, as
 * Mosaic does, a Uint8Array in any column as bytes that are already encoded.
 */
import { ArgumentError, FormatError } from '../../errors.ts';
import { type DType, type Tensor, numel, typedArrayConstructor } from '../../tensor.ts';
import { type JsonValue, pythonFloatRepr, pythonJsonDumps, pythonJsonLoads, type PythonJsonInput } from './python-json.ts';

/** A decoded column value (see the module comment for which encoding gives which type). */
export type MDSValue = number | bigint | string | Uint8Array | readonly Uint8Array[] | Tensor | JsonValue;

/** A decoded sample: column name → value. */
export type MDSSample = Readonly<Record<string, MDSValue>>;

/** One column's codec, resolved from its encoding name. */
export interface ColumnCodec {
  /** The encoding exactly as the index writes it, e.g. `ndarray:int32:2,3`. */
  readonly encoding: string;
  /** Size in bytes of every encoded value, or null for variable-size columns (Mosaic's column_sizes). */
  readonly size: number | null;
  /**
   * Decodes one value. `where` names it in errors (shard, sample, column).
   * @throws FormatError when the bytes are not a valid value of this encoding.
   */
  decode(data: Uint8Array, where: string): MDSValue;
  /**
   * Encodes one value. `where` names it in errors (e.g. `sample.label`).
   * @throws ArgumentError when the value does not fit the encoding.
   */
  encode(value: unknown, where: string): Uint8Array;
}

/** Every encoding name Mosaic streaming 0.13 knows (`ndarray` also takes `:<dtype>[:<shape>]`). */
export const MDS_ENCODINGS: readonly string[] = Object.freeze([
  'bytes', 'str', 'int', 'ndarray', 'uint8', 'uint16', 'uint32', 'uint64', 'int8', 'int16', 'int32', 'int64',
  'float16', 'float32', 'float64', 'str_int', 'str_float', 'str_decimal', 'pil', 'jpeg', 'jpeg_array', 'jpegarray',
  'png', 'list[pil]', 'list[jpeg]', 'list[png]', 'pkl', 'json',
]);

/** Encodings that run code when decoded; a dataset with one is refused. */
export const MDS_UNSAFE_ENCODINGS: readonly string[] = Object.freeze(['pkl']);

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const LONE_SURROGATE = /\p{Cs}/u;

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null) return 'null';
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

// A copy in a fresh, aligned buffer (Buffer#slice would return a view into the shard).
function copy(data: Uint8Array): Uint8Array {
  return new Uint8Array(data);
}

function view(data: Uint8Array): DataView {
  return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

// ---------------------------------------------------------------------------------------------
// Scalars

interface IntSpec {
  readonly bytes: 1 | 2 | 4 | 8;
  readonly signed: boolean;
}

const INTS: Readonly<Record<string, IntSpec>> = {
  uint8: { bytes: 1, signed: false },
  uint16: { bytes: 2, signed: false },
  uint32: { bytes: 4, signed: false },
  uint64: { bytes: 8, signed: false },
  int8: { bytes: 1, signed: true },
  int16: { bytes: 2, signed: true },
  int32: { bytes: 4, signed: true },
  int64: { bytes: 8, signed: true },
  int: { bytes: 8, signed: true },
};

function intCodec(encoding: string, { bytes, signed }: IntSpec): ColumnCodec {
  const bits = BigInt(bytes * 8);
  const min = signed ? -(1n << (bits - 1n)) : 0n;
  const max = signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
  return {
    encoding,
    size: bytes,
    decode(data) {
      const v = view(data);
      if (bytes === 1) return signed ? v.getInt8(0) : v.getUint8(0);
      if (bytes === 2) return signed ? v.getInt16(0, true) : v.getUint16(0, true);
      if (bytes === 4) return signed ? v.getInt32(0, true) : v.getUint32(0, true);
      return signed ? v.getBigInt64(0, true) : v.getBigUint64(0, true);
    },
    encode(value, where) {
      const n = integerValue(value, where, encoding);
      if (n < min || n > max) throw new ArgumentError(where, `${show(value)} is out of range for ${encoding} [${min}, ${max}]`);
      const out = new Uint8Array(bytes);
      const v = view(out);
      if (bytes === 8) {
        if (signed) v.setBigInt64(0, n, true);
        else v.setBigUint64(0, n, true);
      } else if (bytes === 4) v.setUint32(0, Number(BigInt.asUintN(32, n)), true);
      else if (bytes === 2) v.setUint16(0, Number(BigInt.asUintN(16, n)), true);
      else v.setUint8(0, Number(BigInt.asUintN(8, n)));
      return out;
    },
  };
}

function integerValue(value: unknown, where: string, encoding: string): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
  throw new ArgumentError(where, `${encoding} needs an integer (a safe-integer number or a bigint), got ${show(value)}`);
}

const FLOATS = { float16: 2, float32: 4, float64: 8 } as const;

function floatCodec(encoding: keyof typeof FLOATS): ColumnCodec {
  const bytes = FLOATS[encoding];
  return {
    encoding,
    size: bytes,
    decode(data) {
      const v = view(data);
      if (bytes === 2) return v.getFloat16(0, true);
      return bytes === 4 ? v.getFloat32(0, true) : v.getFloat64(0, true);
    },
    encode(value, where) {
      if (typeof value !== 'number') throw new ArgumentError(where, `${encoding} needs a number, got ${show(value)}`);
      const out = new Uint8Array(bytes);
      const v = view(out);
      if (bytes === 2) v.setFloat16(0, value, true);
      else if (bytes === 4) v.setFloat32(0, value, true);
      else v.setFloat64(0, value, true);
      return out;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Text

function decodeUtf8(data: Uint8Array, where: string): string {
  try {
    return strictUtf8.decode(data);
  } catch (cause) {
    throw new FormatError(`${where}: invalid UTF-8`, { cause });
  }
}

function encodeText(value: string, where: string): Uint8Array {
  // Python's str.encode('utf-8') refuses lone surrogates; TextEncoder would write U+FFFD.
  if (LONE_SURROGATE.test(value)) throw new ArgumentError(where, 'contains a lone UTF-16 surrogate, which UTF-8 cannot encode');
  return utf8.encode(value);
}

const strCodec: ColumnCodec = {
  encoding: 'str',
  size: null,
  decode: decodeUtf8,
  encode(value, where) {
    if (typeof value !== 'string') throw new ArgumentError(where, `str needs a string, got ${show(value)}`);
    return encodeText(value, where);
  },
};

// Python's int(text) and float(text) also take '_' between digits and surrounding whitespace.
const PY_INT = /^\s*([+-]?)(\d+(?:_\d+)*)\s*$/;
const PY_DIGITS = String.raw`\d+(?:_\d+)*`;
const PY_FLOAT = new RegExp(String.raw`^[+-]?(?:${PY_DIGITS}(?:\.(?:${PY_DIGITS})?)?|\.${PY_DIGITS})(?:[eE][+-]?${PY_DIGITS})?$`);
const PY_FLOAT_SPECIAL = /^([+-]?)(?:(inf|infinity)|nan)$/i;
const PY_DECIMAL_SPECIAL = /^[+-]?(?:inf|infinity|s?nan\d*)$/i;

const strIntCodec: ColumnCodec = {
  encoding: 'str_int',
  size: null,
  decode(data, where) {
    const m = PY_INT.exec(decodeUtf8(data, where));
    if (m === null) throw new FormatError(`${where}: str_int value is not an integer`);
    const n = BigInt(m[2]!.replaceAll('_', ''));
    return m[1] === '-' ? -n : n;
  },
  encode(value, where) {
    return utf8.encode(integerValue(value, where, 'str_int').toString());
  },
};

const strFloatCodec: ColumnCodec = {
  encoding: 'str_float',
  size: null,
  decode(data, where) {
    const text = decodeUtf8(data, where).trim();
    const special = PY_FLOAT_SPECIAL.exec(text);
    if (special !== null) {
      if (special[2] === undefined) return NaN;
      return special[1] === '-' ? -Infinity : Infinity;
    }
    if (!PY_FLOAT.test(text)) throw new FormatError(`${where}: str_float value ${show(text)} is not a float`);
    return Number(text.replaceAll('_', ''));
  },
  encode(value, where) {
    if (typeof value !== 'number') throw new ArgumentError(where, `str_float needs a number, got ${show(value)}`);
    return utf8.encode(pythonFloatRepr(value));
  },
};

function isDecimalText(text: string): boolean {
  const t = text.trim();
  return PY_FLOAT.test(t) || PY_DECIMAL_SPECIAL.test(t);
}

const strDecimalCodec: ColumnCodec = {
  encoding: 'str_decimal',
  size: null,
  decode(data, where) {
    const text = decodeUtf8(data, where);
    if (!isDecimalText(text)) throw new FormatError(`${where}: str_decimal value ${show(text)} is not a decimal`);
    return text;
  },
  encode(value, where) {
    if (typeof value === 'bigint') return utf8.encode(value.toString());
    if (typeof value !== 'string' || !isDecimalText(value)) {
      throw new ArgumentError(where, `str_decimal needs a decimal's text (e.g. "1.50", "-2E+3", "NaN") or a bigint, got ${show(value)}`);
    }
    return utf8.encode(value);
  },
};

const jsonCodec: ColumnCodec = {
  encoding: 'json',
  size: null,
  decode(data, where) {
    return pythonJsonLoads(decodeUtf8(data, where), where);
  },
  encode(value, where) {
    if (value !== null && typeof value === 'object' && ArrayBuffer.isView(value)) {
      throw new ArgumentError(where, 'json needs a JSON value, got a typed array (use an array of numbers)');
    }
    const text = pythonJsonDumps(value as PythonJsonInput, { name: where });
    return encodeText(text, where);
  },
};

// ---------------------------------------------------------------------------------------------
// Raw bytes, images and lists of them

function rawCodec(encoding: string): ColumnCodec {
  return {
    encoding,
    size: null,
    decode: (data) => copy(data),
    encode(value, where) {
      if (!(value instanceof Uint8Array)) {
        const what = encoding === 'bytes' ? 'bytes' : `${encoding} (the encoded image file)`;
        throw new ArgumentError(where, `${encoding} needs a Uint8Array of ${what}, got ${show(value)}`);
      }
      return value;
    },
  };
}

/**
 * Lists of images. `list[…]`: `[0 u32][count u32][count × size u32][items]`; `jpeg_array`:
 * the same without the leading placeholder.
 */
function listCodec(encoding: string, placeholder: boolean): ColumnCodec {
  const head = placeholder ? 8 : 4;
  return {
    encoding,
    size: null,
    decode(data, where) {
      if (data.length < head) throw new FormatError(`${where}: ${encoding} value of ${data.length} bytes is shorter than its ${head}-byte header`);
      const v = view(data);
      const count = v.getUint32(head - 4, true);
      let at = head + 4 * count;
      if (at > data.length) throw new FormatError(`${where}: ${encoding} claims ${count} items, more than its ${data.length} bytes can hold`);
      const items: Uint8Array[] = [];
      for (let i = 0; i < count; i++) {
        const size = v.getUint32(head + 4 * i, true);
        if (at + size > data.length) throw new FormatError(`${where}: ${encoding} item ${i} (${size} bytes) runs past the end of the value`);
        items.push(copy(data.subarray(at, at + size)));
        at += size;
      }
      if (at !== data.length) throw new FormatError(`${where}: ${encoding} has ${data.length - at} bytes after its last item`);
      return items;
    },
    encode(value, where) {
      if (!Array.isArray(value)) throw new ArgumentError(where, `${encoding} needs an array of Uint8Array (encoded images), got ${show(value)}`);
      let total = head + 4 * value.length;
      value.forEach((item, i) => {
        if (!(item instanceof Uint8Array)) throw new ArgumentError(`${where}[${i}]`, `must be a Uint8Array (an encoded image), got ${show(item)}`);
        total += item.length;
      });
      const out = new Uint8Array(total);
      const v = view(out);
      v.setUint32(head - 4, value.length, true);
      let at = head + 4 * value.length;
      (value as Uint8Array[]).forEach((item, i) => {
        v.setUint32(head + 4 * i, item.length, true);
        out.set(item, at);
        at += item.length;
      });
      return out;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// ndarray

/** Mosaic's dtype code for each ndarray dtype (the low bits are the element size in bits). */
const NDARRAY_DTYPES = {
  uint8: 8,
  int8: 9,
  uint16: 16,
  int16: 17,
  float16: 18,
  uint32: 32,
  int32: 33,
  float32: 34,
  uint64: 64,
  int64: 65,
  float64: 66,
} as const satisfies Partial<Record<DType, number>>;
type NdarrayDType = keyof typeof NDARRAY_DTYPES;

const DTYPE_BY_CODE: ReadonlyMap<number, NdarrayDType> = new Map(
  Object.entries(NDARRAY_DTYPES).map(([dtype, code]) => [code, dtype as NdarrayDType]),
);

function isNdarrayDType(value: unknown): value is NdarrayDType {
  return typeof value === 'string' && Object.hasOwn(NDARRAY_DTYPES, value);
}

// Mosaic refuses arrays with 64 or more axes.
const MAX_NDIM = 63;
// Offsets in a shard are uint32, so no value can be larger.
const MAX_VALUE_BYTES = 2 ** 32 - 1;

function swapped(bytes: Uint8Array, width: number): Uint8Array {
  if (LITTLE_ENDIAN || width === 1) return bytes;
  const out = copy(bytes);
  for (let i = 0; i + width <= out.length; i += width) out.subarray(i, i + width).reverse();
  return out;
}

function ndarrayCodec(encoding: string, dtype: NdarrayDType | undefined, shape: readonly number[] | undefined): ColumnCodec {
  const fixedSize = dtype !== undefined && shape !== undefined ? numel(shape) * typedArrayConstructor(dtype).BYTES_PER_ELEMENT : null;
  return {
    encoding,
    size: fixedSize,
    decode(data, where) {
      const v = view(data);
      let at = 0;
      let type = dtype;
      if (type === undefined) {
        if (data.length < 1) throw new FormatError(`${where}: ndarray value is empty (no dtype byte)`);
        const code = data[at++]!;
        type = DTYPE_BY_CODE.get(code);
        if (type === undefined) throw new FormatError(`${where}: ndarray dtype code ${code} is unknown`);
      }
      let dims = shape;
      if (dims === undefined) {
        if (at >= data.length) throw new FormatError(`${where}: ndarray value ends before its shape byte`);
        const byte = data[at++]!;
        const ndim = byte >> 2;
        const width = 1 << (byte & 3);
        if (ndim === 0) throw new FormatError(`${where}: ndarray has no axes (Mosaic stores scalars with scalar encodings)`);
        if (at + ndim * width > data.length) throw new FormatError(`${where}: ndarray shape of ${ndim} axes runs past the end of the value`);
        const read: number[] = [];
        for (let i = 0; i < ndim; i++, at += width) {
          const d = width === 1 ? v.getUint8(at) : width === 2 ? v.getUint16(at, true) : width === 4 ? v.getUint32(at, true) : Number(v.getBigUint64(at, true));
          if (d < 1 || d > MAX_VALUE_BYTES) throw new FormatError(`${where}: ndarray dimension ${i} is ${d}, outside [1, ${MAX_VALUE_BYTES}]`);
          read.push(d);
        }
        dims = read;
      }
      const ctor = typedArrayConstructor(type);
      const count = numel(dims);
      const need = count * ctor.BYTES_PER_ELEMENT;
      if (data.length - at !== need) {
        throw new FormatError(`${where}: ndarray ${type}[${dims.join(', ')}] needs ${need} bytes of values, the value has ${data.length - at}`);
      }
      // A copy: the values start at any offset of the shard, and typed arrays need alignment.
      const values = swapped(copy(data.subarray(at)), ctor.BYTES_PER_ELEMENT);
      return { dtype: type, shape: [...dims], data: new ctor(values.buffer, values.byteOffset, count) };
    },
    encode(value, where) {
      const t = value as Partial<Tensor> | null;
      if (t === null || typeof t !== 'object' || !Array.isArray(t.shape) || !ArrayBuffer.isView(t.data)) {
        throw new ArgumentError(where, `ndarray needs a Tensor ({ dtype, shape, data }), got ${show(value)}`);
      }
      if (!isNdarrayDType(t.dtype)) {
        throw new ArgumentError(`${where}.dtype`, `${show(t.dtype)} cannot be stored in an ndarray column; use one of ${Object.keys(NDARRAY_DTYPES).join(', ')}`);
      }
      if (dtype !== undefined && t.dtype !== dtype) throw new ArgumentError(`${where}.dtype`, `${encoding} needs ${dtype}, got ${t.dtype}`);
      const ctor = typedArrayConstructor(t.dtype);
      if (!(t.data instanceof ctor)) throw new ArgumentError(`${where}.data`, `dtype ${t.dtype} needs a ${ctor.name}, got ${t.data.constructor.name}`);
      const dims = t.shape;
      if (dims.length === 0) throw new ArgumentError(`${where}.shape`, 'a scalar cannot be an ndarray (Mosaic refuses it); use a scalar encoding');
      if (dims.length > MAX_NDIM) throw new ArgumentError(`${where}.shape`, `has ${dims.length} axes, Mosaic's maximum is ${MAX_NDIM}`);
      dims.forEach((d, i) => {
        if (!Number.isSafeInteger(d) || d < 1) throw new ArgumentError(`${where}.shape[${i}]`, `must be an integer ≥ 1 (Mosaic refuses empty arrays), got ${show(d)}`);
      });
      if (shape !== undefined && (dims.length !== shape.length || dims.some((d, i) => d !== shape[i]))) {
        throw new ArgumentError(`${where}.shape`, `${encoding} needs shape [${shape.join(', ')}], got [${dims.join(', ')}]`);
      }
      if (t.data.length !== numel(dims)) {
        throw new ArgumentError(`${where}.data`, `has ${t.data.length} elements but shape [${dims.join(', ')}] needs ${numel(dims)}`);
      }
      const parts: Uint8Array[] = [];
      if (dtype === undefined) parts.push(Uint8Array.of(NDARRAY_DTYPES[t.dtype]));
      if (shape === undefined) {
        const largest = Math.max(...dims);
        const code = largest < 2 ** 8 ? 0 : largest < 2 ** 16 ? 1 : largest < 2 ** 32 ? 2 : 3;
        const width = 1 << code;
        const header = new Uint8Array(1 + dims.length * width);
        header[0] = (dims.length << 2) | code;
        const hv = view(header);
        dims.forEach((d, i) => {
          const at = 1 + i * width;
          if (code === 0) hv.setUint8(at, d);
          else if (code === 1) hv.setUint16(at, d, true);
          else if (code === 2) hv.setUint32(at, d, true);
          else hv.setBigUint64(at, BigInt(d), true);
        });
        parts.push(header);
      }
      parts.push(swapped(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), ctor.BYTES_PER_ELEMENT));
      return concat(parts);
    },
  };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return copy(parts[0]!);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// Python's int() on a shape dimension: digits, optional sign and surrounding whitespace.
const SHAPE_DIM = /^\s*\+?(\d+(?:_\d+)*)\s*$/;

function parseNdarray(encoding: string, config: string): ColumnCodec | string {
  const args = config === '' ? [] : config.split(':');
  if (args.length > 2) return `ndarray takes at most a dtype and a shape (ndarray:<dtype>:<shape>), got ${args.length} parts`;
  let dtype: NdarrayDType | undefined;
  let shape: number[] | undefined;
  if (args.length >= 1) {
    if (!isNdarrayDType(args[0])) return `ndarray dtype ${show(args[0])} is not one of ${Object.keys(NDARRAY_DTYPES).join(', ')}`;
    dtype = args[0];
  }
  if (args.length === 2) {
    const dims = args[1]!.split(',');
    if (dims.length > MAX_NDIM) return `ndarray shape has ${dims.length} axes, more than ${MAX_NDIM}`;
    shape = [];
    for (const text of dims) {
      const m = SHAPE_DIM.exec(text);
      const d = m === null ? NaN : Number(m[1]!.replaceAll('_', ''));
      if (!Number.isSafeInteger(d) || d < 1) return `ndarray shape dimension ${show(text)} is not an integer ≥ 1`;
      shape.push(d);
    }
    const bytes = numel(shape) * typedArrayConstructor(dtype!).BYTES_PER_ELEMENT;
    if (bytes > MAX_VALUE_BYTES) return `ndarray ${dtype}[${shape.join(', ')}] would take ${bytes} bytes, more than a shard can hold`;
  }
  return ndarrayCodec(encoding, dtype, shape);
}

// ---------------------------------------------------------------------------------------------
// The registry

const FIXED: ReadonlyMap<string, ColumnCodec> = new Map<string, ColumnCodec>([
  ...Object.entries(INTS).map(([name, spec]) => [name, intCodec(name, spec)] as const),
  ...(Object.keys(FLOATS) as (keyof typeof FLOATS)[]).map((name) => [name, floatCodec(name)] as const),
  ['str', strCodec],
  ['str_int', strIntCodec],
  ['str_float', strFloatCodec],
  ['str_decimal', strDecimalCodec],
  ['json', jsonCodec],
  ['bytes', rawCodec('bytes')],
  ['jpeg', rawCodec('jpeg')],
  ['png', rawCodec('png')],
  ['pil', rawCodec('pil')],
  ['list[jpeg]', listCodec('list[jpeg]', true)],
  ['list[png]', listCodec('list[png]', true)],
  ['list[pil]', listCodec('list[pil]', true)],
  ['jpeg_array', listCodec('jpeg_array', false)],
  ['jpegarray', listCodec('jpegarray', false)],
  ['ndarray', ndarrayCodec('ndarray', undefined, undefined)],
]);

/** The codec of `encoding`, or why there is none. */
function resolve(encoding: unknown): ColumnCodec | string {
  if (typeof encoding !== 'string') return `an encoding must be a string, got ${show(encoding)}`;
  if (MDS_UNSAFE_ENCODINGS.includes(encoding)) {
    return `encoding ${show(encoding)} is pickle, which runs arbitrary code when read; Shardline never unpickles`;
  }
  const fixed = FIXED.get(encoding);
  if (fixed !== undefined) return fixed;
  if (encoding.startsWith('ndarray:')) return parseNdarray(encoding, encoding.slice('ndarray:'.length));
  const hint = encoding === 'jpg' ? ' (Mosaic calls it "jpeg")' : '';
  return `unknown encoding ${show(encoding)}${hint}; Mosaic's encodings are ${MDS_ENCODINGS.filter((e) => e !== 'pkl').join(', ')} and ndarray:<dtype>[:<shape>]`;
}

/** Wraps a codec so that pre-encoded bytes pass through, as Mosaic's `mds_encode` lets them. */
function acceptingBytes(codec: ColumnCodec): ColumnCodec {
  return {
    encoding: codec.encoding,
    size: codec.size,
    decode: codec.decode,
    encode(value, where) {
      const out = value instanceof Uint8Array ? value : codec.encode(value, where);
      if (codec.size !== null && out.length !== codec.size) {
        throw new ArgumentError(where, `${codec.encoding} values are ${codec.size} bytes, got ${out.length}`);
      }
      return out;
    },
  };
}

/**
 * The codec of a column named in an index.
 * @param where names the column in errors, e.g. `shard 2 (shard.00002.mds), column "label"`.
 * @throws FormatError for `pkl`, unknown encodings and malformed `ndarray:` parameters.
 */
export function codecForIndex(encoding: unknown, where: string): ColumnCodec {
  const codec = resolve(encoding);
  if (typeof codec === 'string') throw new FormatError(`${where}: ${codec}`);
  return codec;
}

/**
 * The codec of a column a writer is asked to write. Encoding accepts a Uint8Array in any column
 * as already-encoded bytes (as Mosaic does); fixed-size columns check their length.
 * @throws ArgumentError for `pkl`, unknown encodings and malformed `ndarray:` parameters, naming the column.
 */
export function codecForWriter(encoding: unknown, column: string): ColumnCodec {
  const codec = resolve(encoding);
  if (typeof codec === 'string') throw new ArgumentError(`columns.${column}`, codec);
  return acceptingBytes(codec);
}

/**
 * Mosaic's `get_mds_encoded_size`: the fixed size of an encoding's values, or null.
 * @throws ArgumentError for unknown and refused encodings.
 * @example mdsEncodedSize('ndarray:float32:2,3'); // 24
 */
export function mdsEncodedSize(encoding: string): number | null {
  return codecForWriter(encoding, 'encoding').size;
}

/** Whether Mosaic 0.13 accepts `encoding` (pkl included: it is valid, we only refuse to read it). */
export function isMdsEncoding(encoding: unknown): boolean {
  return typeof encoding === 'string' && (MDS_UNSAFE_ENCODINGS.includes(encoding) || typeof resolve(encoding) !== 'string');
}
