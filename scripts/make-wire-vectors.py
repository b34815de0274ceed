"""Writes the batch wire format test vectors with the reference `safetensors` package.

Every `.safetensors` file under core/src/wire/fixtures/ is made here by the reference
implementation (huggingface/safetensors, PyPI, pinned by scripts/setup-python.sh), and
manifest.json records what each file must decode to: tensor order, dtypes, shapes, offsets, the raw
bytes in hex and the values computed by numpy, independently of the bytes. The TypeScript tests
decode every vector to those values and re-encode every vector to the same bytes.

Run it from the repository root with the interop venv (made by `bash scripts/setup-python.sh`):

    npx node test/support/python.ts scripts/make-wire-vectors.py [OUT_DIR]

OUT_DIR defaults to core/src/wire/fixtures. The output is deterministic: running it twice gives
the same files, and a test checks that the committed files are what this script writes.

Why the retry loop in `reference_bytes`: safetensors keeps `__metadata__` in a Rust HashMap, so
the order of metadata keys in its JSON header changes from call to call (tensor order does not:
tensors are sorted by dtype, then name). Every order is equally valid safetensors. We call the
reference serializer until its output has the metadata keys in the order our encoder writes
(the order of `meta` here), so each vector is byte for byte an output of the reference package.
"""

import hashlib
import json
import math
import pathlib
import struct
import sys

import numpy as np
import safetensors
from safetensors import TensorSpec, serialize
from safetensors.numpy import save

from interop_values import flat_values  # shared with the other fixture scripts and the interop tests

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "core" / "src" / "wire" / "fixtures"
MAX_ATTEMPTS = 1_000_000

# numpy dtype name -> (our DType name, safetensors dtype code)
DTYPES = {
    "float64": ("float64", "F64"),
    "float32": ("float32", "F32"),
    "float16": ("float16", "F16"),
    "int64": ("int64", "I64"),
    "int32": ("int32", "I32"),
    "int16": ("int16", "I16"),
    "int8": ("int8", "I8"),
    "uint64": ("uint64", "U64"),
    "uint32": ("uint32", "U32"),
    "uint16": ("uint16", "U16"),
    "uint8": ("uint8", "U8"),
    "bool": ("bool", "BOOL"),
}


class BF16:
    """A bfloat16 tensor: numpy has no bfloat16, so we hold its raw bits in a uint16 array."""

    def __init__(self, floats, shape):
        f32 = np.asarray(floats, dtype=np.float32).reshape(shape)
        # Every value below is exactly representable in bfloat16, so truncation is exact.
        self.bits = (f32.view(np.uint32) >> 16).astype(np.uint16)
        assert np.array_equal(
            (self.bits.astype(np.uint32) << 16).view(np.float32), f32, equal_nan=True
        ), "a bfloat16 test value is not exactly representable"


def header_of(blob):
    n = struct.unpack_from("<Q", blob)[0]
    return json.loads(blob[8 : 8 + n], object_pairs_hook=lambda pairs: pairs)


def metadata_order(blob):
    for key, value in header_of(blob):
        if key == "__metadata__":
            return [k for k, _ in value]
    return None


def serialize_once(tensors, meta):
    if not any(isinstance(t, BF16) for t in tensors.values()):
        return save(tensors, meta)
    # BF16 needs the same reference serializer that save() calls, fed with explicit specs.
    keep_alive = []
    specs = {}
    for name, t in tensors.items():
        # Not np.ascontiguousarray: it turns a 0-d array into shape [1].
        arr = t.bits if isinstance(t, BF16) else t
        assert arr.flags.c_contiguous, name
        keep_alive.append(arr)
        dtype = "bfloat16" if isinstance(t, BF16) else arr.dtype.name
        specs[name] = TensorSpec(
            dtype=dtype, shape=list(arr.shape), data_ptr=arr.ctypes.data, data_len=arr.nbytes
        )
    return bytes(serialize(specs, metadata=meta))


