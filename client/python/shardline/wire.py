"""Positions, subjects, data frames and control messages of the delivery protocol, version 1
(docs/protocol.md §1, §2, §4, §5), without I/O.

Everything received is validated exactly as the specification says, and anything that fails a
check raises :class:`FormatError` naming the field, whatever the bytes: the caller logs and drops
it. Mirrors core/src/protocol/{position,subjects,frame,messages}.ts.
"""

from __future__ import annotations

import json
import re
import secrets
import struct
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Union

from .errors import ArgumentError, FormatError

PROTOCOL_VERSION = 1
"""The protocol version this client speaks (the ``version`` of every message, byte 2 of every frame)."""

MAX_U32 = 0xFFFF_FFFF
MAX_SAFE_INTEGER = 2**53 - 1
MAX_CONTROL_MESSAGE_BYTES = 8192
"""Largest control message accepted; longer ones are rejected before parsing."""
MAX_NACK_CHUNKS = 256
"""Most chunk indices one ``nack`` may list."""
MAX_CHUNKS_PER_BATCH = 65_536
"""Most chunks a batch may be cut into; frames claiming more are dropped."""

SUBJECT_TOKEN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
"""A DNS label: what a namespace or job name must fully match."""
ID_PATTERN = re.compile(r"[\x21-\x7e]{1,128}")
"""A client, host or loader id: 1 to 128 printable ASCII characters without spaces."""

REFUSAL_REASONS = ("version", "job", "rank", "busy", "resume")
LOADER_MESSAGE_TYPES = ("welcome", "refused", "end-of-epoch", "reset")


class Position(NamedTuple):
    """One item of a rank's stream: a batch ``(epoch, step)`` or the end marker ``(epoch, batches)``.

    Tuples compare lexicographically, which is the stream's order.
    """

    epoch: int
    step: int

    def successor(self, is_end_marker: bool) -> "Position":
        """The item after a batch here (next step) or after an end marker here (next epoch, step 0)."""
        return Position(self.epoch + 1, 0) if is_end_marker else Position(self.epoch, self.step + 1)

    def __str__(self) -> str:
        return f"epoch {self.epoch} step {self.step}"


def _is_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def require_position(name: str, value: Any) -> Position:
    """Checks a position argument (a Position, a pair or a mapping with ``epoch`` and ``step``)."""
    if isinstance(value, dict):
        pair = (value.get("epoch"), value.get("step"))
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        pair = tuple(value)
    else:
        raise ArgumentError(name, f"must be a Position, an (epoch, step) pair or {{'epoch', 'step'}}, got {value!r}")
    for field, v in zip(("epoch", "step"), pair):
        if not _is_int(v, 0, MAX_U32):
            raise ArgumentError(f"{name}.{field}", f"must be an integer in [0, {MAX_U32}], got {v!r}")
    return Position(*pair)


def require_token(name: str, value: Any) -> str:
    """Checks a namespace or job name: a DNS label, so it cannot inject ``.``, ``*`` or ``>`` into a subject."""
    if not isinstance(value, str) or SUBJECT_TOKEN.fullmatch(value) is None:
        raise ArgumentError(name, f"must be 1 to 63 lower-case letters, digits or inner hyphens (a DNS label), got {value!r:.90}")
    return value


def require_id(name: str, value: Any) -> str:
    """Checks a client or host id."""
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise ArgumentError(name, f"must be 1 to 128 printable ASCII characters without spaces, got {value!r:.150}")
    return value


def require_int(name: str, value: Any, low: int, high: int) -> int:
    """Checks an integer argument in ``[low, high]`` (booleans are not integers here)."""
    if not _is_int(value, low, high):
        raise ArgumentError(name, f"must be an integer in [{low}, {high}], got {value!r}")
    return value


def safe_id(text: str) -> str:
    """An id from free text (a host name): characters outside printable ASCII become ``_``."""
    cleaned = re.sub(r"[^\x21-\x7e]", "_", text)[:128]
    return cleaned or "unknown"


