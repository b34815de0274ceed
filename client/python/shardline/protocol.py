"""The trainer's end of the delivery protocol without I/O (docs/protocol.md §3, §6, §7, §9).

Sessions (hello, retries, welcome, refusals, resets), data frames and end markers into a
:class:`ReceiveWindow`, and the control messages the trainer sends: an ``ack`` and a ``credit`` as
the consumer takes each item, a ``nack`` when nothing arrived for ``resend_after`` seconds while
something is missing, and the heartbeat ``ack`` + ``credit`` every ``heartbeat`` seconds. Time is
passed in (``now``, seconds), so tests drive it. A mirror of
core/src/protocol/receiver-protocol.ts; client.py does the NATS I/O and the waiting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import ConnectTimeoutError, FormatError, ShardlineError, refusal_error
from .receive_window import Item, Outcome, ReceiveWindow
from .shm import StaleDescriptorError
from .wire import (
    FRAME_KIND_SHM,
    PROTOCOL_VERSION,
    ChunkFrame,
    ShmFrame,
    EndOfEpochMessage,
    Position,
    Refused,
    Reset,
    Welcome,
    decode_frame,
    decode_loader_message,
    decode_shm_frame,
    encode_ack,
    encode_bye,
    encode_credit,
    encode_hello,
    encode_nack,
    frame_kind,
    new_session_id,
)

logger = logging.getLogger("shardline")

MAX_NACK_BACKOFF = 8.0
"""The most a repeated nack of one item is held back, in multiples of resend_after."""

MIN_BUSY_GAP = 0.05
"""A gap between ticks longer than resend_after, and at least this (s), means the process was busy."""

Outgoing = Tuple[str, bytes]
"""A message to publish: the subject kind (``hello`` or ``ctl``) and its bytes."""

Event = Dict[str, Any]
"""A protocol event for logs and metrics, e.g. ``{"type": "nack", "epoch": 0, "step": 3}``."""


@dataclass(frozen=True)
class ProtocolOptions:
    """Options of :class:`ReceiverProtocol` (times in seconds)."""

    job: str
    rank: int
    client_id: str
    host_id: str
    window: int = 4
    max_batch_bytes: int = 64 * 1024 * 1024
    resume: Optional[Position] = None
    resend_after: float = 0.25
    heartbeat: float = 1.0
    hello_retry: float = 1.0
    connect_timeout: float = 30.0
    protocol_version: int = PROTOCOL_VERSION
    shm: bool = False
    """Offer to read batches from the loader's shared-memory segments (§12); the loader decides."""
    on_event: Optional[Callable[[Event], None]] = field(default=None, compare=False)


@dataclass(frozen=True)
class Step:
    """Messages to publish, and whether the consumer can read more now."""

    outgoing: List[Outgoing]
    readable: bool = False
    shm: Optional[ShmFrame] = None
    """A batch to read from shared memory, then hand to :meth:`ReceiverProtocol.on_shm_batch` (or on failure to ``shm_failed``)."""


