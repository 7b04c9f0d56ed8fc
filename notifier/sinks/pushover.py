"""Pushover: ``POST {api_url}/1/messages.json`` (token, user, message, title, priority).

Critical alerts use priority 2 (emergency): Pushover itself repeats them every ``retry`` s until
acknowledged in the app or ``expire`` s pass, and they bypass quiet hours. So this sink repeats
its own emergencies (the notifier does not re-send to it); the receipt it returns is polled
(``GET /1/receipts/{receipt}.json``) so an acknowledgement in the app acknowledges the alert
everywhere, and an ``ack`` from us cancels it (``POST /1/receipts/{receipt}/cancel.json``).
Limits: message 1024 characters, title 250.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from notifier.errors import DeliveryError, PermanentDelivery
from notifier.message import Notification
from notifier.sinks.base import Sink
from trader.kernel.config import SinkConfig

if TYPE_CHECKING:  # aiohttp costs ~0.5 s to import: only sinks that send load it
    import aiohttp

RETRY = 60  # s between Pushover's own repeats (minimum 30)


class PushoverSink(Sink):
    kind = "pushover"
    max_text = 1024
    self_repeating = True

    def __init__(self, cfg: SinkConfig, api_url: str, token: str, user: str,
                 expire: float) -> None:
        super().__init__(cfg, (token, user))
        self._base = api_url.rstrip("/")
        self._token, self._user = token, user
        self._expire = int(min(max(expire, RETRY), 10800))  # Pushover's maximum is 3 hours
        self.receipts: dict[str, str] = {}  # alert key -> receipt of its priority-2 message

    def parts(self, n: Notification) -> list[str]:
        from notifier.message import split_text

        return split_text(n.text or n.title, self.max_text)

    async def send(self, http: aiohttp.ClientSession, n: Notification, part: str) -> Any:
        form = {"token": self._token, "user": self._user, "message": part,
                "title": n.heading[:250], "priority": "0"}
        if n.critical:
            form.update(priority="2", retry=str(RETRY), expire=str(self._expire))
        body = await self.request(http, "POST", f"{self._base}/1/messages.json", data=form)
        if body.get("status") != 1:
            raise PermanentDelivery(f"pushover: status {body.get('status')!r}")
        if n.critical and isinstance(body.get("receipt"), str):
            self.receipts[n.key] = body["receipt"]
        return body

    async def acknowledged(self, http: aiohttp.ClientSession, key: str) -> bool:
        """True if the person acknowledged the emergency for ``key`` in the Pushover app."""
        receipt = self.receipts.get(key)
        if receipt is None:
            return False
        try:
            body = await self.request(http, "GET", f"{self._base}/1/receipts/{receipt}.json",
                                      params={"token": self._token})
        except DeliveryError:
            return False
        return body.get("acknowledged") == 1

    async def cancel(self, http: aiohttp.ClientSession, key: str) -> None:
        """Stop Pushover's own repeats for ``key`` (we were acknowledged elsewhere)."""
        receipt = self.receipts.pop(key, None)
        if receipt is None:
            return
        try:
            await self.request(http, "POST", f"{self._base}/1/receipts/{receipt}/cancel.json",
                               data={"token": self._token})
        except DeliveryError:
            pass  # it expires on its own
