"""A generic JSON webhook receiver: any ``POST`` path; records the JSON bodies in ``received``
(and the path in each ``requests`` entry); answers 200 ``{"ok": true}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.base import FakeService


class FakeWebhook(FakeService):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []

    def hook_url(self, path: str = "/flatguard") -> str:
        return self.url + path

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self._post)

    async def _post(self, request: web.Request) -> web.Response:
        try:
            body = self.requests[-1].params()
        except ValueError:
            return web.json_response({"ok": False, "error": "not JSON"}, status=400)
        self.received.append(body)
        return web.json_response({"ok": True})
