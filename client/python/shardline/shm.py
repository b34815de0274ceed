"""The trainer's end of the shared-memory transport (docs/protocol.md §12): reads the batch a
segment descriptor names from the loader's ring of files (``/dev/shm`` by default).

A descriptor comes over the network and is hostile until checked: exactly the fields
``ring, slot, generation, offset, length[, checksum]``, a ring of this reader's job and rank (so
it can never name a path), a regular file opened without following links, and the slot's header
checked before and after the bytes are copied (the loader's seqlock), so a stale or torn batch is
an error, never silently taken. Mirrors core/src/protocol/shm/{descriptor,segment-file,shm-reader}.ts.
"""

import os
import re
import stat
import struct
import zlib
from typing import Any, Dict, NamedTuple, Optional

from .errors import FormatError
from .wire import MAX_U32, SUBJECT_TOKEN, _describe

HEADER = struct.Struct("<8sIIIIQQQIIQQ56x")
"""The 128-byte little-endian header of a segment file."""
HEADER_BYTES = 128
SEGMENT_MAGIC = b"SHLDSHM1"
SEGMENT_LAYOUT_VERSION = 1
SLOT_READY = 2
MAX_SLOTS = 1024
MAX_SLOT_CAPACITY = MAX_U32
_RING = re.compile(r"^shardline-(?P<job>[a-z0-9-]{1,63})-(?P<rank>0|[1-9][0-9]{0,9})-(?P<ring_id>[a-z0-9]{1,32})$")
_FIELDS = {"ring", "slot", "generation", "offset", "length", "checksum"}


class StaleDescriptorError(FormatError):
    """The slot no longer (or not yet) holds the batch the descriptor names: a late copy. The
    batch must come again; shared memory itself is fine."""


class SegmentDescriptor(NamedTuple):
    """Where one batch lies: bytes ``[offset, offset + length)`` of file ``<ring>-<slot>``."""

    ring: str
    slot: int
    generation: int
    offset: int
    length: int
    checksum: Optional[int]


def _int(value: Dict[str, Any], field: str, low: int, high: int) -> int:
    v = value.get(field)
    if type(v) is not int or not low <= v <= high:
        raise FormatError(f"segment descriptor: {field} must be an integer in [{low}, {high}], got {_describe(v)}")
    return v


def parse_descriptor(value: Any) -> SegmentDescriptor:
    """Checks a descriptor received from the network. Raises only :class:`FormatError`."""
    if not isinstance(value, dict):
        raise FormatError(f"segment descriptor: must be an object, got {_describe(value)}")
    for key in value:
        if key not in _FIELDS:
            raise FormatError(f"segment descriptor: unknown field {_describe(key)}")
    ring = value.get("ring")
    slot = _int(value, "slot", 0, MAX_SLOTS - 1)
    if not isinstance(ring, str) or len(ring) > 200 or _RING.fullmatch(ring) is None or SUBJECT_TOKEN.fullmatch(_RING.fullmatch(ring)["job"]) is None:
        raise FormatError(f"segment descriptor: ring must be a name shardline-<job>-<rank>-<ringId>, got {_describe(ring)}")
    if int(_RING.fullmatch(ring)["rank"]) > MAX_U32:
        raise FormatError(f"segment descriptor: ring must be a name shardline-<job>-<rank>-<ringId>, got {_describe(ring)}")
    generation = _int(value, "generation", 1, 2**53 - 1)
    offset = _int(value, "offset", HEADER_BYTES, HEADER_BYTES + MAX_SLOT_CAPACITY)
    length = _int(value, "length", 0, MAX_SLOT_CAPACITY)
    checksum = None if value.get("checksum") is None else _int(value, "checksum", 0, MAX_U32)
    return SegmentDescriptor(ring, slot, generation, offset, length, checksum)


class SegmentHeader(NamedTuple):
    slot: int
    capacity: int
    generation: int
    length: int
    state: int
    crc32: int


def decode_header(data: bytes, where: str) -> SegmentHeader:
    """Decodes and checks a segment header (magic, layout, header size, length within capacity)."""
    if len(data) < HEADER_BYTES:
        raise FormatError(f"{where}: the header has {len(data)} bytes, expected {HEADER_BYTES}")
    magic, version, header_bytes, slot, _pid, capacity, generation, length, state, crc, _ticks, _ns = HEADER.unpack_from(data)
    if magic != SEGMENT_MAGIC:
        raise FormatError(f"{where}: not a Shardline segment (magic {magic!r})")
    if version != SEGMENT_LAYOUT_VERSION:
        raise FormatError(f"{where}: segment layout version {version} is not supported (expected {SEGMENT_LAYOUT_VERSION})")
    if header_bytes != HEADER_BYTES:
        raise FormatError(f"{where}: header size {header_bytes} is not {HEADER_BYTES}")
    if capacity > MAX_SLOT_CAPACITY or length > capacity:
        raise FormatError(f"{where}: length {length} and capacity {capacity} are out of range")
    return SegmentHeader(slot, capacity, generation, length, state, crc)


