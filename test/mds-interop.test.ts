/**
 * MDS interop with the reference implementation, run for real: datasets our MDSWriter writes are
 * read by Mosaic streaming's own reader (`StreamingDataset` over the local directory, which
 * parses index.json, decompresses, verifies a hash and decodes with `MDSReader`), and every value
 * it decodes must be the value we wrote. The Python JSON dialect we write (floats as `repr`,
 * ensure_ascii) is checked against CPython too. The venv comes from scripts/setup-python.sh;
 * these tests fail, never skip, when it cannot be had.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { REPO_ROOT, runPython, runPythonFile } from './support/python.ts';
import { type DType, type Tensor, typedArrayConstructor } from '../core/src/tensor.ts';
import type { MDSSample } from '../core/src/format/mds/encodings.ts';
import { pythonFloatRepr, pythonJsonDumps, type JsonValue } from '../core/src/format/mds/python-json.ts';
import { FIXTURES, loadExpected, reviveSample } from '../core/src/format/mds/test-values.ts';
import { MDSWriter, type MDSWriterOptions } from '../core/src/format/mds/writer.ts';

/** Reads each dataset directory with Mosaic and prints its samples in expected.json's conventions. */
const PY_READ = String.raw`
import json, math, sys, tempfile
import numpy as np
from streaming import StreamingDataset
from streaming.base.format.mds.encodings import mds_encode

sys.path.insert(0, ${JSON.stringify(path.join(REPO_ROOT, 'scripts'))})
from interop_values import float_value, json_value, ndarray_value

def image_bytes(img):
    # Mosaic decodes jpeg/png with Image.open(BytesIO(data)): the buffer is the stored file.
    data = img.fp.getvalue()
    img.load()
    return data.hex()

def value(encoding, v):
    family = encoding.split(":")[0]
    if family in ("float16", "float32", "float64", "str_float"):
        return float_value(v)
    if family in ("uint64", "int64", "int", "str_int"):
        return str(int(v))
    if family in ("uint8", "uint16", "uint32", "int8", "int16", "int32"):
        return int(v)
    if family in ("str", "str_decimal"):
        return str(v)
    if family == "bytes":
        return v.hex()
    if family in ("jpeg", "png"):
        return image_bytes(v)
    if family == "pil":
        return mds_encode("pil", v).hex()
    if family in ("list[jpeg]", "list[png]", "jpeg_array", "jpegarray"):
        return [image_bytes(x) for x in v]
    if family == "list[pil]":
        return [mds_encode("pil", x).hex() for x in v]
    if family == "json":
        return json_value(v)
    if family == "ndarray":
        return ndarray_value(v)
    raise ValueError(encoding)

request = json.loads(sys.stdin.read())
# StreamingDataset leaves lock files in the temp folder: keep them in the test's own.
tempfile.tempdir = request["tmp"]
out = {}
for spec in request["datasets"]:
    ds = StreamingDataset(local=spec["dir"], batch_size=1, validate_hash=spec["validate_hash"])
    columns = spec["columns"]
    out[spec["dir"]] = {
        "shards": [s.samples for s in ds.shards],
        "samples": [{c: value(columns[c], ds[i][c]) for c in columns} for i in range(len(ds))],
    }
print(json.dumps(out))
`;

interface Written {
  readonly dir: string;
  readonly columns: Record<string, string>;
  readonly samples: readonly MDSSample[];
  readonly shardSamples: readonly number[];
  readonly validateHash: string | null;
}

async function write(root: string, name: string, options: Omit<MDSWriterOptions, 'out'>, samples: readonly MDSSample[]): Promise<Written> {
  const dir = path.join(root, name);
  const writer = new MDSWriter({ out: dir, ...options });
  for (const s of samples) await writer.write(s);
  const index = await writer.finish();
  return {
    dir,
    columns: { ...options.columns },
    samples,
    shardSamples: index.shards.map((s) => s.samples),
    validateHash: options.hashes?.[0] ?? null,
  };
}

/** What Mosaic's reader decoded, per dataset directory. */
function readWithMosaic(tmp: string, datasets: readonly Written[]): Record<string, { shards: number[]; samples: Record<string, unknown>[] }> {
  const specs = datasets.map((d) => ({ dir: d.dir, columns: d.columns, validate_hash: d.validateHash }));
  return JSON.parse(runPython(PY_READ, { input: JSON.stringify({ tmp, datasets: specs }), timeoutMs: 120_000 })) as Record<string, { shards: number[]; samples: Record<string, unknown>[] }>;
}

