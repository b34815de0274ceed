import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, FormatError, ShapeMismatchError } from '../errors.ts';
import { type DType, type Tensor, tensor, typedArrayConstructor } from '../tensor.ts';
import type { BatchMetadata } from './batch-metadata.ts';
import {
  BatchEncoder,
  MAX_HEADER_BYTES,
  decodeBatch,
  decodeSafetensors,
  encodeBatch,
  encodeSafetensors,
  encodeSafetensorsInto,
  encodedSafetensorsSize,
  encodedSize,
} from './safetensors.ts';
import { bytesOf, expectedElement, hex, loadManifest, vectorBytes, vectorTensors } from './test-vectors.ts';

const manifest = loadManifest();
const DTYPES: DType[] = ['float64', 'float32', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint64', 'uint32', 'uint16', 'uint8', 'bool'];

/** A blob from a header (object or raw text) and data bytes. */
function blob(header: unknown, data: ArrayLike<number> = [], rawHeader?: Uint8Array): Uint8Array {
  const text = rawHeader ?? new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

function throwsFormat(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

const u8 = (name: string, n: number, begin: number) => ({ [name]: { dtype: 'U8', shape: [n], data_offsets: [begin, begin + n] } });

function batch(overrides: Partial<BatchMetadata> = {}): BatchMetadata {
  return { job: 'job-a', epoch: 2, rank: 1, step: 5, sampleIds: [10, 11], ...overrides };
}

test('the test vectors cover what the format must handle', () => {
  const names = manifest.vectors.map((v) => v.name);
  for (const required of ['all-dtypes', 'scalar-and-empty', 'ordering', 'batch-basic', 'batch-extra', 'batch-empty', 'empty']) {
    assert.ok(names.includes(required), required);
  }
  const dtypes = new Set(manifest.vectors.flatMap((v) => Object.values(v.tensors).map((t) => t.dtype)));
  assert.deepEqual([...dtypes].sort(), [...DTYPES].sort());
  assert.equal(manifest.safetensors, '0.8.0');
});

for (const v of manifest.vectors) {
  test(`decodes the reference vector ${v.name} to the manifest's values`, () => {
    const bytes = vectorBytes(v);
    assert.equal(bytes.length, v.size);
    const { tensors, metadata } = decodeSafetensors(bytes);
    assert.deepEqual(Object.keys(tensors), v.order);
    assert.deepEqual(metadata, v.metadata ?? undefined);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    for (const [name, expected] of Object.entries(v.tensors)) {
      const t = tensors[name]!;
      assert.equal(t.dtype, expected.dtype, name);
      assert.deepEqual(t.shape, expected.shape, name);
      assert.ok(t.data instanceof typedArrayConstructor(expected.dtype), name);
      assert.equal(hex(bytesOf(t.data)), expected.hex, name);
      // Zero-copy: the reference aligns every tensor, and the file sits in an aligned buffer.
      assert.equal(t.data.buffer, bytes.buffer, name);
      assert.equal(t.data.byteOffset, 8 + n + expected.dataOffsets[0], name);
      assert.equal(t.data.length, expected.values.length, name);
      expected.values.forEach((value, i) => {
        const want = expectedElement(expected.dtype, value);
        assert.ok(Object.is(t.data[i], want), `${name}[${i}]: got ${String(t.data[i])}, want ${String(want)}`);
      });
    }
    if (v.batch !== null) assert.deepEqual(decodeBatch(bytes).metadata, v.batch);
  });

  test(`encodes the reference vector ${v.name} byte for byte`, () => {
    const expected = hex(vectorBytes(v));
    const tensors = vectorTensors(v);
    assert.equal(hex(encodeSafetensors(tensors, v.metadata ?? undefined)), expected);
    assert.equal(encodedSafetensorsSize(tensors, v.metadata ?? undefined), v.size);
    if (v.batch !== null) {
      assert.equal(hex(encodeBatch(tensors, v.batch)), expected);
      assert.equal(encodedSize(tensors, v.batch), v.size);
      assert.equal(hex(new BatchEncoder({ initialCapacity: 0 }).encode(tensors, v.batch)), expected);
    }
  });
}

test('the reference orders tensors by dtype rank, then by name in UTF-8 byte order', () => {
  const v = manifest.vectors.find((x) => x.name === 'ordering')!;
  // U+FB01 sorts before U+1D538 by code point, after it by UTF-16 code unit.
  assert.ok(v.order.indexOf('\ufb01') < v.order.indexOf('\u{1d538}'));
  assert.deepEqual(v.order.slice(0, 3), ['t', 's', 'Z']);
  assert.equal(v.order.at(-1), 'q');
});

test('a misaligned input decodes to copies; aligned data stays a view; copy: true always copies', () => {
  const v = manifest.vectors.find((x) => x.name === 'batch-basic')!;
  const aligned = vectorBytes(v);
  const shifted = new Uint8Array(aligned.length + 1).subarray(1);
  shifted.set(aligned);
  const { tensors } = decodeBatch(shifted);
  const reference = decodeBatch(aligned).tensors;
  for (const [name, t] of Object.entries(tensors)) {
    assert.equal(hex(bytesOf(t.data)), hex(bytesOf(reference[name]!.data)), name);
    assert.equal(t.data.buffer === shifted.buffer, t.data.BYTES_PER_ELEMENT === 1, name);
  }
  const copied = decodeBatch(aligned, { copy: true }).tensors;
  for (const [name, t] of Object.entries(copied)) {
    assert.notEqual(t.data.buffer, aligned.buffer, name);
    assert.equal(hex(bytesOf(t.data)), hex(bytesOf(reference[name]!.data)), name);
  }
  aligned.fill(0);
  assert.notEqual(hex(bytesOf(copied.label!.data)), hex(bytesOf(reference.label!.data)));
});

test('every truncation of a valid blob is a FormatError', () => {
  const bytes = vectorBytes(manifest.vectors.find((x) => x.name === 'batch-basic')!);
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => decodeSafetensors(bytes.subarray(0, n)), FormatError, `prefix of ${n} bytes`);
  }
  throwsFormat(() => decodeSafetensors(new Uint8Array(5)), /5 bytes is too short/);
});

test('hostile headers are refused with a FormatError naming the tensor or field', () => {
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const data8 = new Uint8Array(8);
  assert.equal(decodeSafetensors(blob(ok, data8)).tensors.a!.dtype, 'float32');

  const long = blob(ok, data8);
  new DataView(long.buffer).setBigUint64(0, 1000n, true);
  throwsFormat(() => decodeSafetensors(long), /header length 1000 runs past the end of the \d+-byte buffer/);
  new DataView(long.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
  throwsFormat(() => decodeSafetensors(long), /over the 100000000-byte limit/);
  new DataView(long.buffer).setBigUint64(0, 1n << 40n, true);
  throwsFormat(() => decodeSafetensors(long), /over the 100000000-byte limit/);
  new DataView(long.buffer).setBigUint64(0, 0xffff_ffff_ffff_ffffn, true);
  throwsFormat(() => decodeSafetensors(long), /over the 100000000-byte limit/);

  throwsFormat(() => decodeSafetensors(blob(null, [], new Uint8Array([0x7b, 0xff, 0x7d]))), /not valid UTF-8/);
  throwsFormat(() => decodeSafetensors(blob(null, [], new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d]))), /not valid JSON/);
  throwsFormat(() => decodeSafetensors(blob('{"a":')), /not valid JSON/);
  throwsFormat(() => decodeSafetensors(blob('{}\u0000')), /not valid JSON/);
  for (const h of ['[]', '"x"', '42', 'null', 'true']) throwsFormat(() => decodeSafetensors(blob(h)), /must be a JSON object/);

  const cases: [unknown, ArrayLike<number>, RegExp][] = [
    [{ a: 'F32' }, [], /tensor "a": must be an object/],
    [{ a: null }, [], /tensor "a": must be an object/],
    [{ a: { shape: [1], data_offsets: [0, 1] } }, [1], /tensor "a": missing field "dtype"/],
    [{ a: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, [1], /tensor "a": unsupported dtype "F8_E4M3"/],
    [{ a: { dtype: 'float32', shape: [1], data_offsets: [0, 4] } }, [0, 0, 0, 0], /tensor "a": unsupported dtype "float32"/],
    [{ a: { dtype: 7, shape: [1], data_offsets: [0, 1] } }, [1], /tensor "a": unsupported dtype 7/],
    [{ a: { dtype: 'U8', data_offsets: [0, 1] } }, [1], /tensor "a": shape must be an array/],
    [{ a: { dtype: 'U8', shape: [-1], data_offsets: [0, 1] } }, [1], /tensor "a": shape\[0\] must be an integer ≥ 0, got -1/],
    [{ a: { dtype: 'U8', shape: [0.5], data_offsets: [0, 1] } }, [1], /tensor "a": shape\[0\]/],
    [{ a: { dtype: 'U8', shape: ['1'], data_offsets: [0, 1] } }, [1], /tensor "a": shape\[0\]/],
    [{ a: { dtype: 'U8', shape: [1] } }, [1], /tensor "a": data_offsets must be \[begin, end\]/],
    [{ a: { dtype: 'U8', shape: [1], data_offsets: [0, 1, 2] } }, [1], /tensor "a": data_offsets must be/],
    [{ a: { dtype: 'U8', shape: [1], data_offsets: [-1, 0] } }, [1], /tensor "a": data_offsets\[0\] must be an integer ≥ 0, got -1/],
    [{ a: { dtype: 'U8', shape: [1], data_offsets: [0, 2 ** 60] } }, [1], /tensor "a": data_offsets\[1\]/],
    [{ a: { dtype: 'U8', shape: [0], data_offsets: [1, 0] } }, [1], /tensor "a": data_offsets \[1, 0\] end before they begin/],
    [{ a: { dtype: 'U8', shape: [1], data_offsets: [1, 2] } }, [1, 2], /tensor "a": .*leave a gap after byte 0/],
    [{ ...u8('a', 2, 0), ...u8('b', 2, 1) }, [1, 2, 3], /tensor "b": .*overlap the previous tensor, which ends at 2/],
    [{ ...u8('a', 2, 0), ...u8('b', 2, 3) }, [1, 2, 3, 4, 5], /tensor "b": .*leave a gap after byte 2/],
    [{ ...u8('a', 2, 0), ...u8('b', 2, 0) }, [1, 2], /tensor "b": .*overlap/],
    [u8('a', 2, 0), [1, 2, 3], /tensors cover 2 data bytes but 3 follow the header/],
    [{ a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] } }, [1, 2], /tensor "a": data_offsets end at 4, past the 2 data bytes/],
    [{ a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, new Uint8Array(20), /tensor "a": shape \[2, 3\] of F32 needs 24 bytes but data_offsets \[0, 20\] hold 20/],
    [{ a: { dtype: 'U8', shape: [2 ** 40, 2 ** 40, 2 ** 40], data_offsets: [0, 1] } }, [1], /tensor "a": shape .* needs/],
    [{ a: { dtype: 'BOOL', shape: [3], data_offsets: [0, 3] } }, [1, 0, 2], /tensor "a": BOOL element 2 is 2, not 0 or 1/],
    [{ __metadata__: { k: 1 } }, [], /__metadata__\.k must be a string, got 1/],
    [{ __metadata__: { k: null } }, [], /__metadata__\.k must be a string/],
    [{ __metadata__: ['x'] }, [], /__metadata__ must be an object of strings, got an array/],
    [{ __metadata__: 'x' }, [], /__metadata__ must be an object of strings/],
  ];
  for (const [header, data, pattern] of cases) throwsFormat(() => decodeSafetensors(blob(header, data)), pattern);

  // Like the reference: unknown fields in a tensor entry are ignored, a null __metadata__ is none.
  const lenient = decodeSafetensors(blob({ __metadata__: null, a: { dtype: 'U8', shape: [1], data_offsets: [0, 1], x: 1 } }, [7]));
  assert.equal(lenient.metadata, undefined);
  assert.deepEqual([...lenient.tensors.a!.data], [7]);
});

