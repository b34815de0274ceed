/**
 * toTfjs on tfjs's CPU backend: every dtype's mapping and values, shapes from scalars to
 * zero-size, zero-copy for the dtypes tfjs stores, the range and lossy errors, and a property:
 * int32 and float32 tensors round-trip exactly through encodeBatch → decodeBatch → toTfjs.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import fc from 'fast-check';
import { ArgumentError, decodeBatch, type DType, encodeBatch, type Tensor, tensor } from '@shardline/core';
import * as tf from '@tensorflow/tfjs';
import type { TrainerBatch } from './batches.ts';
import { TFJS_DTYPE, toTfjs } from './tfjs.ts';

before(async () => {
  await tf.setBackend('cpu');
});

/** Runs `fn` and checks that it left no tfjs tensor behind. */
function leakFree<T>(fn: () => T): T {
  const before = tf.memory().numTensors;
  const out = fn();
  assert.equal(tf.memory().numTensors, before, 'tensors left behind');
  return out;
}

function convertOne(t: Tensor, allowLossy = false): { dtype: string; shape: number[]; values: number[] } {
  const result = toTfjs({ t }, { allowLossy });
  const x = result.t!;
  try {
    return { dtype: x.dtype, shape: x.shape, values: Array.from(x.dataSync()) };
  } finally {
    tf.dispose(result);
  }
}

function throwsArgument(fn: () => unknown, argument: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ArgumentError, `expected an ArgumentError, got ${String(e)}`);
    assert.equal(e.argument, argument);
    assert.match(e.message, pattern);
    return true;
  });
}

test('every dtype maps to the tfjs dtype of TFJS_DTYPE, with its values', () => {
  const cases: [DType, Tensor['data'], number[]][] = [
    ['float32', new Float32Array([1.5, -2.25, 3e38, Number.NEGATIVE_INFINITY]), [1.5, -2.25, Math.fround(3e38), Number.NEGATIVE_INFINITY]],
    ['int32', new Int32Array([-2147483648, 0, 2147483647, 7]), [-2147483648, 0, 2147483647, 7]],
    ['bool', new Uint8Array([1, 0, 0, 1]), [1, 0, 0, 1]],
    ['uint8', new Uint8Array([0, 1, 128, 255]), [0, 1, 128, 255]],
    ['int8', new Int8Array([-128, -1, 0, 127]), [-128, -1, 0, 127]],
    ['int16', new Int16Array([-32768, -1, 0, 32767]), [-32768, -1, 0, 32767]],
    ['uint16', new Uint16Array([0, 1, 32768, 65535]), [0, 1, 32768, 65535]],
    ['uint32', new Uint32Array([0, 1, 65536, 2147483647]), [0, 1, 65536, 2147483647]],
    ['int64', new BigInt64Array([-2147483648n, -1n, 0n, 2147483647n]), [-2147483648, -1, 0, 2147483647]],
    ['uint64', new BigUint64Array([0n, 1n, 4096n, 2147483647n]), [0, 1, 4096, 2147483647]],
    // float16 bits: 1.0, -2.0, the smallest subnormal (2^-24), 65504 (the largest finite)
    ['float16', new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7bff]), [1, -2, 2 ** -24, 65504]],
    // bfloat16 bits: 1.0, -2.0, π as bfloat16 (3.140625), 2^127
    ['bfloat16', new Uint16Array([0x3f80, 0xc000, 0x4049, 0x7f00]), [1, -2, 3.140625, 2 ** 127]],
    ['float64', new Float64Array([0.1, -1e-3, 1e30, 2]), [Math.fround(0.1), Math.fround(-1e-3), Math.fround(1e30), 2]],
  ];
  assert.deepEqual(new Set(cases.map(([d]) => d)), new Set(Object.keys(TFJS_DTYPE)), 'every core dtype is covered');
  for (const [dtype, data, expected] of cases) {
    const got = leakFree(() => convertOne(tensor(dtype, [2, 2], data), true));
    assert.equal(got.dtype, TFJS_DTYPE[dtype], dtype);
    assert.deepEqual(got.shape, [2, 2], dtype);
    assert.deepEqual(got.values, expected, dtype);
  }
});

test('float16 and bfloat16 specials: signed zeros, infinities and NaN', () => {
  const half = convertOne(tensor('float16', [6], new Uint16Array([0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555])));
  assert.ok(Object.is(half.values[0], 0) && Object.is(half.values[1], -0));
  assert.deepEqual(half.values.slice(2, 4), [Infinity, -Infinity]);
  assert.ok(Number.isNaN(half.values[4]));
  assert.equal(half.values[5], 0.333251953125, '0x3555 is 1/3 in float16');
  const brain = convertOne(tensor('bfloat16', [5], new Uint16Array([0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0])));
  assert.ok(Object.is(brain.values[0], 0) && Object.is(brain.values[1], -0));
  assert.deepEqual(brain.values.slice(2, 4), [Infinity, -Infinity]);
  assert.ok(Number.isNaN(brain.values[4]));
});