// --- Generated samples: every non-image encoding, with values at the edges of each type.

const NDARRAY_DTYPES: DType[] = ['uint8', 'int8', 'uint16', 'int16', 'float16', 'uint32', 'int32', 'float32', 'uint64', 'int64', 'float64'];

function tensorArbitrary(dtype: DType, shape: fc.Arbitrary<number[]>): fc.Arbitrary<Tensor> {
  return shape.chain((dims) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const element: fc.Arbitrary<number | bigint> =
      dtype === 'float64' ? fc.double()
      : dtype === 'float32' ? fc.float()
      : dtype === 'float16' ? fc.integer({ min: 0, max: 0xffff }) // raw bits
      : dtype === 'int64' ? fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })
      : dtype === 'uint64' ? fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })
      : fc.integer({ min: dtype.startsWith('u') ? 0 : -(2 ** (Number(dtype.replace(/\D/g, '')) - 1)), max: 2 ** (Number(dtype.replace(/\D/g, '')) - (dtype.startsWith('u') ? 0 : 1)) - 1 });
    return fc.array(element, { minLength: n, maxLength: n }).map((values) => {
      const data = new (typedArrayConstructor(dtype))(n);
      values.forEach((v, i) => ((data as unknown as (number | bigint)[])[i] = v));
      return { dtype, shape: dims, data };
    });
  });
}

const dims = fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 3 });
// Decimal texts that Python's str(Decimal(text)) gives back unchanged.
const decimalText = fc
  .tuple(fc.constantFrom('', '-'), fc.bigInt({ min: 0n, max: 10n ** 20n }), fc.option(fc.stringMatching(/^\d{1,5}$/), { nil: undefined }))
  .map(([sign, whole, fraction]) => `${sign}${whole}${fraction === undefined ? '' : `.${fraction}`}`);

const GENERATED_COLUMNS = {
  u8: 'uint8', u16: 'uint16', u32: 'uint32', u64: 'uint64', i8: 'int8', i16: 'int16', i32: 'int32', i64: 'int64', int: 'int',
  f16: 'float16', f32: 'float32', f64: 'float64', s: 'str', b: 'bytes', j: 'json', si: 'str_int', sf: 'str_float', sd: 'str_decimal',
  nd: 'ndarray', nd_f64: 'ndarray:float64', nd_fixed: 'ndarray:int16:2,2',
};

const generatedSample: fc.Arbitrary<MDSSample> = fc.record({
  u8: fc.integer({ min: 0, max: 255 }),
  u16: fc.integer({ min: 0, max: 65535 }),
  u32: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  u64: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  i8: fc.integer({ min: -128, max: 127 }),
  i16: fc.integer({ min: -32768, max: 32767 }),
  i32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  i64: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  int: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  f16: fc.double().map((x) => Math.f16round(x)),
  f32: fc.float(),
  f64: fc.double(),
  s: fc.string({ unit: 'binary', maxLength: 20 }),
  b: fc.uint8Array({ maxLength: 30 }),
  j: fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<JsonValue>,
  si: fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }),
  sf: fc.double(),
  sd: decimalText,
  nd: fc.constantFrom(...NDARRAY_DTYPES).chain((dtype) => tensorArbitrary(dtype, dims)),
  nd_f64: tensorArbitrary('float64', dims),
  nd_fixed: tensorArbitrary('int16', fc.constant([2, 2])),
});

