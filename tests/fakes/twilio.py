"""A local Twilio REST API: ``POST /2010-04-01/Accounts/{sid}/Calls.json`` (basic auth
``sid:token``; form ``To``, ``From`` and one of ``Url``/``Twiml``/``ApplicationSid``).

201 with the call resource (``sid`` "CA…", ``status`` "queued"); 401 ``{"code": 20003}`` on
bad credentials; 400 ``{"code": 21201/21213/21205}`` for a missing field; 429 ``{"code":
20429}``. Test API: ``calls`` (the accepted form dicts).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeService


def _err(code: int, message: str, status: int) -> web.Response:
    return web.json_response({"code": code, "message": message, "status": status,
                              "more_info": f"https://www.twilio.com/docs/errors/{code}"},
                             status=status)


class FakeTwilio(FakeService):
    def __init__(self, sid: str = "AC" + "0" * 32, token: str = "twiliotoken") -> None:
        super().__init__()
        self.sid, self.token = sid, token
        self.calls: list[dict[str, Any]] = []

    def rate_limited(self, retry_after: float) -> web.Response:
        return _err(20429, "Too Many Requests", 429)

    def error(self, status: int) -> web.Response:
        return _err(20500, "Internal Server Error", status)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/Accounts/{sid}/Calls.json", self._call)

    async def _call(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{self.sid}:{self.token}".encode()).decode()
        if request.headers.get("Authorization") != expected or \
                request.match_info["sid"] != self.sid:
            return _err(20003, "Authenticate", 401)
        p = self.requests[-1].params()
        if not p.get("To"):
            return _err(21201, "No 'To' number is specified", 400)
        if not p.get("From"):
            return _err(21213, "No 'From' number is specified", 400)
        if not (p.get("Url") or p.get("Twiml") or p.get("ApplicationSid")):
            return _err(21205, "Url parameter is required", 400)
        self.calls.append(p)
        return web.json_response({"sid": "CA" + uuid.uuid4().hex, "account_sid": self.sid,
                                  "to": p["To"], "from": p["From"], "status": "queued",
                                  "api_version": "2010-04-01"}, status=201)