test('names such as __proto__ stay plain fields', () => {
  // An object literal's __proto__ sets the prototype, so write the header by hand.
  const text = '{"__metadata__":{"__proto__":"x"},"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
  const { tensors, metadata } = decodeSafetensors(blob(text, [3]));
  assert.ok(Object.hasOwn(tensors, '__proto__'));
  assert.equal(Object.getPrototypeOf(tensors), Object.prototype);
  assert.deepEqual([...tensors['__proto__']!.data], [3]);
  assert.equal(metadata!['__proto__'], 'x');
  const again = encodeSafetensors(tensors, metadata);
  assert.deepEqual(decodeSafetensors(again).metadata, metadata);
});

test('batches need their metadata fields and one row per sample id', () => {
  const tensors = { x: tensor('float32', [2, 2], new Float32Array([1, 2, 3, 4])) };
  const good = encodeSafetensors(tensors, {
    wire_version: '1', job: 'j', epoch: '1', rank: '0', step: '9', sample_ids: '[4, 5]',
  });
  assert.deepEqual(decodeBatch(good).metadata, { job: 'j', epoch: 1, rank: 0, step: 9, sampleIds: [4, 5], extra: {} });
  const base: Record<string, string> = { wire_version: '1', job: 'j', epoch: '1', rank: '0', step: '9', sample_ids: '[4,5]' };
  const cases: [Record<string, string> | undefined, RegExp][] = [
    [undefined, /the header has no __metadata__/],
    ...(['wire_version', 'job', 'epoch', 'rank', 'step', 'sample_ids'] as const).map((key): [Record<string, string>, RegExp] => {
      const { [key]: _dropped, ...rest } = base;
      return [rest, new RegExp(`missing required field "${key}"`)];
    }),
    [{ ...base, wire_version: '2' }, /wire_version: "2" is not supported/],
    [{ ...base, job: '' }, /job: must not be empty/],
    [{ ...base, epoch: '-1' }, /epoch: must be a decimal integer/],
    [{ ...base, rank: '1.5' }, /rank: must be a decimal integer/],
    [{ ...base, step: '01' }, /step: must be a decimal integer/],
    [{ ...base, step: '9007199254740992' }, /step: must be a decimal integer/],
    [{ ...base, epoch: ' 1' }, /epoch/],
    [{ ...base, sample_ids: '4,5' }, /sample_ids: must be a JSON array/],
    [{ ...base, sample_ids: '[4,5' }, /sample_ids: expected "," or "\]" after element 1/],
    [{ ...base, sample_ids: '[4,,5]' }, /sample_ids: element 1 must be an integer/],
    [{ ...base, sample_ids: '[4.0,5]' }, /sample_ids: expected "," or "\]" after element 0/],
    [{ ...base, sample_ids: '[-4,5]' }, /sample_ids: element 0 must be an integer/],
    [{ ...base, sample_ids: '[4,9007199254740992]' }, /sample_ids: element 1 must be an integer/],
    [{ ...base, sample_ids: '[4,5] x' }, /sample_ids: unexpected text after the array/],
    [{ ...base, sample_ids: '[4,5,6]' }, /batch: tensor "x" has leading dimension 2 but the batch has 3 sample ids/],
  ];
  for (const [metadata, pattern] of cases) {
    throwsFormat(() => decodeBatch(encodeSafetensors(tensors, metadata)), pattern);
  }
});

