"""Pure logic of the notifier: splitting, rate limit, dedup, alerts, digest, sink config."""

from __future__ import annotations

import pytest

from notifier import sinks
from notifier.digest import AccountWatch, next_digest
from notifier.errors import SinkConfigError
from notifier.lanes import Alerts
from notifier.message import Notification, parse, split_text
from notifier.queue import Deduper, RateLimiter, SinkQueue, SinkStats
from trader.kernel import config


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def note(key: str = "k", level: str = "info", title: str = "t") -> Notification:
    return Notification(level, title, "text", key, 0.0)


def test_split_respects_limit_and_keeps_everything() -> None:
    text = "\n".join(f"line {i} " + "x" * 50 for i in range(300))
    parts = split_text(text, 4096)
    assert len(parts) > 1 and all(len(p) <= 4096 for p in parts)
    assert parts[-1].endswith(f"({len(parts)}/{len(parts)})")
    joined = "".join(p.rsplit(" (", 1)[0] for p in parts).replace("\n", "")
    assert joined == text.replace("\n", "")
    assert split_text("short", 2000) == ["short"]
    assert all(len(p) <= 2000 for p in split_text("y" * 9000, 2000))  # no break points


def test_parse_rejects_bad_payloads() -> None:
    ok = parse({"level": "info", "title": "t", "text": "x", "ts": 1.0}, "trader")
    assert ok.key == "t" and ok.source == "trader"
    for bad in ({"level": "loud", "title": "t", "ts": 1}, {"level": "info", "title": "", "ts": 1},
                {"level": "info", "title": "t"}, {"level": "info", "title": "t", "text": 3, "ts": 1}):
        with pytest.raises(ValueError):
            parse(bad, "x")


def test_rate_limiter_per_minute_and_min_interval() -> None:
    clk = Clock()
    rl = RateLimiter(3, min_interval=1.0, clock=clk)
    assert rl.delay() == 0
    rl.record()
    assert rl.delay() == pytest.approx(1.0)
    clk.t += 1
    rl.record()
    clk.t += 1
    rl.record()
    clk.t += 1
    assert rl.delay() == pytest.approx(57.0)  # 3 in the window: wait for the first to age out
    clk.t += 57
    assert rl.delay() == 0


def test_queue_bounded_and_accounting_exact() -> None:
    st = SinkStats("x")
    q = SinkQueue(3, st)
    results = [q.offer(note(str(i))) for i in range(10)]
    assert results.count(True) == 3 and len(q) == 3
    assert (st.published, st.dropped, st.queued) == (10, 7, 3)
    st.count("sent")
    assert st.published == st.sent + st.dropped + st.failed + st.queued


def test_dedup_merges_copies_into_one_summary() -> None:
    clk = Clock()
    d = Deduper(30.0, clk)
    assert d.admit(note("a"))
    assert [d.admit(note("a")) for _ in range(11)] == [False] * 11
    assert d.admit(note("b"))
    assert d.flush() == []
    clk.t += 31
    (summary,) = d.flush()
    assert summary.count == 12 and "(x12)" in summary.heading
    assert d.admit(note("a"))  # a new window


def test_alerts_repeat_until_ack_or_expiry() -> None:
    a = Alerts(repeat_interval=60, expiry=300)
    crit = note("kill", "critical")
    assert a.raise_(crit, 0) and not a.raise_(crit, 1)
    assert a.due(30) == []
    (r,) = a.due(61)
    assert r.repeat == 1 and r.count == 2
    assert a.ack("other") == [] and a.ack(None) == ["kill"]
    assert a.due(500) == []
    a.raise_(crit, 1000)
    assert a.due(1301) == [] and not a.active  # expired


def test_threshold_alerts_from_equity_path() -> None:
    cfg = config.NotifyConfig(equity_change=0.02, exposure_change=0.25, leverage_change=100.0)
    w = AccountWatch(cfg, now=0)

    def acct(eq: float, *notionals: float) -> list[str]:
        pos = [{"symbol": "BTC/USDT:USDT", "notional": n} for n in notionals]
        return [o.title for o in w.on_account({"equity": eq, "positions": pos})]

    assert acct(1000) == []
    assert acct(1015) == []  # +1.5 %
    assert acct(1021) == ["Equity +2.1%"]
    assert acct(1000) == ["Equity -2.1%"]  # measured from the last alert
    assert acct(1000, 20) == []  # small from flat: below 25 % of the 10 %-of-equity floor
    assert acct(1000, 400) == ["Exposure 0 -> 400"]
    assert acct(1000, 450) == []
    assert acct(1000, -200, 300) == ["Exposure 400 -> 500"]  # gross = |short| + |long|
    assert w.on_account({"equity": "NaN"}) == [] and w.bad_events == 1


