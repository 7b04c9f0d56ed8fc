"""A notification as the notifier handles it, parsed strictly from the wire."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trader.kernel.protocol import CRITICAL, LEVELS

MAX_TITLE = 256
MAX_TEXT = 32_768  # longer texts are cut: a notification is read by a person


@dataclass(frozen=True, slots=True)
class Notification:
    level: str
    title: str
    text: str
    key: str
    ts: float
    source: str = "notifier"
    count: int = 1  # occurrences merged into this one (dedup, repeated critical)
    repeat: int = 0  # 0 = first delivery; n = n-th repeat of an unacknowledged critical

    @property
    def critical(self) -> bool:
        return self.level == CRITICAL

    @property
    def heading(self) -> str:
        """Title with level, merge count and repeat marker: what a person sees first."""
        h = self.title
        if self.count > 1:
            h += f" (x{self.count})"
        if self.level != "info":
            h = f"[{self.level.upper()}] {h}"
        if self.repeat:
            h += f" [repeat {self.repeat}, not acknowledged]"
        return h

    def body(self) -> str:
        return f"{self.heading}\n{self.text}" if self.text else self.heading

    def with_(self, **changes: Any) -> Notification:
        return dataclasses.replace(self, **changes)


def parse(data: dict[str, Any], source: str) -> Notification:
    """Build from a ``notify`` message's payload; ``ValueError`` names what is wrong."""
    level, title, text = data.get("level"), data.get("title"), data.get("text", "")
    key, ts = data.get("key") or title, data.get("ts")
    if level not in LEVELS:
        raise ValueError(f"bad level {level!r}")
    if not isinstance(title, str) or not title:
        raise ValueError("title must be a non-empty string")
    if not isinstance(text, str) or not isinstance(key, str):
        raise ValueError("text and key must be strings")
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        raise ValueError("ts must be a number")
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "\n[cut]"
    return Notification(level, title[:MAX_TITLE], text, key[:MAX_TITLE], float(ts), source)


def split_text(text: str, limit: int) -> list[str]:
    """Cut ``text`` into parts of at most ``limit`` chars, at line ends, then spaces, if possible.

    Parts after the first are marked "(n/m)" so a reader knows more is coming; the marker is
    counted in the limit.
    """
    if len(text) <= limit:
        return [text]
    room = limit - 10  # room for " (nn/mm)"
    assert room > 20, limit
    parts: list[str] = []
    rest = text
    while rest:
        if len(rest) <= room:
            parts.append(rest)
            break
        cut = rest.rfind("\n", room // 2, room)
        if cut < 0:
            cut = rest.rfind(" ", room // 2, room)
        cut = room if cut < 0 else cut + 1
        parts.append(rest[:cut].rstrip("\n"))
        rest = rest[cut:]
    n = len(parts)
    return [f"{p} ({i}/{n})" for i, p in enumerate(parts, 1)]