test('encoding refuses bad tensors and metadata with typed errors naming them', () => {
  const x = tensor('float32', [2], new Float32Array([1, 2]));
  const bad: [() => unknown, new (...args: never[]) => Error, RegExp][] = [
    [() => encodeBatch({ x }, batch({ job: '' })), ArgumentError, /metadata\.job: must be a non-empty/],
    [() => encodeBatch({ x }, batch({ job: 'a\ud800' })), ArgumentError, /metadata\.job/],
    [() => encodeBatch({ x }, batch({ epoch: -3 })), ArgumentError, /metadata\.epoch: must be in \[0, \d+\], got -3/],
    [() => encodeBatch({ x }, batch({ rank: 1.5 })), ArgumentError, /metadata\.rank: must be an integer, got 1.5/],
    [() => encodeBatch({ x }, batch({ step: Number.NaN })), ArgumentError, /metadata\.step/],
    [() => encodeBatch({ x }, batch({ sampleIds: [1, -2] })), ArgumentError, /metadata\.sampleIds\[1\]: must be an integer in \[0, 2\^53 - 1\], got -2/],
    [() => encodeBatch({ x }, batch({ sampleIds: [1, 2 ** 53] })), ArgumentError, /metadata\.sampleIds\[1\]/],
    [() => encodeBatch({ x }, batch({ sampleIds: 'ab' as unknown as number[] })), ArgumentError, /metadata\.sampleIds: must be an array/],
    [() => encodeBatch({ x }, batch({ extra: { step: '1' } })), ArgumentError, /metadata\.extra\.step: is a reserved batch field/],
    [() => encodeBatch({ x }, batch({ extra: { k: 1 as unknown as string } })), ArgumentError, /metadata\.extra\.k: must be a well-formed string, got 1/],
    [() => encodeBatch({ x }, null as unknown as BatchMetadata), ArgumentError, /metadata: must be an object/],
    [() => encodeBatch({ x }, batch({ sampleIds: [1, 2, 3] })), ShapeMismatchError, /tensor "x" has leading dimension 2 but the batch has 3 sample ids/],
    [() => encodeSafetensors({ x: { dtype: 'float32', shape: [2], data: new Float64Array(2) } }), ArgumentError, /tensors\["x"\]\.data: dtype float32 needs a Float32Array, got Float64Array/],
    [() => encodeSafetensors({ x: { dtype: 'float32', shape: [3], data: new Float32Array(2) } }), ShapeMismatchError, /tensors\["x"\]: data has 2 elements but shape \[3\] needs 3/],
    [() => encodeSafetensors({ x: { dtype: 'float32', shape: [-2], data: new Float32Array(2) } }), ArgumentError, /tensors\["x"\]\.shape\[0\]: must be an integer ≥ 0, got -2/],
    [() => encodeSafetensors({ x: { dtype: 'complex64' as DType, shape: [1], data: new Float32Array(1) } }), ArgumentError, /tensors\["x"\]\.dtype: unknown dtype "complex64"/],
    [() => encodeSafetensors({ m: tensor('bool', [2], new Uint8Array([1, 2])) }), ArgumentError, /tensors\["m"\]\.data\[1\]: a bool must be 0 or 1, got 2/],
    [() => encodeSafetensors({ __metadata__: x }), ArgumentError, /__metadata__ is reserved/],
    [() => encodeSafetensors({ ['a\udc00']: x }), ArgumentError, /lone surrogate/],
    [() => encodeSafetensors({ x }, { k: 2 as unknown as string }), ArgumentError, /metadata\.k: must be a string, got 2/],
    [() => encodeSafetensors([] as unknown as Record<string, Tensor>), ArgumentError, /tensors: must be an object/],
    // The limit counts UTF-8 bytes: 2 per 'é'.
    [() => encodeSafetensors({ x }, { k: 'é'.repeat(MAX_HEADER_BYTES / 2) }), ArgumentError, /would be 100000078 bytes, over the 100000000-byte limit/],
    [() => encodeSafetensorsInto(new Uint8Array(10), { x }), ArgumentError, /target: needs 72 bytes, got 10/],
    [() => new BatchEncoder({ initialCapacity: -1 }), ArgumentError, /options\.initialCapacity: must be an integer ≥ 0, got -1/],
    [() => decodeSafetensors('abc' as unknown as Uint8Array), ArgumentError, /bytes: must be a Uint8Array/],
  ];
  for (const [fn, type, pattern] of bad) {
    assert.throws(fn, (e: unknown) => e instanceof type && pattern.test((e as Error).message), String(pattern));
  }
  // Scalars carry batch-level values and need no batch dimension.
  const t = tensor('float32', [], new Float32Array([0.5]));
  assert.deepEqual(decodeBatch(encodeBatch({ x, t }, batch())).tensors.t!.shape, []);
});

