"""The wire format: the one module that knows how a bus message looks in bytes.

A message is two ZeroMQ frames ``[topic, body]``. The topic is short ASCII with dotted parts
(``md.BTC/USDT:USDT``, ``hb``, ``req.order``) so SUB prefix filters work on it. The body is a
msgpack map::

    {"v": 1, "src": "trader", "seq": 42, "ts": 1732350000.123, "d": {...payload...}}

``seq`` is per sender and monotonically increasing (a gap tells a subscriber it lost messages),
``ts`` is wall-clock seconds at send (for latency and staleness, never for timeouts).

Decoding is strict: size limits first, then types. Anything wrong raises ``WireError``; callers
drop the message and count it (``flatguard_bus_dropped_total``), they never crash on it.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import msgpack

from trader.kernel.errors import FlatguardError

VERSION = 1
MAX_TOPIC = 128
MAX_BODY = 1 << 20  # 1 MiB: far above any real message, small enough to bound memory


class WireError(FlatguardError, ValueError):
    """A malformed, oversized or wrong-version message. Policy: drop it and count it."""


class Message(NamedTuple):
    """Immutable; a NamedTuple because a frozen dataclass costs ~0.5 µs more per message."""

    topic: str
    src: str
    seq: int
    ts: float
    data: dict[str, Any]


_packer = msgpack.Packer(use_bin_type=True)


def encode(topic: str, src: str, seq: int, data: dict[str, Any], ts: float | None = None) -> list[bytes]:
    """Frames for one message. ``data`` must be msgpack-able (str/bytes/numbers/lists/maps)."""
    body = _packer.pack(
        {"v": VERSION, "src": src, "seq": seq, "ts": time.time() if ts is None else ts, "d": data}
    )
    if len(body) > MAX_BODY:
        raise WireError(f"message on {topic!r} is {len(body)} bytes, over the {MAX_BODY} limit")
    return [topic.encode("ascii"), body]


def decode(frames: list[bytes]) -> Message:
    """Parse ``[topic, body]``; raise ``WireError`` on anything unexpected."""
    if len(frames) != 2:
        raise WireError(f"expected 2 frames, got {len(frames)}")
    topic_b, body = frames
    if len(topic_b) > MAX_TOPIC:
        raise WireError(f"topic of {len(topic_b)} bytes is over the {MAX_TOPIC} limit")
    if len(body) > MAX_BODY:
        raise WireError(f"body of {len(body)} bytes is over the {MAX_BODY} limit")
    try:
        topic = topic_b.decode("ascii")
        obj = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_BODY,
            max_bin_len=MAX_BODY,
            max_array_len=100_000,
            max_map_len=100_000,
        )
    except (UnicodeDecodeError, ValueError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, TypeError) as e:
        raise WireError(f"undecodable body: {e}") from None
    if not isinstance(obj, dict):
        raise WireError("body is not a map")
    if obj.get("v") != VERSION:
        raise WireError(f"unsupported version {obj.get('v')!r} (this build speaks {VERSION})")
    src, seq, ts, data = obj.get("src"), obj.get("seq"), obj.get("ts"), obj.get("d")
    # exact type checks: bool is an int subclass and must not pass as a sequence number
    if type(src) is not str or type(seq) is not int:
        raise WireError("missing or mistyped src/seq")
    tts = type(ts)
    if tts is not float and tts is not int:
        raise WireError("missing or mistyped ts")
    if type(data) is not dict:
        raise WireError("payload 'd' is not a map")
    return Message(topic, src, seq, float(ts), data)
