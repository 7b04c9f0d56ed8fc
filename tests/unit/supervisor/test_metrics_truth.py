"""Point 7 of the operations issue: metrics that tell the truth, and no signed URL anywhere.

In-process: the supervisor's sample source (``supervisor.metrics_truth.Truth``) over real
``Child`` records with fake processes, rendered by the real collector and parsed back; the
redaction helper and the log-record factory. ``promtool check metrics`` where installed.
The end-to-end checks (a real stack's /metrics after a kill, killpath_ready during an outage)
are in tests/integration/test_metrics_truth.py.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from supervisor.children import RUNNING, Child
from supervisor.flatten import RoundResult
from supervisor.metrics_http import FleetCollector
from supervisor.metrics_truth import Truth
from tests.promtext import parsed, val
from trader.kernel import config, redact
from trader.kernel.journal import HaltState
from trader.kernel.metrics import Registry
from trader.kernel.protocol import CHILDREN, CONNECTOR, TRADER

SIGNED = ("binanceusdm GET https://fapi.binance.com/fapi/v1/openOrders?timestamp=1732000000000"
          "&recvWindow=60000&signature=3f1c9a0b7e 418 I'm a teapot")


class FakeProc:
    def __init__(self, pid: int) -> None:
        self.pid, self.returncode = pid, None


def make_sup(halt: HaltState | None = None) -> Any:
    cfg = config.from_mapping({"notify": {"ntfy": {"url": "http://x"}}})
    sup = SimpleNamespace(cfg=cfg, metrics=Registry(), sim=None, killswitch=None,
                          killpath_ready=True, halt=halt or HaltState(False))
    sup.children = {n: Child(n, Path("/tmp"), {}, lambda c, code: None) for n in CHILDREN}
    sup.hang_limit = lambda name: 1.0
    sup.trading_state = lambda: "HALTED" if sup.halt.halted else "STOPPED"
    return sup


def run(ch: Child, pid: int, metrics: list[list[Any]]) -> None:
    ch.proc = FakeProc(pid)  # type: ignore[assignment]
    ch.state = RUNNING
    ch.hb.at = time.monotonic()
    ch.hb.metrics = metrics


def die(ch: Child) -> None:
    ch.proc.returncode = -9  # type: ignore[union-attr]


def exposition(truth: Truth, sup: Any) -> str:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(FleetCollector(lambda: truth.samples(sup)))  # type: ignore[arg-type]
    return generate_latest(reg).decode()




TRADER_METRICS = [
    ["flatguard_equity", [], 10_000.0],
    ["flatguard_position_contracts", [["symbol", "BTC/USDT:USDT"]], 0.01],
    ["flatguard_trading_state", [["state", "RUNNING"]], 1.0],
    ["flatguard_orders_total", [["side", "buy"], ["symbol", "BTC/USDT:USDT"]], 3.0],
]
CONNECTOR_METRICS = [
    ["flatguard_equity", [], 9_990.0],
    ["flatguard_position_contracts", [["symbol", "BTC/USDT:USDT"]], 0.0],
    ["flatguard_exchange_errors_total", [["call", "fetch_open_orders"], ["kind", "transient"]],
     2.0],
]


def test_a_dead_trader_has_no_heartbeat_age_and_its_account_series_stay() -> None:
    sup, truth = make_sup(), Truth()
    run(sup.children[TRADER], 101, TRADER_METRICS)
    run(sup.children[CONNECTOR], 102, CONNECTOR_METRICS)
    s = parsed(exposition(truth, sup))
    assert val(s, "flatguard_up", process="trader") == 1.0
    assert 0 <= val(s, "flatguard_heartbeat_age_seconds", process="trader") < 5  # type: ignore[operator]
    assert val(s, "flatguard_equity") == 10_000.0  # the trader's own while it runs
    assert val(s, "flatguard_orders_total", symbol="BTC/USDT:USDT", side="buy") == 3.0
    assert val(s, "flatguard_orders_total", symbol="BTC/USDT:USDT", side="sell") == 0.0
    assert val(s, "flatguard_heartbeat_age_seconds", process="notifier") is None  # never started

    die(sup.children[TRADER])
    sup.halt = HaltState(True, "the trader exited", "trader_exit", time.time(), False)
    s = parsed(exposition(truth, sup))
    assert val(s, "flatguard_up", process="trader") == 0.0
    assert val(s, "flatguard_heartbeat_age_seconds", process="trader") is None  # not -1
    assert all(v != -1 for (n, _), v in s.items() if n == "flatguard_heartbeat_age_seconds")
    assert val(s, "flatguard_equity") == 9_990.0  # now the connector's view of the exchange
    assert val(s, "flatguard_position_contracts", symbol="BTC/USDT:USDT") == 0.0
    assert val(s, "flatguard_trading_state", state="HALTED") == 1.0
    assert val(s, "flatguard_trading_state", state="RUNNING") == 0.0
    assert val(s, "flatguard_halted") == 1.0

    die(sup.children[CONNECTOR])  # nobody reads the exchange: the last values known stay
    s = parsed(exposition(truth, sup))
    assert val(s, "flatguard_equity") == 9_990.0
    assert val(s, "flatguard_exchange_errors_total", call="fetch_open_orders",
               kind="transient") is None  # a dead process's counters are gone (its restart resets)


def test_kept_positions_read_zero_once_the_kill_path_proved_flat() -> None:
    sup, truth = make_sup(), Truth()
    run(sup.children[TRADER], 101, TRADER_METRICS)
    truth.samples(sup)
    die(sup.children[TRADER])
    sup.halt = HaltState(True, "x", "trader_exit", time.time(), True)
    s = parsed(exposition(truth, sup))
    assert val(s, "flatguard_position_contracts", symbol="BTC/USDT:USDT") == 0.0
    assert val(s, "flatguard_equity") == 10_000.0


def test_every_counter_exists_at_zero_from_start_up() -> None:
    sup = make_sup()
    s = parsed(exposition(Truth(), sup))
    for name in ("flatguard_killswitch_rounds_total", "flatguard_fill_conflicts_total",
                 "flatguard_killswitch_watch_flattens_total"):
        assert val(s, name) == 0.0, name
    assert val(s, "flatguard_killswitch_runs_total", trigger="trader_hang") == 0.0
    assert val(s, "flatguard_journal_errors_total", process="supervisor") == 0.0
    assert val(s, "flatguard_bus_dropped_total", process="trader", reason="hwm") == 0.0
    assert val(s, "flatguard_notifications_total", sink="ntfy", outcome="failed") == 0.0
    assert val(s, "flatguard_notifications_dropped_total", sink="console") == 0.0
    assert val(s, "flatguard_orders_total", symbol="ETH/USDT:USDT", side="sell") == 0.0
    assert any(n == "flatguard_risk_rejections_total" for n, _ in s)
    assert val(s, "flatguard_process_restarts_total", process="commander") == 0.0


def test_killpath_ready_is_zero_while_a_flatten_round_fails() -> None:
    sup, truth = make_sup(), Truth()
    ks = SimpleNamespace(flattening=True, last_round=None)
    sup.killswitch = ks
    assert val(parsed(exposition(truth, sup)), "flatguard_killpath_ready") == 1.0
    ks.last_round = RoundResult(False, error="fetch_positions: transient, ExchangeNotAvailable",
                                failure="transient")
    assert val(parsed(exposition(truth, sup)), "flatguard_killpath_ready") == 0.0
    ks.last_round = RoundResult(False, positions=["BTC/USDT:USDT +0.01"])  # closing, no error
    assert val(parsed(exposition(truth, sup)), "flatguard_killpath_ready") == 1.0
    ks.last_round, ks.flattening = RoundResult(True), False
    assert val(parsed(exposition(truth, sup)), "flatguard_killpath_ready") == 1.0
    sup.killpath_ready = False  # the last proof failed
    assert val(parsed(exposition(truth, sup)), "flatguard_killpath_ready") == 0.0


def test_no_query_string_in_metric_labels() -> None:
    sup = make_sup()
    run(sup.children[CONNECTOR], 102, [
        ["flatguard_exchange_errors_total", [["call", "fetch?timestamp=1&signature=ab"],
                                             ["kind", "fatal"]], 1.0]])
    text = exposition(Truth(), sup)
    assert "signature" not in text and "timestamp=" not in text
    assert 'call="fetch"' in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_check_metrics() -> None:
    sup = make_sup()
    run(sup.children[TRADER], 101, TRADER_METRICS)
    r = subprocess.run(["promtool", "check", "metrics"], input=exposition(Truth(), sup),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


# --- redaction --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, kept, gone", [
    (SIGNED, "https://fapi.binance.com/fapi/v1/openOrders 418", "timestamp"),
    ("wss://fstream.binance.com/private/ws?listenKey=abcDEF123 closed", "ws closed",
     "abcDEF123"),
    ("GET /fapi/v1/order?symbol=BTCUSDT&signature=ff: -2013", "GET /fapi/v1/order -2013",
     "signature"),
    ("body signature=abcdef&x=1", "signature=<redacted>", "abcdef"),
])
def test_scrub_url(text: str, kept: str, gone: str) -> None:
    out = redact.scrub_url(text)
    assert gone not in out and kept in out.replace("?", ""), out


def test_scrub_url_leaves_questions_and_key_values() -> None:
    for text in ("did you mean BTC/USDT:USDT?", "event=ready state=RUNNING why? yes",
                 "token_env=FLATGUARD_TELEGRAM_TOKEN"):
        assert redact.scrub_url(text) == text


def test_log_records_are_scrubbed_whatever_the_handler(caplog: pytest.LogCaptureFixture) -> None:
    redact.install()
    log = logging.getLogger("flatguard.test_redact")
    with caplog.at_level(logging.INFO):
        log.error("kill path check failed: %s", SIGNED)
        try:
            raise RuntimeError(SIGNED)
        except RuntimeError:
            log.exception("round failed")
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "signature" not in text and "timestamp=" not in text
    assert "openOrders" in text


def test_classification_describe_and_notifications_are_scrubbed() -> None:
    import ccxt

    from trader.exchange.errors import NO_CODES, classify

    c = classify("fetch_open_orders", ccxt.ExchangeError(SIGNED), NO_CODES)
    assert "signature" not in c.describe() and "timestamp=" not in c.describe()


def test_exchange_trouble_rises_once_per_increase() -> None:
    sup, truth = make_sup(), Truth()
    errs = [["flatguard_exchange_errors_total", [["call", "fetch_positions"], ["kind", "transient"]],
             1.0], ["flatguard_exchange_errors_total", [["call", "create_order"],
                                                         ["kind", "rejected"]], 5.0]]
    run(sup.children[CONNECTOR], 102, errs)
    assert truth.exchange_trouble(sup) is True
    assert truth.exchange_trouble(sup) is False  # no new failure
    errs[1][2] = 9.0  # order refusals are not an outage
    assert truth.exchange_trouble(sup) is False
    errs[0][2] = 2.0
    assert truth.exchange_trouble(sup) is True