test('encodeSafetensorsInto writes at the start of the target and leaves the rest alone', () => {
  const x = tensor('int16', [3], new Int16Array([1, -2, 3]));
  const target = new Uint8Array(200).fill(0xaa);
  const n = encodeSafetensorsInto(target, { x }, { a: 'b' });
  assert.equal(hex(target.subarray(0, n)), hex(encodeSafetensors({ x }, { a: 'b' })));
  assert.ok(target.subarray(n).every((b) => b === 0xaa));
});

test('BatchEncoder reuses its buffer and grows when a batch does not fit', () => {
  const make = (rows: number) => ({
    x: tensor('float32', [rows, 4], new Float32Array(rows * 4).map((_, i) => i)),
  });
  const meta = (rows: number, step: number): BatchMetadata => batch({ step, sampleIds: Array.from({ length: rows }, (_, i) => i) });
  const own = new Uint8Array(4096);
  const encoder = new BatchEncoder({ buffer: own });
  const first = encoder.encode(make(8), meta(8, 1));
  assert.equal(first.buffer, own.buffer);
  assert.equal(hex(first), hex(encodeBatch(make(8), meta(8, 1))));
  const second = encoder.encode(make(8), meta(8, 2));
  assert.equal(second.buffer, own.buffer);
  assert.equal(decodeBatch(second).metadata.step, 2);
  const big = encoder.encode(make(512), meta(512, 3));
  assert.notEqual(big.buffer, own.buffer);
  assert.ok(encoder.capacity >= 2 * 4096 && encoder.capacity >= big.length);
  assert.equal(hex(big), hex(encodeBatch(make(512), meta(512, 3))));
  const after = encoder.encode(make(8), meta(8, 4));
  assert.equal(after.buffer, big.buffer);
  assert.equal(encodedSize(make(8), meta(8, 4)), after.length);
});

