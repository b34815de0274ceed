"""Errors of the Shardline trainer client.

Every error derives from :class:`ShardlineError` and carries a ``code`` equal to the TypeScript
code of the same error (core/src/errors.ts), so logs read the same on both sides. Messages name
the offending argument, field or value.
"""

from __future__ import annotations

import builtins
from typing import Sequence


class ShardlineError(Exception):
    """Base class of every error raised by the Shardline client."""

    code = "ERR_SHARDLINE"


class ArgumentError(ShardlineError, ValueError):
    """An argument is invalid; ``argument`` names it (e.g. ``window``)."""

    code = "ERR_INVALID_ARGUMENT"

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class FormatError(ShardlineError, ValueError):
    """Received bytes are not what the protocol or the wire format allows."""

    code = "ERR_FORMAT"


class ConnectTimeoutError(ShardlineError, builtins.TimeoutError):
    """No loader welcomed the trainer within ``connect_timeout`` seconds."""

    code = "ERR_TIMEOUT"


class ClosedError(ShardlineError):
    """The stream was closed (by :meth:`BatchStream.aclose`, or its NATS connection closed)."""

    code = "ERR_CLOSED"


class RefusedError(ShardlineError):
    """The loader refused the trainer's hello for ``reason`` (``job``, ``rank`` or ``resume``)."""

    code = "ERR_INVALID_ARGUMENT"

    def __init__(self, reason: str, message: str, supported_versions: Sequence[int] = ()) -> None:
        super().__init__(f"the loader refused the hello ({reason}): {message}")
        self.reason = reason
        self.loader_message = message
        self.supported_versions = tuple(supported_versions)


class ProtocolVersionError(RefusedError):
    """The loader does not speak this client's protocol version; ``supported_versions`` lists what it speaks."""

    def __init__(self, version: int, message: str, supported_versions: Sequence[int]) -> None:
        super().__init__("version", message, supported_versions)
        self.version = version
        self.args = (
            f"the loader refused protocol version {version} (it speaks {list(supported_versions)}): {message}",
        )

    def __str__(self) -> str:
        return str(self.args[0])


def refusal_error(reason: str, message: str, supported: Sequence[int], version: int) -> RefusedError:
    """The error for a ``refused`` answer of the given reason."""
    if reason == "version":
        return ProtocolVersionError(version, message, supported)
    return RefusedError(reason, message, supported)


__all__ = [
    "ArgumentError",
    "ClosedError",
    "ConnectTimeoutError",
    "FormatError",
    "ProtocolVersionError",
    "RefusedError",
    "ShardlineError",
    "refusal_error",
]