test('Mosaic reads what our writer writes: every encoding, size-limit rollover, each compression, hashes', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'shardline-mds-interop-'));
  try {
    // structuredClone: fast-check makes some objects with a null prototype, which deepStrictEqual tells apart.
    const generated = fc.sample(generatedSample, { seed: 20240611, numRuns: 40 }).map((s) => structuredClone(s));
    const fixture = loadExpected().datasets['all-encodings']!;
    const imageSamples = fixture.samples!.map((s) => reviveSample(fixture.columns, s));
    const wide = (shape: number[]): Tensor => ({ dtype: 'uint8', shape, data: new Uint8Array(shape[0]! * shape[1]!).map((_, i) => i % 251) });
    const datasets = [
      await write(root, 'generated-gz', { columns: GENERATED_COLUMNS, compression: 'gz:1', hashes: ['sha1', 'xxh64'], sizeLimit: 2000 }, generated),
      await write(root, 'images-zstd', { columns: fixture.columns, compression: 'zstd', hashes: ['md5', 'xxh3_128'], sizeLimit: '4kb' }, imageSamples),
      // Dimensions of 256 and 65536 need uint16 and uint32 shape entries.
      await write(root, 'wide-br', { columns: { a: 'ndarray' }, compression: 'br:4', hashes: ['blake2b'] }, [{ a: wide([1, 256]) }, { a: wide([65536, 1]) }]),
      await write(root, 'tiny-limit', { columns: { v: 'uint8', w: 'str' }, sizeLimit: 100 }, [{ v: 1, w: 'a' }, { v: 2, w: 'b' }]),
    ];
    assert.ok(datasets[0]!.shardSamples.length > 2, `rollover: ${datasets[0]!.shardSamples}`);
    assert.ok(datasets[1]!.shardSamples.length > 1, `rollover: ${datasets[1]!.shardSamples}`);
    assert.deepEqual(datasets[3]!.shardSamples, [0, 1, 1]);
    const tmp = path.join(root, 'tmp');
    mkdirSync(tmp);
    const read = readWithMosaic(tmp, datasets);
    for (const d of datasets) {
      const got = read[d.dir]!;
      assert.deepEqual(got.shards, d.shardSamples, d.dir);
      assert.equal(got.samples.length, d.samples.length, d.dir);
      got.samples.forEach((s, i) => assert.deepStrictEqual(reviveSample(d.columns, s), d.samples[i], `${path.basename(d.dir)} sample ${i}`));
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('our Python JSON is CPython\'s: repr of any double, and json.loads then json.dumps changes nothing', () => {
  const doubles = [
    0, -0, 1, -1, 0.1, 1e-5, 1e-4, 1.5e-7, 1e15, 1e16, 123456789012345680, 1e22, 5e-324, Number.MAX_VALUE, Number.MIN_VALUE, 2 ** 53, 0.30000000000000004,
    ...fc.sample(fc.double({ noNaN: true, noDefaultInfinity: true }), { seed: 7, numRuns: 500 }),
  ];
  const values = fc.sample(fc.jsonValue({ maxDepth: 4 }), { seed: 11, numRuns: 200 }) as JsonValue[];
  const texts = [...values.map((v) => pythonJsonDumps(v)), pythonJsonDumps({ a: [NaN, Infinity, -Infinity, -0, 2 ** 60], 'é\u{1F600}\u007f': '\u0000"\\' })];
  const script = String.raw`
import json, struct, sys
data = json.loads(sys.stdin.read())
reprs = [repr(struct.unpack("<d", bytes.fromhex(h))[0]) for h in data["doubles"]]
same = [json.dumps(json.loads(t)) == t for t in data["texts"]]
print(json.dumps({"reprs": reprs, "same": same}))
`;
  const hex = doubles.map((x) => Buffer.from(new Float64Array([x]).buffer).toString('hex'));
  const out = JSON.parse(runPython(script, { input: JSON.stringify({ doubles: hex, texts }) })) as { reprs: string[]; same: boolean[] };
  doubles.forEach((x, i) => assert.equal(pythonFloatRepr(x), out.reprs[i], `repr(${x})`));
  texts.forEach((t, i) => assert.ok(out.same[i], `json.dumps(json.loads(t)) != t for ${t}`));
});

test('the committed fixtures are exactly what scripts/make-mds-fixtures.py writes with Mosaic\'s MDSWriter', () => {
  const out = mkdtempSync(path.join(tmpdir(), 'shardline-mds-fixtures-'));
  try {
    runPythonFile(path.join(REPO_ROOT, 'scripts', 'make-mds-fixtures.py'), { args: [out], timeoutMs: 120_000 });
    const files = (dir: string) => readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
      .sort();
    assert.deepEqual(files(out), files(FIXTURES));
    for (const file of files(FIXTURES)) {
      assert.ok(readFileSync(path.join(out, file)).equals(readFileSync(path.join(FIXTURES, file))), `${file} differs: run \`npx node test/support/python.ts scripts/make-mds-fixtures.py\``);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