// Arbitrary tensors of every dtype: random bytes (every bit pattern, NaN payloads included),
// bools as 0/1.
function arbTensor(leading?: number): fc.Arbitrary<Tensor> {
  const dims = leading === undefined
    ? fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 })
    : fc.oneof(fc.constant([] as number[]), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }).map((rest) => [leading, ...rest]));
  return fc.record({ dtype: fc.constantFrom(...DTYPES), shape: dims }).chain(({ dtype, shape }) => {
    const ctor = typedArrayConstructor(dtype);
    const count = shape.reduce((a, b) => a * b, 1);
    const bytes = dtype === 'bool'
      ? fc.uint8Array({ min: 0, max: 1, minLength: count, maxLength: count })
      : fc.uint8Array({ minLength: count * ctor.BYTES_PER_ELEMENT, maxLength: count * ctor.BYTES_PER_ELEMENT });
    return bytes.map((b) => tensor(dtype, shape, new ctor(b.slice().buffer, 0, count)));
  });
}

const arbName = fc.string({ unit: 'binary', maxLength: 6 }).filter((s) => s !== '__metadata__' && !/\p{Cs}/u.test(s));
const arbText = fc.string({ unit: 'binary', maxLength: 12 }).filter((s) => !/\p{Cs}/u.test(s));
const arbTensors = (leading?: number) => fc.dictionary(arbName, arbTensor(leading), { maxKeys: 5, noNullPrototype: true });

