import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, IndexOutOfRangeError, ShapeMismatchError } from '../errors.ts';
import { Generator } from '../random.ts';
import { tensor } from '../tensor.ts';
import type { Tensor } from '../tensor.ts';
import { ListDataset } from './list.ts';
import { MapDataset, compose, flip, normalize, randomHorizontalFlip, toFloat32, withTransform } from './transforms.ts';

const isArg = (name: string) => (e: unknown) => e instanceof ArgumentError && e.argument === name;

test('compose applies left to right and stays synchronous while every step is', async () => {
  const f = compose((x: number) => x + 1, (x: number) => x * 10, (x: number) => `${x}`);
  assert.equal(f(2), '30');
  const g = compose((x: number) => x + 1, async (x: number) => x * 10, (x: number) => x - 1);
  const out = g(2);
  assert.ok(out instanceof Promise);
  assert.equal(await out, 29);
  assert.equal(compose<number>()(5), 5);
  assert.throws(() => compose((x: number) => x, 'no' as never), isArg('transforms[1]'));
});

test('MapDataset applies the transform lazily, to sync and async samples, with negative indices', async () => {
  let calls = 0;
  const ds = new MapDataset(new ListDataset([1, 2, 3]), (x: number) => {
    calls++;
    return x * 2;
  });
  assert.equal(calls, 0);
  assert.equal(ds.length, 3);
  assert.equal(ds.get(-1), 6);
  assert.equal(calls, 1);
  assert.throws(() => ds.get(3), IndexOutOfRangeError);
  const asyncSource = { length: 2, get: async (i: number) => i + 100 };
  assert.equal(await withTransform(asyncSource, (x: number) => x + 1).get(-2), 101);
  assert.throws(() => new MapDataset({} as never, (x: number) => x), isArg('dataset'));
  assert.throws(() => new MapDataset(new ListDataset([1]), 3 as never), isArg('transform'));
});

test('toFloat32 scales uint8 to [0, 1] and converts other dtypes by value', () => {
  const u8 = toFloat32(tensor('uint8', [3], Uint8Array.from([0, 51, 255])));
  assert.equal(u8.dtype, 'float32');
  assert.deepEqual([...u8.data], [0, Math.fround(0.2), 1]);
  assert.deepEqual([...toFloat32(tensor('int16', [2], Int16Array.from([-3, 7]))).data], [-3, 7]);
  assert.deepEqual([...toFloat32(tensor('int64', [1], BigInt64Array.from([5n]))).data], [5]);
  // float16 bits: 1.0 = 0x3c00, -2.5 = 0xc100, 2^-24 (smallest subnormal) = 0x0001
  assert.deepEqual([...toFloat32(tensor('float16', [3], Uint16Array.from([0x3c00, 0xc100, 0x0001]))).data], [1, -2.5, 2 ** -24]);
  // bfloat16 bits: the high half of a float32
  assert.deepEqual([...toFloat32(tensor('bfloat16', [2], Uint16Array.from([0x3f80, 0xc020]))).data], [1, -2.5]);
  assert.throws(() => toFloat32({} as never), isArg('tensor'));
});

test('normalize uses per-channel mean and std on the last axis by default', () => {
  const hwc = tensor('float32', [1, 2, 3], Float32Array.from([1, 2, 3, 4, 5, 6]));
  const out = normalize({ mean: [1, 2, 3], std: [1, 2, 4] })(hwc) as Tensor;
  assert.equal(out.dtype, 'float32');
  assert.deepEqual(out.shape, [1, 2, 3]);
  assert.deepEqual([...out.data], [0, 0, 0, 3, 1.5, 0.75]);
  const chw = tensor('uint8', [2, 1, 2], Uint8Array.from([10, 20, 30, 40]));
  const out2 = normalize({ mean: [10, 30], std: 10, channelAxis: 0 })(chw) as Tensor;
  assert.deepEqual([...out2.data], [0, 1, 0, 1]);
});

test('normalize refuses bad statistics and mismatched channels', () => {
  assert.throws(() => normalize({ mean: [0], std: [0] }), isArg('std[0]'));
  assert.throws(() => normalize({ mean: [Number.NaN], std: [1] }), isArg('mean[0]'));
  assert.throws(() => normalize({ mean: [], std: [1] }), isArg('mean'));
  assert.throws(() => normalize({ mean: [0, 0], std: [1, 1, 1] }), isArg('std'));
  assert.throws(() => normalize({ mean: 0, std: 1, channelAxis: 0.5 }), isArg('channelAxis'));
  assert.throws(() => normalize(null as never), isArg('options'));
  const t = tensor('float32', [2, 2]);
  assert.throws(() => normalize({ mean: [0, 0, 0], std: 1 })(t), ShapeMismatchError);
  assert.throws(() => normalize({ mean: 0, std: 1, channelAxis: 2 })(t), ShapeMismatchError);
});

test('flip mirrors the chosen axis; flipping twice is the identity', () => {
  const t = tensor('uint8', [2, 3, 1], Uint8Array.from([1, 2, 3, 4, 5, 6]));
  assert.deepEqual([...flip(t, -2).data], [3, 2, 1, 6, 5, 4]);
  assert.deepEqual([...flip(t, 0).data], [4, 5, 6, 1, 2, 3]);
  assert.throws(() => flip(t, 3), ShapeMismatchError);
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      (shape, axisSeed) => {
        const n = shape.reduce((a, b) => a * b, 1);
        const x = tensor('int32', shape, Int32Array.from({ length: n }, (_, k) => k));
        const axis = axisSeed % shape.length;
        const y = flip(x, axis);
        assert.deepEqual([...flip(y, axis).data], [...x.data]);
        assert.deepEqual([...(y.data as Int32Array)].sort((a, b) => a - b), [...x.data]);
      },
    ),
  );
});

test('randomHorizontalFlip is reproducible from its generator and flips about p of the time', () => {
  const img = tensor('uint8', [1, 2, 1], Uint8Array.from([1, 2]));
  const run = (seed: number) => {
    const t = randomHorizontalFlip({ generator: new Generator(seed) });
    return Array.from({ length: 1000 }, () => (t(img) as Tensor).data[0]);
  };
  const a = run(3);
  assert.deepEqual(run(3), a);
  assert.notDeepEqual(run(4), a);
  const flips = a.filter((v) => v === 2).length;
  assert.ok(flips > 400 && flips < 600, `flipped ${flips} of 1000`);
  const never = randomHorizontalFlip({ generator: new Generator(1), p: 0 });
  assert.equal(never(img), img);
  const always = randomHorizontalFlip({ generator: new Generator(1), p: 1, axis: -1 });
  assert.deepEqual([...(always(tensor('uint8', [1, 2], Uint8Array.from([1, 2]))) as Tensor).data], [2, 1]);
});

test('randomHorizontalFlip refuses a missing generator and bad p', () => {
  assert.throws(() => randomHorizontalFlip({} as never), isArg('generator'));
  assert.throws(() => randomHorizontalFlip({ generator: { random: () => 0 } as never }), isArg('generator'));
  assert.throws(() => randomHorizontalFlip({ generator: new Generator(1), p: 1.5 }), isArg('p'));
  assert.throws(() => randomHorizontalFlip({ generator: new Generator(1), axis: 1.5 }), isArg('axis'));
});
