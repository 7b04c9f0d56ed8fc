"""Market-data sockets the feed reads itself: one aiohttp WebSocket per venue ``MarketStream``.

The tick path is one task wake-up per frame: aiohttp's reader -> ``read`` -> the venue's
``parse`` -> the sink, with no ccxt.pro receive loop or watch future in between. Every way a
socket can end (refused dial, close frame, missed heartbeat, error reply) raises ccxt's
``NetworkError``, so the feed's guard classifies, counts and backs off exactly as it does for a
ccxt watch (``flatguard_exchange_errors_total{call="watch_mark_price"}`` and so on).
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from ccxt.base.errors import NetworkError

from trader.exchange.venues.base import MarketStream, Quote, StreamRefused

CONNECT_TIMEOUT = 10.0  # s to open a socket (ccxt.pro's default connection timeout)
HEARTBEAT = 30.0  # s between our pings; no pong within half of it ends the socket
MAX_FRAME = 4 * 1024 * 1024


class StreamReader:
    """The open market-data sockets by stream name, and the HTTP session they share."""

    def __init__(self, heartbeat: float = HEARTBEAT) -> None:
        self.heartbeat = heartbeat
        self.open: dict[str, aiohttp.ClientWebSocketResponse] = {}
        self._http: aiohttp.ClientSession | None = None

    def all_open(self) -> bool:
        return all(not ws.closed for ws in self.open.values())

    async def read(self, key: str, stream: MarketStream, acked: Callable[[], None],
                   quotes: Callable[[list[Quote]], None],
                   unreadable: Callable[[str], None]) -> None:
        """Connect, subscribe and hand every frame's quotes on until the socket ends; then
        raise ``NetworkError`` (never returns). ``acked`` runs on the subscription's
        acknowledgement or first quote; ``unreadable`` gets a frame that is not JSON."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT,
                                              connect=CONNECT_TIMEOUT))
        why = "closed by the exchange"
        try:
            async with self._http.ws_connect(stream.url, heartbeat=self.heartbeat,
                                             max_msg_size=MAX_FRAME) as ws:
                self.open[key] = ws
                await ws.send_str(stream.subscribe)
                async for msg in ws:
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    try:
                        ok, got = stream.parse(msg.data)
                    except ValueError:
                        unreadable(str(msg.data)[:80])
                        continue
                    if ok or got:
                        acked()
                    if got:
                        quotes(got)
                if ws.exception() is not None:
                    why = repr(ws.exception())
                elif ws.close_code is not None:
                    why = f"closed, code {ws.close_code}"
        except StreamRefused as e:
            why = str(e)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise NetworkError(f"{stream.name} {stream.url}: {type(e).__name__} {e}") from e
        finally:
            self.open.pop(key, None)
        raise NetworkError(f"{stream.name} {stream.url}: {why}")

    async def close(self) -> None:
        for ws in list(self.open.values()):
            await ws.close()
        if self._http is not None:
            await self._http.close()
