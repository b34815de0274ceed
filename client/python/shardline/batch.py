"""Decoding a delivered batch (docs/wire-format.md): safetensors bytes into numpy arrays and the
batch metadata, checked against the position the protocol delivered it at."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .errors import FormatError

WIRE_VERSION = "1"
MAX_HEADER_BYTES = 100_000_000
_CANONICAL = re.compile(r"0|[1-9][0-9]{0,15}")
_MAX_SAFE_INTEGER = 2**53 - 1


@dataclass
class Batch:
    """One delivered batch: its tensors and metadata.

    ``tensors`` maps names to numpy arrays (one row per sample id for tensors with a dimension);
    ``extra`` holds the metadata keys beyond the standard ones.
    """

    job: str
    epoch: int
    rank: int
    step: int
    sample_ids: List[int]
    tensors: Dict[str, np.ndarray]
    nbytes: int = 0
    extra: Dict[str, str] = field(default_factory=dict)

    @property
    def position(self) -> Tuple[int, int]:
        return (self.epoch, self.step)


def _metadata_int(meta: Dict[str, str], key: str) -> int:
    value = meta.get(key)
    if not isinstance(value, str) or _CANONICAL.fullmatch(value) is None or int(value) > _MAX_SAFE_INTEGER:
        raise FormatError(f"batch metadata {key}: must be a canonical decimal integer below 2^53, got {value!r:.60}")
    return int(value)


def read_metadata(blob: "bytes | bytearray | memoryview") -> Dict[str, str]:
    """The ``__metadata__`` map of a safetensors blob (string to string)."""
    view = memoryview(blob)
    if len(view) < 8:
        raise FormatError(f"batch: {len(view)} bytes is shorter than the 8-byte header length")
    (n,) = struct.unpack_from("<Q", view)
    if n > MAX_HEADER_BYTES or 8 + n > len(view):
        raise FormatError(f"batch: header length {n} runs past the end of the {len(view)}-byte batch or over {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(view[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise FormatError(f"batch: the header is not UTF-8 JSON ({error})") from error
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError("batch: __metadata__ must be an object of strings")
    return meta


def decode_batch(blob: "bytes | bytearray", expect: Optional[Tuple[str, int, int, int]] = None) -> Batch:
    """Decodes one batch with ``safetensors.numpy.load``.

    ``expect`` is ``(job, rank, epoch, step)`` from the delivery: metadata naming another place in
    the stream is a FormatError (a loader bug, never silently trained on).

    >>> batch = decode_batch(blob)          # doctest: +SKIP
    >>> batch.tensors["image"].shape, batch.sample_ids[:2]  # doctest: +SKIP
    """
    from safetensors.numpy import load

    meta = read_metadata(blob)
    if meta.get("wire_version") != WIRE_VERSION:
        raise FormatError(f"batch metadata wire_version: {meta.get('wire_version')!r:.40} is not supported (this client reads {WIRE_VERSION!r})")
    job = meta.get("job")
    if not isinstance(job, str) or job == "":
        raise FormatError("batch metadata job: must be a non-empty string")
    epoch, rank, step = (_metadata_int(meta, k) for k in ("epoch", "rank", "step"))
    try:
        sample_ids = json.loads(meta.get("sample_ids", ""))
    except (ValueError, RecursionError) as error:
        raise FormatError(f"batch metadata sample_ids: not JSON ({error})") from error
    if not isinstance(sample_ids, list) or not all(type(s) is int and 0 <= s <= _MAX_SAFE_INTEGER for s in sample_ids):
        raise FormatError("batch metadata sample_ids: must be a JSON array of integers in [0, 2^53)")
    if expect is not None and (job, rank, epoch, step) != tuple(expect):
        raise FormatError(
            f"batch metadata names job {job!r} rank {rank} epoch {epoch} step {step}, "
            f"but it was delivered as job {expect[0]!r} rank {expect[1]} epoch {expect[2]} step {expect[3]}"
        )
    try:
        tensors = load(bytes(blob))
    except Exception as error:  # SafetensorError, or numpy refusing a dtype (BF16)
        raise FormatError(f"batch at epoch {epoch} step {step}: safetensors cannot decode it ({error})") from error
    for name, array in tensors.items():
        if array.ndim > 0 and array.shape[0] != len(sample_ids):
            raise FormatError(f"batch tensor {name!r}: first dimension {array.shape[0]} is not the number of sample ids ({len(sample_ids)})")
    standard = {"wire_version", "job", "epoch", "rank", "step", "sample_ids"}
    extra = {k: v for k, v in meta.items() if k not in standard}
    return Batch(job, epoch, rank, step, sample_ids, tensors, len(blob), extra)