@dataclass(frozen=True)
class Subjects:
    """The four NATS subjects of one rank's stream."""

    hello: str
    ctl: str
    data: str
    events: str


def delivery_subjects(namespace: str, job: str, rank: int) -> Subjects:
    """``shardline.<namespace>.<job>.rank.<rank>.{hello,ctl,data,events}``, after checking each part.

    >>> delivery_subjects("ml", "mnist", 3).data
    'shardline.ml.mnist.rank.3.data'
    """
    prefix = f"shardline.{require_token('namespace', namespace)}.{require_token('job', job)}.rank.{require_int('rank', rank, 0, MAX_U32)}"
    return Subjects(f"{prefix}.hello", f"{prefix}.ctl", f"{prefix}.data", f"{prefix}.events")


def new_session_id(previous: int = 0) -> int:
    """A fresh random session id in [1, 2³²−1], different from ``previous``."""
    while True:
        session = secrets.randbelow(MAX_U32) + 1
        if session != previous:
            return session


# -- data frames (§5) ---------------------------------------------------------------------------

FRAME = struct.Struct("<2sBBIIIIIIIIB")
"""The fixed 37-byte little-endian prefix of a data frame."""
FRAME_MAGIC = b"SL"
FRAME_KIND_CHUNK = 1
FRAME_KIND_SHM = 2
MAX_SHM_DESCRIPTOR_BYTES = 512


class ChunkFrame(NamedTuple):
    """A decoded data frame; ``payload`` is a view of the message bytes."""

    session: int
    job: str
    rank: int
    epoch: int
    step: int
    index: int
    count: int
    chunk_size: int
    total_bytes: int
    payload: memoryview

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.step)


def chunk_range(index: int, chunk_size: int, total_bytes: int) -> "tuple[int, int]":
    """Byte range ``[begin, end)`` of chunk ``index`` within its batch."""
    begin = index * chunk_size
    return begin, min(begin + chunk_size, total_bytes)


