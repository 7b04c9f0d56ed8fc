"""What every sink shares: the Sink interface and one HTTP helper that classifies replies.

A sink turns one part of a notification into one HTTP request. It never retries, queues or
rate-limits by itself (the lane's worker does that) and never puts a secret into an exception
or a log line: ``scrub`` replaces every secret the sink holds with ``***``.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar

from notifier.errors import PermanentDelivery, TransientDelivery
from notifier.message import Notification
from trader.kernel.config import SinkConfig
from trader.kernel.protocol import LEVELS

if TYPE_CHECKING:  # aiohttp costs ~0.5 s to import: only sinks that send load it
    import aiohttp

log = logging.getLogger("flatguard.notifier")


class Sink(ABC):
    kind: ClassVar[str]
    max_text: ClassVar[int] = 4096  # the API's limit for one message, in characters
    min_interval: ClassVar[float] = 0.0  # s between two sends (per chat/webhook limits)
    levels: ClassVar[tuple[str, ...]] = LEVELS  # levels this sink takes
    needs_http: ClassVar[bool] = True  # False: sends without HTTP (its lane may have no session)
    self_repeating: ClassVar[bool] = False  # repeats its own emergencies (Pushover priority 2)

    def __init__(self, cfg: SinkConfig, secrets: tuple[str, ...] = ()) -> None:
        self.cfg = cfg
        self.name = self.kind
        self._secrets = tuple(s for s in secrets if s)

    @property
    def emergency(self) -> bool:
        return self.cfg.emergency

    def scrub(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def parts(self, n: Notification) -> list[str]:
        """The texts to send for ``n``, each within ``max_text`` (split by the worker)."""
        from notifier.message import split_text

        return split_text(n.body(), self.max_text)

    @abstractmethod
    async def send(self, http: aiohttp.ClientSession, n: Notification, part: str) -> Any:
        """Send one part; raise ``TransientDelivery`` or ``PermanentDelivery``; return the API's reply."""

    async def close(self, http: aiohttp.ClientSession) -> None:  # noqa: B027 - optional hook
        """Called once at shutdown."""

    async def request(self, http: aiohttp.ClientSession, method: str, url: str, *,
                      expect_json: bool = True, **kw: Any) -> Any:
        """One request; returns parsed JSON (or None); raises ``TransientDelivery``/``PermanentDelivery``."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout)
        try:
            async with http.request(method, url, timeout=timeout, **kw) as r:
                status, headers = r.status, r.headers
                raw = await r.read()
        except TimeoutError:
            raise TransientDelivery(f"{self.name}: timeout after {self.cfg.timeout:g} s") from None
        except aiohttp.ClientError as e:  # str(e) may hold the URL (tokens): type name only
            raise TransientDelivery(f"{self.name}: {type(e).__name__}") from None
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
                if expect_json and status < 300:
                    raise TransientDelivery(f"{self.name}: HTTP {status} with a non-JSON body") from None
        if status == 429:
            raise TransientDelivery(f"{self.name}: HTTP 429 rate limited", retry_after(headers, body))
        if status >= 500:
            raise TransientDelivery(f"{self.name}: HTTP {status}", retry_after(headers, body))
        if status >= 400:
            raise PermanentDelivery(f"{self.name}: HTTP {status}: {self.scrub(describe(body, raw))}")
        if expect_json and not isinstance(body, dict):
            raise TransientDelivery(f"{self.name}: HTTP {status} with an unexpected body")
        return body


def describe(body: Any, raw: bytes) -> str:
    """A short, log-safe description of an error reply."""
    if isinstance(body, dict):
        for k in ("description", "message", "error", "errors", "detail"):
            if k in body:
                return str(body[k])[:200]
    return raw[:200].decode("utf-8", "replace").replace("\n", " ")


def retry_after(headers: Any, body: Any) -> float | None:
    """Seconds to wait from a 429/5xx: JSON ``parameters.retry_after`` (Telegram), ``retry_after``
    (Discord), or the ``Retry-After`` header (seconds or an HTTP date)."""
    if isinstance(body, dict):
        params = body.get("parameters")
        for v in (params.get("retry_after") if isinstance(params, dict) else None,
                  body.get("retry_after")):
            if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
                return float(v)
    h = headers.get("Retry-After") if headers is not None else None
    if h:
        try:
            return max(0.0, float(h))
        except ValueError:
            try:
                import time

                return max(0.0, parsedate_to_datetime(h).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None
