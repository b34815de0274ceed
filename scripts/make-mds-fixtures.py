"""Writes the MDS test fixtures with Mosaic's own `MDSWriter` (mosaicml-streaming, pinned by
scripts/setup-python.sh).

Each folder under core/src/format/mds/fixtures/ is one small dataset (index.json and shard files)
written by the reference writer, and expected.json records, for each, its columns and settings,
the number of samples in each shard, and every sample's values in the JSON conventions below. The
values are checked here against what Mosaic's own reader (`StreamingDataset`) decodes, so
a fixture that Mosaic cannot read back is never written. The TypeScript tests read every dataset
to exactly those values, and write the same samples to the same bytes.

Run it from the repository root with the interop venv (made by `bash scripts/setup-python.sh`):

    npx node test/support/python.ts scripts/make-mds-fixtures.py [OUT_DIR]

OUT_DIR defaults to core/src/format/mds/fixtures. The output is deterministic (gzip's header
timestamp is pinned to 0; Mosaic would write the current time).

Value conventions in expected.json, by encoding:
- floats (float16/32/64, str_float): a number, or "NaN", "Infinity", "-Infinity", "-0"
- uint64, int64, int, str_int: the integer as a decimal string
- bytes, jpeg, png, pil: hex of the encoded bytes; list[...] and jpeg_array: a list of hex
- json: the value, with non-finite floats as {"$float": "NaN" | "Infinity" | "-Infinity"}
- ndarray: {"dtype", "shape", "values"}, values flat in row-major order as above (64-bit
  integers as strings, float16 as its raw uint16 bits)
"""

import gzip
import io
import json
import math
import pathlib
import shutil
import sys
import tempfile
from decimal import Decimal

import numpy as np
from PIL import Image

import streaming
from streaming import MDSWriter, StreamingDataset
from streaming.base.format.mds.encodings import mds_encode

from interop_values import float_value, json_value, ndarray_value  # shared with test/mds-interop.test.ts

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "core" / "src" / "format" / "mds" / "fixtures"

# Python's gzip.compress writes the current time into the header; pin it so the files are stable.
_gzip_compress = gzip.compress
gzip.compress = lambda data, compresslevel=9, *, mtime=0: _gzip_compress(data, compresslevel, mtime=mtime)

ALL_HASHES = sorted([
    "blake2b", "blake2s", "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sha3_224", "sha3_256",
    "sha3_384", "sha3_512", "xxh128", "xxh32", "xxh3_128", "xxh3_64", "xxh64",
])


def image(mode, size, colour):
    return Image.new(mode, size, colour)


def jpeg_bytes(img):
    return mds_encode("jpeg", img)


def expected_value(encoding, value):
    """The JSON form of a value written to a column (what our reader must decode it to)."""
    family = encoding.split(":")[0]
    if family in ("float16", "float32", "float64"):
        return float_value(getattr(np, family)(value))
    if family == "str_float":
        return float_value(value)
    if family in ("uint64", "int64", "int", "str_int"):
        return str(int(value))
    if family in ("uint8", "uint16", "uint32", "int8", "int16", "int32"):
        return int(value)
    if family == "str":
        return value
    if family == "str_decimal":
        return str(value)
    if family in ("bytes", "jpeg", "png", "pil"):
        return (value if isinstance(value, bytes) else mds_encode(family, value)).hex()
    if family in ("list[jpeg]", "list[png]", "list[pil]"):
        inner = family[5:-1]
        return [mds_encode(inner, x).hex() for x in value]
    if family in ("jpeg_array", "jpegarray"):
        return [bytes(x).hex() for x in value]
    if family == "json":
        return json_value(value)
    if family == "ndarray":
        return ndarray_value(value)
    raise ValueError(f"no expected form for {encoding}")


def same_decoded(encoding, written, read):
    """Whether Mosaic's reader gave back what was written (images compared by their pixels)."""
    family = encoding.split(":")[0]
    if family == "ndarray":
        return written.dtype == read.dtype and written.shape == read.shape and written.tobytes() == read.tobytes()
    if family in ("png", "pil"):
        return written.tobytes() == read.tobytes() and written.size == read.size
    if family == "jpeg":
        return written.size == read.size and written.mode == read.mode
    if family in ("list[jpeg]", "list[png]", "list[pil]", "jpeg_array", "jpegarray"):
        return len(written) == len(read)
    if family in ("float16", "float32", "float64", "str_float"):
        a, b = float(getattr(np, family)(written) if family != "str_float" else written), float(read)
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if family == "json":
        return json.dumps(written) == json.dumps(read)
    return written == read


