"""The Binance USDⓈ-M market-data streams the feed reads itself (no ccxt.pro in the tick path)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trader.exchange.venues.base import Quote, StreamRefused
from trader.exchange.venues.binanceusdm import BinanceUsdm
from trader.exchange.venues.binanceusdm_md import market_streams, parse

IDS = {"BTCUSDT": "BTC/USDT:USDT", "ETHUSDT": "ETH/USDT:USDT"}


class FakePro:
    def market(self, symbol: str) -> dict[str, Any]:
        return {"id": {v: k for k, v in IDS.items()}[symbol]}

    def get_ws_url(self, kind: str, category: str) -> str:
        assert kind == "linear"
        return f"ws://host/{category}/ws"


def test_the_streams_are_ccxts_subscriptions_on_their_categories() -> None:
    streams = BinanceUsdm().market_streams(FakePro(), list(IDS.values()))
    assert [(s.name, s.url) for s in streams] == [
        ("watch_mark_price", "ws://host/market/ws"), ("watch_bids_asks", "ws://host/public/ws")]
    assert json.loads(streams[0].subscribe) == {
        "method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s", "ethusdt@markPrice@1s"], "id": 1}
    assert json.loads(streams[1].subscribe)["params"] == ["btcusdt@bookTicker", "ethusdt@bookTicker"]


def test_no_streams_without_ccxt_pro_or_symbols() -> None:
    assert market_streams(object(), ["BTC/USDT:USDT"]) == []
    assert market_streams(FakePro(), []) == []


def test_events_become_quotes_with_prices_unchecked() -> None:
    mark = {"e": "markPriceUpdate", "E": 1700000000123, "s": "BTCUSDT", "p": "65000.10",
            "i": "64999", "r": "0.0001", "T": 1}
    book = {"e": "bookTicker", "u": 1, "E": 1700000000456, "T": 1700000000455, "s": "ETHUSDT",
            "b": "3000.1", "B": "1", "a": "3000.2", "A": "2"}
    assert parse(IDS, json.dumps(mark)) == (False, [
        Quote("BTC/USDT:USDT", "65000.10", None, None, 1700000000123)])
    assert parse(IDS, json.dumps({"stream": "ethusdt@bookTicker", "data": book})) == (False, [
        Quote("ETH/USDT:USDT", None, "3000.1", "3000.2", 1700000000456)])
    nan = parse(IDS, json.dumps({**mark, "p": "NaN"}))[1][0]
    assert nan.mark == "NaN"  # refused and counted at the connector's boundary, not here
    assert parse(IDS, json.dumps([mark, {**mark, "s": "XRPUSDT"}]))[1] == parse(
        IDS, json.dumps(mark))[1]  # an all-market array: only our symbols


def test_acknowledgement_error_reply_and_unreadable_frames() -> None:
    assert parse(IDS, '{"result": null, "id": 1}') == (True, [])
    with pytest.raises(StreamRefused):
        parse(IDS, '{"error": {"code": 2, "msg": "Invalid request"}, "id": 1}')
    with pytest.raises(StreamRefused):
        parse(IDS, '{"code": 1, "msg": "Invalid stream", "id": 1}')
    with pytest.raises(ValueError):
        parse(IDS, "not json")
