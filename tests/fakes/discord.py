"""A local Discord webhook: ``POST /api/webhooks/{id}/{token}`` with JSON ``{"content"}``.

204 on success (200 with the message JSON when ``?wait=true``); content must be 1..2000
characters (400 ``{"code": 50035, "message": "Invalid Form Body", ...}``); a wrong token is 401;
429 answers ``{"message": "You are being rate limited.", "retry_after": s, "global": false}``
with a ``Retry-After`` header. Test API: ``webhook_url``, ``messages`` (JSON bodies accepted).
"""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeService


class FakeDiscord(FakeService):
    def __init__(self, webhook_id: str = "1234567890", token: str = "whtoken-abc") -> None:
        super().__init__()
        self.webhook_id, self.token = webhook_id, token
        self.messages: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/api/webhooks/{self.webhook_id}/{self.token}"

    def rate_limited(self, retry_after: float) -> web.Response:
        return web.json_response({"message": "You are being rate limited.",
                                  "retry_after": retry_after, "global": False}, status=429,
                                 headers={"Retry-After": f"{retry_after:g}",
                                          "X-RateLimit-Scope": "shared"})

    def error(self, status: int) -> web.Response:
        return web.json_response({"message": "injected", "code": 0}, status=status)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/webhooks/{id}/{token}", self._execute)

    async def _execute(self, request: web.Request) -> web.Response:
        if (request.match_info["id"], request.match_info["token"]) != (self.webhook_id,
                                                                       self.token):
            return web.json_response({"message": "Invalid Webhook Token", "code": 50027},
                                     status=401)
        try:
            body = self.requests[-1].params()
        except ValueError:
            body = {}
        content = body.get("content")
        if not isinstance(content, str) or not content or len(content) > 2000:
            return web.json_response({"message": "Invalid Form Body", "code": 50035, "errors": {
                "content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                                         "message": "Must be 2000 or fewer in length."}]}}},
                                     status=400)
        self.messages.append(body)
        if request.query.get("wait") == "true":
            return web.json_response({"id": str(next(self._ids)), "content": content,
                                      "webhook_id": self.webhook_id})
        return web.Response(status=204)
