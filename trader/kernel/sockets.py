"""What every bus socket shares: the per-process counters, the request errors, the sequence
numbers of a sending socket, decoding with a count of what was dropped, and binding ``ipc://``
paths left by a crashed run. ``bus.py`` re-exports all of it: use ``bus.<name>``."""

from __future__ import annotations

import itertools
import os
from collections import Counter
from typing import Any

import zmq

from trader.kernel import wire
from trader.kernel.errors import FlatguardError
from trader.kernel.wire import Message, WireError


class BusStats:
    """Per-process counters; reported in heartbeats and exported by the supervisor."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.dropped: Counter[str] = Counter()  # reason -> count

    def snapshot(self) -> dict[str, Any]:
        return {"sent": self.sent, "received": self.received, "dropped": dict(self.dropped)}


STATS = BusStats()


class RequestError(FlatguardError):
    """A request got an error reply. ``kind`` is the serving side's classification.
    Policy: the caller decides by kind (an order reported not placed, a command answered)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}", kind=kind)
        self.message = message


class RequestTimeout(RequestError):
    """No reply within the timeout: the peer is slow, hung or gone. The outcome is unknown."""

    def __init__(self, op: str, timeout: float) -> None:
        super().__init__("timeout", f"no reply to {op!r} within {timeout:g} s")


def _setup(sock: zmq.Socket[Any]) -> None:
    sock.setsockopt(zmq.LINGER, 0)


class _Sequenced:
    def __init__(self, source: str) -> None:
        self.source = source
        self._seq = itertools.count(1)

    def frames(self, topic: str, data: dict[str, Any]) -> list[bytes]:
        return wire.encode(topic, self.source, next(self._seq), data)


def decode_counted(frames: list[bytes]) -> Message | None:
    """Decode one message, or count it as dropped and return None."""
    try:
        msg = wire.decode(frames)
    except WireError:
        STATS.dropped["malformed"] += 1
        return None
    STATS.received += 1
    return msg


def bind_fresh(sock: zmq.Socket[Any], endpoint: str) -> None:
    """Bind a serving socket, first removing an ``ipc://`` path left by a crashed run (the run
    lock says no live process serves it)."""
    path = endpoint.removeprefix("ipc://")
    if endpoint.startswith("ipc://") and os.path.exists(path):
        os.unlink(path)
    sock.bind(endpoint)


def unlink_ipc(endpoint: str) -> None:
    """Remove a closed serving socket's ``ipc://`` path (nothing to do for tcp)."""
    if endpoint.startswith("ipc://"):
        try:
            os.unlink(endpoint.removeprefix("ipc://"))
        except FileNotFoundError:
            pass


def _unwrap(reply: dict[str, Any]) -> Any:
    if reply.get("ok"):
        return reply.get("result")
    err = reply.get("error") or {}
    raise RequestError(str(err.get("kind", "error")), str(err.get("message", "unknown error")))
