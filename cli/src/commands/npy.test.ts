import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { FormatError, type Tensor } from '@shardline/core';
import { runPython } from '../../../test/support/python.ts';
import { NpyFile, type NpyRow, parsePythonLiteral } from './npy.ts';
import { bytesOf, encodeNpy, tempDir } from './test-support.ts';

async function rowsOf(file: string): Promise<NpyRow[]> {
  const out: NpyRow[] = [];
  for await (const row of (await NpyFile.open(file)).rows()) out.push(row);
  return out;
}

function write(dir: string, name: string, data: Uint8Array): string {
  const file = path.join(dir, name);
  writeFileSync(file, data);
  return file;
}

test('a float32 matrix reads row by row as tensors of the other axes, with the MDS encoding of a row', async (t) => {
  const dir = tempDir(t, 'npy');
  const values = Float32Array.from({ length: 24 }, (_, i) => i / 4 - 2);
  const file = write(dir, 'x.npy', encodeNpy('<f4', [2, 3, 4], bytesOf(values)));
  const npy = await NpyFile.open(file);
  assert.equal(npy.length, 2);
  assert.deepEqual(npy.rowShape, [3, 4]);
  assert.equal(npy.mdsEncoding, 'ndarray:float32:3,4');
  const rows = (await rowsOf(file)) as Tensor[];
  assert.equal(rows.length, 2);
  rows.forEach((r, i) => {
    assert.equal(r.dtype, 'float32');
    assert.deepEqual(r.shape, [3, 4]);
    assert.deepEqual([...r.data], [...values.subarray(i * 12, (i + 1) * 12)]);
  });
});

test('1-D arrays give scalars: int64 as bigint, float16 as numbers; big-endian data is swapped', async (t) => {
  const dir = tempDir(t, 'npy');
  const labels = BigInt64Array.of(-3n, 0n, 2n ** 62n);
  const ints = write(dir, 'y.npy', encodeNpy('<i8', [3], bytesOf(labels)));
  assert.equal((await NpyFile.open(ints)).mdsEncoding, 'int64');
  assert.deepEqual(await rowsOf(ints), [-3n, 0n, 2n ** 62n]);

  const half = new DataView(new ArrayBuffer(6));
  [1.5, -0.25, 65504].forEach((v, i) => half.setFloat16(2 * i, v, true));
  assert.deepEqual(await rowsOf(write(dir, 'h.npy', encodeNpy('<f2', [3], new Uint8Array(half.buffer)))), [1.5, -0.25, 65504]);

  const big = new DataView(new ArrayBuffer(16));
  [1, -2, 300000, 7].forEach((v, i) => big.setInt32(4 * i, v, false));
  const rows = (await rowsOf(write(dir, 'b.npy', encodeNpy('>i4', [2, 2], new Uint8Array(big.buffer))))) as Tensor[];
  assert.deepEqual(rows.map((r) => [...r.data]), [[1, -2], [300000, 7]]);
});

test('format versions 2 and 3 (4-byte header length, UTF-8 header) read like version 1', async (t) => {
  const dir = tempDir(t, 'npy');
  const data = bytesOf(Uint16Array.of(1, 2, 3, 4));
  for (const version of [2, 3] as const) {
    const rows = (await rowsOf(write(dir, `v${version}.npy`, encodeNpy('<u2', [2, 2], data, { version })))) as Tensor[];
    assert.deepEqual(rows.map((r) => [...r.data]), [[1, 2], [3, 4]]);
  }
});

