"""ntfy: ``POST <topic url>`` with the message as body and ``Title``/``Priority``/``Tags`` headers.

Priority 5 (max) for critical alerts: it overrides Do Not Disturb on Android when the topic is
set up that way. An access token (``token_env``) is sent as ``Authorization: Bearer``.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from notifier.message import Notification
from notifier.sinks.base import Sink
from trader.kernel.config import SinkConfig

if TYPE_CHECKING:  # aiohttp costs ~0.5 s to import: only sinks that send load it
    import aiohttp

PRIORITY = {"info": "3", "warning": "4", "critical": "5"}
TAGS = {"info": "information_source", "warning": "warning", "critical": "rotating_light"}


def header_text(s: str) -> str:
    """HTTP headers are Latin-1: non-ASCII titles go RFC 2047-encoded, which ntfy decodes."""
    if s.isascii():
        return s
    return "=?UTF-8?B?" + base64.b64encode(s.encode()).decode() + "?="


class NtfySink(Sink):
    kind = "ntfy"
    max_text = 4000  # ntfy turns bodies over 4096 bytes into attachments

    def __init__(self, cfg: SinkConfig, url: str, token: str | None) -> None:
        super().__init__(cfg, (url, token or ""))
        self._url = url
        self._token = token

    async def send(self, http: aiohttp.ClientSession, n: Notification, part: str) -> Any:
        headers = {"Title": header_text(n.heading[:250]), "Priority": PRIORITY[n.level],
                   "Tags": TAGS[n.level]}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return await self.request(http, "POST", self._url, data=part.encode(), headers=headers)

    def parts(self, n: Notification) -> list[str]:
        from notifier.message import split_text

        return split_text(n.text or n.title, self.max_text)