test('every float16 bit pattern converts as Float16Array reads it', (t) => {
  const Float16 = (globalThis as { Float16Array?: new (buffer: ArrayBufferLike) => ArrayLike<number> }).Float16Array;
  if (Float16 === undefined) {
    t.skip('this Node has no Float16Array to compare with');
    return;
  }
  const bits = new Uint16Array(0x10000).map((_, i) => i);
  const reference = new Float16(bits.buffer);
  const got = convertOne(tensor('float16', [bits.length], bits)).values;
  for (let i = 0; i < bits.length; i++) {
    if (!Object.is(got[i], reference[i]) && !(Number.isNaN(got[i]) && Number.isNaN(reference[i]))) {
      assert.fail(`float16 bits 0x${i.toString(16)}: got ${got[i]}, expected ${reference[i]}`);
    }
  }
});

test('shapes: scalars, vectors, rank 4, and zero-size tensors of every dtype', () => {
  const shapes = [[], [1], [3], [2, 1, 3, 1], [0], [0, 5], [4, 0, 2]];
  for (const dtype of Object.keys(TFJS_DTYPE) as DType[]) {
    for (const shape of shapes) {
      const got = leakFree(() => convertOne(tensor(dtype, shape), true));
      assert.deepEqual(got.shape, shape, `${dtype} [${shape.join(', ')}]`);
      assert.equal(got.values.length, shape.reduce((a, b) => a * b, 1));
      assert.ok(got.values.every((v) => v === 0));
    }
  }
  const scalar = toTfjs({ s: tensor('int64', [], new BigInt64Array([-42n])) }).s!;
  assert.equal(scalar.rank, 0);
  assert.equal(scalar.arraySync(), -42);
  scalar.dispose();
});

test('float32, int32 and bool are not copied: the tfjs tensor reads the batch buffer', () => {
  const bytes = encodeBatch(
    { x: tensor('float32', [2, 2], new Float32Array([1, 2, 3, 4])), y: tensor('int32', [2], new Int32Array([5, 6])), m: tensor('bool', [2], new Uint8Array([1, 0])) },
    { job: 'j', epoch: 0, rank: 0, step: 0, sampleIds: [0, 1] },
  );
  const { tensors } = decodeBatch(bytes);
  assert.equal(tensors.x!.data.buffer, bytes.buffer, 'decodeBatch gives views');
  const result = toTfjs(tensors);
  // dataSync() on the CPU backend returns the stored array itself for float32 and int32.
  assert.equal(result.x!.dataSync(), tensors.x!.data);
  assert.equal(result.y!.dataSync(), tensors.y!.data);
  assert.deepEqual(Array.from(result.m!.dataSync()), [1, 0]);
  assert.equal(result.m!.dtype, 'bool');
  tf.dispose(result);
});

test('a TrainerBatch converts like its tensors, names and order kept', () => {
  const batch: TrainerBatch = {
    type: 'batch',
    job: 'j',
    rank: 0,
    epoch: 1,
    step: 2,
    sampleIds: [7, 8],
    tensors: { label: tensor('uint8', [2], new Uint8Array([3, 9])), image: tensor('float32', [2, 3]), ['__proto__']: tensor('int32', [2]) },
    extra: {},
    byteLength: 0,
  };
  const result = toTfjs(batch);
  assert.deepEqual(Object.keys(result), ['label', 'image', '__proto__']);
  assert.deepEqual(result.label!.arraySync(), [3, 9]);
  assert.equal(Object.getPrototypeOf(result), Object.prototype, 'a tensor named __proto__ stays a plain field');
  tf.dispose(result);
});

test('a 64-bit or uint32 value outside int32 is an error naming the tensor, element and value, leaving no tensor', () => {
  const ok = tensor('float32', [1]);
  for (const [dtype, data, index, value] of [
    ['int64', new BigInt64Array([0n, 2147483648n]), 1, '2147483648'],
    ['int64', new BigInt64Array([-2147483649n]), 0, '-2147483649'],
    ['uint64', new BigUint64Array([1n, 2n, 18446744073709551615n]), 2, '18446744073709551615'],
    ['uint32', new Uint32Array([2147483648]), 0, '2147483648'],
  ] as const) {
    leakFree(() =>
      throwsArgument(
        () => toTfjs({ a: ok, ids: tensor(dtype, [data.length], data) }),
        'tensors["ids"]',
        new RegExp(`${dtype} element ${index} is ${value}, outside tfjs int32's range \\[-2147483648, 2147483647\\]`),
      ),
    );
  }
});

