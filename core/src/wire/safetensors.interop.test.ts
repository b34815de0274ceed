/**
 * Interop with the reference Python `safetensors` package, run for real (the venv comes from
 * scripts/setup-python.sh; these tests fail, never skip, when it cannot be had).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { type DType, type Tensor, tensor, typedArrayConstructor } from '../tensor.ts';
import { runPython, runPythonFile, REPO_ROOT } from '../../../test/support/python.ts';
import { type BatchMetadata, batchMetadataToStrings } from './batch-metadata.ts';
import { decodeBatch, encodeBatch, encodeSafetensors } from './safetensors.ts';
import { FIXTURES, type ManifestValue, expectedElement, hex } from './test-vectors.ts';

const DTYPES: DType[] = ['float64', 'float32', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint64', 'uint32', 'uint16', 'uint8', 'bool'];

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(path.join(tmpdir(), 'shardline-wire-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Values as numpy reports them, in the manifest's JSON conventions. */
const PY_VALUES = String.raw`
import sys
import numpy as np

sys.path.insert(0, ${JSON.stringify(path.join(REPO_ROOT, 'scripts'))})
from interop_values import flat_values as values
`;

const PY_LOAD = String.raw`
import json, sys
import numpy as np
from safetensors import deserialize, safe_open
from safetensors.numpy import load
${PY_VALUES}
reader = sys.stdin.read()
exec(reader)  # defines read_batch(blob), the trainer snippet of docs/wire-format.md
out = {}
for path in sys.argv[1:]:
    blob = open(path, "rb").read()
    raw = {name: info for name, info in deserialize(blob)}
    result = {"tensors": {}}
    with safe_open(path, framework="np") as f:
        result["metadata"] = f.metadata()
        result["order"] = list(f.offset_keys())
        for name in f.keys():
            if raw[name]["dtype"] == "BF16":  # numpy has no bfloat16: check the raw bits
                bits = np.frombuffer(bytes(raw[name]["data"]), dtype=np.uint16)
                result["tensors"][name] = {"dtype": "bfloat16", "shape": raw[name]["shape"], "values": [int(v) for v in bits]}
                continue
            a = f.get_tensor(name)
            result["tensors"][name] = {"dtype": a.dtype.name, "shape": list(a.shape), "values": values(a)}
    if all(info["dtype"] != "BF16" for info in raw.values()):
        from_bytes = load(blob)
        assert sorted(from_bytes) == sorted(result["tensors"]), path
        for name, a in from_bytes.items():
            assert values(a) == result["tensors"][name]["values"], name
        if result["metadata"] is not None and "sample_ids" in result["metadata"]:
            tensors, info = read_batch(blob)
            result["read_batch"] = info
            assert sorted(tensors) == sorted(result["tensors"])
    out[path] = result
print(json.dumps(out))
`;

