"""A phone call through Twilio: ``POST {api_url}/2010-04-01/Accounts/{sid}/Calls.json``.

Basic auth ``sid:token``; form fields ``To``, ``From`` and ``Twiml`` with a short spoken
message said twice. Critical alerts only: a phone that rings for info is a phone turned off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from notifier.errors import TransientDelivery
from notifier.message import Notification
from notifier.sinks.base import Sink
from trader.kernel.config import SinkConfig
from trader.kernel.protocol import CRITICAL

if TYPE_CHECKING:  # aiohttp costs ~0.5 s to import: only sinks that send load it
    import aiohttp


def twiml(text: str) -> str:
    say = escape(text)
    return f'<Response><Say>{say}</Say><Pause length="1"/><Say>{say}</Say></Response>'


class TwilioSink(Sink):
    kind = "twilio"
    levels = (CRITICAL,)

    def __init__(self, cfg: SinkConfig, api_url: str, sid: str, token: str) -> None:
        super().__init__(cfg, (sid, token))
        self._url = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{sid}/Calls.json"
        import aiohttp

        self._auth = aiohttp.BasicAuth(sid, token)

    def parts(self, n: Notification) -> list[str]:
        return [f"Flatguard critical alert. {n.title[:200]}."]

    async def send(self, http: aiohttp.ClientSession, n: Notification, part: str) -> Any:
        body = await self.request(http, "POST", self._url, auth=self._auth, data={
            "To": self.cfg.to_number, "From": self.cfg.from_number, "Twiml": twiml(part),
        })
        if not isinstance(body.get("sid"), str):
            raise TransientDelivery("twilio: reply without a call sid")
        return body