class ShmReader:
    """Reads batches out of one job's and rank's rings. Keeps the current ring's files open
    between reads (checked once when opened); :meth:`close` closes them."""

    def __init__(self, job: str, rank: int, directory: str = "/dev/shm") -> None:
        self.job = job
        self.rank = rank
        self.directory = directory
        self._ring: Optional[str] = None
        self._open: Dict[str, int] = {}

    def read(self, value: Any) -> bytes:
        """A copy of the batch the descriptor names. Raises :class:`FormatError` for a malformed,
        foreign, stale, torn or corrupt one, or a missing file."""
        d = parse_descriptor(value)
        name = _RING.fullmatch(d.ring)
        assert name is not None
        if name["job"] != self.job or int(name["rank"]) != self.rank:
            raise FormatError(f"segment descriptor: ring {d.ring!r} is not of job {self.job} rank {self.rank}")
        file_name = f"{d.ring}-{d.slot}"
        where = f"segment {file_name}"
        fd = self._fd(d.ring, file_name, where)
        try:
            both = os.pread(fd, HEADER_BYTES + d.length, 0)
            if len(both) != HEADER_BYTES + d.length:
                raise FormatError(f"{where}: truncated: {len(both)} of {HEADER_BYTES + d.length} bytes")
            header = decode_header(both, where)
            self._check(d, header, where)
            after = decode_header(os.pread(fd, HEADER_BYTES, 0), where)
            if after.generation != header.generation or after.state != SLOT_READY:
                raise StaleDescriptorError(f"{where}: stale descriptor: generation {d.generation} was rewritten while being read")
            data = both[HEADER_BYTES:]
            if d.checksum is not None and zlib.crc32(data) != d.checksum:
                raise FormatError(f"{where}: the batch's CRC-32 {zlib.crc32(data)} does not match the descriptor's {d.checksum}")
            return data
        except BaseException:
            self._forget(file_name)
            raise

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()
        self._ring = None

    def _fd(self, ring: str, file_name: str, where: str) -> int:
        if self._ring != ring:
            # A new ring (the loader restarted): the old one's files are closed so their memory is freed.
            self.close()
            self._ring = ring
        fd = self._open.get(file_name)
        if fd is not None:
            return fd
        try:
            fd = os.open(os.path.join(self.directory, file_name), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError as error:
            raise FormatError(f"{where} does not exist in {self.directory} (the ring was closed, or the folder is not shared)") from error
        except OSError as error:
            raise FormatError(f"{where} cannot be opened: {error}") from error
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FormatError(f"{where} is not a regular file")
            header = decode_header(os.pread(fd, HEADER_BYTES, 0), where)
            if HEADER_BYTES + header.capacity > st.st_size:
                raise FormatError(f"{where}: the file has {st.st_size} bytes, less than its header and capacity")
        except BaseException:
            os.close(fd)
            raise
        self._open[file_name] = fd
        return fd

    def _forget(self, file_name: str) -> None:
        fd = self._open.pop(file_name, None)
        if fd is not None:
            os.close(fd)

    @staticmethod
    def _check(d: SegmentDescriptor, header: SegmentHeader, where: str) -> None:
        if header.slot != d.slot:
            raise FormatError(f"{where}: the header is of slot {header.slot}, the descriptor names slot {d.slot}")
        if header.generation != d.generation:
            raise StaleDescriptorError(f"{where}: stale descriptor: it names generation {d.generation} but the slot holds generation {header.generation}")
        if header.state != SLOT_READY:
            raise StaleDescriptorError(f"{where}: stale descriptor: the slot is being rewritten")
        if d.offset != HEADER_BYTES or d.length != header.length:
            raise FormatError(f"{where}: the descriptor names bytes [{d.offset}, {d.offset + d.length}) but the slot holds [{HEADER_BYTES}, {HEADER_BYTES + header.length})")
        if d.checksum is not None and d.checksum != header.crc32:
            raise FormatError(f"{where}: the descriptor's checksum {d.checksum} is not the slot's {header.crc32}")