const arbBatch = fc.integer({ min: 0, max: 4 }).chain((rows) =>
  fc.record({
    tensors: arbTensors(rows),
    metadata: fc.record({
      job: arbText.filter((s) => s.length > 0),
      epoch: fc.maxSafeNat(),
      rank: fc.nat(),
      step: fc.maxSafeNat(),
      sampleIds: fc.array(fc.maxSafeNat(), { minLength: rows, maxLength: rows }),
      extra: fc.dictionary(arbName.filter((k) => !['wire_version', 'job', 'epoch', 'rank', 'step', 'sample_ids'].includes(k)), arbText, { maxKeys: 3, noNullPrototype: true }),
    }, { noNullPrototype: true }),
  }),
);

function assertSameTensors(actual: Record<string, Tensor>, expected: Record<string, Tensor>): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [name, t] of Object.entries(expected)) {
    const got = actual[name]!;
    assert.equal(got.dtype, t.dtype);
    assert.deepEqual(got.shape, t.shape);
    assert.equal(hex(bytesOf(got.data)), hex(bytesOf(t.data)));
  }
}

test('property: any batch round-trips through encode and decode, as zero-copy views', () => {
  fc.assert(
    fc.property(arbBatch, ({ tensors, metadata }) => {
      const bytes = encodeBatch(tensors, metadata);
      assert.equal(bytes.length, encodedSize(tensors, metadata));
      const decoded = decodeBatch(bytes);
      assertSameTensors(decoded.tensors, tensors);
      assert.deepEqual(decoded.metadata, metadata);
      for (const t of Object.values(decoded.tensors)) assert.equal(t.data.buffer, bytes.buffer);
      assert.equal(hex(encodeBatch(decoded.tensors, decoded.metadata)), hex(bytes));
    }),
    { numRuns: 200 },
  );
});

