"""The account snapshot as a payload: what the connector's Account publishes reads back whole,
and a malformed one is refused naming the field."""

from __future__ import annotations

import pytest

from trader.exchange.reconcile import Account
from trader.kernel.payloads import AccountSnapshot, PayloadError

BTC = "BTC/USDT:USDT"


def _account() -> Account:
    a = Account(balance=1000.0, confirmed=5.0, leverage=2)
    a.positions = {BTC: {"symbol": BTC, "side": "short", "contracts": -0.5, "entry_price": 100.0,
                         "mark": 101.0, "notional": 50.5, "unrealized_pnl": -0.5}}
    a.orders = {"7": {"client_id": "fg1-1", "id": "7", "symbol": BTC, "side": "buy",
                      "type": "limit", "price": 99.0, "amount": 0.5, "filled": 0.1,
                      "reduce_only": True, "status": "open"}}
    return a


def test_the_connectors_snapshot_reads_back_with_every_key() -> None:
    wire = {**_account().snapshot("rest"), "fresh": 6.0}
    snap = AccountSnapshot.from_wire(wire)
    assert snap.positions[0].contracts == -0.5 and snap.positions[0].side == "short"
    assert snap.open_orders[0].client_id == "fg1-1" and snap.open_orders[0].reduce_only
    assert (snap.equity, snap.balance, snap.confirmed, snap.fresh) == (999.5, 1000.0, 5.0, 6.0)
    assert set(snap.to_wire()) == set(wire)


@pytest.mark.parametrize(("field", "value", "named"), [
    ("positions", "none", "positions"),
    ("equity", float("nan"), "equity"),
    ("open_orders", [{"id": "1", "symbol": BTC, "side": "up", "amount": 1.0}], "side"),
    ("positions", [{"symbol": BTC, "side": "long"}], "contracts"),
])
def test_a_malformed_snapshot_is_refused_naming_the_field(field: str, value: object,
                                                          named: str) -> None:
    wire = {**_account().snapshot("rest"), field: value}
    with pytest.raises(PayloadError) as e:
        AccountSnapshot.from_wire(wire)
    assert e.value.field == named
