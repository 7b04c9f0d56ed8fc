"""A position move no order of ours explains is the account's, not a fill on its way.

The inventory keeps what a snapshot shows beyond our fill events as *ahead* (a fill whose event
has not arrived). Bounded by what our orders may still deliver, an external change (a manual
trade, a liquidation, a position seeded in the simulator) can no longer swallow our next fills
or count them twice. Before the bound, an orderly stop saw a short that did not exist for
``FILL_GRACE`` seconds and sent reduce-only exits the exchange refused (-2022).
"""

from __future__ import annotations

from typing import Any

from trader.engine.inventory import Inventory
from trader.engine.orders import OrderManager, Tracked
from trader.engine.risk.view import OrderIntent
from trader.kernel.protocol import OrderStatus as S

BTC = "BTC/USDT:USDT"
T = 1_700_000_000.0


def snap(pos: float) -> dict[str, Any]:
    rows = [{"symbol": BTC, "contracts": pos, "entry_price": 100.0}] if pos else []
    return {"equity": 1e4, "balance": 1e4, "positions": rows, "open_orders": [], "fresh": T}


def test_an_external_change_is_not_ahead_and_the_exit_fill_counts_once() -> None:
    # the account as in the stop test: we hold 0.002, the position is set to 0.01 from outside,
    # then our reduce-only sell of 0.01 fills; the snapshot shows it before the fill event
    inv = Inventory()
    inv.apply_account(snap(0.002), now=T, to_come={})
    inv.apply_account(snap(0.01), now=T + 1, to_come={})  # nothing of ours could fill
    assert inv.contracts(BTC) == 0.01
    inv.apply_account(snap(0.0), now=T + 2, to_come={BTC: (0.0, 0.01)})  # the exit filled
    inv.apply_fill(BTC, "sell", 0.01, 100.0, "x1", now=T + 2.1)  # its event, after
    assert inv.contracts(BTC) == 0.0
    for i in range(3):  # and it stays flat over later snapshots
        inv.apply_account(snap(0.0), now=T + 3 + i, to_come={})
        assert inv.contracts(BTC) == 0.0


def test_unbounded_matching_still_counts_the_external_move_as_ahead() -> None:
    # the same sequence without the bound: the old reading, a short that does not exist
    inv = Inventory()
    inv.apply_account(snap(0.002), now=T)
    inv.apply_account(snap(0.01), now=T + 1)
    inv.apply_account(snap(0.0), now=T + 2)
    inv.apply_fill(BTC, "sell", 0.01, 100.0, "x1", now=T + 2.1)
    assert inv.contracts(BTC) < -0.001  # a short the account does not have


def test_our_own_fill_shown_first_is_still_ahead_within_the_bound() -> None:
    inv = Inventory()
    inv.apply_account(snap(0.0), now=T, to_come={})
    inv.apply_account(snap(1.0), now=T + 0.1, to_come={BTC: (1.0, 0.0)})
    inv.apply_fill(BTC, "buy", 1.0, 100.0, "t1", now=T + 0.2)
    assert inv.contracts(BTC) == 1.0


def test_a_fill_bigger_than_ahead_moves_the_position_by_the_rest() -> None:
    inv = Inventory()
    inv.apply_account(snap(0.0), now=T, to_come={})
    inv.apply_account(snap(0.4), now=T + 0.1, to_come={BTC: (1.0, 0.0)})  # 0.4 of 1.0 shown
    inv.apply_fill(BTC, "buy", 1.0, 100.0, "t1", now=T + 0.2)  # one event for the whole fill
    assert inv.contracts(BTC) == 1.0
    inv.apply_account(snap(1.0), now=T + 0.3, to_come={})
    assert inv.contracts(BTC) == 1.0


def test_ahead_shrinks_when_our_orders_can_no_longer_deliver_it() -> None:
    inv = Inventory()
    inv.apply_account(snap(0.0), now=T, to_come={})
    inv.apply_account(snap(0.5), now=T + 0.1, to_come={BTC: (0.5, 0.0)})
    # the order turned out cancelled with nothing filled: the 0.5 was the account's own move
    inv.apply_account(snap(0.5), now=T + 0.2, to_come={})
    inv.apply_fill(BTC, "buy", 0.2, 100.0, "t2", now=T + 0.3)  # a later, real fill
    assert inv.contracts(BTC) == 0.7


class _Risk:
    def check(self, *a: Any) -> None:
        return None

    def record_sent(self, *a: Any) -> None:
        pass


def test_fills_to_come_counts_live_rests_and_final_fills_not_yet_seen() -> None:
    om = OrderManager(conn=None, risk=_Risk(), view_fn=lambda: None)  # type: ignore[arg-type]
    om.orders["a"] = Tracked(OrderIntent("a", BTC, "buy", "limit", 1.0, 100.0, False))
    om.orders["b"] = Tracked(OrderIntent("b", BTC, "sell", "limit", 2.0, 100.0, True),
                             status=S.OPEN, filled=0.5, fill_seen=0.5)
    om.orders["c"] = Tracked(OrderIntent("c", BTC, "sell", "limit", 3.0, 100.0, True))
    om.on_order({"client_id": "c", "status": "canceled", "filled": 1.0})  # exchange: done
    om.orders["d"] = Tracked(OrderIntent("d", BTC, "buy", "limit", 4.0, 100.0, False),
                             status=S.CANCELED)  # cancelled by us: fills may still arrive
    buy, sell = om.fills_to_come()[BTC]
    assert buy == 1.0 + 4.0
    assert sell == 1.5 + 1.0