test('hostile and unsupported files are refused with the file and the reason named, never unpickled', async (t) => {
  const dir = tempDir(t, 'npy');
  const refuse = async (name: string, bytes: Uint8Array, pattern: RegExp): Promise<void> => {
    const file = write(dir, name, bytes);
    await assert.rejects(NpyFile.open(file), (e: Error) => e instanceof FormatError && e.message.startsWith(`${name}: `) && pattern.test(e.message), name);
  };
  const eight = new Uint8Array(8);
  await refuse('object.npy', encodeNpy('|O', [1], eight), /object array: np\.save pickles its elements, and Shardline never unpickles/);
  await refuse('bool.npy', encodeNpy('|b1', [8], eight), /bool array.*astype\(np\.uint8\)/);
  await refuse('text.npy', encodeNpy('<U2', [1], eight), /unicode string array/);
  await refuse('complex.npy', encodeNpy('<c8', [1], eight), /complex/);
  await refuse('longdouble.npy', encodeNpy('<f16', [1], new Uint8Array(16)), /not supported/);
  await refuse('struct.npy', encodeNpy('', [1], eight, { dict: "{'descr': [('a', '<i4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }" }), /structured dtype/);
  await refuse('fortran.npy', encodeNpy('<i4', [2, 2], new Uint8Array(16), { fortranOrder: true }), /Fortran order.*ascontiguousarray/);
  await refuse('short.npy', encodeNpy('<i4', [3], eight), /truncated: shape \(3\) of <i4 needs 12 bytes of data, the file has 8/);
  await refuse('long.npy', encodeNpy('<i4', [1], eight), /4 bytes follow the array's data/);
  await refuse('magic.npy', Buffer.from('PK\x03\x04 not an npy file'), /not a \.npy file/);
  await refuse('version.npy', Buffer.from('\x93NUMPY\x09\x00\x10\x00', 'latin1'), /version 9\.0 is unknown/);
  const huge = encodeNpy('<i4', [1], eight);
  huge.writeUInt16LE(60_000, 8);
  await refuse('huge-header.npy', huge, /header is 60000 bytes, over the limit of 10000/);
  await refuse('code.npy', encodeNpy('', [1], eight, { dict: "{'descr': __import__('os').system('true'), 'fortran_order': False, 'shape': (1,), }" }), /header: unexpected "_"/);
  await refuse('key.npy', encodeNpy('', [1], eight, { dict: "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), 'extra': 1, }" }), /unknown key "extra"/);
  await refuse('int-shape.npy', encodeNpy('', [1], eight, { dict: "{'descr': '<i8', 'fortran_order': False, 'shape': (1), }" }), /shape must be a tuple, got 1/);
  await refuse('negative.npy', encodeNpy('', [1], eight, { dict: "{'descr': '<i8', 'fortran_order': False, 'shape': (-1,), }" }), /shape\[0\] must be an integer ≥ 0/);
  await refuse('scalar.npy', encodeNpy('<i8', [], eight), /0-d array has no rows/);
  await refuse('empty-rows.npy', encodeNpy('<i8', [4, 0], new Uint8Array(0)), /rows of shape \(0\) are empty/);
  await refuse('cut.npy', encodeNpy('<i8', [1], eight).subarray(0, 30), /ends inside its .*header/);
});

test('the header parser reads the Python literals np.save writes, and nothing else', () => {
  const header = parsePythonLiteral("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }   \n", 'x');
  assert.deepEqual(header, new Map<unknown, unknown>([['descr', '<f8'], ['fortran_order', false], ['shape', [3n, 4n]]]));
  assert.deepEqual(parsePythonLiteral('(5L,)', 'x'), [5n]);
  assert.deepEqual(parsePythonLiteral('()', 'x'), []);
  assert.deepEqual(parsePythonLiteral('[None, True, "a\\\'b"]', 'x'), [null, true, "a'b"]);
  for (const bad of ['{', "{'a': 1", '(1.5,)', "{'a': 1, 'a': 2}", "{1: 'a'}", 'lambda: 0', "'unterminated", '1 2', '('.repeat(40) + ')'.repeat(40)]) {
    assert.throws(() => parsePythonLiteral(bad, 'f.npy'), (e: Error) => e instanceof FormatError && e.message.startsWith('f.npy: header: '), bad);
  }
});

const DTYPES = [
  { descr: 'u1', ctor: Uint8Array },
  { descr: 'i1', ctor: Int8Array },
  { descr: 'u2', ctor: Uint16Array },
  { descr: 'i2', ctor: Int16Array },
  { descr: 'u4', ctor: Uint32Array },
  { descr: 'i4', ctor: Int32Array },
  { descr: 'f4', ctor: Float32Array },
  { descr: 'f8', ctor: Float64Array },
] as const;

test('property: any array np.save could write reads back row by row, exactly, in either byte order', async (t) => {
  const dir = tempDir(t, 'npy');
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...DTYPES),
      fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 3 }),
      fc.integer({ min: 0, max: 5 }),
      fc.boolean(),
      fc.uint8Array({ minLength: 8 * 5 * 64, maxLength: 8 * 5 * 64 }),
      async ({ descr, ctor }, rowShape, rows, bigEndian, noise) => {
        const shape = [rows, ...rowShape];
        const width: number = ctor.BYTES_PER_ELEMENT;
        const count = shape.reduce((a, b) => a * b, 1);
        const native = noise.slice(0, count * width);
        // Floats from random bits may be NaN, whose payload a Float32Array round trip may not keep: compare bits.
        const stored = new Uint8Array(native);
        if (bigEndian) for (let i = 0; i < stored.length; i += width) stored.subarray(i, i + width).reverse();
        const order = width === 1 ? '|' : bigEndian ? '>' : '<';
        const file = write(dir, `p${n++}.npy`, encodeNpy(`${order}${descr}`, shape, stored));
        const got = await rowsOf(file);
        assert.equal(got.length, rows);
        const rowBytes = (count / Math.max(rows, 1)) * width;
        got.forEach((row, r) => {
          const expected = native.subarray(r * rowBytes, (r + 1) * rowBytes);
          if (rowShape.length > 0) {
            assert.deepEqual((row as Tensor).shape, rowShape);
            assert.deepEqual(bytesOf((row as Tensor).data), expected);
            return;
          }
          const back = scalarBytes(descr, row as number);
          // A NaN's payload need not survive a trip through a JavaScript number.
          if (Number.isNaN(row)) assert.ok(Number.isNaN(scalarValue(descr, expected)));
          else assert.deepEqual(back, expected);
        });
      },
    ),
    { numRuns: 60 },
  );
});

