"""A local ntfy server: ``POST /<topic>`` with the message as body and ``Title``/``Priority``/
``Tags`` headers (also ``X-`` forms and the short ``t``/``p``/``ta``). Replies like ntfy with
the message JSON. Optional ``token``: then ``Authorization: Bearer <token>`` is required
(401 ``{"code": 40101, ...}`` otherwise). Test API: ``messages`` (topic, message, title,
priority as int, tags, auth).
"""

from __future__ import annotations

import base64
import itertools
import re
import time
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeService

PRIO = {"min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5}
RFC2047 = re.compile(r"^=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=$", re.I)


def _header(headers: Any, *names: str) -> str | None:
    for n in names:
        if n in headers:
            return headers[n]
    return None


class FakeNtfy(FakeService):
    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token
        self.messages: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def topic_url(self, topic: str = "flatguard-test") -> str:
        return f"{self.url}/{topic}"

    def rate_limited(self, retry_after: float) -> web.Response:
        return web.json_response({"code": 42901, "http": 429, "error": "limit reached: too "
                                  "many requests, please be nice"}, status=429)

    def error(self, status: int) -> web.Response:
        return web.json_response({"code": status * 100 + 1, "http": status,
                                  "error": "injected"}, status=status)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{topic}", self._publish)
        app.router.add_put("/{topic}", self._publish)

    async def _publish(self, request: web.Request) -> web.Response:
        h = request.headers
        auth = h.get("Authorization")
        if self.token and auth != f"Bearer {self.token}":
            return web.json_response({"code": 40101, "http": 401, "error": "unauthorized"},
                                     status=401)
        title = _header(h, "X-Title", "Title", "t") or ""
        if m := RFC2047.match(title):
            title = base64.b64decode(m.group(1)).decode()
        prio_raw = (_header(h, "X-Priority", "Priority", "p") or "3").lower()
        prio = PRIO.get(prio_raw) or (int(prio_raw) if prio_raw.isdigit() else 0)
        if not 1 <= prio <= 5:
            return web.json_response({"code": 40007, "http": 400,
                                      "error": "invalid request: priority invalid"}, status=400)
        tags = [t for t in (_header(h, "X-Tags", "Tags", "ta") or "").split(",") if t]
        text = self.requests[-1].body.decode("utf-8", "replace")
        msg = {"id": f"m{next(self._ids)}", "time": int(time.time()),
               "expires": int(time.time()) + 43200, "event": "message",
               "topic": request.match_info["topic"], "message": text, "title": title,
               "priority": prio, "tags": tags}
        self.messages.append({**msg, "auth": auth})
        return web.json_response(msg)
