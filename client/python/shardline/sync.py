"""A plain synchronous iterator over a :class:`~shardline.client.BatchStream`, for training loops
that are not asyncio: the stream runs on an event loop in a background thread, and each
``next()`` waits for the next item there (an ack is sent only when ``next()`` takes the batch)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Iterator, Optional

from .client import BatchStream, Delivery
from .receive_window import EndOfEpoch


class SyncBatchStream:
    """Synchronous iterator of a rank's items (:class:`Batch` and :class:`EndOfEpoch`).

    Example::

        with shardline.SyncBatchStream("mnist", 0, nats_url=url, namespace="ml") as stream:
            for batch in stream.epoch():
                train(batch.tensors)
            print("waited", stream.wait_seconds, "s for data")
    """

    def __init__(self, job: str, rank: int, **options: Any) -> None:
        self._stream = BatchStream(job, rank, **options)  # bad options raise here, before any thread
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"shardline-{job}-{rank}", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def stream(self) -> BatchStream:
        """The underlying asyncio stream (its counters and position are safe to read)."""
        return self._stream

    @property
    def wait_seconds(self) -> float:
        """Total time reads waited for their item (the data-wait time)."""
        return self._stream.wait_seconds

    @property
    def position(self) -> Any:
        return self._stream.position

    def _run(self, coroutine: Any, timeout: Optional[float] = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def connect(self) -> "SyncBatchStream":
        """Connects and waits for the loader's welcome (see :meth:`BatchStream.connect`)."""
        self._run(self._stream.connect())
        return self

    def read(self) -> Delivery:
        """The next item: a batch, or an epoch's end after its batches."""
        return self._run(self._stream.read())

    def epoch(self) -> Iterator[Delivery]:
        """The batches of the next epoch; ends after the epoch's end marker."""
        while True:
            item = self.read()
            if isinstance(item, EndOfEpoch):
                return
            yield item

    def __iter__(self) -> "SyncBatchStream":
        return self

    def __next__(self) -> Delivery:
        try:
            return self._run(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """Closes the stream (a ``bye`` to the loader) and stops the background thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._stream.aclose(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> "SyncBatchStream":
        return self.connect()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and getattr(self, "_loop", None) is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
