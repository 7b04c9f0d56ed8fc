"""``OrderManager.open_orders`` walks only the orders that may still be open (it runs on every
risk check, on the tick path), and still sees one that an update reopens."""

from __future__ import annotations

import asyncio
from typing import Any

from trader.engine.orders import OrderManager


class Risk:
    def check(self, intent: Any, view: Any, now: float) -> None:
        return None

    def record_sent(self, intent: Any, now: float) -> None:
        pass


class Conn:
    async def request(self, op: str, args: Any = None, timeout: float = 0.0) -> Any:
        return {"status": "closed", "filled": args["amount"]}


def test_done_orders_leave_the_walk_and_a_reopened_one_comes_back() -> None:
    async def go() -> None:
        m = OrderManager(Conn(), Risk(), lambda: None)  # type: ignore[arg-type]
        a = m.submit("BTC/USDT:USDT", "buy", 1.0, None, False)
        b = m.submit("BTC/USDT:USDT", "sell", 2.0, 100.0, False)
        assert a and b
        assert {o.client_id for o in m.open_orders()} == {a, b}  # pending: open
        await asyncio.sleep(0.01)  # both replies: closed
        assert m.open_orders() == () and not m._live
        assert len(m.orders) == 2  # still tracked (prune forgets them later)
        m.on_order({"client_id": b, "status": "open", "filled": 0.0})  # a late NEW update
        assert [o.client_id for o in m.open_orders()] == [b]
        m.on_order({"client_id": b, "status": "closed", "filled": 2.0})
        assert m.open_orders() == ()
        m.on_fill(a, 1.0)
        m.prune(keep=0.0)
        assert m.orders == {} and m.open_orders() == ()

    asyncio.run(go())
