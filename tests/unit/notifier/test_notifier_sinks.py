"""Each sink against a local server speaking its real API, driven through the real lanes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from itertools import pairwise
from typing import Any

import pytest

from notifier import sinks
from notifier.lanes import Dispatcher
from notifier.message import Notification
from notifier.sinks.discord import DiscordSink
from notifier.sinks.telegram import TelegramSink
from tests.fakes.discord import FakeDiscord
from tests.fakes.ntfy import FakeNtfy
from tests.fakes.pushover import FakePushover
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.fakes.webhook import FakeWebhook
from trader.kernel import config

FAST = {"rate_per_minute": 100_000, "backoff": 0.05, "retries": 2, "timeout": 2.0}


def n(level: str = "info", title: str = "hello", text: str = "world", key: str | None = None) -> Notification:
    return Notification(level, title, text, key or title, time.time(), "test")


def run(cfg: config.Config, env: dict[str, str],
        body: Callable[[Dispatcher], Awaitable[Any]],
        clock: Callable[[], float] = time.monotonic) -> Dispatcher:
    async def main() -> Dispatcher:
        d = Dispatcher(sinks.build(cfg, env), cfg.notify, clock)
        await d.start()
        try:
            await body(d)
        finally:
            await d.stop(0.5)
        return d

    return asyncio.run(asyncio.wait_for(main(), 60))


async def until(pred: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (v := pred()):
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.01)
    return v


def exact(d: Dispatcher) -> None:
    for st in d.stats.values():
        assert st.published == st.sent + st.dropped + st.failed + st.queued, st


def test_telegram_sends_and_splits_long_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # Telegram's 1 s between two sends to a chat, shortened: the parts are still paced by it
    monkeypatch.setattr(TelegramSink, "min_interval", 0.1)
    with FakeTelegram() as tg:
        cfg = config.from_mapping({
            "telegram": {"enabled": True, "chat_id": 42, "allowed_users": [42],
                         "api_url": tg.url},
            "notify": {"telegram": {**FAST}}})

        async def body(d: Dispatcher) -> None:
            d.publish(n(text="a" * 9000))
            await until(lambda: d.stats["telegram"].sent == 1)

        d = run(cfg, {"FLATGUARD_TELEGRAM_TOKEN": tg.token}, body)
        texts = tg.texts(42)
        assert len(texts) == 3 and all(len(t) <= 4096 for t in texts)
        assert texts[0].startswith("hello\n") and texts[2].endswith("(3/3)")
        sends = [r.ts for r in tg.requests if r.path.endswith("/sendMessage")]
        assert len(sends) == 3 and all(b - a >= 0.09 for a, b in pairwise(sends)), sends
        exact(d)


def test_pushover_priorities_receipt_ack_and_cancel() -> None:
    with FakePushover() as po:
        cfg = config.from_mapping({"notify": {"repeat_interval": 60, "pushover": {
            "api_url": po.url, "token_env": "PT", "user_env": "PU", "emergency": True, **FAST}}})

        async def body(d: Dispatcher) -> None:
            d.publish(n("warning", "margin"))
            d.publish(n("critical", "KILL SWITCH", "flattening"))
            await until(lambda: len(po.messages) == 2)
            (receipt,) = po.receipts
            await d.poll_receipts()
            assert d.alerts.active  # not yet acknowledged
            await asyncio.to_thread(po.acknowledge, receipt)
            await d.poll_receipts()
            assert not d.alerts.active
            await until(lambda: po.cancelled == [receipt])

        run(cfg, {"PT": po.token, "PU": po.user}, body)
        warn, crit = po.messages
        assert warn["priority"] == "0" and warn["title"] == "[WARNING] margin"
        assert crit["priority"] == "2" and crit["retry"] == "60" and crit["expire"] == "3600"
        assert crit["message"] == "flattening"


def test_ntfy_discord_webhook_twilio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DiscordSink, "min_interval", 0.05)  # 0.4 s between webhook posts
    with FakeNtfy(token="tk_abc") as nt, FakeDiscord() as dc, FakeWebhook() as wh, \
            FakeTwilio() as tw:
        cfg = config.from_mapping({"notify": {
            "ntfy": {"url": nt.topic_url("fg"), "token_env": "NT", "emergency": True, **FAST},
            "discord": {"webhook_url_env": "DW", **FAST},
            "webhook": {"url": wh.hook_url(), **FAST},
            "twilio": {"api_url": tw.url, "sid_env": "TS", "token_env": "TT", "emergency": True,
                       "from_number": "+15550000000", "to_number": "+15551111111", **FAST}}})
        env = {"NT": "tk_abc", "DW": dc.webhook_url, "TS": tw.sid, "TT": tw.token}

        async def body(d: Dispatcher) -> None:
            d.publish(n("info", "digest", "d" * 2500))
            d.publish(n("critical", "Kill switch: flat", "verified <flat> & done"))
            await until(lambda: len(nt.messages) == 2 and len(dc.messages) == 3
                        and len(wh.received) == 2 and len(tw.calls) == 1)

        d = run(cfg, env, body)
        info, crit = sorted(nt.messages, key=lambda m: m["priority"])
        assert (info["priority"], crit["priority"]) == (3, 5)
        assert crit["title"] == "[CRITICAL] Kill switch: flat" and crit["auth"] == "Bearer tk_abc"
        assert all(len(m["content"]) <= 2000 for m in dc.messages)
        assert "[CRITICAL] Kill switch: flat" in dc.messages[-1]["content"]  # first delivery
        assert {r["level"] for r in wh.received} == {"info", "critical"}
        call = tw.calls[0]
        assert call["To"] == "+15551111111" and call["From"] == "+15550000000"
        assert call["Twiml"].startswith("<Response><Say>Flatguard critical alert. Kill switch")
        assert d.stats["twilio"].published == 1  # info never rings the phone
        exact(d)


def test_retries_honour_retry_after_then_fail_within_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # pacing far below the 1 s Retry-After: the gap checked below is the Retry-After's alone
    monkeypatch.setattr(TelegramSink, "min_interval", 0.05)
    with FakeTelegram() as tg, FakeDiscord() as dc, FakeWebhook() as wh, FakeNtfy() as nt:
        cfg = config.from_mapping({
            "telegram": {"enabled": True, "chat_id": 7, "allowed_users": [7], "api_url": tg.url},
            "notify": {"telegram": FAST, "discord": {"webhook_url_env": "DW", **FAST},
                       "webhook": {"url": wh.hook_url(), **FAST},
                       "ntfy": {"url": nt.topic_url(), **FAST}}})
        tg.fail_next("429", retry_after=1)
        dc.fail_next("429", retry_after=0.2)
        dc.fail_next("5xx", status=503)
        wh.set_fault("5xx", status=500)
        nt.set_fault("garbage")

        async def body(d: Dispatcher) -> None:
            d.publish(n())
            await until(lambda: d.idle() and d.stats["telegram"].sent == 1)

        d = run(cfg, {"FLATGUARD_TELEGRAM_TOKEN": tg.token, "DW": dc.webhook_url}, body)
        tg_reqs = [r.ts for r in tg.requests]
        assert len(tg_reqs) == 2 and tg_reqs[1] - tg_reqs[0] >= 0.9  # waited retry_after
        assert d.stats["discord"].sent == 1 and len(dc.requests) == 3
        assert d.stats["webhook"].failed == 1 and len(wh.requests) == 3  # 1 + 2 retries
        assert d.stats["ntfy"].failed == 1 and len(nt.requests) == 3
        exact(d)


def test_permanent_error_not_retried_and_secret_not_logged(caplog: Any) -> None:
    with FakeTelegram() as tg:
        tg.known_chats = {1}
        cfg = config.from_mapping({
            "telegram": {"enabled": True, "chat_id": 99, "allowed_users": [99],
                         "api_url": tg.url}, "notify": {"telegram": FAST}})

        async def body(d: Dispatcher) -> None:
            d.publish(n())
            await until(lambda: d.stats["telegram"].failed == 1)

        run(cfg, {"FLATGUARD_TELEGRAM_TOKEN": tg.token}, body)
        assert len(tg.requests) == 1
        assert "chat not found" in caplog.text and tg.token not in caplog.text


def test_hung_sink_does_not_delay_others() -> None:
    with FakeWebhook() as hung, FakeNtfy() as nt:
        cfg = config.from_mapping({"notify": {
            "webhook": {"url": hung.hook_url(), **FAST, "timeout": 30.0, "queue_size": 2},
            "ntfy": {"url": nt.topic_url(), **FAST}}})
        hung.set_fault("hang")

        async def body(d: Dispatcher) -> None:
            for i in range(5):
                d.publish(n(title=f"m{i}"))
            await until(lambda: len(nt.messages) == 5)  # while the webhook still hangs
            st = d.stats["webhook"]
            assert st.sent == 0 and st.dropped >= 2 and st.queued == 5 - st.dropped
            await asyncio.to_thread(hung.set_fault, None)
            await until(lambda: d.idle())
            assert st.sent == 5 - st.dropped

        d = run(cfg, {}, body)
        exact(d)


def test_dedup_and_ack_stop_repeats() -> None:
    """The dispatcher's clock is a fake one: the dedup window and the repeat interval pass when
    the test moves it (the process ticks every heartbeat; here the test ticks)."""
    with FakeNtfy() as nt:
        cfg = config.from_mapping({"notify": {
            "dedup_window": 30, "repeat_interval": 20,
            "ntfy": {"url": nt.topic_url(), "emergency": True, **FAST}}})
        now = [1000.0]

        async def body(d: Dispatcher) -> None:
            async def tick(seconds: float) -> None:
                now[0] += seconds
                d.tick()
                await until(lambda: d.idle())  # whatever the tick queued has been sent

            for _ in range(12):
                d.publish(n("warning", "exchange slow", key="slow"))
            d.publish(n("critical", "HALT", key="halt"))
            await until(lambda: len(nt.messages) == 2)  # the first of each goes out at once
            await tick(19)  # inside both windows: nothing is due
            assert len(nt.messages) == 2 and d.idle()
            await tick(12)  # the dedup window closed, the first repeat is due
            await tick(20)
            await until(lambda: sum("repeat 2" in m["title"] for m in nt.messages))
            assert d.ack("halt") == ["halt"]
            settled = len(nt.messages)
            for _ in range(5):
                await tick(20)
            assert len(nt.messages) == settled

        run(cfg, {}, body, clock=lambda: now[0])
        titles = [m["title"] for m in nt.messages]
        assert titles.count("[WARNING] exchange slow") == 1
        assert titles.count("[WARNING] exchange slow (x12)") == 1
        assert "[CRITICAL] HALT" in titles
