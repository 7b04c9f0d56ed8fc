"""The console sink: one log line per notification on the notifier's stderr (always present)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from notifier.message import Notification
from notifier.sinks.base import Sink
from trader.kernel.proc import kv

if TYPE_CHECKING:  # aiohttp costs ~0.5 s to import: only sinks that send load it
    import aiohttp

log = logging.getLogger("flatguard.notify")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


class ConsoleSink(Sink):
    kind = "console"
    max_text = 1_000_000
    needs_http = False

    @property
    def emergency(self) -> bool:
        return True  # critical alerts always reach the console

    async def send(self, http: aiohttp.ClientSession | None, n: Notification, part: str) -> Any:
        log.log(_LEVELS[n.level], "%s", kv(event="notification", level=n.level, key=n.key,
                                           source=n.source, count=n.count, repeat=n.repeat,
                                           title=n.title, text=n.text.replace("\n", " | ")))
