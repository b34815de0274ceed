"""The trainer's receive state (docs/protocol.md §6, §7) as a pure state machine, no I/O, no timers.

Reassembles chunked batches, puts items in stream order, drops duplicates by position, and says
what to ack, how much credit to grant and what to ask for again. A mirror of
core/src/protocol/receive-window.ts:

- Exactly once: the consumer's position only moves forward; any item before the receive
  position is a duplicate, and items reach the consumer strictly in stream order.
- A session starts empty: what was received and not consumed is dropped and asked for again
  from the consumer's position, so nothing the consumer has not taken can be lost.
- Memory: at most ``window`` batches (ready or in reassembly) of at most ``max_batch_bytes`` each.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, List, Optional, Tuple, Union

from .wire import MAX_CHUNKS_PER_BATCH, MAX_NACK_CHUNKS, ChunkFrame, Position


@dataclass(frozen=True)
class ReceivedBatch:
    """A complete batch in stream order: its position and its encoded bytes (docs/wire-format.md)."""

    epoch: int
    step: int
    data: bytearray

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.step)


@dataclass(frozen=True)
class EndOfEpoch:
    """The end of epoch ``epoch``, after its ``batches`` batches (its position is ``(epoch, batches)``)."""

    epoch: int
    batches: int

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.batches)


Item = Union[ReceivedBatch, EndOfEpoch]


@dataclass(frozen=True)
class Outcome:
    """What became of a received frame or end marker.

    ``status`` is ``stored`` (``readable`` when the consumer can read more now), ``duplicate``,
    ``ignored`` (another session's, or before the welcome), ``rejected`` (``why``) or ``fatal``
    (the next item can never be taken: the stream cannot go on).
    """

    status: str
    readable: bool = False
    why: str = ""


DUPLICATE = Outcome("duplicate")
IGNORED = Outcome("ignored")


class _Assembly:
    __slots__ = ("position", "count", "chunk_size", "data", "have", "received")

    def __init__(self, position: Position, count: int, chunk_size: int, total: int) -> None:
        self.position = position
        self.count = count
        self.chunk_size = chunk_size
        self.data = bytearray(total)
        self.have = bytearray(count)
        self.received = 0


class _PendingEnd:
    __slots__ = ("position",)

    def __init__(self, position: Position) -> None:
        self.position = position


class ReceiveWindow:
    """The trainer's receive state for one rank's stream."""

    def __init__(self, job: str, rank: int, window: int, max_batch_bytes: int, resume: Optional[Position] = None) -> None:
        self.job = job
        self.rank = rank
        self.window = window
        self.max_batch_bytes = max_batch_bytes
        self.session = 0
        self.welcomed = False
        self._read_pos: Optional[Position] = resume
        self._recv_next: Optional[Position] = resume
        self._ready: Deque[Item] = deque()
        self._pending: Dict[Position, Union[_Assembly, _PendingEnd]] = {}
        self._pending_batches = 0
        self._pending_ends = 0
        self._consumed_in_session = 0
        self.last_consumed: Optional[Position] = None
        """The last item the consumer took (what a cumulative ack names), or None."""

    @property
    def position(self) -> Optional[Position]:
        """The position the consumer reads next (None until a welcome says where the stream starts)."""
        return self._read_pos

    @property
    def receive_position(self) -> Optional[Position]:
        """The first item not yet received complete and in order."""
        return self._recv_next

    @property
    def granted(self) -> int:
        """Cumulative credit of the session: the window plus the batches consumed since the hello."""
        return self.window + self._consumed_in_session if self.welcomed or self.session != 0 else 0

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    @property
    def buffered_batches(self) -> int:
        """Batches held: ready and in reassembly."""
        return sum(1 for item in self._ready if isinstance(item, ReceivedBatch)) + self._pending_batches

    @property
    def buffered_bytes(self) -> int:
        ready = sum(len(item.data) for item in self._ready if isinstance(item, ReceivedBatch))
        return ready + sum(len(p.data) for p in self._pending.values() if isinstance(p, _Assembly))

    def begin(self, session: int) -> Tuple[Optional[Position], int]:
        """Starts a session: drops what was received and not consumed; returns the hello's (resume, credits)."""
        self.session = session
        self.welcomed = False
        self._ready.clear()
        self._pending.clear()
        self._pending_batches = 0
        self._pending_ends = 0
        self._consumed_in_session = 0
        self._recv_next = self._read_pos
        return self._read_pos, self.window

    def welcome(self, session: int, next_position: Position) -> Union[str, Tuple[str, str]]:
        """The loader's welcome: ``"ok"``, ``"ignored"``, or ``("mismatch", why)`` when it does not start at the resume point."""
        if session != self.session or self.welcomed:
            return "ignored"
        if self._read_pos is not None and next_position != self._read_pos:
            return ("mismatch", f"the loader's welcome starts the stream at {next_position}, the hello asked for {self._read_pos}")
        self._read_pos = next_position
        self._recv_next = next_position
        self.welcomed = True
        return "ok"

    def wants(self, session: int, position: Position) -> bool:
        """Whether a batch at ``position`` of the current session is still wanted (not received in
        order yet, not complete): a shared-memory descriptor for an unwanted one is a late copy
        whose slot may hold another batch by now, and is not read."""
        if session != self.session or not self.welcomed or self._recv_next is None or position < self._recv_next:
            return False
        entry = self._pending.get(position)
        return entry is None or (isinstance(entry, _Assembly) and entry.received < entry.count)

    def accept_chunk(self, frame: ChunkFrame) -> Outcome:
        """Stores one received chunk (its payload is copied)."""
        if frame.session != self.session or not self.welcomed:
            return IGNORED
        if frame.job != self.job or frame.rank != self.rank:
            return Outcome("rejected", why=f"frame is for job {frame.job!r} rank {frame.rank}, this stream is job {self.job!r} rank {self.rank}")
        position = frame.position
        assert self._recv_next is not None
        if position < self._recv_next:
            return DUPLICATE
        entry = self._pending.get(position)
        if isinstance(entry, _PendingEnd):
            return Outcome("rejected", why=f"a chunk of a batch at {position}, where the end of epoch {position.epoch} is")
        if entry is None:
            if frame.total_bytes > self.max_batch_bytes:
                why = f"the batch at {position} has {frame.total_bytes} bytes, more than max_batch_bytes ({self.max_batch_bytes})"
                return Outcome("fatal" if position == self._recv_next else "rejected", why=why)
            if frame.count > MAX_CHUNKS_PER_BATCH:
                return Outcome("rejected", why=f"the batch at {position} claims {frame.count} chunks, more than {MAX_CHUNKS_PER_BATCH}")
            if not self._make_room(True, position):
                return Outcome("rejected", why=f"no room for the batch at {position}: {self.window} batches are buffered (the loader sent beyond its credit)")
            entry = _Assembly(position, frame.count, frame.chunk_size, frame.total_bytes)
            self._pending[position] = entry
            self._pending_batches += 1
        elif entry.count != frame.count or entry.chunk_size != frame.chunk_size or len(entry.data) != frame.total_bytes:
            return Outcome(
                "rejected",
                why=f"chunk {frame.index} of the batch at {position} says {frame.count} chunks of {frame.chunk_size} bytes, "
                f"{frame.total_bytes} in all; earlier chunks said {entry.count} of {entry.chunk_size}, {len(entry.data)} in all",
            )
        if entry.received == entry.count or entry.have[frame.index]:
            return DUPLICATE
        begin = frame.index * frame.chunk_size
        entry.data[begin : begin + len(frame.payload)] = frame.payload
        entry.have[frame.index] = 1
        entry.received += 1
        return Outcome("stored", readable=entry.received == entry.count and self._advance())

    def accept_end(self, session: int, epoch: int, batches: int) -> Outcome:
        """Stores a received end marker: epoch ``epoch`` has ``batches`` batches."""
        if session != self.session or not self.welcomed:
            return IGNORED
        position = Position(epoch, batches)
        assert self._recv_next is not None
        if position < self._recv_next:
            return DUPLICATE
        entry = self._pending.get(position)
        if entry is not None:
            if isinstance(entry, _PendingEnd):
                return DUPLICATE
            return Outcome("rejected", why=f"end of epoch {epoch} after {batches} batches, where a batch is at {position}")
        if not self._make_room(False, position):
            return Outcome("rejected", why=f"no room for the end of epoch {epoch}: {self.window} end markers are buffered")
        self._pending[position] = _PendingEnd(position)
        self._pending_ends += 1
        return Outcome("stored", readable=self._advance())

    def missing(self) -> Optional[Tuple[Position, Optional[List[int]]]]:
        """What to nack when nothing arrived for a while: ``(position, chunks)`` with the missing
        chunks of the batch in reassembly there (None: the whole item), or None when nothing is
        missing (before the welcome, or the buffer is full of items in order)."""
        if not self.welcomed:
            return None
        position = self._recv_next
        assert position is not None
        entry = self._pending.get(position)
        if isinstance(entry, _Assembly):
            chunks: List[int] = []
            for i in range(entry.count):
                if not entry.have[i]:
                    chunks.append(i)
                    if len(chunks) == MAX_NACK_CHUNKS:
                        break
            return position, chunks
        # Items held beyond the receive position mean one before them is missing. Without any, a
        # full buffer means the loader is out of credit: the consumer is behind, nothing is lost.
        if not self._pending and self.buffered_batches >= self.window:
            return None
        return position, None

    def take(self) -> Optional[Item]:
        """The next item in stream order, or None when none is ready; the caller acks it and grants credit."""
        if not self._ready:
            return None
        item = self._ready.popleft()
        is_end = isinstance(item, EndOfEpoch)
        self._read_pos = item.position.successor(is_end)
        self.last_consumed = item.position
        if not is_end:
            self._consumed_in_session += 1
        return item

    def _advance(self) -> bool:
        moved = False
        while True:
            position = self._recv_next
            assert position is not None
            entry = self._pending.get(position)
            if entry is None or (isinstance(entry, _Assembly) and entry.received < entry.count):
                return moved
            del self._pending[position]
            moved = True
            if isinstance(entry, _Assembly):
                self._pending_batches -= 1
                self._ready.append(ReceivedBatch(position.epoch, position.step, entry.data))
                self._recv_next = position.successor(False)
            else:
                self._pending_ends -= 1
                self._ready.append(EndOfEpoch(position.epoch, position.step))
                self._recv_next = position.successor(True)
                # Anything held for this epoch lies after its end: it cannot be a real item.
                for other in [p for p in self._pending if p.epoch == position.epoch]:
                    if isinstance(self._pending.pop(other), _Assembly):
                        self._pending_batches -= 1
                    else:
                        self._pending_ends -= 1

    def _make_room(self, is_batch: bool, position: Position) -> bool:
        """Room for one more item of this kind: under the limit, or after dropping the held one
        farthest ahead when ``position`` comes before it (the item the consumer needs next must
        always find room, or the stream would stall)."""
        held = self.buffered_batches if is_batch else self._pending_ends
        if held < self.window:
            return True
        kind = _Assembly if is_batch else _PendingEnd
        farthest = max((p for p, e in self._pending.items() if isinstance(e, kind)), default=None)
        if farthest is None or position >= farthest:
            return False
        del self._pending[farthest]
        if is_batch:
            self._pending_batches -= 1
        else:
            self._pending_ends -= 1
        return True
