"""One test per row of the error taxonomy, with exceptions raised by ccxt's own error handling.

The errors are produced by ccxt's real ``handle_errors`` / ``handle_http_status_code`` for a
local base URL (so Binance's futures table is *not* selected, as with the sim), then classified.
"""

from __future__ import annotations

import json

import ccxt
import pytest

from trader.exchange import errors as E
from trader.exchange.errors import Classification, Kind
from trader.exchange.venues import venue_for

RULES = venue_for("binanceusdm").rules  # the rows moved to venues/binanceusdm.py unchanged


def classify(call: str, exc: BaseException, **kw: object) -> Classification:
    return E.classify(call, exc, RULES, **kw)  # type: ignore[arg-type]


URL = "http://127.0.0.1:9/fapi/v1/order?symbol=BTCUSDT&timestamp=1&signature=abc"
EX = ccxt.binanceusdm({"apiKey": "k", "secret": "s"})


def raised(status: int, body: str, url: str = URL, method: str = "POST") -> BaseException:
    """The exception ccxt raises for this HTTP answer (the same path as a live call)."""
    try:
        resp = json.loads(body) if body.startswith(("{", "[")) else None
    except ValueError:
        resp = None
    try:
        EX.handle_errors(status, "reason", url, method, {}, body, resp, {}, None)
        EX.handle_http_status_code(status, "Not Found" if status == 404 else "x", url, method, body)
    except Exception as e:  # noqa: BLE001 - that is what we want
        return e
    raise AssertionError("ccxt raised nothing")


def code(c: int, msg: str = "m", status: int = 400) -> BaseException:
    return raised(status, json.dumps({"code": c, "msg": msg}))


@pytest.mark.parametrize("c", [-1001, -1003, -1007, -1008, -1021])
def test_transient_codes_any_call(c: int) -> None:
    for call in ("create_order", "fetch_balance", "fetch_positions"):
        assert classify(call, code(c)).kind is Kind.TRANSIENT


def test_1015_transient_on_orders_only() -> None:
    assert classify("create_order", code(-1015)).kind is Kind.TRANSIENT
    assert classify("fetch_balance", code(-1015)).kind is Kind.FATAL


def test_1021_asks_for_resync() -> None:
    c = classify("create_order", code(-1021, "Timestamp for this request is outside of the recvWindow."))
    assert (c.kind, c.outcome) == (Kind.TRANSIENT, "resync")


@pytest.mark.parametrize("c", [-1002, -1022, -2014, -2015, -2008])
def test_auth_codes_fatal(c: int) -> None:
    for call in ("create_order", "fetch_balance"):
        assert classify(call, code(c)).kind is Kind.FATAL