function readerSnippet(): string {
  const doc = readFileSync(path.join(REPO_ROOT, 'docs', 'wire-format.md'), 'utf8');
  const match = /```python\n([\s\S]*?)```/.exec(doc);
  assert.ok(match, 'docs/wire-format.md has no ```python block');
  assert.match(match[1]!, /def read_batch\(blob/);
  return match[1]!;
}

function ramp(dtype: DType, shape: number[]): Tensor {
  const ctor = typedArrayConstructor(dtype);
  const count = shape.reduce((a, b) => a * b, 1);
  const data = new ctor(count);
  for (let i = 0; i < count; i++) {
    const v = dtype === 'bool' ? i % 2 : dtype === 'float16' ? 0x3c00 + i : dtype === 'bfloat16' ? 0x3f80 + i : (i % 2 === 0 ? 1 : -1) * i * 3;
    const unsigned = dtype.startsWith('uint') || dtype === 'bool' || dtype === 'float16' || dtype === 'bfloat16';
    const value = unsigned ? Math.abs(v) : v;
    (data as unknown as (number | bigint)[])[i] = dtype === 'int64' || dtype === 'uint64' ? BigInt(value) : value;
  }
  return tensor(dtype, shape, data);
}

test('Python safetensors loads what we encode: tensors, metadata, and the documented read_batch', () => {
  const i64 = tensor('int64', [3], new BigInt64Array([-(2n ** 63n), 2n ** 53n + 1n, 2n ** 63n - 1n]));
  const u64 = tensor('uint64', [3], new BigUint64Array([0n, 2n ** 53n + 1n, 2n ** 64n - 1n]));
  const f64 = tensor('float64', [3], new Float64Array([-0, Number.NaN, Number.NEGATIVE_INFINITY]));
  const allDtypes = Object.fromEntries(DTYPES.map((d) => [`t_${d}`, ramp(d, [3, 2])]));
  const cases: { name: string; tensors: Record<string, Tensor>; metadata?: BatchMetadata; strings?: Record<string, string> }[] = [
    {
      name: 'all-dtypes-batch',
      tensors: { ...allDtypes, i64, u64, f64, temperature: tensor('float32', [], new Float32Array([0.25])) },
      metadata: { job: 'interop', epoch: 4, rank: 63, step: 1000, sampleIds: [2 ** 53 - 1, 0, 77], extra: { note: 'é 😀 "q"' } },
    },
    {
      name: 'trainer-batch',
      tensors: { image: ramp('uint8', [2, 4, 4, 3]), label: ramp('int64', [2]), weight: ramp('float32', [2]), mask: ramp('bool', [2, 5]) },
      metadata: { job: 'mnist', epoch: 1, rank: 2, step: 3, sampleIds: [12, 5] },
    },
    {
      name: 'generic',
      tensors: { scalar: ramp('int32', []), empty: ramp('float32', [0, 3]), half: ramp('float16', [2, 2]) },
      strings: { format: 'np' },
    },
    { name: 'no-metadata', tensors: { x: ramp('int8', [4]) } },
  ];
  const results = withTempDir((dir) => {
    const files = cases.map((c) => {
      const file = path.join(dir, `${c.name}.safetensors`);
      writeFileSync(file, c.metadata ? encodeBatch(c.tensors, c.metadata) : encodeSafetensors(c.tensors, c.strings));
      return file;
    });
    const stdout = runPython(PY_LOAD, { args: files, input: readerSnippet() });
    const parsed = JSON.parse(stdout) as Record<string, unknown>;
    return files.map((f) => parsed[f] as {
      metadata: Record<string, string> | null;
      order: string[];
      tensors: Record<string, { dtype: string; shape: number[]; values: ManifestValue[] }>;
      read_batch?: Record<string, unknown>;
    });
  });
  cases.forEach((c, k) => {
    const got = results[k]!;
    const wantMetadata = c.metadata ? batchMetadataToStrings(c.metadata) : c.strings ?? null;
    assert.deepEqual(got.metadata, wantMetadata, c.name);
    assert.deepEqual(got.order.slice().sort(), Object.keys(c.tensors).sort(), c.name);
    for (const [name, t] of Object.entries(c.tensors)) {
      const py = got.tensors[name]!;
      assert.equal(py.dtype, t.dtype, `${c.name}/${name}`);
      assert.deepEqual(py.shape, t.shape, `${c.name}/${name}`);
      assert.equal(py.values.length, t.data.length, `${c.name}/${name}`);
      py.values.forEach((v, i) => {
        assert.ok(Object.is(t.data[i], expectedElement(t.dtype, v)), `${c.name}/${name}[${i}]: python ${String(v)}, ours ${String(t.data[i])}`);
      });
    }
    if (c.name === 'trainer-batch') {
      const m = c.metadata!;
      assert.deepEqual(got.read_batch, { job: m.job, epoch: m.epoch, rank: m.rank, step: m.step, sample_ids: m.sampleIds });
    }
  });
});

const PY_RESAVE = String.raw`
import json, struct, sys
import numpy as np
from safetensors import TensorSpec, deserialize, serialize
from safetensors.numpy import save

NUMPY = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
         "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16,
         "U8": np.uint8, "BOOL": np.bool_}

def resave(blob):
    n = struct.unpack_from("<Q", blob)[0]
    pairs = json.loads(blob[8:8 + n], object_pairs_hook=lambda p: p)
    meta = next((dict(v) for k, v in pairs if k == "__metadata__"), None)
    order = None if meta is None else list(meta)
    tensors = {}
    for name, info in deserialize(blob):
        if info["dtype"] == "BF16":
            tensors[name] = ("bfloat16", np.frombuffer(bytes(info["data"]), dtype=np.uint16).reshape(info["shape"]))
        else:
            tensors[name] = (None, np.frombuffer(bytes(info["data"]), dtype=NUMPY[info["dtype"]]).reshape(info["shape"]))
    for _ in range(100000):
        if all(kind is None for kind, _ in tensors.values()):
            out = save({k: a for k, (_, a) in tensors.items()}, meta)
        else:
            specs = {k: TensorSpec(dtype=kind or a.dtype.name, shape=list(a.shape), data_ptr=a.ctypes.data, data_len=a.nbytes)
                     for k, (kind, a) in tensors.items()}
            out = bytes(serialize(specs, metadata=meta))
        m = struct.unpack_from("<Q", out)[0]
        got = next((list(dict(v)) for k, v in json.loads(out[8:8 + m], object_pairs_hook=lambda p: p) if k == "__metadata__"), None)
        if got == order:  # metadata key order varies between calls in the reference
            return out
    raise SystemExit("metadata order never matched")

mismatches = []
for path in sys.argv[1:]:
    blob = open(path, "rb").read()
    again = resave(blob)
    if again != blob:
        mismatches.append({"file": path, "ours": blob.hex(), "reference": again.hex()})
print(json.dumps({"checked": len(sys.argv) - 1, "mismatches": mismatches}))
`;

test('property: for random tensors the reference re-serializes our bytes to the same bytes', () => {
  const name = fc.string({ unit: 'binary', maxLength: 5 }).filter((s) => s !== '__metadata__' && !/\p{Cs}/u.test(s));
  const arbTensor = fc
    .record({ dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }) })
    .chain(({ dtype, shape }) => {
      const ctor = typedArrayConstructor(dtype);
      const count = shape.reduce((a, b) => a * b, 1);
      const bytes = dtype === 'bool'
        ? fc.uint8Array({ min: 0, max: 1, minLength: count, maxLength: count })
        : fc.uint8Array({ minLength: count * ctor.BYTES_PER_ELEMENT, maxLength: count * ctor.BYTES_PER_ELEMENT });
      return bytes.map((b) => tensor(dtype, shape, new ctor(b.slice().buffer, 0, count)));
    });
  const arbBlob = fc
    .tuple(
      fc.dictionary(name, arbTensor, { maxKeys: 6, noNullPrototype: true }),
      fc.option(fc.dictionary(name, fc.string({ unit: 'binary', maxLength: 8 }).filter((s) => !/\p{Cs}/u.test(s)), { maxKeys: 3, noNullPrototype: true }), { nil: undefined }),
    )
    // safetensors 0.8.0 writes invalid JSON (`{},"__metadata__":{}}`) for no tensors with an
    // empty metadata map; we write `{"__metadata__":{}}`. Leave that one case out.
    .filter(([tensors, metadata]) => !(Object.keys(tensors).length === 0 && metadata !== undefined && Object.keys(metadata).length === 0))
    .map(([tensors, metadata]) => encodeSafetensors(tensors, metadata));
  const blobs = fc.sample(arbBlob, { seed: 20240611, numRuns: 60 });
  const report = withTempDir((dir) => {
    const files = blobs.map((b, i) => {
      const file = path.join(dir, `case-${i}.safetensors`);
      writeFileSync(file, b);
      return file;
    });
    return JSON.parse(runPython(PY_RESAVE, { args: files })) as { checked: number; mismatches: unknown[] };
  });
  assert.equal(report.checked, blobs.length);
  assert.deepEqual(report.mismatches, []);
});