def write_dataset(out, name, columns, samples, check=True, **kwargs):
    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    with MDSWriter(out=str(folder), columns=columns, **kwargs) as writer:
        for sample in samples:
            writer.write(sample)
    index = json.loads((folder / "index.json").read_text())
    entry = {
        "columns": columns,
        "compression": kwargs.get("compression"),
        "hashes": kwargs.get("hashes", []),
        "size_limit": index["shards"][0]["size_limit"] if index["shards"] else None,
        "shard_samples": [s["samples"] for s in index["shards"]],
    }
    if not check or not samples:
        entry["samples"] = [] if check else None
        return entry
    # Mosaic's own reader (decompressing and verifying a hash where there is one) must give back
    # every value; it leaves decompressed copies beside the shards, which are not fixtures.
    validate = kwargs.get("hashes", [None])[0] if kwargs.get("hashes") else None
    dataset = StreamingDataset(local=str(folder), batch_size=1, validate_hash=validate)
    assert len(dataset) == len(samples), (name, len(dataset), len(samples))
    for i, sample in enumerate(samples):
        read = dataset[i]
        for column, encoding in columns.items():
            assert same_decoded(encoding, sample[column], read[column]), (name, i, column, sample[column], read[column])
    del dataset
    if kwargs.get("compression"):
        for shard in index["shards"]:
            (folder / shard["raw_data"]["basename"]).unlink(missing_ok=True)
    entry["samples"] = [{c: expected_value(e, s[c]) for c, e in columns.items()} for s in samples]
    return entry


ALL_COLUMNS = {
    "u8": "uint8", "u16": "uint16", "u32": "uint32", "u64": "uint64",
    "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64", "int": "int",
    "f16": "float16", "f32": "float32", "f64": "float64",
    "str": "str", "bytes": "bytes", "json": "json",
    "str_int": "str_int", "str_float": "str_float", "str_decimal": "str_decimal",
    "nd": "ndarray", "nd_i32": "ndarray:int32", "nd_fixed": "ndarray:float32:2,3",
    "jpeg": "jpeg", "png": "png", "pil": "pil",
    "jpegs": "list[jpeg]", "pngs": "list[png]", "pils": "list[pil]", "jpeg_array": "jpeg_array",
}


def all_encodings_samples():
    red, blue = image("RGB", (2, 2), (255, 0, 0)), image("RGB", (3, 1), (0, 0, 255))
    grey = image("L", (2, 1), 128)
    rgba = image("RGBA", (1, 2), (1, 2, 3, 4))
    small_jpeg = jpeg_bytes(image("L", (1, 1), 7))
    return [
        {
            "u8": 0, "u16": 0, "u32": 0, "u64": 0, "i8": 0, "i16": 0, "i32": 0, "i64": 0, "int": 0,
            "f16": 0.0, "f32": 0.0, "f64": 0.0,
            "str": "", "bytes": b"", "json": None,
            "str_int": 0, "str_float": 0.1, "str_decimal": Decimal("0"),
            "nd": np.arange(6, dtype=np.uint8).reshape(2, 3), "nd_i32": np.array([-1], dtype=np.int32),
            "nd_fixed": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
            "jpeg": red, "png": grey, "pil": rgba, "jpegs": [], "pngs": [grey], "pils": [], "jpeg_array": [small_jpeg],
        },
        {
            "u8": 255, "u16": 65535, "u32": 2**32 - 1, "u64": 2**64 - 1,
            "i8": -128, "i16": -32768, "i32": -(2**31), "i64": -(2**63), "int": 2**63 - 1,
            "f16": 65504.0, "f32": 3.4028234663852886e38, "f64": -1.7976931348623157e308,
            "str": "héllo, wörld \u2603 \U0001f600", "bytes": bytes(range(256)),
            "json": {"text": "caf\u00e9 \U0001f600", "list": [1, -2.5, True, False, None], "nested": {"x": [[], {}]}},
            "str_int": -(10**30), "str_float": 1e-05, "str_decimal": Decimal("-123.4500"),
            "nd": np.array([[1.5, -2.25]], dtype=np.float64), "nd_i32": np.arange(-3, 3, dtype=np.int32).reshape(3, 2),
            "nd_fixed": np.array([[np.inf, -np.inf, -0.0], [1e-40, 3.5, -7.25]], dtype=np.float32),
            "jpeg": blue, "png": rgba, "pil": red, "jpegs": [red], "pngs": [], "pils": [grey, rgba], "jpeg_array": [small_jpeg],
        },
        {
            "u8": 7, "u16": 300, "u32": 70000, "u64": 2**53 + 1,
            "i8": 127, "i16": 32767, "i32": 2**31 - 1, "i64": 2**63 - 1, "int": -(2**53) - 1,
            "f16": float("nan"), "f32": float("-inf"), "f64": 5e-324,
            "str": "a\x00b\nc", "bytes": b"\x00",
            "json": [0.1, 1e-07, 1e22, float("nan"), float("inf"), "\u0000\u001f\u007f", {"k": "v"}],
            "str_int": 12345678901234567890123, "str_float": float("-inf"), "str_decimal": Decimal("1E+3"),
            "nd": np.array([-(2**63), 2**63 - 1], dtype=np.int64).reshape(1, 1, 2),
            "nd_i32": np.array([[7]], dtype=np.int32),
            "nd_fixed": np.full((2, 3), 0.1, dtype=np.float32),
            "jpeg": grey, "png": red, "pil": grey, "jpegs": [], "pngs": [red, blue], "pils": [red], "jpeg_array": [small_jpeg, small_jpeg],
        },
    ]


