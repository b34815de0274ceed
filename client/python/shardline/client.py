"""The trainer's end of batch delivery over core NATS, for asyncio (docs/protocol.md).

:func:`batches` opens a :class:`BatchStream`: it subscribes to a rank's ``data`` and ``events``
subjects, says hello, and hands the consumer the rank's items in stream order, exactly once —
each batch decoded into numpy arrays (:class:`~shardline.batch.Batch`), and after an epoch's
batches its :class:`~shardline.receive_window.EndOfEpoch`. The protocol logic is
:class:`~shardline.protocol.ReceiverProtocol`; this module adds the connection (nats-py), a timer
task for hello retries, nacks and heartbeats, a new session after every reconnect, and the
waiting of a read, whose duration is the trainer's data-wait time.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Union

from .batch import Batch, decode_batch
from .errors import ArgumentError, ClosedError, FormatError, ShardlineError
from .protocol import Event, Outgoing, ProtocolOptions, ReceiverProtocol
from .receive_window import EndOfEpoch, ReceivedBatch
from .shm import ShmReader
from .wire import (
    MAX_U32,
    PROTOCOL_VERSION,
    Position,
    delivery_subjects,
    require_id,
    require_int,
    require_position,
    safe_id,
)

Delivery = Union[Batch, ReceivedBatch, EndOfEpoch]
"""What a read returns: a decoded :class:`Batch` (a raw ReceivedBatch with ``decode=False``) or an EndOfEpoch."""

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def _require_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value <= 86_400 * 365):
        raise ArgumentError(name, f"must be a number of seconds in (0, 31536000], got {value!r}")
    return float(value)


class BatchStream:
    """One rank's batches from its loader over NATS; use :func:`batches` to make one.

    An async iterator of :class:`Batch` and :class:`EndOfEpoch` items (ending after ``epochs``
    end markers when given), and an async context manager that closes it. ``wait_seconds`` is
    the total time reads waited for their item (the data-wait time), over ``reads`` reads.
    """

    def __init__(
        self,
        job: str,
        rank: int,
        *,
        nats_url: str = DEFAULT_NATS_URL,
        nc: Any = None,
        namespace: str = "default",
        window: int = 4,
        resume: Any = None,
        client_id: Optional[str] = None,
        host_id: Optional[str] = None,
        max_batch_bytes: int = 64 * 1024 * 1024,
        resend_after: float = 0.25,
        heartbeat: float = 1.0,
        hello_retry: float = 1.0,
        connect_timeout: float = 30.0,
        decode: bool = True,
        epochs: Optional[int] = None,
        on_event: Optional[Callable[[Event], None]] = None,
        on_wait: Optional[Callable[[float], None]] = None,
        nats_options: Optional[Dict[str, Any]] = None,
        protocol_version: int = PROTOCOL_VERSION,
        shm: Union[bool, str] = True,
    ) -> None:
        self.subjects = delivery_subjects(namespace, job, rank)  # checks namespace, job and rank
        host = safe_id(socket.gethostname())
        options = ProtocolOptions(
            job=job,
            rank=rank,
            client_id=require_id("client_id", client_id if client_id is not None else safe_id(f"{host}-rank-{rank}")),
            host_id=require_id("host_id", host_id if host_id is not None else host),
            window=require_int("window", window, 1, 1_000_000),
            max_batch_bytes=require_int("max_batch_bytes", max_batch_bytes, 1, MAX_U32),
            resume=None if resume is None else require_position("resume", resume),
            resend_after=_require_seconds("resend_after", resend_after),
            heartbeat=_require_seconds("heartbeat", heartbeat),
            hello_retry=_require_seconds("hello_retry", hello_retry),
            connect_timeout=_require_seconds("connect_timeout", connect_timeout),
            protocol_version=require_int("protocol_version", protocol_version, 0, MAX_U32),
            shm=shm is not False,
            on_event=self._count,
        )
        if not isinstance(shm, (bool, str)) or shm == "":
            raise ArgumentError("shm", f"must be True, False or a folder path, got {shm!r}")
        self._shm: Optional[ShmReader] = None if shm is False else ShmReader(job, rank, "/dev/shm" if shm is True else shm)
        self.shm_batches = 0
        """Batches read from shared memory."""
        if epochs is not None:
            require_int("epochs", epochs, 1, MAX_U32)
        if not isinstance(nats_url, str) or nats_url == "":
            raise ArgumentError("nats_url", f"must be a NATS server URL, got {nats_url!r}")
        self._protocol = ReceiverProtocol(options)
        self._nats_url = nats_url
        self._nats_options = dict(nats_options or {})
        self._nc = nc
        self._own_nc = nc is None
        self._decode = bool(decode)
        self._epochs_left = epochs
        self._on_event = on_event
        self._on_wait = on_wait
        self._subscriptions: List[Any] = []
        self._ticker: Optional[asyncio.Task] = None
        self._wake: Optional[asyncio.Event] = None
        self._transport_failure: Optional[ShardlineError] = None
        self._closed: Optional[ClosedError] = None
        self._connected = False
        self._reconnects = 0
        self.wait_seconds = 0.0
        """Total time reads waited for their item, in seconds (the trainer's data-wait time)."""
        self.reads = 0
        self.delivered = 0
        self.delivered_bytes = 0
        self.counters: Dict[str, int] = {"hello": 0, "nack": 0, "duplicate": 0, "rejected": 0, "malformed": 0, "reset": 0}

    @property
    def position(self) -> Optional[Position]:
        """The position the next read returns (what a checkpoint stores as ``resume``)."""
        return self._protocol.window.position

    @property
    def state(self) -> str:
        return self._protocol.state

    def stats(self) -> Dict[str, Any]:
        """Counters since connect, and the state now."""
        w = self._protocol.window
        return {
            "state": self._protocol.state,
            "position": w.position,
            "session": self._protocol.session,
            "ready": w.ready_count,
            "buffered_batches": w.buffered_batches,
            "buffered_bytes": w.buffered_bytes,
            "delivered": self.delivered,
            "delivered_bytes": self.delivered_bytes,
            "wait_seconds": self.wait_seconds,
            "reads": self.reads,
            "transport": self._protocol.transport,
            "shm_batches": self.shm_batches,
            **{f"{k}s": v for k, v in self.counters.items()},
        }

    async def connect(self) -> "BatchStream":
        """Connects (unless a connection was given), subscribes, says hello and waits for the welcome.

        Raises ProtocolVersionError or RefusedError when the loader refuses the hello,
        ConnectTimeoutError when no loader welcomed it within ``connect_timeout``, ArgumentError
        when the server refuses the subscriptions (permissions).
        """
        if self._closed is not None:
            raise self._closed
        if self._connected:
            return self
        self._wake = asyncio.Event()
        try:
            if self._nc is None:
                import nats

                self._nc = await nats.connect(
                    self._nats_url,
                    error_cb=self._on_nats_error,
                    closed_cb=self._on_nats_closed,
                    **self._nats_options,
                )
            self._reconnects = self._nc.stats.get("reconnects", 0)
            for subject, handler in ((self.subjects.events, self._on_events), (self.subjects.data, self._on_data)):
                self._subscriptions.append(await self._nc.subscribe(subject, cb=handler))
            await self._nc.flush()  # the subscriptions exist on the server before the loader can answer
            self._check_permissions()
            if self._transport_failure is not None:
                raise self._transport_failure
            await self._publish(self._protocol.connect(time.monotonic(), "start"))
            period = max(0.005, min(self._protocol.options.resend_after, self._protocol.options.heartbeat, self._protocol.options.hello_retry) / 2)
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever(period))
            while self._protocol.state != "open":
                failure = self._failure()
                if failure is not None:
                    raise failure
                self._wake.clear()
                await self._wake.wait()
            self._connected = True
            return self
        except BaseException:
            await self.aclose()
            raise

    async def read(self) -> Delivery:
        """The next item of the stream: a batch, or an epoch's end after its batches.

        Raises the stream's failure (RefusedError, ConnectTimeoutError, FormatError), ClosedError
        after :meth:`aclose`.
        """
        started = time.monotonic()
        if not self._connected:
            await self.connect()
        assert self._wake is not None
        while True:
            if self._closed is not None:
                raise self._closed
            failure = self._failure()
            if failure is not None:
                raise failure
            now = time.monotonic()
            item, outgoing = self._protocol.take(now)
            if item is not None:
                break
            self._wake.clear()
            await self._wake.wait()
        waited = now - started
        self.reads += 1
        self.wait_seconds += waited
        self._protocol.add_wait(waited)
        if self._on_wait is not None:
            self._on_wait(waited)
        await self._publish(outgoing)
        if isinstance(item, EndOfEpoch):
            return item
        self.delivered += 1
        self.delivered_bytes += len(item.data)
        if not self._decode:
            return item
        o = self._protocol.options
        return decode_batch(item.data, expect=(o.job, o.rank, item.epoch, item.step))

    async def epoch(self) -> AsyncIterator[Delivery]:
        """The batches of the next epoch in step order; ends after the epoch's end marker."""
        while True:
            item = await self.read()
            if isinstance(item, EndOfEpoch):
                return
            yield item

    def __aiter__(self) -> "BatchStream":
        return self

    async def __anext__(self) -> Delivery:
        if self._epochs_left == 0:
            await self.aclose()
            raise StopAsyncIteration
        try:
            item = await self.read()
        except ClosedError:
            if self._closed is not None:
                raise StopAsyncIteration from None
            raise
        if isinstance(item, EndOfEpoch) and self._epochs_left is not None:
            self._epochs_left -= 1
        return item

    async def __aenter__(self) -> "BatchStream":
        return await self.connect()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Says bye (the loader keeps what was not consumed), unsubscribes, and closes the
        connection when this stream made it. Idempotent."""
        if self._closed is not None:
            return
        self._closed = ClosedError(f"the batch stream on {self.subjects.data} is closed")
        if self._shm is not None:
            self._shm.close()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._nc is not None and not self._nc.is_closed:
            await self._publish(self._protocol.close())
            for sub in self._subscriptions:
                try:
                    await sub.unsubscribe()
                except Exception:  # noqa: BLE001 — closing anyway
                    pass
            try:
                await self._nc.flush(timeout=2)
                if self._own_nc:
                    await self._nc.close()
            except Exception:  # noqa: BLE001 — the connection may already be gone
                pass
        else:
            self._protocol.close()
        if self._wake is not None:
            self._wake.set()

    # -- internals ------------------------------------------------------------------------------

    async def _on_events(self, msg: Any) -> None:
        await self._step(self._protocol.on_events(msg.data, time.monotonic()))

    async def _on_data(self, msg: Any) -> None:
        step = self._protocol.on_data(msg.data, time.monotonic())
        await self._step(step)
        if step.shm is not None and self._shm is not None and self._closed is None:
            frame = step.shm
            try:
                data = self._shm.read(frame.descriptor)
            except (FormatError, OSError) as error:
                await self._publish(self._protocol.shm_failed(frame, error, time.monotonic()))
                return
            self.shm_batches += 1
            await self._step(self._protocol.on_shm_batch(frame, data, time.monotonic()))

    async def _step(self, step: Any) -> None:
        if self._closed is not None:
            return
        self._wake_readers()
        await self._publish(step.outgoing)

    async def _tick_forever(self, period: float) -> None:
        while self._closed is None:
            await asyncio.sleep(period)
            if self._closed is not None:
                return
            if self._nc is not None and self._nc.is_closed and self._transport_failure is None:
                self._transport_failure = ClosedError(f"the NATS connection of the batch stream on {self.subjects.data} closed")
            reconnects = self._nc.stats.get("reconnects", 0) if self._nc is not None else 0
            out: List[Outgoing] = []
            if reconnects != self._reconnects:
                # Messages in flight when the connection dropped are lost: a new session from the consumer's position.
                self._reconnects = reconnects
                out.extend(self._protocol.connect(time.monotonic(), "reconnect"))
            out.extend(self._protocol.tick(time.monotonic()))
            self._wake_readers()
            await self._publish(out)

    def _wake_readers(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _publish(self, outgoing: List[Outgoing]) -> None:
        for kind, data in outgoing:
            subject = self.subjects.hello if kind == "hello" else self.subjects.ctl
            try:
                await self._nc.publish(subject, data)
            except Exception:  # noqa: BLE001
                # Lost like any message in flight: hellos are retried, credit and ack repeat with the heartbeat.
                pass

    def _failure(self) -> Optional[ShardlineError]:
        return self._transport_failure or self._protocol.failure

    def _check_permissions(self, error: Any = None) -> None:
        text = str(error if error is not None else getattr(self._nc, "last_error", None) or "")
        if "permissions violation" in text.lower() and "subscription" in text.lower():
            for subject in (self.subjects.data, self.subjects.events):
                if subject in text:
                    self._transport_failure = self._transport_failure or ArgumentError("nc", f"cannot subscribe to {subject}: {text}")

    async def _on_nats_error(self, error: Exception) -> None:
        self._check_permissions(error)
        self._wake_readers()

    async def _on_nats_closed(self) -> None:
        if self._closed is None and self._transport_failure is None:
            self._transport_failure = ClosedError(f"the NATS connection of the batch stream on {self.subjects.data} closed")
        self._wake_readers()

    def _count(self, event: Event) -> None:
        kind = event["type"]
        if kind in self.counters:
            self.counters[kind] += 1
        if self._on_event is not None:
            self._on_event(event)


def batches(job: str, rank: int, **options: Any) -> BatchStream:
    """One rank's batches from its loader, as an asyncio async iterator (not connected until
    first read, or ``async with``).

    Options: ``nats_url`` (or ``nc``, an open nats-py connection), ``namespace`` ("default"),
    ``window`` (4, the batches buffered at most), ``resume`` (the position after the last item
    this trainer consumed, from its checkpoint; None: after the loader's last ack),
    ``client_id``, ``host_id``, ``max_batch_bytes`` (64 MiB), ``resend_after`` (0.25 s),
    ``heartbeat`` (1 s), ``hello_retry`` (1 s), ``connect_timeout`` (30 s), ``decode`` (True),
    ``epochs`` (stop after that many end markers), ``on_event``, ``on_wait`` (called with each
    read's wait in seconds), ``nats_options`` (more nats.connect arguments), ``shm`` (True:
    offer to read batches from the loader's shared-memory segments in /dev/shm when it runs on
    the same host, per ``host_id``; a folder path: there; False: NATS only). Bad options raise
    ArgumentError at once.

    Example::

        async for item in shardline.batches("mnist", 0, nats_url="nats://nats:4222", namespace="ml", epochs=1):
            if isinstance(item, shardline.EndOfEpoch):
                continue
            train(item.tensors["image"], item.tensors["label"])
    """
    return BatchStream(job, rank, **options)
