"""An IP ban (HTTP 418) or rate-limit lockout (HTTP 429) of the whole REST API.

``POST /_sim/ban {"seconds", "status": 418|429, "retry_after": bool}`` answers every REST
request (never ``/_sim/*``) the way Binance does while the ban lasts. Binance's USDⓈ-M docs do
not promise a ``Retry-After`` header, so it is sent only when asked for. Every request received
during the ban is counted (``requests_during_ban`` in ``/_sim/state``): on Binance each of them
prolongs the ban (2 minutes up to 3 days), so the count is what a test asserts on. The ban
itself is not extended here unless ``extend_s`` is set (each request then pushes the end out by
that many seconds, Binance's escalation in miniature).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from aiohttp import web

from trader.sim.errors import BinanceError

MSG_429 = ("Too many requests; current limit of IP({ip}) is {limit} requests per minute. "
           "Please use the websocket for live updates to avoid polling the API.")
MSG_418 = ("Way too many requests; IP({ip}) banned until {until}. "
           "Please use the websocket for live updates to avoid bans.")


@dataclass
class Ban:
    until_ms: int = 0  # exchange clock; 0: never banned
    status: int = 0
    retry_after: bool = False
    extend_s: float = 0.0
    requests_during_ban: int = 0

    def start(self, now_ms: int, seconds: float, status: int, *, retry_after: bool,
              extend_s: float = 0.0) -> None:
        if status not in (418, 429):
            raise ValueError("ban status must be 418 or 429")
        if seconds <= 0:
            raise ValueError("ban seconds must be > 0")
        self.until_ms = now_ms + round(seconds * 1000)
        self.status = status
        self.retry_after = retry_after
        self.extend_s = extend_s
        self.requests_during_ban = 0

    def clear(self) -> None:
        """End the ban now; the count stays readable until the next ban starts."""
        self.until_ms = 0

    def active(self, now_ms: int) -> bool:
        return now_ms < self.until_ms

    def refuse(self, now_ms: int, remote: str | None, weight_limit: int) -> web.Response:
        """Count one request received during the ban and answer it."""
        self.requests_during_ban += 1
        if self.extend_s:
            self.until_ms += round(self.extend_s * 1000)
        ip = remote or "127.0.0.1"
        msg = (MSG_418.format(ip=ip, until=self.until_ms) if self.status == 418
               else MSG_429.format(ip=ip, limit=weight_limit or 2400))
        headers = {}
        if self.retry_after:
            headers["Retry-After"] = str(max(1, math.ceil((self.until_ms - now_ms) / 1000)))
        return web.Response(status=self.status, text=json.dumps(BinanceError(-1003, msg).body()),
                            content_type="application/json", headers=headers)

    def snapshot(self, now_ms: int) -> dict[str, object]:
        return {"until_ms": self.until_ms, "status": self.status,
                "retry_after": self.retry_after, "active": self.active(now_ms),
                "requests_during_ban": self.requests_during_ban}


def parse_ban(spec: str) -> tuple[float, int, bool]:
    """``SECONDS[:STATUS][:retry-after]``, e.g. ``120:418:retry-after`` (CLI ``--ban``)."""
    parts = spec.split(":")
    try:
        seconds = float(parts[0])
        status = int(parts[1]) if len(parts) > 1 and parts[1] else 418
    except ValueError:
        seconds, status = -1.0, 0
    retry_after = len(parts) == 3 and parts[2] == "retry-after"
    if len(parts) > 3 or (len(parts) == 3 and not retry_after) or seconds <= 0 \
            or status not in (418, 429):
        raise ValueError(f"bad --ban spec {spec!r}: want SECONDS[:418|429][:retry-after]")
    return seconds, status, retry_after