test('float64 needs allowLossy; with it, rounding is accepted but overflow to Infinity is not', () => {
  const x = tensor('float64', [3], new Float64Array([1, 0.1, -5]));
  leakFree(() => throwsArgument(() => toTfjs({ a: tensor('int32', [1]), x }), 'tensors["x"]', /is float64.*allowLossy: true/));
  assert.deepEqual(convertOne(x, true).values, [1, Math.fround(0.1), -5]);
  const big = tensor('float64', [4], new Float64Array([Infinity, Number.NaN, 3.4028235e38, -1e39]));
  throwsArgument(() => toTfjs({ big }, { allowLossy: true }), 'tensors["big"]', /float64 element 3 is -1e\+39, beyond float32's range/);
  const edges = convertOne(tensor('float64', [3], new Float64Array([Infinity, Number.NaN, 3.4028235e38])), true).values;
  assert.equal(edges[0], Infinity);
  assert.ok(Number.isNaN(edges[1]));
  assert.equal(edges[2], 3.4028234663852886e38, 'rounds to the largest float32');
});

test('malformed input is an ArgumentError naming the field', () => {
  const cases: [unknown, string, RegExp][] = [
    [{ x: null }, 'tensors["x"]', /must be a tensor/],
    [{ x: { dtype: 'complex64', shape: [1], data: new Float32Array(1) } }, 'tensors["x"].dtype', /unknown dtype "complex64"/],
    [{ x: { dtype: 'float32', shape: [2], data: new Float64Array(2) } }, 'tensors["x"].data', /float32 needs a Float32Array, got a Float64Array/],
    [{ x: { dtype: 'float32', shape: [2, -1], data: new Float32Array(2) } }, 'tensors["x"].shape[1]', /integer ≥ 0, got -1/],
    [{ x: { dtype: 'float32', shape: '2', data: new Float32Array(2) } }, 'tensors["x"].shape', /must be an array/],
    [{ x: { dtype: 'int32', shape: [3], data: new Int32Array(2) } }, 'tensors["x"].data', /has 2 elements but shape \[3\] needs 3/],
    [{ m: { dtype: 'bool', shape: [2], data: new Uint8Array([1, 2]) } }, 'tensors["m"].data[1]', /a bool must be 0 or 1, got 2/],
    [null, 'batch', /must be a batch/],
    [[tensor('float32', [1])], 'batch', /must be a batch/],
  ];
  for (const [input, argument, pattern] of cases) {
    leakFree(() => throwsArgument(() => toTfjs(input as Record<string, Tensor>), argument, pattern));
  }
  throwsArgument(() => toTfjs({}, { tf: {} as typeof tf }), 'options.tf', /must be a tfjs module/);
  throwsArgument(() => toTfjs({}, { allowLossy: 'yes' as unknown as boolean }), 'options.allowLossy', /must be a boolean/);
});

test('the tf option makes the tensors with the given module', () => {
  const made: string[] = [];
  const spy: Pick<typeof tf, 'tensor'> = {
    tensor: ((values, shape, dtype) => {
      made.push(`${dtype}:${String(shape)}`);
      return tf.tensor(values, shape, dtype);
    }) as typeof tf.tensor,
  };
  const result = toTfjs({ a: tensor('uint16', [2]), b: tensor('float16', [1, 1]) }, { tf: spy });
  assert.deepEqual(made, ['int32:2', 'float32:1,1']);
  tf.dispose(result);
});

test('property: int32 and float32 tensors round-trip exactly through encodeBatch → decodeBatch → toTfjs', () => {
  const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);
  // A batch has one row per sample id in every tensor with a dimension: shapes are [] or [rows, ...].
  const tensorOf = (rows: number): fc.Arbitrary<Tensor> =>
    fc
      .tuple(
        fc.oneof(fc.constant<number[]>([]), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }).map((rest) => [rows, ...rest])),
        fc.constantFrom('float32' as const, 'int32' as const),
      )
      .chain(([shape, dtype]) =>
        (dtype === 'float32'
          ? fc.float32Array({ minLength: size(shape), maxLength: size(shape) })
          : fc.int32Array({ minLength: size(shape), maxLength: size(shape) })
        ).map((data) => tensor(dtype, shape, data)),
      );
  const batchArb = fc.integer({ min: 0, max: 4 }).chain((rows) =>
    fc.record({ rows: fc.constant(rows), tensors: fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }).filter((k) => k !== '__metadata__'), tensorOf(rows), { maxKeys: 4 }) }),
  );
  fc.assert(
    fc.property(batchArb, ({ rows, tensors }) => {
      const sampleIds = Array.from({ length: rows }, (_, i) => i);
      const decoded = decodeBatch(encodeBatch(tensors, { job: 'j', epoch: 0, rank: 0, step: 0, sampleIds }));
      const result = toTfjs(decoded.tensors);
      try {
        assert.deepEqual(Object.keys(result).sort(), Object.keys(tensors).sort());
        for (const [name, t] of Object.entries(tensors)) {
          const x = result[name]!;
          assert.equal(x.dtype, t.dtype);
          assert.deepEqual(x.shape, t.shape);
          const got = x.dataSync();
          // Bit for bit: NaN payloads and -0 included.
          assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), name);
        }
      } finally {
        tf.dispose(result);
      }
    }),
    { numRuns: 200 },
  );
});
