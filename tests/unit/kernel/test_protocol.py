"""The typed protocol: states keep the strings users see, payloads round-trip through the wire
and refuse malformed maps by field, and the one dispatcher answers an unknown op clearly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
import pytest

from tests.stack import short_dir
from trader.kernel import bus, protocol, wire
from trader.kernel.payloads import (
    Fill,
    Halt,
    Heartbeat,
    MarketData,
    OrderCreate,
    OrderUpdate,
    PayloadError,
    Position,
)
from trader.kernel.protocol import (
    OPEN,
    TERMINAL,
    ConnectorState,
    OrderStatus,
    ProcessState,
    TradingState,
)

BTC = "BTC/USDT:USDT"

# --- states -----------------------------------------------------------------------------------


def test_states_keep_the_strings_users_see() -> None:
    # ctl info --json, flatguard_trading_state{state=...}, heartbeats and the journal show these
    assert [s.value for s in TradingState] == [
        "STARTING", "RUNNING", "PAUSED", "REDUCING", "STOPPING", "HALTED", "STOPPED"]
    assert [s.value for s in ConnectorState] == [
        "STARTING", "RUNNING", "FATAL", "STOPPING", "STOPPED"]
    assert [s.value for s in ProcessState] == [
        "starting", "running", "restarting", "stopping", "stopped", "exited", "failed"]
    # the names the rest of the code imported before the enums are the same members
    assert protocol.RUNNING is TradingState.RUNNING and protocol.RUNNING == "RUNNING"
    # a process "running" and trading "RUNNING" are different things, and never equal
    assert ProcessState.RUNNING != TradingState.RUNNING


def test_states_travel_and_print_as_plain_strings() -> None:
    body = {"state": TradingState.PAUSED, "proc": ProcessState.FAILED}
    assert msgpack.unpackb(msgpack.packb(body)) == {"state": "PAUSED", "proc": "failed"}
    assert json.dumps(body) == '{"state": "PAUSED", "proc": "failed"}'
    assert f"{ConnectorState.FATAL}" == "FATAL" and str(OrderStatus.CANCELED) == "canceled"


def test_one_terminal_set_holds_every_way_an_order_ends() -> None:
    # the engine's own set once lacked filled/cancelled: a filled order looked open to a strategy
    assert {"filled", "cancelled", "canceled", "closed", "rejected", "expired"} == set(TERMINAL)
    assert not TERMINAL & OPEN
    assert "pending" not in TERMINAL and "unknown" not in TERMINAL
    from trader.engine import orders
    from trader.exchange import reconcile
    assert orders.DONE is TERMINAL and reconcile.TERMINAL is TERMINAL


def test_every_op_is_unique_within_its_server() -> None:
    for server, ops in protocol.OPS.items():
        values = [o.value for o in ops]
        assert len(values) == len(set(values)), server
    assert protocol.ConnectorOp.DMS_DISARM == "dms.disarm"
    assert protocol.ConnectorOp.ORDER_CANCEL_ALL == "order.cancel_all"


def test_the_contract_docstring_names_every_op() -> None:
    doc = protocol.__doc__ or ""
    missing = [f"{server}:{op.value}" for server, ops in protocol.OPS.items() for op in ops
               if op.value not in doc]
    assert not missing, missing
    assert "record" not in doc.split("trader (trader.sock")[1].split("supervisor (sup.sock")[0]


# --- payloads ---------------------------------------------------------------------------------

SAMPLES: list[Any] = [
    MarketData(BTC, 100.5, 100.4, None, 1.5),
    Fill("t1", "fg-1", "42", BTC, "buy", 0.01, 100.0, 0.001, "USDT", 1.0),
    Fill("t2", None, "", BTC, "sell", 1.0, 99.0, 0.0, "", 2.0),
    OrderUpdate("fg-1", "42", BTC, "buy", "limit", "open", 1.0, 0.0, 100.0, None, False, 3.0),
    OrderUpdate("fg-2", "", BTC, "sell", "market", "rejected", 1.0, 0.0, None, None, True, 3.0,
                error="not placed"),
    Position(BTC, "long", 0.5, 100.0, 101.0, 50.5, 0.5),
    OrderCreate("fg-1", BTC, "buy", "market", 0.01, None, True),
    OrderCreate("fg-2", BTC, "sell", "limit", 0.01, 101.0, False, "GTX"),
    Heartbeat("trader", 123, "RUNNING", 7, 1.0, 2.0),
    Heartbeat("connector", 124, "FATAL", 8, 0.0, 0.0, [["flatguard_equity", [], 1.0]]),
    Halt("exchange_fatal", "fetch_positions: 404", "connector"),
]


@pytest.mark.parametrize("p", SAMPLES, ids=lambda p: type(p).__name__)
def test_payloads_round_trip_through_the_wire(p: Any) -> None:
    frames = wire.encode("t", "test", 1, p.to_wire())
    again = type(p).from_wire(wire.decode(frames).data)
    assert again == p and again.to_wire() == p.to_wire()


def test_wire_keys_are_todays() -> None:
    # the bytes on the bus keep their keys: old and new processes understand each other
    assert list(MarketData(BTC, 1.0, None, None, 0.0).to_wire()) == [
        "symbol", "mark", "bid", "ask", "ts"]
    assert list(OrderCreate("c", BTC, "buy", "market", 1.0).to_wire()) == [
        "client_id", "symbol", "side", "type", "amount", "price", "reduce_only"]
    assert "tif" in OrderCreate("c", BTC, "buy", "limit", 1.0, 2.0, tif="IOC").to_wire()
    assert list(Heartbeat("p", 1, "RUNNING", 0).to_wire()) == [
        "proc", "pid", "state", "loop", "last_md", "last_ok"]
    assert set(Fill("t", None, "", BTC, "buy", 1.0, 1.0, 0.0, "", 0.0).to_wire()) == {
        "trade_id", "client_id", "order_id", "symbol", "side", "amount", "price", "fee",
        "fee_currency", "ts"}
    assert Halt.from_wire({}) == Halt("request", "halt requested", "?")  # defaults as before


@pytest.mark.parametrize("cls, data, field, problem", [
    (MarketData, {"mark": 1.0, "ts": 0.0}, "symbol", "is missing"),
    (MarketData, {"symbol": BTC, "mark": "1.0"}, "mark", "must be a finite number"),
    (MarketData, {"symbol": BTC, "mark": float("nan")}, "mark", "must be a finite number"),
    (MarketData, {"symbol": BTC, "mark": True}, "mark", "must be a finite number"),
    (Fill, {"trade_id": "t", "symbol": BTC, "side": "long", "amount": 1.0, "price": 1.0},
     "side", "must be 'buy' or 'sell'"),
    (Fill, {"trade_id": 7, "symbol": BTC, "side": "buy", "amount": 1.0, "price": 1.0},
     "trade_id", "must be a string"),
    (OrderCreate, {"client_id": "c", "symbol": BTC, "side": "buy", "type": "stop",
                   "amount": 1.0}, "type", "must be 'market' or 'limit'"),
    (OrderCreate, {"client_id": "c", "symbol": BTC, "side": "buy", "type": "market",
                   "amount": 1.0, "reduce_only": "yes"}, "reduce_only", "must be true or false"),
    (OrderUpdate, {"symbol": BTC, "filled": [1]}, "filled", "must be a finite number"),
    (Position, {"symbol": BTC, "side": "long"}, "contracts", "is missing"),
    (Heartbeat, {"proc": "trader", "pid": "12"}, "pid", "must be an integer"),
    (Heartbeat, {"proc": "trader", "pid": 12, "metrics": {}}, "metrics", "must be a list"),
    (Halt, {"reason": 5}, "reason", "must be a string"),
    (Halt, ["halt"], "*", "not a map"),
])
def test_from_wire_refuses_a_malformed_payload_by_field(cls: Any, data: Any, field: str,
                                                        problem: str) -> None:
    with pytest.raises(PayloadError) as e:
        cls.from_wire(data)
    assert e.value.field == field and problem in str(e.value)
    assert f"field {field!r}" in str(e.value)
    assert e.value.kind == "bad_request"  # the reply kind when a server refuses it


def test_unknown_keys_are_ignored_for_newer_senders() -> None:
    d = {**MarketData(BTC, 1.0, None, None, 0.0).to_wire(), "funding": 0.01}
    assert MarketData.from_wire(d) == MarketData(BTC, 1.0, None, None, 0.0)


# --- the dispatcher -----------------------------------------------------------------------------

MSG = wire.Message("x", "test", 1, 0.0, {})


def test_dispatcher_runs_the_op_from_its_table_and_refuses_others_by_name() -> None:
    seen: list[str] = []

    async def ping(args: dict[str, Any], msg: wire.Message) -> dict[str, Any]:
        return {"pong": args.get("n")}

    d = bus.Dispatcher("notifier", {protocol.NotifierOp.ACK: ping},
                       before=lambda op, a, m: seen.append(op))
    assert asyncio.run(d("ack", {"n": 1}, MSG)) == {"pong": 1}
    with pytest.raises(bus.UnknownOp) as e:
        asyncio.run(d("acknowledge", {}, MSG))
    assert e.value.kind == "bad_request"
    assert "'acknowledge'" in str(e.value) and "known ops: ack" in str(e.value)
    assert seen == ["ack", "acknowledge"]


def test_dispatcher_fallback_and_extras() -> None:
    async def cmd(args: dict[str, Any], msg: wire.Message, peer: str | None = None) -> Any:
        return ("cmd", peer)

    async def other(op: str, args: dict[str, Any], msg: wire.Message,
                    peer: str | None = None) -> Any:
        return (op, peer)

    d = bus.Dispatcher("commander", {"cmd": cmd}, fallback=other)
    assert asyncio.run(d("cmd", {}, MSG, peer="alice")) == ("cmd", "alice")
    assert asyncio.run(d("ping", {}, MSG)) == ("ping", None)


def test_an_op_enum_prints_as_its_plain_value_in_request_errors() -> None:
    req = bus.SyncRequester(f"ipc://{short_dir()}/none", "test")  # nobody listens
    try:
        with pytest.raises(bus.RequestTimeout) as e:
            req.request(protocol.ConnectorOp.STATUS, {}, timeout=0.05)
    finally:
        req.close()
    assert str(e.value) == "timeout: no reply to 'status' within 0.05 s"