test('the committed test vectors are exactly what scripts/make-wire-vectors.py writes', () => {
  withTempDir((dir) => {
    runPythonFile(path.join(REPO_ROOT, 'scripts', 'make-wire-vectors.py'), { args: [dir] });
    const committed = readdirSync(FIXTURES).sort();
    assert.deepEqual(readdirSync(dir).sort(), committed);
    for (const file of committed) {
      assert.equal(hex(readFileSync(path.join(dir, file))), hex(readFileSync(path.join(FIXTURES, file))), file);
    }
  });
});

test('a batch written by the reference from Python decodes with its metadata', () => {
  const stdout = runPython(String.raw`
import json, sys
import numpy as np
from safetensors.numpy import save
blob = save({"x": np.arange(6, dtype=np.float32).reshape(3, 2), "y": np.array([1, 2, 3], dtype=np.int64)},
            {"wire_version": "1", "job": "py", "epoch": "2", "rank": "5", "step": "8",
             "sample_ids": json.dumps([4, 1, 9]), "origin": "python"})
sys.stdout.write(blob.hex())
`);
  const { tensors, metadata } = decodeBatch(new Uint8Array(Buffer.from(stdout, 'hex')));
  assert.deepEqual(metadata, { job: 'py', epoch: 2, rank: 5, step: 8, sampleIds: [4, 1, 9], extra: { origin: 'python' } });
  assert.deepEqual([...tensors.x!.data], [0, 1, 2, 3, 4, 5]);
  assert.deepEqual([...tensors.y!.data], [1n, 2n, 3n]);
});
