"""The venue seam: the table of supported venues, the refusal of any other id, the capability
check against real ccxt classes, and binanceusdm's own rules (status map, close quirks,
contract size, weight header, dead-man switch, key check)."""

from __future__ import annotations

import asyncio

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from trader.connector.startup import Refusal, Session, _contract_sizes
from trader.exchange import errors as E
from trader.exchange.reconcile import position_row
from trader.exchange.session import build_exchange
from trader.exchange.venues import (
    VENUES,
    MissingCapabilities,
    UnsupportedVenue,
    Venue,
    missing_capabilities,
    notional,
    require_capabilities,
    supported,
    venue_for,
)
from trader.exchange.venues.binanceusdm import BinanceUsdm
from trader.kernel.config import ExchangeConfig
from trader.kernel.protocol import TERMINAL, OrderStatus

BTC = "BTC/USDT:USDT"


# --- the table --------------------------------------------------------------------------------

def test_every_venue_implements_the_whole_protocol() -> None:
    for exchange_id, cls in VENUES.items():
        v = venue_for(exchange_id)
        assert isinstance(v, Venue) and type(v) is cls, exchange_id
        assert v.needs and isinstance(v.rules, E.Rules), exchange_id
        # the ccxt class it builds exists in both flavours the processes use
        assert hasattr(ccxt_async, v.id) and hasattr(ccxt_pro, v.id)


def test_sim_is_binanceusdm_not_a_special_case() -> None:
    assert type(venue_for("sim")) is type(venue_for("binanceusdm")) is BinanceUsdm
    assert venue_for("sim").id == "binanceusdm"  # the ccxt class built, at exchange.url
    assert supported() == ["binanceusdm", "sim"]


@pytest.mark.parametrize("exchange_id", ["okx", "bybit", "binancecoinm", "nope"])
def test_an_id_without_a_venue_is_refused_by_name_with_the_supported_list(
        exchange_id: str) -> None:
    with pytest.raises(UnsupportedVenue) as ei:
        venue_for(exchange_id)
    text = str(ei.value)
    assert f"exchange.id = {exchange_id!r}" in text
    assert "supported: binanceusdm, sim" in text and "\n" not in text


# --- capabilities ------------------------------------------------------------------------------

def test_a_ccxt_class_missing_a_needed_capability_is_refused_naming_it() -> None:
    okx = ccxt_async.okx()  # a real class: no unified cancelAllOrders, no fetchBidsAsks
    assert missing_capabilities(okx, BinanceUsdm.needs) == ["cancelAllOrders", "fetchBidsAsks"]
    with pytest.raises(MissingCapabilities) as ei:
        require_capabilities(venue_for("binanceusdm"), okx)
    assert "cancelAllOrders, fetchBidsAsks" in str(ei.value) and "'okx'" in str(ei.value)


def test_a_class_whose_has_lacks_one_call_is_refused() -> None:
    class NoPositions(ccxt_async.binanceusdm):  # type: ignore[misc, valid-type]
        def describe(self) -> dict:
            return self.deep_extend(super().describe(), {"has": {"fetchPositions": False}})

    with pytest.raises(MissingCapabilities, match=r"lacks .*: fetchPositions \("):
        require_capabilities(venue_for("binanceusdm"), NoPositions())


def test_the_stream_needs_are_checked_only_for_a_websocket_feed() -> None:
    v = venue_for("binanceusdm")
    rest = build_exchange("binanceusdm", url="http://127.0.0.1:9", pro=False)
    ws = build_exchange("binanceusdm", url="http://127.0.0.1:9", pro=True)
    require_capabilities(v, rest)  # the kill path's REST session
    require_capabilities(v, ws, stream=True)  # the connector's ccxt.pro session
    with pytest.raises(MissingCapabilities, match="watchOrders"):
        require_capabilities(v, rest, stream=True)  # REST-only ccxt has no watches


# --- binanceusdm's rules ----------------------------------------------------------------------

def test_error_codes_are_the_venues_and_a_venue_without_codes_never_borrows_them() -> None:
    rejected = ccxt_async.ExchangeError(
        'binanceusdm {"code":-2019,"msg":"Margin is insufficient."}')
    binance = venue_for("binanceusdm").rules
    assert E.classify("create_order", rejected, binance).kind is E.Kind.REJECTED
    c = E.classify("create_order", rejected, E.NO_CODES)
    assert c.kind is E.Kind.FATAL and "unknown code -2019" in c.action
    # the venue-neutral rows stay with the taxonomy
    assert E.classify("fetch_balance", ccxt_async.NetworkError("x"), E.NO_CODES).kind \
        is E.Kind.TRANSIENT


@pytest.mark.parametrize("raw, status", [
    ("NEW", "open"), ("PARTIALLY_FILLED", "open"), ("FILLED", "closed"),
    ("CANCELED", "canceled"), ("REJECTED", "rejected"), ("EXPIRED", "expired"),
    ("EXPIRED_IN_MATCH", "expired"), ("closed", "closed"), ("open", "open"),
])
def test_order_status_map(raw: str, status: str) -> None:
    got = venue_for("binanceusdm").order_status(raw)
    assert got == status and isinstance(got, OrderStatus)
    assert (got in TERMINAL) == (status != "open")


