"""A local Pushover API: ``POST /1/messages.json``, ``GET /1/receipts/{r}.json``,
``POST /1/receipts/{r}/cancel.json``.

Validates like the real one: token/user must match (else 400 with ``status: 0`` and
``errors``), message 1..1024 characters, title <= 250, priority -2..2, and priority 2 needs
``retry`` >= 30 and ``expire`` <= 10800; priority-2 replies carry a ``receipt``.
Test API: ``messages`` (accepted form dicts), ``acknowledge(receipt)`` (the person tapped
"Acknowledge" in the app), ``cancelled`` (receipts cancelled).
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeService


class FakePushover(FakeService):
    def __init__(self, token: str = "apptoken123", user: str = "userkey456") -> None:
        super().__init__()
        self.token, self.user = token, user
        self.messages: list[dict[str, Any]] = []
        self.receipts: dict[str, dict[str, Any]] = {}
        self.cancelled: list[str] = []
        self._ids = itertools.count(1)

    def acknowledge(self, receipt: str) -> None:
        self.call(lambda: self.receipts[receipt].update(acknowledged=1,
                                                         acknowledged_at=int(time.time())))

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/1/messages.json", self._messages)
        app.router.add_get("/1/receipts/{r}.json", self._receipt)
        app.router.add_post("/1/receipts/{r}/cancel.json", self._cancel)

    @staticmethod
    def _reply(errors: list[str] | None = None, **extra: Any) -> web.Response:
        body: dict[str, Any] = {"status": 0 if errors else 1, "request": str(uuid.uuid4()),
                                **extra}
        if errors:
            body["errors"] = errors
        return web.json_response(body, status=400 if errors else 200)

    def error(self, status: int) -> web.Response:
        return web.Response(status=status, text="<html>server error</html>",
                            content_type="text/html")

    async def _messages(self, request: web.Request) -> web.Response:
        p = self.requests[-1].params()
        errors = []
        if p.get("token") != self.token:
            return self._reply(["application token is invalid"], token="invalid")
        if p.get("user") != self.user:
            return self._reply(["user identifier is not a valid user, group, or subscribed "
                                "user to a publisher"], user="invalid")
        msg, title = str(p.get("message", "")), str(p.get("title", ""))
        if not msg:
            errors.append("message cannot be blank")
        if len(msg) > 1024:
            errors.append("message is too long")
        if len(title) > 250:
            errors.append("title is too long")
        try:
            prio = int(p.get("priority", 0))
        except ValueError:
            prio = 99
        if not -2 <= prio <= 2:
            errors.append("priority is invalid")
        extra = {}
        if prio == 2:
            try:
                retry, expire = int(p["retry"]), int(p["expire"])
            except (KeyError, ValueError):
                errors.append("retry and expire are required for emergency priority")
            else:
                if retry < 30:
                    errors.append("retry is invalid")
                if expire > 10800:
                    errors.append("expire is invalid")
        if errors:
            return self._reply(errors)
        if prio == 2:
            receipt = f"r{next(self._ids):029d}"
            self.receipts[receipt] = {"acknowledged": 0, "acknowledged_at": 0, "expired": 0,
                                      "called_back": 0, "last_delivered_at": int(time.time())}
            extra["receipt"] = receipt
        self.messages.append(dict(p))
        return self._reply(**extra)

    async def _receipt(self, request: web.Request) -> web.Response:
        r = self.receipts.get(request.match_info["r"])
        if request.query.get("token") != self.token or r is None:
            return self._reply(["receipt not found; may be invalid or expired"])
        return self._reply(**r)

    async def _cancel(self, request: web.Request) -> web.Response:
        p = self.requests[-1].params()
        rid = request.match_info["r"]
        if p.get("token") != self.token or rid not in self.receipts:
            return self._reply(["receipt not found; may be invalid or expired"])
        self.cancelled.append(rid)
        return self._reply()