def _check_layout(index: int, count: int, chunk_size: int, total_bytes: int) -> None:
    if total_bytes == 0 and chunk_size != 0:
        raise FormatError(f"data frame: chunk size must be 0 for an empty batch, got {chunk_size}")
    expected = 1 if total_bytes == 0 else (-1 if chunk_size == 0 else -(-total_bytes // chunk_size))
    if count != expected:
        raise FormatError(f"data frame: count {count} does not match total bytes {total_bytes} in chunks of {chunk_size} bytes")
    if index >= count:
        raise FormatError(f"data frame: index {index} is outside [0, {count})")


def frame_kind(data: "bytes | bytearray | memoryview") -> int:
    """The ``kind`` byte of a frame (0 when it is too short to have one)."""
    return data[3] if len(data) >= 4 else 0


class ShmFrame(NamedTuple):
    """A decoded shared-memory frame (kind 2): where the batch is, and the descriptor of its segment (§12)."""

    session: int
    job: str
    rank: int
    epoch: int
    step: int
    total_bytes: int
    descriptor: Dict[str, Any]

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.step)


def decode_shm_frame(data: "bytes | bytearray | memoryview") -> ShmFrame:
    """Reads a shared-memory frame; the descriptor is JSON, checked by :func:`shardline.shm.parse_descriptor`
    when read. Raises only :class:`FormatError`, whatever the bytes."""
    frame = _decode_prefix(data, FRAME_KIND_SHM)
    if frame.count != 1:
        raise FormatError(f"data frame: a shared-memory frame must say 1 chunk, got {frame.count}")
    if len(frame.payload) > MAX_SHM_DESCRIPTOR_BYTES:
        raise FormatError(f"data frame: a {len(frame.payload)}-byte descriptor is over {MAX_SHM_DESCRIPTOR_BYTES} bytes")
    try:
        descriptor = json.loads(bytes(frame.payload).decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise FormatError(f"data frame: the shared-memory descriptor is not JSON ({error})") from error
    if not isinstance(descriptor, dict):
        raise FormatError(f"data frame: the shared-memory descriptor must be an object, got {_describe(descriptor)}")
    if descriptor.get("length") != frame.total_bytes:
        raise FormatError(f"data frame: the descriptor names {_describe(descriptor.get('length'))} bytes, the header says {frame.total_bytes}")
    return ShmFrame(frame.session, frame.job, frame.rank, frame.epoch, frame.step, frame.total_bytes, descriptor)


def decode_frame(data: "bytes | bytearray | memoryview") -> ChunkFrame:
    """Reads one data frame, checking its layout exactly. Raises only :class:`FormatError`, whatever the bytes."""
    frame = _decode_prefix(data, FRAME_KIND_CHUNK)
    begin, end = chunk_range(frame.index, frame.chunk_size, frame.total_bytes)
    if len(frame.payload) != end - begin:
        raise FormatError(f"data frame: chunk {frame.index} of {frame.count} must carry {end - begin} bytes, got {len(frame.payload)}")
    return frame


def _decode_prefix(data: "bytes | bytearray | memoryview", expected_kind: int) -> ChunkFrame:
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) or data.format != "B" else data
    if len(view) < FRAME.size:
        raise FormatError(f"data frame: {len(view)} bytes is shorter than the {FRAME.size}-byte prefix")
    magic, version, kind, session, rank, epoch, step, index, count, chunk_size, total, job_length = FRAME.unpack_from(view)
    if magic != FRAME_MAGIC:
        raise FormatError('data frame: does not start with "SL"')
    if version != PROTOCOL_VERSION:
        raise FormatError(f"data frame: protocol version {version} is not supported (this side speaks {PROTOCOL_VERSION})")
    if kind not in (FRAME_KIND_CHUNK, FRAME_KIND_SHM):
        raise FormatError(f"data frame: kind {kind} is unknown (1 is a batch chunk, 2 a shared-memory descriptor)")
    if kind != expected_kind:
        raise FormatError(f"data frame: kind {kind} is not {'a batch chunk (1)' if expected_kind == FRAME_KIND_CHUNK else 'a shared-memory descriptor (2)'}")
    prefix = FRAME.size + job_length
    if len(view) < prefix:
        raise FormatError(f"data frame: {len(view)} bytes is shorter than its {prefix}-byte prefix")
    job = bytes(view[FRAME.size:prefix]).decode("latin-1")
    if SUBJECT_TOKEN.fullmatch(job) is None:
        raise FormatError(f"data frame: job {job!r:.80} is not a DNS label")
    if session == 0:
        raise FormatError("data frame: session must not be 0")
    _check_layout(index, count, chunk_size, total)
    return ChunkFrame(session, job, rank, epoch, step, index, count, chunk_size, total, view[prefix:])


def encode_frame(session: int, job: str, rank: int, epoch: int, step: int, index: int, count: int, chunk_size: int, batch: bytes) -> bytes:
    """One frame carrying chunk ``index`` of ``batch`` (the loader's side; used by tests)."""
    total = len(batch)
    _check_layout(index, count, chunk_size, total)
    begin, end = chunk_range(index, chunk_size, total)
    header = FRAME.pack(FRAME_MAGIC, PROTOCOL_VERSION, FRAME_KIND_CHUNK, session, rank, epoch, step, index, count, chunk_size, total, len(job))
    return header + job.encode("ascii") + bytes(batch[begin:end])


# -- control messages (§4) ----------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value[:40] + "…" if len(value) > 40 else value)
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class _Fields:
    """Checks the fields of one message, raising FormatError naming the first bad one."""

    def __init__(self, kind: str, value: Dict[str, Any]) -> None:
        self.kind = kind
        self.value = value

    def fail(self, field: str, why: str) -> FormatError:
        return FormatError(f'control message "{self.kind}": field {field}: {why}, got {_describe(self.value.get(field))}')

    def integer(self, field: str, low: int, high: int) -> int:
        v = self.value.get(field)
        if not _is_int(v, low, high):
            raise self.fail(field, f"must be an integer in [{low}, {high}]")
        return v

    def session(self) -> int:
        return self.integer("session", 1, MAX_U32)

    def pattern(self, field: str, pattern: "re.Pattern[str]", what: str) -> str:
        v = self.value.get(field)
        if not isinstance(v, str) or pattern.fullmatch(v) is None:
            raise self.fail(field, f"must be {what}")
        return v

    def text(self, field: str, limit: int) -> str:
        v = self.value.get(field)
        if not isinstance(v, str) or len(v) > limit:
            raise self.fail(field, f"must be a string of at most {limit} characters")
        return v

    def position(self, field: str) -> Position:
        v = self.value.get(field)
        if not isinstance(v, dict) or not _is_int(v.get("epoch"), 0, MAX_U32) or not _is_int(v.get("step"), 0, MAX_U32):
            raise self.fail(field, f"must be {{epoch, step}} with integers in [0, {MAX_U32}]")
        return Position(v["epoch"], v["step"])


@dataclass(frozen=True)
class Welcome:
    session: int
    job: str
    rank: int
    next: Position
    max_credits: int
    max_batch_bytes: int
    loader_id: str
    host_id: str
    transport: str = "nats"
    type: str = "welcome"


@dataclass(frozen=True)
class Refused:
    version: int
    session: int
    reason: str
    message: str
    supported_versions: "tuple[int, ...]"
    type: str = "refused"


@dataclass(frozen=True)
class EndOfEpochMessage:
    session: int
    epoch: int
    batches: int
    type: str = "end-of-epoch"


@dataclass(frozen=True)
class Reset:
    session: int
    reason: str
    type: str = "reset"


LoaderMessage = Union[Welcome, Refused, EndOfEpochMessage, Reset]
"""A message of the ``events`` subject."""


def decode_loader_message(data: "bytes | bytearray | memoryview") -> LoaderMessage:
    """Parses and validates one message of the ``events`` subject, in the order of §4: size, UTF-8,
    JSON, object, type, version, fields. Raises only :class:`FormatError`, whatever the bytes."""
    raw = bytes(data)
    if len(raw) > MAX_CONTROL_MESSAGE_BYTES:
        raise FormatError(f"control message: {len(raw)} bytes is over the limit of {MAX_CONTROL_MESSAGE_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FormatError("control message: not valid UTF-8") from error
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise FormatError(f"control message: not JSON ({error})") from error
    if not isinstance(value, dict):
        raise FormatError(f"control message: must be a JSON object, got {_describe(value)}")
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in LOADER_MESSAGE_TYPES:
        raise FormatError(f"control message: type {_describe(kind)} is not one of {', '.join(LOADER_MESSAGE_TYPES)}")
    version = value.get("version")
    if kind != "refused" and not (type(version) is int and version == PROTOCOL_VERSION):
        raise FormatError(
            f'control message "{kind}": protocol version {_describe(version)} is not supported (this side speaks {PROTOCOL_VERSION})'
        )
    f = _Fields(kind, value)
    if kind == "welcome":
        return Welcome(
            session=f.session(),
            job=f.pattern("job", SUBJECT_TOKEN, "a DNS label"),
            rank=f.integer("rank", 0, MAX_U32),
            next=f.position("next"),
            max_credits=f.integer("maxCredits", 0, MAX_U32),
            max_batch_bytes=f.integer("maxBatchBytes", 0, MAX_U32),
            loader_id=f.pattern("loaderId", ID_PATTERN, "1 to 128 printable ASCII characters without spaces"),
            host_id=f.pattern("hostId", ID_PATTERN, "1 to 128 printable ASCII characters without spaces"),
            transport=_transport(f, value.get("transport")),
        )
    if kind == "refused":
        loader_version = f.integer("version", 0, MAX_SAFE_INTEGER)
        session = f.session()
        reason = value.get("reason")
        if reason not in REFUSAL_REASONS:
            raise f.fail("reason", f"must be one of {', '.join(REFUSAL_REASONS)}")
        supported = value.get("supportedVersions")
        if not isinstance(supported, list) or len(supported) > 16 or not all(_is_int(v, 0, MAX_U32) for v in supported):
            raise f.fail("supportedVersions", f"must be an array of at most 16 integers in [0, {MAX_U32}]")
        return Refused(loader_version, session, reason, f.text("message", 1024), tuple(supported))
    if kind == "end-of-epoch":
        return EndOfEpochMessage(f.session(), f.integer("epoch", 0, MAX_U32), f.integer("batches", 0, MAX_U32))
    return Reset(f.session(), f.text("reason", 256))


def _transport(f: "_Fields", value: Any) -> str:
    if value is None:
        return "nats"
    if value not in ("nats", "shm"):
        raise f.fail("transport", 'must be "nats" or "shm"')
    return value


def _encode(message: Dict[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    if len(data) > MAX_CONTROL_MESSAGE_BYTES:  # only a bug could get here: ids and lists are bounded
        raise FormatError(f'control message "{message["type"]}": {len(data)} bytes is over the limit of {MAX_CONTROL_MESSAGE_BYTES}')
    return data


def encode_hello(
    session: int,
    job: str,
    rank: int,
    client_id: str,
    host_id: str,
    credits: int,
    resume: Optional[Position],
    version: int = PROTOCOL_VERSION,
    shm: bool = False,
) -> bytes:
    """A ``hello``; ``version`` differs from PROTOCOL_VERSION only in tests of refusals; ``shm``
    offers to read batches from the loader's shared-memory segments (§12)."""
    message: Dict[str, Any] = (
        {
            "type": "hello",
            "version": version,
            "session": session,
            "job": job,
            "rank": rank,
            "clientId": client_id,
            "hostId": host_id,
            "credits": credits,
            "resume": None if resume is None else {"epoch": resume.epoch, "step": resume.step},
        }
    )
    if shm:
        message["shm"] = True
    return _encode(message)


def encode_credit(session: int, granted: int, waited_seconds: Optional[float] = None) -> bytes:
    """A cumulative ``credit``; ``waited_seconds`` is the session's total wait (optional field)."""
    message: Dict[str, Any] = {"type": "credit", "version": PROTOCOL_VERSION, "session": session, "granted": granted}
    if waited_seconds is not None:
        message["waitedSeconds"] = round(min(max(waited_seconds, 0.0), 1e9), 6)
    return _encode(message)


def encode_ack(session: int, position: Position) -> bytes:
    """A cumulative ``ack``: every item up to and including ``position`` was consumed."""
    return _encode({"type": "ack", "version": PROTOCOL_VERSION, "session": session, "epoch": position.epoch, "step": position.step})


def encode_nack(session: int, position: Position, chunks: Optional[Sequence[int]] = None) -> bytes:
    """A ``nack`` for the item at ``position`` (only ``chunks`` of it, when given: 1 to 256 indices)."""
    message: Dict[str, Any] = {"type": "nack", "version": PROTOCOL_VERSION, "session": session, "epoch": position.epoch, "step": position.step}
    if chunks:
        message["chunks"] = list(chunks[:MAX_NACK_CHUNKS])
    return _encode(message)


def encode_bye(session: int) -> bytes:
    """A ``bye``: the trainer leaves."""
    return _encode({"type": "bye", "version": PROTOCOL_VERSION, "session": session})


__all__: List[str] = [
    "PROTOCOL_VERSION",
    "Position",
    "Subjects",
    "delivery_subjects",
    "ChunkFrame",
    "decode_frame",
    "encode_frame",
    "decode_loader_message",
    "Welcome",
    "Refused",
    "EndOfEpochMessage",
    "Reset",
]