def reference_bytes(tensors, meta):
    want = None if meta is None else list(meta)
    for _ in range(MAX_ATTEMPTS):
        blob = serialize_once(tensors, meta)
        if metadata_order(blob) == want:
            return blob
    raise SystemExit(f"no output with metadata order {want} after {MAX_ATTEMPTS} attempts")


def expected_values(t):
    """Flat row-major values, computed by numpy from the arrays (not from the bytes)."""
    if isinstance(t, BF16):
        return [int(v) for v in t.bits.reshape(-1)]
    return flat_values(t)


def describe(tensors, blob):
    header = dict(header_of(blob))
    n = struct.unpack_from("<Q", blob)[0]
    start = 8 + n
    out = {}
    order = sorted(
        (k for k in header if k != "__metadata__"),
        key=lambda k: tuple(dict(header[k])["data_offsets"]),
    )
    for name in order:
        info = dict(header[name])
        t = tensors[name]
        if isinstance(t, BF16):
            dtype, code, shape = "bfloat16", "BF16", list(t.bits.shape)
        else:
            dtype, code = DTYPES[t.dtype.name]
            shape = list(t.shape)
        assert info["dtype"] == code and info["shape"] == shape, (name, info)
        begin, end = info["data_offsets"]
        out[name] = {
            "dtype": dtype,
            "safetensorsDtype": code,
            "shape": shape,
            "dataOffsets": [begin, end],
            "hex": blob[start + begin : start + end].hex(),
            "values": expected_values(t),
        }
    return order, out


def batch_meta(job, epoch, rank, step, sample_ids, extra=None):
    """The string map our encodeBatch writes, in the order it writes it."""
    meta = {
        "wire_version": "1",
        "job": job,
        "epoch": str(epoch),
        "rank": str(rank),
        "step": str(step),
        "sample_ids": json.dumps(sample_ids, separators=(",", ":")),
    }
    for key in sorted(extra or {}):
        meta[key] = extra[key]
    logical = {"job": job, "epoch": epoch, "rank": rank, "step": step, "sampleIds": sample_ids,
               "extra": dict(extra or {})}
    return meta, logical