test('property: any tensors and string metadata round-trip through the generic codec', () => {
  fc.assert(
    fc.property(arbTensors(), fc.option(fc.dictionary(arbText, arbText, { maxKeys: 4, noNullPrototype: true }), { nil: undefined }), (tensors, metadata) => {
      const bytes = encodeSafetensors(tensors, metadata);
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      assert.equal(n % 8, 0);
      const decoded = decodeSafetensors(bytes);
      assertSameTensors(decoded.tensors, tensors);
      assert.deepEqual(decoded.metadata, metadata);
    }),
    { numRuns: 200 },
  );
});

function decodesOrFormatError(bytes: Uint8Array): void {
  for (const decode of [decodeSafetensors, decodeBatch]) {
    try {
      decode(bytes);
    } catch (e) {
      if (!(e instanceof FormatError)) throw new Error(`${decode.name} threw ${String(e)}, not a FormatError`, { cause: e });
    }
  }
}

test('property: corrupting header bytes gives a FormatError or a valid decode, nothing else', () => {
  fc.assert(
    fc.property(
      arbBatch,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
      ({ tensors, metadata }, edits) => {
        const bytes = encodeBatch(tensors, metadata);
        const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
        for (const [at, value] of edits) bytes[at % (8 + n)] = value;
        decodesOrFormatError(bytes);
      },
    ),
    { numRuns: 500 },
  );
});

test('property: arbitrary JSON in place of the header or of any header field gives only FormatErrors', () => {
  const valid = { __metadata__: { wire_version: '1', job: 'j', epoch: '0', rank: '0', step: '0', sample_ids: '[1]' }, a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } };
  const paths = [[], ['__metadata__'], ['__metadata__', 'sample_ids'], ['__metadata__', 'epoch'], ['a'], ['a', 'dtype'], ['a', 'shape'], ['a', 'data_offsets'], ['b']];
  fc.assert(
    fc.property(fc.constantFrom(...paths), fc.jsonValue(), fc.uint8Array({ maxLength: 8 }), (path, value, data) => {
      let header: unknown = structuredClone(valid);
      if (path.length === 0) header = value;
      else {
        let node = header as Record<string, unknown>;
        for (const key of path.slice(0, -1)) node = node[key] as Record<string, unknown>;
        node[path.at(-1)!] = value;
      }
      decodesOrFormatError(blob(header, data.length === 4 ? data : new Uint8Array(4)));
      decodesOrFormatError(blob(header, data));
    }),
    { numRuns: 500 },
  );
});