class ReceiverProtocol:
    """The trainer's protocol engine; ``state`` is idle, connecting, open, failed or closed."""

    def __init__(self, options: ProtocolOptions) -> None:
        self.options = options
        self.window = ReceiveWindow(options.job, options.rank, options.window, options.max_batch_bytes, options.resume)
        self.state = "idle"
        self.failure: Optional[ShardlineError] = None
        """Why the stream cannot go on (state ``failed``)."""
        self.session = 0
        self._connecting_since = 0.0
        self._hello_sent_at = 0.0
        self._waited = 0.0
        self._shm_offered = options.shm
        self.transport = "nats"
        """How the open session's batches travel: ``nats`` or ``shm``."""
        self._last_refusal: Optional[str] = None
        self._last_progress_at = 0.0
        self._last_control_at = 0.0
        self._last_tick_at = 0.0
        self._nack_backoff = 1.0
        """Multiplies resend_after for the next nack: doubles while one item goes unanswered (to 8), 1 again on progress."""
        self._last_nacked: Optional[Position] = None

    def connect(self, now: float, why: str) -> List[Outgoing]:
        """Starts a new session (``why``: start, retry, reconnect, reset): drops what was received
        and not consumed and says hello from the consumer's position."""
        if self.state in ("failed", "closed"):
            return []
        if why != "retry" or self.state != "connecting":
            self._connecting_since = now
            self._last_refusal = None
        self.state = "connecting"
        self.session = new_session_id(self.session)
        self._waited = 0.0
        self.transport = "nats"
        resume, credits = self.window.begin(self.session)
        self._hello_sent_at = now
        self._emit({"type": "hello", "session": self.session, "resume": resume, "credits": credits, "why": why})
        o = self.options
        return [("hello", encode_hello(self.session, o.job, o.rank, o.client_id, o.host_id, credits, resume, o.protocol_version, self._shm_offered))]

    def on_events(self, data: bytes, now: float) -> Step:
        """Handles a message of the ``events`` subject: welcome, refused, end-of-epoch, reset."""
        if self.state in ("failed", "closed", "idle"):
            return Step([])
        try:
            message = decode_loader_message(data)
        except FormatError as error:
            self._emit({"type": "malformed", "subject": "events", "error": str(error)})
            return Step([])
        if message.session != self.session:
            return Step([])  # another session's or another client's
        if isinstance(message, Welcome):
            return self._on_welcome(message, now)
        if isinstance(message, Refused):
            if self.state != "connecting":
                return Step([])
            self._emit({"type": "refused", "session": message.session, "reason": message.reason, "message": message.message})
            if message.reason == "busy":
                self._last_refusal = message.message  # retried every hello_retry until connect_timeout
                return Step([])
            self._fail(refusal_error(message.reason, message.message, message.supported_versions, self.options.protocol_version))
            return Step([])
        if isinstance(message, EndOfEpochMessage):
            outcome = self.window.accept_end(message.session, message.epoch, message.batches)
            return self._accepted(outcome, Position(message.epoch, message.batches), now)
        assert isinstance(message, Reset)
        self._emit({"type": "reset", "session": message.session, "reason": message.reason})
        return Step(self.connect(now, "reset"))

    def on_data(self, data: bytes, now: float) -> Step:
        """Handles a data frame."""
        if self.state != "open":
            return Step([])
        if frame_kind(data) == FRAME_KIND_SHM:
            return self._on_shm_frame(data)
        try:
            frame = decode_frame(data)
        except FormatError as error:
            self._emit({"type": "malformed", "subject": "data", "error": str(error)})
            return Step([])
        return self._accepted(self.window.accept_chunk(frame), frame.position, now)

    def on_shm_batch(self, frame: ShmFrame, data: bytes, now: float) -> Step:
        """Takes a batch read from shared memory for a frame that :meth:`on_data` returned."""
        if self.state != "open" or frame.session != self.session:
            return Step([])
        if len(data) != frame.total_bytes:
            self._emit({"type": "rejected", "why": f"shared memory gave {len(data)} bytes for the batch at {frame.position}, its frame says {frame.total_bytes}"})
            return Step([])
        chunk = ChunkFrame(frame.session, frame.job, frame.rank, frame.epoch, frame.step, 0, 1, frame.total_bytes, frame.total_bytes, memoryview(data))
        return self._accepted(self.window.accept_chunk(chunk), frame.position, now)

    def shm_failed(self, frame: ShmFrame, error: Exception, now: float) -> List[Outgoing]:
        """Reading from shared memory failed. A stale descriptor (a late copy) is only dropped;
        anything else (the folder is not shared, the segment is gone) stops the offer and starts a
        new session over NATS. Returns the hello to send, if any."""
        if self.state != "open" or frame.session != self.session or not self._shm_offered:
            return []
        if isinstance(error, StaleDescriptorError):
            # The slot moved on (a late copy): drop it; a nack brings the item again if still missing.
            self._emit({"type": "rejected", "why": str(error)})
            return []
        self._shm_offered = False
        self._emit({"type": "shm-failed", "error": str(error)})
        return self.connect(now, "reconnect")

    def _on_shm_frame(self, data: bytes) -> Step:
        try:
            frame = decode_shm_frame(data)
        except FormatError as error:
            self._emit({"type": "malformed", "subject": "data", "error": str(error)})
            return Step([])
        if frame.session != self.session:
            return Step([])
        if self.transport == "shm" and not self.window.wants(frame.session, frame.position):
            # A late copy (the item was received, maybe consumed and its slot reused): never read it.
            self._emit({"type": "duplicate", "epoch": frame.epoch, "step": frame.step})
            return Step([])
        o = self.options
        if self.transport != "shm":
            self._emit({"type": "rejected", "why": f"a shared-memory frame for {frame.position} in a session whose transport is {self.transport}"})
            return Step([])
        if frame.job != o.job or frame.rank != o.rank:
            self._emit({"type": "rejected", "why": f"frame is for job {frame.job!r} rank {frame.rank}, this stream is job {o.job!r} rank {o.rank}"})
            return Step([])
        return Step([], shm=frame)

    def take(self, now: float) -> Tuple[Optional[Item], List[Outgoing]]:
        """The next item for the consumer, with the ack and credit to send for it."""
        item = self.window.take()
        if item is None or self.state != "open":
            return item, []
        self._last_control_at = now
        return item, self._progress_messages()

    def tick(self, now: float) -> List[Outgoing]:
        """Timers: hello retries and the connect timeout, nacks when stalled, heartbeats."""
        o = self.options
        if self.state == "connecting":
            if now - self._connecting_since >= o.connect_timeout:
                why = "no loader answered" if self._last_refusal is None else f"the last answer: {self._last_refusal}"
                self._fail(
                    ConnectTimeoutError(
                        f"no welcome for job {o.job!r} rank {o.rank} within {o.connect_timeout:g} s (connect_timeout): {why}"
                    )
                )
                return []
            return self.connect(now, "retry") if now - self._hello_sent_at >= o.hello_retry else []
        if self.state != "open":
            return []
        out: List[Outgoing] = []
        # A tick this late means the process was busy (a training step): frames that arrived
        # meanwhile wait behind this timer, so start the silence over instead of nacking them.
        busy = now - self._last_tick_at > max(o.resend_after, MIN_BUSY_GAP)
        self._last_tick_at = now
        if busy:
            self._last_progress_at = max(self._last_progress_at, now)
        elif now - self._last_progress_at >= o.resend_after * self._nack_backoff:
            self._last_progress_at = now
            missing = self.window.missing()
            if missing is not None:
                position, chunks = missing
                # Asking again for the same item with nothing arriving meanwhile waits twice as long each time.
                self._nack_backoff = min(self._nack_backoff * 2, MAX_NACK_BACKOFF) if position == self._last_nacked else 2.0
                self._last_nacked = position
                self._emit({"type": "nack", "epoch": position.epoch, "step": position.step, "chunks": chunks or None})
                out.append(("ctl", encode_nack(self.session, position, chunks or None)))
        if now - self._last_control_at >= o.heartbeat:
            self._last_control_at = now
            out.extend(self._progress_messages())
        return out

    def close(self) -> List[Outgoing]:
        """Leaves the stream: a ``bye`` when a session is open."""
        was_open = self.state == "open"
        if self.state != "failed":
            self.state = "closed"
        return [("ctl", encode_bye(self.session))] if was_open else []

    def _on_welcome(self, message: Welcome, now: float) -> Step:
        if self.state != "connecting":
            return Step([])
        o = self.options
        # A welcome no honest loader sends is dropped, not obeyed; if it was the loader's, the
        # hello retries end in the connect timeout, whose error quotes it.
        if message.job != o.job or message.rank != o.rank:
            return self._bad_welcome(f"the welcome names job {message.job!r} rank {message.rank}, this stream is job {o.job!r} rank {o.rank}")
        outcome = self.window.welcome(message.session, message.next)
        if outcome == "ignored":
            return Step([])
        if outcome != "ok":
            return self._bad_welcome(outcome[1])
        self.state = "open"
        self._last_progress_at = now
        self._last_control_at = now
        # Only what the hello offered: a loader cannot push a trainer onto shared memory.
        self.transport = "shm" if self._shm_offered and message.transport == "shm" else "nats"
        self._emit(
            {
                "type": "welcome",
                "session": message.session,
                "next": message.next,
                "loader_id": message.loader_id,
                "host_id": message.host_id,
                "max_credits": message.max_credits,
                "transport": self.transport,
            }
        )
        if message.max_credits < o.window:
            logger.warning("window %d is above the loader's max_credits %d: the loader clamps the credit", o.window, message.max_credits)
        return Step([])

    def _progress_messages(self) -> List[Outgoing]:
        out: List[Outgoing] = []
        if self.window.last_consumed is not None:
            out.append(("ctl", encode_ack(self.session, self.window.last_consumed)))
        out.append(("ctl", encode_credit(self.session, self.window.granted, self._waited)))
        return out

    def add_wait(self, seconds: float) -> None:
        """Adds to the wait reported to the loader with the next credit (``credit.waitedSeconds``)."""
        if seconds > 0:
            self._waited += seconds

    def _accepted(self, outcome: Outcome, at: Position, now: float) -> Step:
        if outcome.status == "stored":
            self._last_progress_at = now
            self._nack_backoff = 1.0
            self._last_nacked = None
            return Step([], outcome.readable)
        if outcome.status == "duplicate":
            self._emit({"type": "duplicate", "epoch": at.epoch, "step": at.step})
        elif outcome.status == "rejected":
            self._emit({"type": "rejected", "why": outcome.why})
        elif outcome.status == "fatal":
            self._fail(FormatError(f"{outcome.why}; the stream cannot go on past {at}"))
        return Step([])

    def _bad_welcome(self, why: str) -> Step:
        self._last_refusal = why
        self._emit({"type": "rejected", "why": why})
        return Step([])

    def _fail(self, error: ShardlineError) -> None:
        self.state = "failed"
        self.failure = error
        self._emit({"type": "failed", "error": str(error)})

    def _emit(self, event: Event) -> None:
        kind = event["type"]
        if kind in ("malformed", "rejected", "failed"):
            logger.warning("shardline %s rank %d: %s", self.options.job, self.options.rank, event)
        else:
            logger.debug("shardline %s rank %d: %s", self.options.job, self.options.rank, event)
        if self.options.on_event is not None:
            self.options.on_event(event)
