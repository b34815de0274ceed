"""shardline: the trainer client of Shardline's batch delivery protocol (docs/protocol.md, version 1).

A rank's batches arrive from its loader over core NATS, exactly once and in order, decoded from
the safetensors wire format (docs/wire-format.md) into numpy arrays:

- :func:`batches` / :class:`BatchStream`: an asyncio async iterator;
- :class:`SyncBatchStream`: the same as a plain iterator (the loop runs in a background thread);
- ``shardline.torch_dataset.ShardlineIterableDataset``: a PyTorch IterableDataset of dicts of
  tensors (imported on demand, so torch is optional).
"""

import logging

from .batch import Batch, decode_batch
from .client import BatchStream, Delivery, batches
from .errors import (
    ArgumentError,
    ClosedError,
    ConnectTimeoutError,
    FormatError,
    ProtocolVersionError,
    RefusedError,
    ShardlineError,
)
from .receive_window import EndOfEpoch, ReceivedBatch
from .sync import SyncBatchStream
from .wire import PROTOCOL_VERSION, Position, delivery_subjects

__version__ = "0.1.0"

# A library logs to "shardline" and leaves handlers to the application.
logging.getLogger("shardline").addHandler(logging.NullHandler())


def __getattr__(name: str):  # lazy: torch is heavy and optional
    if name == "ShardlineIterableDataset":
        from .torch_dataset import ShardlineIterableDataset

        return ShardlineIterableDataset
    raise AttributeError(f"module 'shardline' has no attribute {name!r}")


__all__ = [
    "PROTOCOL_VERSION",
    "ArgumentError",
    "Batch",
    "BatchStream",
    "ClosedError",
    "ConnectTimeoutError",
    "Delivery",
    "EndOfEpoch",
    "FormatError",
    "Position",
    "ProtocolVersionError",
    "ReceivedBatch",
    "RefusedError",
    "ShardlineError",
    "ShardlineIterableDataset",
    "SyncBatchStream",
    "batches",
    "decode_batch",
    "delivery_subjects",
]
