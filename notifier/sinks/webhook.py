"""Generic JSON webhook: ``POST <url>`` with the whole notification as JSON; any 2xx is success.

Body: ``{"level", "title", "text", "key", "ts", "source", "count", "repeat"}``. Not split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from notifier.message import Notification
from notifier.sinks.base import Sink
from trader.kernel.config import SinkConfig

if TYPE_CHECKING:  # aiohttp costs ~0.5 s to import: only sinks that send load it
    import aiohttp


class WebhookSink(Sink):
    kind = "webhook"
    max_text = 1_000_000

    def __init__(self, cfg: SinkConfig, url: str, secret_url: bool) -> None:
        super().__init__(cfg, (url,) if secret_url else ())
        self._url = url

    def parts(self, n: Notification) -> list[str]:
        return [n.text]

    async def send(self, http: aiohttp.ClientSession, n: Notification, part: str) -> Any:
        return await self.request(http, "POST", self._url, expect_json=False, json={
            "level": n.level, "title": n.title, "text": n.text, "key": n.key, "ts": n.ts,
            "source": n.source, "count": n.count, "repeat": n.repeat,
        })
