import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, FormatError } from '../../errors.ts';
import type { Tensor } from '../../tensor.ts';
import { MDS_ENCODINGS, codecForIndex, codecForWriter, isMdsEncoding, mdsEncodedSize } from './encodings.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s/g, ''), 'hex'));

function roundTrip(encoding: string, value: unknown): unknown {
  const codec = codecForWriter(encoding, 'c');
  const encoded = codec.encode(value, 'sample.c');
  if (codec.size !== null) assert.equal(encoded.length, codec.size, encoding);
  return codecForIndex(encoding, 'column c').decode(encoded, 'sample 0');
}

function throwsArgument(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ArgumentError, `expected ArgumentError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

function throwsFormat(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('fixed sizes are Mosaic\'s get_mds_encoded_size', () => {
  const sizes: Record<string, number | null> = {
    uint8: 1, uint16: 2, uint32: 4, uint64: 8, int8: 1, int16: 2, int32: 4, int64: 8, int: 8, float16: 2, float32: 4, float64: 8,
    str: null, bytes: null, json: null, str_int: null, str_float: null, str_decimal: null, jpeg: null, png: null, pil: null,
    'list[jpeg]': null, 'list[png]': null, 'list[pil]': null, jpeg_array: null, jpegarray: null, ndarray: null,
    'ndarray:int32': null, 'ndarray:float32:2,3': 24, 'ndarray:uint8:5': 5, 'ndarray:float64: 2 , +3': 48, 'ndarray:': null,
  };
  for (const [encoding, size] of Object.entries(sizes)) assert.equal(mdsEncodedSize(encoding), size, encoding);
  for (const e of MDS_ENCODINGS) assert.ok(isMdsEncoding(e), e);
  assert.ok(!isMdsEncoding('jpg') && !isMdsEncoding('int:3') && !isMdsEncoding(3));
});

test('scalars encode little-endian, as numpy tobytes(), and round-trip at their limits', () => {
  const cases: [string, unknown, string, unknown][] = [
    ['uint8', 255, 'ff', 255],
    ['int8', -1, 'ff', -1],
    ['uint16', 0x1234, '3412', 0x1234],
    ['int16', -32768, '0080', -32768],
    ['uint32', 2 ** 32 - 1, 'ffffffff', 2 ** 32 - 1],
    ['int32', -(2 ** 31), '00000080', -(2 ** 31)],
    ['uint64', 2n ** 64n - 1n, 'ffffffffffffffff', 2n ** 64n - 1n],
    ['int64', -2n, 'feffffffffffffff', -2n],
    ['int', 5, '0500000000000000', 5n],
    ['int64', 2 ** 53 - 1, 'ffffffffffff1f00', 2n ** 53n - 1n],
    ['float16', 1.5, '003e', 1.5],
    ['float16', 65520, '007c', Infinity],
    ['float32', 0.1, 'cdcccc3d', Math.fround(0.1)],
    ['float64', -0, '0000000000000080', -0],
    ['str_int', -(10n ** 30n), hex(new TextEncoder().encode(`-${10n ** 30n}`)), -(10n ** 30n)],
    ['str_float', 1e-5, hex(new TextEncoder().encode('1e-05')), 1e-5],
    ['str_float', NaN, hex(new TextEncoder().encode('nan')), NaN],
    ['str_decimal', '-1.50', hex(new TextEncoder().encode('-1.50')), '-1.50'],
    ['str_decimal', 12n, '3132', '12'],
    ['str', 'é😀', 'c3a9f09f9880', 'é😀'],
    ['json', { a: [1, 2.0, 'é'] }, hex(new TextEncoder().encode('{"a": [1, 2, "\\u00e9"]}')), { a: [1, 2, 'é'] }],
  ];
  for (const [encoding, value, encoded, decoded] of cases) {
    assert.equal(hex(codecForWriter(encoding, 'c').encode(value, 'v')), encoded, `${encoding} ${String(value)}`);
    assert.deepStrictEqual(roundTrip(encoding, value), decoded, `${encoding} ${String(value)}`);
  }
});

test('text encodings read what Python\'s int(), float() and Decimal() accept', () => {
  const dec = (encoding: string, text: string) => codecForIndex(encoding, 'c').decode(new TextEncoder().encode(text), 's');
  assert.equal(dec('str_int', ' +1_000 '), 1000n);
  assert.equal(dec('str_int', '-0'), 0n);
  assert.equal(dec('str_float', ' -Infinity '), -Infinity);
  assert.equal(dec('str_float', 'INF'), Infinity);
  assert.ok(Number.isNaN(dec('str_float', '-nan')));
  assert.equal(dec('str_float', '1_0.5e1_0'), 10.5e10);
  assert.equal(dec('str_float', '.5'), 0.5);
  assert.equal(dec('str_float', '5.'), 5);
  assert.equal(dec('str_decimal', 'sNaN'), 'sNaN');
  assert.equal(dec('str_decimal', '1E+3'), '1E+3');
  for (const [encoding, text] of [['str_int', '1.5'], ['str_int', '0x10'], ['str_int', ''], ['str_float', '1e'], ['str_float', 'infinit'], ['str_float', ''], ['str_decimal', '1..2'], ['str_decimal', 'abc']] as const) {
    throwsFormat(() => dec(encoding, text), new RegExp(`^s: ${encoding} value`));
  }
  throwsFormat(() => codecForIndex('str', 'c').decode(new Uint8Array([0xc3]), 'shard 1, sample 2'), /^shard 1, sample 2: invalid UTF-8/);
  throwsFormat(() => dec('json', '{"a": }'), /^s: invalid JSON/);
});

test('ndarray writes Mosaic\'s headers: dtype code, then (ndim << 2 | shape width) and the shape', () => {
  const t = (dtype: Tensor['dtype'], shape: number[], data: Tensor['data']): Tensor => ({ dtype, shape, data });
  // Dynamic dtype and shape: int16 is code 17; 2 axes of uint8 → (2 << 2) | 0.
  assert.equal(hex(codecForWriter('ndarray', 'c').encode(t('int16', [1, 2], new Int16Array([1, -1])), 'v')), '11' + '08' + '0102' + '0100ffff');
  // A dimension of 256 needs uint16 entries: (1 << 2) | 1.
  assert.equal(hex(codecForWriter('ndarray:uint8', 'c').encode(t('uint8', [256], new Uint8Array(256)), 'v')).slice(0, 6), '050001');
  assert.equal(hex(codecForWriter('ndarray:uint8', 'c').encode(t('uint8', [65536], new Uint8Array(65536)), 'v')).slice(0, 10), '0600000100');
  // Fixed dtype and shape: the values alone.
  assert.equal(hex(codecForWriter('ndarray:float32:2', 'c').encode(t('float32', [2], new Float32Array([1, 2])), 'v')), '0000803f00000040');
  const decoded = codecForIndex('ndarray', 'c').decode(bytes('11 08 0102 0100ffff'), 's') as Tensor;
  assert.deepStrictEqual(decoded, t('int16', [1, 2], new Int16Array([1, -1])));
  // Mosaic reads uint64 shape entries too: (1 << 2) | 3.
  const wide = codecForIndex('ndarray:uint8', 'c').decode(bytes('07 0200000000000000 0100'), 's');
  assert.deepStrictEqual(wide, t('uint8', [2], new Uint8Array([1, 0])));
});

test('ndarray refuses what Mosaic refuses, naming the field', () => {
  const w = (encoding: string, value: unknown) => () => codecForWriter(encoding, 'c').encode(value, 'sample.x');
  throwsArgument(w('ndarray', { dtype: 'bool', shape: [1], data: new Uint8Array(1) }), /^sample\.x\.dtype: "bool" cannot be stored/);
  throwsArgument(w('ndarray', { dtype: 'float32', shape: [], data: new Float32Array(1) }), /^sample\.x\.shape: a scalar cannot be an ndarray/);
  throwsArgument(w('ndarray', { dtype: 'float32', shape: [2, 0], data: new Float32Array(0) }), /^sample\.x\.shape\[1\]: must be an integer ≥ 1/);
  throwsArgument(w('ndarray', { dtype: 'float32', shape: [3], data: new Float32Array(2) }), /^sample\.x\.data: has 2 elements but shape \[3\] needs 3/);
  throwsArgument(w('ndarray', { dtype: 'float32', shape: [1], data: new Float64Array(1) }), /^sample\.x\.data: dtype float32 needs a Float32Array/);
  throwsArgument(w('ndarray:int32', { dtype: 'int16', shape: [1], data: new Int16Array(1) }), /^sample\.x\.dtype: ndarray:int32 needs int32, got int16/);
  throwsArgument(w('ndarray:int32:2', { dtype: 'int32', shape: [1], data: new Int32Array(1) }), /^sample\.x\.shape: ndarray:int32:2 needs shape \[2\], got \[1\]/);
  throwsArgument(w('ndarray', { dtype: 'uint8', shape: Array(64).fill(1), data: new Uint8Array(1) }), /has 64 axes, Mosaic's maximum is 63/);
  throwsArgument(w('ndarray', [1, 2]), /^sample\.x: ndarray needs a Tensor/);
  // Already-encoded bytes pass, as in Mosaic, but fixed sizes are checked.
  assert.equal(codecForWriter('ndarray:uint8:2', 'c').encode(new Uint8Array([1, 2]), 'v').length, 2);
  throwsArgument(w('ndarray:uint8:2', new Uint8Array(3)), /^sample\.x: ndarray:uint8:2 values are 2 bytes, got 3/);
});

test('hostile ndarray bytes are FormatErrors naming the value', () => {
  const d = (encoding: string, h: string) => () => codecForIndex(encoding, 'c').decode(bytes(h), 'shard 0, sample 4, column "x"');
  throwsFormat(d('ndarray', ''), /sample 4, column "x": ndarray value is empty/);
  throwsFormat(d('ndarray', '07 04 01 00'), /dtype code 7 is unknown/);
  throwsFormat(d('ndarray', '08'), /ends before its shape byte/);
  throwsFormat(d('ndarray', '08 00'), /has no axes/);
  throwsFormat(d('ndarray', '08 0c 01 02'), /shape of 3 axes runs past the end/);
  throwsFormat(d('ndarray', '08 04 00'), /dimension 0 is 0/);
  throwsFormat(d('ndarray', '08 07 ffffffffffffffff'), /dimension 0 is .* outside/);
  throwsFormat(d('ndarray', '21 04 02 01000000'), /int32\[2\] needs 8 bytes of values, the value has 4/);
  throwsFormat(d('ndarray:int32', '04 08 01000000'), /int32\[8\] needs 32 bytes of values, the value has 4/);
  throwsFormat(d('ndarray:int32:1', '0100000002000000'), /needs 4 bytes of values, the value has 8/);
});

test('lists of images: Mosaic\'s layouts, and hostile counts and sizes', () => {
  const a = new Uint8Array([1, 2, 3]);
  const b = new Uint8Array([9]);
  assert.equal(hex(codecForWriter('list[jpeg]', 'c').encode([a, b], 'v')), '00000000' + '02000000' + '03000000' + '01000000' + '010203' + '09');
  assert.equal(hex(codecForWriter('jpeg_array', 'c').encode([a], 'v')), '01000000' + '03000000' + '010203');
  for (const e of ['list[jpeg]', 'list[png]', 'list[pil]', 'jpeg_array', 'jpegarray']) {
    assert.deepStrictEqual(roundTrip(e, [a, b, new Uint8Array()]), [a, b, new Uint8Array()], e);
    assert.deepStrictEqual(roundTrip(e, []), [], e);
  }
  const d = (encoding: string, h: string) => () => codecForIndex(encoding, 'c').decode(bytes(h), 'v');
  throwsFormat(d('list[png]', '000000'), /shorter than its 8-byte header/);
  throwsFormat(d('list[png]', '00000000 ffffffff'), /claims 4294967295 items/);
  throwsFormat(d('jpeg_array', '01000000 05000000 0102'), /item 0 \(5 bytes\) runs past the end/);
  throwsFormat(d('jpeg_array', '01000000 01000000 0102'), /1 bytes after its last item/);
  throwsArgument(() => codecForWriter('list[jpeg]', 'c').encode([a, 'x'], 'sample.i'), /^sample\.i\[1\]: must be a Uint8Array/);
  throwsArgument(() => codecForWriter('jpeg', 'c').encode('x', 'sample.i'), /^sample\.i: jpeg needs a Uint8Array of jpeg \(the encoded image file\)/);
});

test('values that do not fit their encoding are ArgumentErrors naming the field', () => {
  const w = (encoding: string, value: unknown) => () => codecForWriter(encoding, 'c').encode(value, 'sample.v');
  throwsArgument(w('uint8', 256), /^sample\.v: 256 is out of range for uint8 \[0, 255\]/);
  throwsArgument(w('int8', -129), /out of range for int8/);
  throwsArgument(w('uint64', -1n), /out of range for uint64/);
  throwsArgument(w('int', 2n ** 63n), /out of range for int/);
  throwsArgument(w('int32', 1.5), /int32 needs an integer/);
  throwsArgument(w('int64', 2 ** 53), /int64 needs an integer \(a safe-integer number or a bigint\)/);
  throwsArgument(w('float32', '1'), /float32 needs a number/);
  throwsArgument(w('str', 3), /str needs a string/);
  throwsArgument(w('str', 'a\ud800'), /lone UTF-16 surrogate/);
  throwsArgument(w('str_float', 1n), /str_float needs a number/);
  throwsArgument(w('str_decimal', '1e'), /str_decimal needs a decimal's text/);
  throwsArgument(w('json', undefined), /^sample\.v: is undefined/);
  throwsArgument(w('json', new Float32Array(1)), /json needs a JSON value, got a typed array/);
  throwsArgument(w('bytes', [1, 2]), /bytes needs a Uint8Array/);
  throwsArgument(w('uint16', new Uint8Array(3)), /uint16 values are 2 bytes, got 3/);
});

test('pkl is refused by name, and unknown encodings say which names exist', () => {
  throwsArgument(() => codecForWriter('pkl', 'obj'), /^columns\.obj: encoding "pkl" is pickle, which runs arbitrary code when read; Shardline never unpickles/);
  throwsFormat(() => codecForIndex('pkl', 'shard 0: column "obj"'), /^shard 0: column "obj": encoding "pkl" is pickle/);
  throwsFormat(() => codecForIndex('jpg', 'column "img"'), /^column "img": unknown encoding "jpg" \(Mosaic calls it "jpeg"\); Mosaic's encodings are bytes, str/);
  for (const bad of ['int:3', 'str:', 'ndarray:bool', 'ndarray:int32:0', 'ndarray:int32:2,x', 'ndarray:int32:2:3', 'ndarray::2', 'ndarray:float64:65536,65536', 'NDARRAY', 'list[jpg]']) {
    throwsFormat(() => codecForIndex(bad, 'c'), /^c: /);
  }
  throwsFormat(() => codecForIndex(5, 'c'), /an encoding must be a string/);
});

test('property: every value a column accepts decodes to itself', () => {
  const cases: [string, fc.Arbitrary<unknown>][] = [
    ['uint8', fc.integer({ min: 0, max: 255 })],
    ['int16', fc.integer({ min: -32768, max: 32767 })],
    ['uint32', fc.integer({ min: 0, max: 2 ** 32 - 1 })],
    ['int32', fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })],
    ['uint64', fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })],
    ['int64', fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })],
    ['float64', fc.double()],
    ['float32', fc.float()],
    ['float16', fc.double().map(Math.f16round)],
    ['str', fc.string({ unit: 'binary' })],
    ['bytes', fc.uint8Array()],
    ['str_int', fc.bigInt()],
    ['str_float', fc.double()],
    ['json', fc.jsonValue().map((v) => structuredClone(v))],
    ['ndarray', fc.array(fc.double(), { minLength: 1, maxLength: 6 }).map((v) => ({ dtype: 'float64', shape: [v.length], data: Float64Array.from(v) }))],
    ['ndarray:int64', fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { minLength: 1, maxLength: 6 }).map((v) => ({ dtype: 'int64', shape: [1, v.length], data: BigInt64Array.from(v) }))],
    ['ndarray:uint16:3', fc.array(fc.integer({ min: 0, max: 65535 }), { minLength: 3, maxLength: 3 }).map((v) => ({ dtype: 'uint16', shape: [3], data: Uint16Array.from(v) }))],
  ];
  for (const [encoding, arbitrary] of cases) {
    fc.assert(fc.property(arbitrary, (value) => assert.deepStrictEqual(roundTrip(encoding, value), value)), { numRuns: 50 });
  }
});

test('property: decoding arbitrary bytes gives a value or a FormatError, nothing else', () => {
  const encodings = ['ndarray', 'ndarray:float32', 'ndarray:uint16:2', 'list[png]', 'jpeg_array', 'json', 'str', 'str_int', 'str_float', 'str_decimal'];
  fc.assert(
    fc.property(fc.constantFrom(...encodings), fc.uint8Array({ maxLength: 40 }), (encoding, data) => {
      try {
        codecForIndex(encoding, 'c').decode(data, 'v');
      } catch (e) {
        assert.ok(e instanceof FormatError, `${encoding} ${hex(data)}: ${String(e)}`);
      }
    }),
    { numRuns: 1000 },
  );
});
