import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { ConcatDataset } from './concat.ts';
import { ListDataset } from './list.ts';

function parts(lengths: number[]): { datasets: ListDataset<string>[]; flat: string[] } {
  const datasets = lengths.map((n, d) => new ListDataset(Array.from({ length: n }, (_, k) => `${d}:${k}`)));
  return { datasets, flat: datasets.flatMap((ds) => [...ds.items]) };
}

test('ConcatDataset looks up across datasets, skipping empty ones', () => {
  const { datasets } = parts([2, 0, 0, 3, 0, 1]);
  const ds = new ConcatDataset(datasets);
  assert.equal(ds.length, 6);
  assert.deepEqual([...ds.cumulativeSizes], [2, 2, 2, 5, 5, 6]);
  assert.equal(ds.get(0), '0:0');
  assert.equal(ds.get(2), '3:0');
  assert.equal(ds.get(4), '3:2');
  assert.equal(ds.get(5), '5:0');
  assert.equal(ds.get(-1), '5:0');
  assert.equal(ds.get(-6), '0:0');
  assert.deepEqual(ds.datasetIndex(2), { dataset: 3, offset: 0 });
  assert.deepEqual(ds.datasetIndex(-2), { dataset: 3, offset: 2 });
});

test('ConcatDataset refuses out-of-range indices', () => {
  const ds = new ConcatDataset(parts([2, 0, 1]).datasets);
  assert.throws(() => ds.get(3), IndexOutOfRangeError);
  assert.throws(() => ds.get(-4), IndexOutOfRangeError);
  assert.throws(() => new ConcatDataset(parts([0, 0]).datasets).get(0), IndexOutOfRangeError);
});

test('ConcatDataset passes async samples through', async () => {
  const asyncDs = { length: 2, get: async (i: number) => `async ${i}` };
  const ds = new ConcatDataset<string>([new ListDataset(['x']), asyncDs]);
  assert.equal(await ds.get(2), 'async 1');
});

test('ConcatDataset refuses bad arguments, naming them', () => {
  const isArg = (name: string) => (e: unknown) => e instanceof ArgumentError && e.argument === name;
  assert.throws(() => new ConcatDataset([]), isArg('datasets'));
  assert.throws(() => new ConcatDataset('x' as never), isArg('datasets'));
  assert.throws(() => new ConcatDataset([new ListDataset([1]), {} as never]), isArg('datasets[1]'));
  assert.throws(() => new ConcatDataset([{ length: -1, get: () => 0 }]), isArg('datasets[0].length'));
  assert.throws(() => new ConcatDataset([{ length: 1.5, get: () => 0 }]), isArg('datasets[0].length'));
});

test('ConcatDataset lookup matches the flat array, for any lengths including empties', () => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 6 }), { minLength: 1, maxLength: 12 }), (lengths) => {
      const { datasets, flat } = parts(lengths);
      const ds = new ConcatDataset(datasets);
      assert.equal(ds.length, flat.length);
      for (let i = 0; i < flat.length; i++) {
        assert.equal(ds.get(i), flat[i]);
        assert.equal(ds.get(i - flat.length), flat[i]);
        const { dataset, offset } = ds.datasetIndex(i);
        assert.equal(datasets[dataset]!.get(offset), flat[i]);
      }
      assert.throws(() => ds.get(flat.length), IndexOutOfRangeError);
    }),
  );
});
