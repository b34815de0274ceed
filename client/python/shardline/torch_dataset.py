"""A PyTorch ``IterableDataset`` over a rank's delivered batches: each ``iter()`` yields the next
epoch's batches as dicts of torch tensors (``torch.from_numpy``, moved to ``device`` when given).

Batches arrive already batched and already sharded for this rank, so use it with
``DataLoader(dataset, batch_size=None, num_workers=0)`` (the loader process does the parallel
work; a worker process would open a second stream for the same rank).
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional

import torch
from torch.utils.data import IterableDataset

from .errors import ArgumentError
from .sync import SyncBatchStream

METADATA_KEY = "_shardline"


class ShardlineIterableDataset(IterableDataset):
    """Batches of one rank as dicts of tensors; one ``iter()`` is one epoch.

    ``device``: where tensors go (``"cuda"``, ``"cuda:1"``, a ``torch.device``; default CPU);
    asking for CUDA without an available GPU is an ArgumentError. ``with_metadata`` adds a
    ``"_shardline"`` entry with job, epoch, rank, step and sample_ids. Other keyword arguments
    are :func:`shardline.batches` options.

    Example::

        dataset = ShardlineIterableDataset("mnist", rank, nats_url=url, namespace="ml", device="cuda")
        for epoch in range(epochs):
            for batch in DataLoader(dataset, batch_size=None):
                loss = model(batch["image"]).sum()
    """

    def __init__(self, job: str, rank: int, *, device: Any = None, with_metadata: bool = False, **options: Any) -> None:
        super().__init__()
        try:
            self.device: Optional[torch.device] = None if device is None else torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ArgumentError("device", f"{device!r} is not a torch device ({error})") from None
        if self.device is not None and self.device.type == "cuda" and not torch.cuda.is_available():
            raise ArgumentError("device", f"{device!r} was asked for, but CUDA is not available to torch")
        self.with_metadata = with_metadata
        options.setdefault("decode", True)
        if options["decode"] is not True:
            raise ArgumentError("decode", "the dataset decodes every batch; it cannot be False")
        self._job, self._rank, self._options = job, rank, options
        self._stream: Optional[SyncBatchStream] = None

    @property
    def stream(self) -> Optional[SyncBatchStream]:
        """The open stream (None before the first ``iter()``): wait time, position, stats."""
        return self._stream

    @property
    def wait_seconds(self) -> float:
        """Total time spent waiting for batches (the data-wait time)."""
        return 0.0 if self._stream is None else self._stream.wait_seconds

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        if self._stream is None:
            self._stream = SyncBatchStream(self._job, self._rank, **self._options).connect()
        for batch in self._stream.epoch():
            out: Dict[str, Any] = {}
            for name, array in batch.tensors.items():
                tensor = torch.from_numpy(array)
                if self.device is not None:
                    on_gpu = self.device.type == "cuda"
                    tensor = (tensor.pin_memory() if on_gpu else tensor).to(self.device, non_blocking=on_gpu)
                out[name] = tensor
            if self.with_metadata:
                out[METADATA_KEY] = {"job": batch.job, "epoch": batch.epoch, "rank": batch.rank, "step": batch.step, "sample_ids": batch.sample_ids}
            yield out

    def close(self) -> None:
        """Closes the stream (a ``bye`` to the loader). Idempotent."""
        if self._stream is not None:
            self._stream.close()
