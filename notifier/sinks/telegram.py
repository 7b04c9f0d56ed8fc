"""Telegram Bot API: ``POST {api_url}/bot<token>/sendMessage`` to the configured chat.

Limits: 4096 characters per message; about one message per second per chat (20 per minute in a
group: ``rate_per_minute``). A 429 carries ``parameters.retry_after``, honoured by the worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from notifier.errors import TransientDelivery
from notifier.message import Notification
from notifier.sinks.base import Sink
from trader.kernel.config import SinkConfig

if TYPE_CHECKING:  # aiohttp costs ~0.5 s to import: only sinks that send load it
    import aiohttp


class TelegramSink(Sink):
    kind = "telegram"
    max_text = 4096
    min_interval = 1.0

    def __init__(self, cfg: SinkConfig, api_url: str, token: str, chat_id: int) -> None:
        super().__init__(cfg, (token,))
        self._url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
        self.chat_id = chat_id

    async def send(self, http: aiohttp.ClientSession, n: Notification, part: str) -> Any:
        body = await self.request(http, "POST", self._url, json={
            "chat_id": self.chat_id, "text": part, "disable_web_page_preview": True,
            "disable_notification": n.level == "info",
        })
        if body.get("ok") is not True:
            raise TransientDelivery("telegram: reply without ok=true")
        return body.get("result")