function scalarBytes(descr: string, value: number): Uint8Array {
  const ctor = DTYPES.find((d) => d.descr === descr)!.ctor;
  return bytesOf(ctor.of(value));
}

function scalarValue(descr: string, bytes: Uint8Array): number {
  const ctor = DTYPES.find((d) => d.descr === descr)!.ctor;
  return new ctor(bytes.slice().buffer)[0]!;
}

test('interop: files written by NumPy itself read back with the values NumPy holds', async (t) => {
  const dir = tempDir(t, 'npy');
  const script = String.raw`
import json, sys
import numpy as np
d = sys.argv[1]
arrays = {
  "f32": np.arange(24, dtype="<f4").reshape(2, 3, 4) / 8,
  "i64": np.array([-(2**63), 2**62, 7], dtype="<i8"),
  "be": np.arange(6, dtype=">u2").reshape(3, 2) * 1000,
  "u8": np.arange(10, dtype=np.uint8).reshape(5, 2),
  "f16": np.array([0.5, -2.0, 1024.0], dtype=np.float16),
  "fortran1d": np.asfortranarray(np.array([1.5, 2.5])),
}
for name, a in arrays.items():
  np.save(f"{d}/{name}.npy", a)
with open(f"{d}/v2.npy", "wb") as f:
  np.lib.format.write_array(f, np.arange(4, dtype=np.int32).reshape(2, 2), version=(2, 0))
np.save(f"{d}/object.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
print(json.dumps({k: [str(x) for x in a.reshape(-1).tolist()] for k, a in arrays.items()}))
`;
  const expected = JSON.parse(runPython(script, { args: [dir] })) as Record<string, string[]>;
  const flat = async (name: string): Promise<string[]> =>
    (await rowsOf(path.join(dir, `${name}.npy`))).flatMap((r) => (typeof r === 'object' ? Array.from(r.data as ArrayLike<number>) : [r])).map(String);
  // Integers compare as exact digits; floats as numbers (Python prints 2.0 where JavaScript prints 2).
  for (const name of ['i64', 'be', 'u8']) assert.deepEqual(await flat(name), expected[name], name);
  for (const name of ['f32', 'f16', 'fortran1d']) assert.deepEqual((await flat(name)).map(Number), expected[name]!.map(Number), name);
  assert.deepEqual(await flat('v2'), ['0', '1', '2', '3']);
  assert.equal((await NpyFile.open(path.join(dir, 'be.npy'))).mdsEncoding, 'ndarray:uint16:2');
  await assert.rejects(NpyFile.open(path.join(dir, 'object.npy')), /object\.npy: descr "\|O" is an object array/);
});