def ndarray_dtypes_samples():
    out = []
    for i, dtype in enumerate(["uint8", "int8", "uint16", "int16", "float16", "uint32", "int32", "float32", "uint64", "int64", "float64"]):
        values = np.arange(1, 2 + i, dtype=np.float64) * (-1 if dtype.startswith(("int", "float")) else 1)
        if dtype.startswith("float"):
            values = values / 3
        out.append({"a": values.astype(dtype)})
    # A dimension of 256 needs uint16 shape entries (uint32 ones are covered by the interop test,
    # which need 64 KiB arrays).
    out.append({"a": np.zeros((1, 256), dtype=np.uint8)})
    return out


def rollover_samples():
    texts = ["x" * n for n in (10, 40, 5, 90, 60, 1, 30, 70, 20, 50)]
    samples = [{"id": i, "text": t, "vec": np.arange(i % 3 + 1, dtype=np.float32) + i} for i, t in enumerate(texts)]
    # Larger than the limit on its own: Mosaic gives it a shard of its own.
    samples.insert(4, {"id": 100, "text": "big " * 200, "vec": np.ones(4, dtype=np.float32)})
    return samples


def main():
    # StreamingDataset leaves lock files in the temp folder: keep them in one we remove.
    with tempfile.TemporaryDirectory() as tmp:
        tempfile.tempdir = tmp
        write_all()


def write_all():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    datasets = {}
    datasets["all-encodings"] = write_dataset(out, "all-encodings", ALL_COLUMNS, all_encodings_samples(), hashes=ALL_HASHES)
    datasets["ndarray-dtypes"] = write_dataset(out, "ndarray-dtypes", {"a": "ndarray"}, ndarray_dtypes_samples(), compression="zstd", size_limit=None)
    datasets["rollover-zstd"] = write_dataset(
        out, "rollover-zstd", {"id": "int", "text": "str", "vec": "ndarray:float32"}, rollover_samples(),
        compression="zstd:7", hashes=["sha1", "xxh64"], size_limit=600,
    )
    datasets["gz"] = write_dataset(
        out, "gz", {"x": "uint16", "name": "str"}, [{"x": i * 1000, "name": f"sample {i}"} for i in range(4)],
        compression="gz", hashes=["sha256"],
    )
    datasets["br"] = write_dataset(out, "br", {"x": "float64"}, [{"x": 0.5}, {"x": -1e100}], compression="br:5", hashes=["md5"])
    # A limit smaller than a shard's header: Mosaic writes an empty first shard, then one per sample.
    datasets["tiny-limit"] = write_dataset(out, "tiny-limit", {"v": "uint8"}, [{"v": i} for i in range(3)], size_limit=100)
    datasets["empty"] = write_dataset(out, "empty", {"v": "str"}, [])
    # Pickle: we must refuse it (never unpickle), naming the column. Mosaic itself refuses it unless
    # allow_unsafe_types, so it is not read back here.
    datasets["pickle"] = write_dataset(out, "pickle", {"id": "int", "obj": "pkl"}, [{"id": 1, "obj": {"a": 1}}], check=False)
    datasets["pickle"]["refused_column"] = "obj"

    manifest = {"streaming": streaming.__version__, "datasets": datasets}
    (out / "expected.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {len(datasets)} datasets to {out} ({total} bytes)")


if __name__ == "__main__":
    main()