def test_2015_fatal_even_after_ccxt_calls_it_ddos() -> None:
    ex = ccxt.binanceusdm({"apiKey": "k", "secret": "s"})
    ex.options["hasAlreadyAuthenticatedSuccessfully"] = True
    body = json.dumps({"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
    try:
        ex.handle_errors(401, "x", URL, "GET", {}, body, json.loads(body), {}, None)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, ccxt.DDoSProtection)  # ccxt's mapping: "retry me"
        assert classify("fetch_balance", e).kind is Kind.FATAL


@pytest.mark.parametrize("c", [-1013, -1100, -1111, -1102, -1106, -1115, -1116, -1117, -2010,
                               -2019, -2021, -2022, -4003, -4005, -4013, -4014, -4016, -4023,
                               -4024, -4061, -4120, -4131, -4164, -5022])
def test_order_rejections(c: int) -> None:
    assert classify("create_order", code(c)).kind is Kind.REJECTED
    # the same code on a state read is not an order refusal: something is wrong with us
    assert classify("fetch_positions", code(c)).kind is Kind.FATAL


def test_lot_size_message_path_keeps_code() -> None:
    e = code(-1013, "Filter failure: LOT_SIZE")
    assert isinstance(e, ccxt.InvalidOrder)  # ccxt's body-pattern branch
    assert classify("create_order", e).kind is Kind.REJECTED


def test_duplicate_client_id_resolved_by_lookup() -> None:
    c = classify("create_order", code(-4116, "ClientOrderId is duplicated."))
    assert (c.kind, c.outcome) == (Kind.REJECTED, "lookup")


@pytest.mark.parametrize("c", [-2011, -2013])
def test_unknown_order(c: int) -> None:
    assert classify("cancel_order", code(c)).outcome == "gone"
    assert classify("cancel_order", code(c)).kind is Kind.REJECTED
    assert classify("fetch_order", code(c)).outcome == "absent"
    assert classify("fetch_balance", code(c)).kind is Kind.FATAL


def test_order_not_found_class_on_cancel_is_gone() -> None:
    c = classify("cancel_order", ccxt.OrderNotFound("binanceusdm Unknown order sent."))
    assert (c.kind, c.outcome) == (Kind.REJECTED, "gone")


@pytest.mark.parametrize("c", [-4028, -4161, -1121])
def test_leverage_refused_rejects_symbol(c: int) -> None:
    assert classify("set_leverage", code(c)).kind is Kind.REJECTED


def test_recv_window_too_large_fatal() -> None:
    assert classify("create_order", code(-1131)).kind is Kind.FATAL


def test_unknown_code_fatal() -> None:
    e = code(-9999, "Something new")
    assert type(e) is ccxt.ExchangeError
    c = classify("create_order", e)
    assert c.kind is Kind.FATAL and "unknown code -9999" in c.action


def test_1000_fatal() -> None:
    assert classify("fetch_balance", code(-1000)).kind is Kind.FATAL


@pytest.mark.parametrize("status", [404, 410])
def test_endpoint_gone_fatal_although_ccxt_says_retry(status: int) -> None:
    url = "http://127.0.0.1:9/fapi/v1/account?timestamp=1&signature=x"
    e = raised(status, "", url=url, method="GET")
    assert isinstance(e, ccxt.NetworkError)  # the trap: ccxt's class says "retry me"
    c = classify("fetch_balance", e)
    assert c.kind is Kind.FATAL
    assert c.endpoint == "GET /fapi/v1/account" and c.status == status
    assert "signature" not in c.describe() and "/fapi/v1/account" in c.describe()


@pytest.mark.parametrize("status", [401, 403])
def test_unauthorised_status_fatal(status: int) -> None:
    assert classify("fetch_balance", raised(status, "")).kind is Kind.FATAL


@pytest.mark.parametrize("status", [418, 429])
def test_rate_limit_status_transient(status: int) -> None:
    e = raised(status, "")
    assert isinstance(e, ccxt.DDoSProtection)
    c = classify("create_order", e)
    assert c.kind is Kind.TRANSIENT and c.status == status


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_transient(status: int) -> None:
    assert classify("fetch_positions", raised(status, "")).kind is Kind.TRANSIENT


def test_recorded_status_wins_over_class() -> None:
    # a 404 that carried a JSON body surfaces by code; a recorded status still says "gone"
    e = ccxt.ExchangeNotAvailable("binanceusdm")
    assert classify("fetch_balance", e, status=404, endpoint="GET /x").kind is Kind.FATAL


@pytest.mark.parametrize("exc", [ccxt.AuthenticationError("x"), ccxt.PermissionDenied("x"),
                                 ccxt.AccountSuspended("x"), ccxt.NotSupported("x"),
                                 ccxt.BadRequest("x"), ccxt.BadSymbol("x"), ccxt.BadResponse("x"),
                                 ccxt.NullResponse("x"), ccxt.ArgumentsRequired("x")])
def test_fatal_classes(exc: Exception) -> None:
    assert classify("create_order", exc).kind is Kind.FATAL
    assert classify("fetch_balance", exc).kind is Kind.FATAL


@pytest.mark.parametrize("exc", [ccxt.InvalidOrder("x"), ccxt.InsufficientFunds("x")])
def test_order_classes_rejected_on_orders_fatal_elsewhere(exc: Exception) -> None:
    assert classify("create_order", exc).kind is Kind.REJECTED
    assert classify("fetch_balance", exc).kind is Kind.FATAL


@pytest.mark.parametrize("exc", [ccxt.InvalidNonce("x"), ccxt.RateLimitExceeded("x"),
                                 ccxt.DDoSProtection("x"), ccxt.RequestTimeout("x"),
                                 ccxt.OnMaintenance("x"), ccxt.ExchangeNotAvailable("x"),
                                 ccxt.NetworkError("x")])
def test_transient_classes(exc: Exception) -> None:
    assert classify("fetch_balance", exc).kind is Kind.TRANSIENT


def test_timeout_on_create_asks_for_lookup() -> None:
    e = ccxt.RequestTimeout("binanceusdm POST http://127.0.0.1:9/fapi/v1/order?x=1")
    c = classify("create_order", e)
    assert (c.kind, c.outcome, c.endpoint) == (Kind.TRANSIENT, "lookup", "POST /fapi/v1/order")


@pytest.mark.parametrize("exc", [ccxt.ExchangeError("x"), ccxt.OperationFailed("x"),
                                 ValueError("boom"), KeyError("k")])
def test_unrecognised_fatal(exc: Exception) -> None:
    assert classify("create_order", exc).kind is Kind.FATAL


def test_budget_exhausted_is_fatal() -> None:
    c = classify("fetch_balance", ccxt.RequestTimeout("x"))
    f = E.budget_exhausted(c, 5, 61)
    assert f.kind is Kind.FATAL and "budget" in f.action


def test_error_for_carries_kind() -> None:
    err = E.error_for(classify("create_order", code(-2019)))
    assert isinstance(err, E.Rejected) and err.kind == "rejected"
    assert "-2019" in str(err)
