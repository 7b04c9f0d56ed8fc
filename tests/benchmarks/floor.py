"""The tick-to-order floor: one process, no bus, the least work that turns a tick into an order.

    python -m tests.benchmarks.floor URL SYMBOL AMOUNT [PREFIX]

It reads the simulator's mark-price stream over a WebSocket (aiohttp) and, on every change of
the mark after the first, posts a signed MARKET order with aiohttp: Binance USDⓈ-M signing, an
HMAC-SHA256 of the query string with the API secret, the key in ``X-MBX-APIKEY``
(``trader/sim/auth.py`` checks both, and the timestamp against the exchange clock, so the offset
is read once at start). Sides alternate, as the stack's ``TickOrder`` strategy does. Client ids
start with PREFIX (default ``floor``) so the benchmark can find them in the sim's order log.
Prints ``floor ready`` once the stream is open; runs until killed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
from urllib.parse import urlencode

import aiohttp

from trader.sim.state import SIM_API_KEY, SIM_API_SECRET

RECV_WINDOW = 5000


def signed_query(params: dict[str, str], secret: str = SIM_API_SECRET) -> str:
    query = urlencode(params)
    sig = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={sig}"


async def run(url: str, symbol: str, amount: str, prefix: str) -> None:
    headers = {"X-MBX-APIKEY": SIM_API_KEY}
    ws_url = "ws" + url.removeprefix("http") + f"/market/ws/{symbol.lower()}@markPrice"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/fapi/v1/time") as r:
            offset_ms = int((await r.json())["serverTime"]) - int(time.time() * 1000)
        pending: set[asyncio.Task[None]] = set()
        n = 0
        last: str | None = None

        async def post(side: str, cid: str) -> None:
            q = signed_query({"symbol": symbol, "side": side, "type": "MARKET",
                              "quantity": amount, "newClientOrderId": cid,
                              "recvWindow": str(RECV_WINDOW),
                              "timestamp": str(int(time.time() * 1000) + offset_ms)})
            async with http.post(f"{url}/fapi/v1/order?{q}", headers=headers) as r:
                if r.status != 200:
                    print(f"order {cid}: HTTP {r.status} {await r.text()}", file=sys.stderr)
                else:
                    await r.read()

        async with http.ws_connect(ws_url, autoping=True) as ws:
            print("floor ready", flush=True)
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                mark = json.loads(msg.data).get("p")
                if mark is None or mark == last:
                    continue
                first, last = last is None, mark
                if first:
                    continue  # the first mark seen is the baseline, not a change
                n += 1
                # the send runs as a task, as the stack's does: the next tick is read at once
                task = asyncio.create_task(post("BUY" if n % 2 else "SELL", f"{prefix}{n}"))
                pending.add(task)
                task.add_done_callback(pending.discard)


def main(argv: list[str]) -> None:
    url, symbol, amount = argv[:3]
    asyncio.run(run(url.rstrip("/"), symbol, amount, argv[3] if len(argv) > 3 else "floor"))


if __name__ == "__main__":
    main(sys.argv[1:])
