"""Discord webhook: ``POST <webhook url>`` with JSON ``{"content": ...}`` (2000 characters).

Success is 204 No Content. A 429 carries ``retry_after`` (seconds) in the JSON body and a
``Retry-After`` header. Mentions are disabled so a message text cannot ping @everyone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from notifier.message import Notification
from notifier.sinks.base import Sink
from trader.kernel.config import SinkConfig

if TYPE_CHECKING:  # aiohttp costs ~0.5 s to import: only sinks that send load it
    import aiohttp


class DiscordSink(Sink):
    kind = "discord"
    max_text = 2000
    min_interval = 0.4  # Discord allows about 5 requests per 2 s per webhook

    def __init__(self, cfg: SinkConfig, url: str) -> None:
        super().__init__(cfg, (url,))
        self._url = url

    async def send(self, http: aiohttp.ClientSession, n: Notification, part: str) -> Any:
        return await self.request(http, "POST", self._url, expect_json=False, json={
            "content": part, "allowed_mentions": {"parse": []},
        })