def vectors():
    f = np.float64
    yield "f32-matrix", "one F32 tensor, no metadata (the reference crate's own serialization test)", {
        "attn.0": np.arange(6, dtype=np.float32).reshape(1, 2, 3),
    }, None, None

    yield "all-dtypes", "every supported dtype with edge values, one metadata key", {
        "f64": np.array([0.0, -0.0, 1.5, -2.25, math.inf, -math.inf, math.nan, 1e308, 5e-324], dtype=f),
        "f32": np.array([0.0, -0.0, 1.5, -2.25, math.inf, -math.inf, math.nan, 3.4028235e38, 1e-45],
                        dtype=np.float32),
        "f16": np.array([0.0, -0.0, 1.0, -2.0, 65504.0, math.inf, math.nan, 6e-8], dtype=np.float16),
        "bf16": BF16([0.0, -0.0, 1.0, -2.5, math.inf, math.nan, 0.15625, 3.3895314e38], [2, 4]),
        "i64": np.array([-(2**63), -1, 0, 1, 2**63 - 1, 2**53 + 1], dtype=np.int64).reshape(2, 3),
        "u64": np.array([0, 1, 2**53 + 1, 2**64 - 1], dtype=np.uint64),
        "i32": np.array([-(2**31), -1, 0, 2**31 - 1], dtype=np.int32),
        "u32": np.array([0, 1, 2**32 - 1], dtype=np.uint32),
        "i16": np.array([-(2**15), -1, 0, 2**15 - 1, 7], dtype=np.int16),
        "u16": np.array([0, 1, 2**16 - 1], dtype=np.uint16),
        "i8": np.array([-128, -1, 0, 127, 5], dtype=np.int8),
        "u8": np.array([0, 1, 128, 255, 3, 9, 27], dtype=np.uint8),
        "bool": np.array([[True, False, True], [False, False, True]]),
    }, {"format": "pt"}, None

    yield "scalar-and-empty", "scalar shape [] tensors and zero-size tensors", {
        "scalar": np.array(42, dtype=np.int64),
        "half": np.array(-0.5, dtype=f),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "none": np.zeros((0,), dtype=np.uint8),
        "flag": np.array(True),
    }, None, None

    yield "ordering", "write order: dtype rank, then names in UTF-8 byte order; JSON escapes", {
        "b": np.array([1.0], dtype=np.float32),
        "a": np.array([2.0], dtype=np.float32),
        "A": np.array([3.0], dtype=np.float32),
        "a.b": np.array([4.0], dtype=np.float32),
        "Z": np.array([5.0], dtype=f),
        "z": np.array([6], dtype=np.uint8),
        "é": np.array([7], dtype=np.uint8),
        "\ufb01": np.array([8], dtype=np.uint8),
        "\U0001d538": np.array([9], dtype=np.uint8),
        'tab\tand "quote"': np.array([10], dtype=np.int16),
        "w": np.array([11], dtype=np.int32),
        "v": np.array([12], dtype=np.uint32),
        "u": np.array([13], dtype=np.uint16),
        "t": np.array([14], dtype=np.uint64),
        "s": np.array([15], dtype=np.int64),
        "r": np.array([16], dtype=np.int8),
        "q": np.array([True]),
        "p": np.array([1.0], dtype=np.float16),
    }, {"note": 'tab\t quote" backslash\\ newline\n ctl\x01\x1f del\x7f é 😀 \u2028 / end'}, None

    meta, logical = batch_meta("demo-job", 3, 1, 42, [17, 3, 2**53 - 1, 0])
    yield "batch-basic", "a collated batch of 4 samples with batch metadata", {
        "image": np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3),
        "label": np.array([3, -1, 0, 9], dtype=np.int64),
        "mask": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=bool),
        "embedding": np.array([[0.5, -1.0], [2.0, 0.25], [0.0, -0.0], [1.5, 3.0]], dtype=np.float16),
        "weight": np.array([1.0, 0.5, 0.25, 2.0], dtype=np.float32),
        "tokens": np.arange(20, dtype=np.int32).reshape(4, 5) - 3,
        "logits": BF16([1.0, -1.0, 0.5, 2.0, -0.25, 8.0, 0.0, 1.5, -3.0, 4.0, 0.125, -64.0], [4, 3]),
        "temperature": np.array(0.75, dtype=np.float32),
    }, meta, logical

    meta, logical = batch_meta(
        "job-ü", 12, 7, 123456789, [5, 1_000_000_007],
        {"dataset": "s3://bucket/path/", "note": 'é 😀 "q" \\ \n'},
    )
    yield "batch-extra", "batch metadata with extra string fields (sorted after the fixed ones)", {
        "x": np.array([[1.0, 2.0], [3.0, 4.0]], dtype=f),
        "y": np.array([1, 0], dtype=np.uint8),
    }, meta, logical

    meta, logical = batch_meta("empty-batch", 0, 0, 0, [])
    yield "batch-empty", "a batch of zero samples", {
        "x": np.zeros((0, 4), dtype=np.float32),
        "y": np.zeros((0,), dtype=np.int64),
    }, meta, logical

    yield "metadata-only", "no tensors, one metadata key", {}, {"k": "v"}, None
    yield "empty", "no tensors, no metadata", {}, None, None


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "generator": "scripts/make-wire-vectors.py",
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "vectors": [],
    }
    for name, description, tensors, meta, logical in vectors():
        blob = reference_bytes(tensors, meta)
        order, described = describe(tensors, blob)
        file = f"{name}.safetensors"
        (out / file).write_bytes(blob)
        manifest["vectors"].append({
            "name": name,
            "description": description,
            "file": file,
            "size": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "metadata": meta,
            "batch": logical,
            "order": order,
            "tensors": described,
        })
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")
    print(f"wrote {len(manifest['vectors'])} vectors to {out}")


if __name__ == "__main__":
    main()