def test_an_unknown_status_is_kept_never_guessed() -> None:
    assert venue_for("binanceusdm").order_status("SOMETHING_NEW") == "something_new"


def test_close_order_one_way_and_hedge() -> None:
    v = venue_for("binanceusdm")
    long = v.close_order({"symbol": BTC, "side": "long", "info": {"positionSide": "BOTH"}})
    assert (long.side, dict(long.params)) == ("sell", {"reduceOnly": True})
    short = v.close_order({"symbol": BTC, "side": "short", "info": {}})
    assert (short.side, dict(short.params)) == ("buy", {"reduceOnly": True})
    hedge = v.close_order({"symbol": BTC, "side": "short", "info": {"positionSide": "SHORT"}})
    assert (hedge.side, dict(hedge.params)) == ("buy", {"positionSide": "SHORT"})
    assert v.price_protection_codes == {-4131} and v.reduce_only_rejected_codes == {-2022}
    assert -4164 in v.filter_codes and -2019 not in v.filter_codes


def test_price_band_from_the_percent_price_filter() -> None:
    v = venue_for("binanceusdm")
    market = {"info": {"filters": [{"filterType": "PERCENT_PRICE", "multiplierUp": "1.05",
                                    "multiplierDown": "0.95"}]}}
    assert v.price_band(market) == (1.05, 0.95)
    assert v.price_band({"info": {"filters": []}}) is None


def test_weight_header() -> None:
    v = venue_for("binanceusdm")
    assert v.weight_used({"X-MBX-USED-WEIGHT-1M": "42"}) == 42
    assert v.weight_used({"x-mbx-used-weight-1m": "7", "Other": "1"}) == 7
    assert v.weight_used({"X-MBX-USED-WEIGHT-1M": "n/a"}) is None
    assert v.weight_used(None) is None


def test_dms_and_key_check_at_a_local_url() -> None:
    v = venue_for("sim")
    ex = build_exchange("binanceusdm", url="http://127.0.0.1:9", pro=False)
    assert v.dms_mode(ex) == "countdown"
    kc = asyncio.run(v.check_keys(ex))  # no request: the sim has no key-permission endpoint
    assert not kc.checked and "not checked" in kc.note


# --- contract size ----------------------------------------------------------------------------

def test_contract_size_scales_the_notional() -> None:
    v = venue_for("binanceusdm")
    assert v.contract_size({"contractSize": 1}) == 1.0
    assert v.contract_size({"contractSize": 0.01}) == 0.01
    assert v.contract_size({}) == 1.0  # spot-like: one unit
    assert notional(-3, 50_000, 0.01) == pytest.approx(1500.0)
    row = position_row({"symbol": "BTC/USDT:USDT:USDT", "contracts": 3, "side": "long",
                        "contractSize": 0.01, "markPrice": 50_000, "entryPrice": 49_000})
    assert row["notional"] == pytest.approx(3 * 0.01 * 50_000)
    assert row["unrealized_pnl"] == pytest.approx(3 * 0.01 * 1000)  # derived: sized too
    plain = position_row({"symbol": BTC, "contracts": 3, "side": "long", "contractSize": 1,
                          "markPrice": 50_000, "entryPrice": 49_000})
    assert plain["notional"] == pytest.approx(150_000)


def test_a_symbol_whose_contract_is_not_one_unit_is_refused() -> None:
    ex = ccxt_async.binanceusdm()
    ex.markets = {BTC: {"contractSize": 1}, "ETH/USDT:USDT": {"contractSize": 0.01}}
    xc = ExchangeConfig(id="binanceusdm", symbols=(BTC, "ETH/USDT:USDT"))
    s = Session(xc, venue_for("binanceusdm"), ex, clock=None, guard=None)  # type: ignore[arg-type]
    with pytest.raises(Refusal, match=r"ETH/USDT:USDT \(contract size 0.01\)") as ei:
        _contract_sizes(s, ex)
    assert BTC + " " not in str(ei.value)
    _contract_sizes(Session(ExchangeConfig(id="binanceusdm", symbols=(BTC,)), s.venue, ex,
                            clock=None, guard=None), ex)  # type: ignore[arg-type]


# --- the session's quirks are the venue's -----------------------------------------------------

def test_session_quirks_come_from_the_venue_module_only() -> None:
    usdm = build_exchange("binanceusdm", url="http://127.0.0.1:9")
    assert (usdm.options["fetchCurrencies"], usdm.options["defaultType"]) == (False, "swap")
    # a Binance id without a venue module gets ccxt's defaults, none of binanceusdm's
    coinm = build_exchange("binancecoinm", url="http://127.0.0.1:9")
    assert (coinm.options["fetchCurrencies"], coinm.options["defaultType"]) == (True, "spot")
    demo = build_exchange("binanceusdm", testnet=True)  # the venue's test environment
    assert demo.urls["api"]["fapiPublic"].startswith("https://demo-fapi.binance.com/")