def test_daily_digest_and_trades() -> None:
    day = 86400 * 20000
    cfg = config.NotifyConfig(digest_hour=6, trades=True)
    w = AccountWatch(cfg, now=day + 3600)
    assert w.next_digest == day + 6 * 3600 == next_digest(day + 3600, 6)
    w.on_account({"equity": 1000.0, "positions": []})
    (trade,) = w.on_fill({"symbol": "BTC/USDT:USDT", "side": "buy", "amount": 0.01,
                          "price": 50000, "fee": 0.2, "trade_id": "t1"})
    assert trade.title == "buy 0.01 BTC/USDT:USDT @ 50000"
    w.on_account({"equity": 1012.5, "positions": [{"notional": 500.0}]})
    w.on_notification("warning")
    w.on_notification("critical")
    assert w.tick(day + 6 * 3600 - 1) == []
    (d,) = w.tick(day + 6 * 3600)
    assert "equity 1,012.50 (PnL +12.50)" in d.text
    assert "fees 0.20, trades 1" in d.text and "max 500.00" in d.text
    assert "warnings 1, errors 1" in d.text
    assert w.next_digest == day + 30 * 3600
    quiet = AccountWatch(config.NotifyConfig(), now=0)
    assert quiet.on_fill({"amount": 1, "price": 2}) == [] and quiet.trades == 1


def _cfg(**notify: object) -> config.Config:
    return config.from_mapping({"notify": notify}, "test.toml")


def test_sink_config_errors_name_section_and_variable() -> None:
    cfg = _cfg(pushover={"token_env": "FG_PO_T", "user_env": "FG_PO_U", "emergency": True})
    with pytest.raises(SinkConfigError, match=r"\[notify.pushover\] token_env: environment "
                                              r"variable FG_PO_T is not set"):
        sinks.build(cfg, {})
    with pytest.raises(SinkConfigError, match=r"\[notify.ntfy\] needs url or url_env"):
        sinks.build(_cfg(ntfy={"emergency": True}), {})
    with pytest.raises(SinkConfigError, match="twilio.*emergency must be true"):
        sinks.build(_cfg(twilio={"sid_env": "A", "token_env": "B"}), {"A": "a", "B": "b"})
    with pytest.raises(SinkConfigError, match="from_number"):
        sinks.build(_cfg(twilio={"sid_env": "A", "token_env": "B", "emergency": True}),
                    {"A": "a", "B": "b"})
    tg = config.from_mapping({"telegram": {"enabled": True, "allowed_users": [1],
                                           "chat_id": 5}})
    with pytest.raises(SinkConfigError, match=r"\[telegram\] token_env.*FLATGUARD_TELEGRAM_TOKEN"):
        sinks.build(tg, {})
    built = sinks.build(tg, {"FLATGUARD_TELEGRAM_TOKEN": "1:x"})
    assert [s.name for s in built] == ["console", "telegram"] and built[1].emergency


def test_leverage_alerts_on_effective_change() -> None:
    from notifier.digest import AccountWatch
    from trader.kernel.config import NotifyConfig

    w = AccountWatch(NotifyConfig(leverage_change=0.5, exposure_change=100.0), now=0.0)

    def snap(notional: float) -> list:
        return w.on_account({"equity": 10_000.0,
                             "positions": [{"symbol": "BTC/USDT:USDT", "notional": notional}]})

    assert snap(1_000.0) == []  # the reference
    assert snap(4_000.0) == []  # 0.1x -> 0.4x: under the threshold
    out = snap(7_000.0)  # 0.1x -> 0.7x
    assert [o.key for o in out] == ["leverage"] and "0.10x -> 0.70x" in out[0].title
    assert snap(7_000.0) == []  # measured from the last alert
