"""Strangers' Telegram messages: ignored and audited, at a bounded number of rows per minute."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from commander.strangers import StrangerLimit
from commander.telegram import TelegramChannel
from tests.fakes.commander_peers import CommanderStack
from tests.fakes.telegram import FakeTelegram
from trader.kernel import config
from trader.kernel.journal import Journal

OWNER = 4201
TOKEN = "777:SECRET-token-value"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_limit_per_user_and_total_with_a_summary_per_window() -> None:
    clock = Clock()
    lim = StrangerLimit(per_user=2, total=5, window=60.0, clock=clock)
    assert [lim.allow("tg:1") for _ in range(4)] == [True, True, False, False]
    assert [lim.allow(f"tg:{u}") for u in (2, 3, 4, 5)] == [True, True, True, False]  # total 5
    assert lim.take_summary() is None  # the window is not over
    clock.t += 60.0
    s = lim.take_summary()
    assert s is not None and (s.attempts, s.users) == (3, 2)
    assert lim.take_summary() is None  # once
    assert lim.allow("tg:1")  # a new window


def test_summaries_of_windows_nobody_took_add_up() -> None:
    clock = Clock()
    lim = StrangerLimit(per_user=1, total=10, window=60.0, clock=clock)
    for _ in range(3):
        lim.allow("tg:9")
        lim.allow("tg:9")
        clock.t += 61.0
    lim.allow("tg:9")  # rolls the window: its summary waits for take_summary
    s = lim.take_summary()
    assert s is not None and s.attempts == 3


class _Ctx:
    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def audit(self, *row: Any) -> None:
        self.rows.append(row)


def test_a_flood_costs_a_bounded_number_of_audit_rows() -> None:
    tcfg = config.from_mapping({"telegram": {"allowed_users": [OWNER]}}).telegram
    ctx = _Ctx()
    ch = TelegramChannel(tcfg, dispatcher=None, ctx=ctx, token="t")  # type: ignore[arg-type]
    clock = Clock()
    ch.strangers = StrangerLimit(per_user=3, total=10, clock=clock)

    async def flood() -> None:
        for i in range(1000):
            user = 6000 + i % 50
            await ch.on_message({"text": "/kill", "from": {"id": user}, "chat": {"id": user}})
        await ch.on_callback({"from": {"id": 6000}, "data": "y:abc", "id": "1"})

    asyncio.run(flood())
    assert len(ctx.rows) == 10
    assert all(r[1].startswith("tg:60") and r[4] == "unauthorised: ignored" for r in ctx.rows)
    clock.t += 60.0
    ch.flush_strangers()  # what poll_once does after each poll
    summary = ctx.rows[-1]
    assert summary[1:3] == ("tg:strangers", "suppressed") and summary[3]["attempts"] == 991
    assert "991 more attempts from 50 users" in summary[4] and summary[5] is False


# --- the real commander process against the Bot API stand-in -------------------------------------


@pytest.fixture(scope="module")
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as t:
        yield t


@pytest.fixture(scope="module")
def stack(tg: FakeTelegram) -> Iterator[CommanderStack]:
    cfg = config.from_mapping({
        "telegram": {"enabled": True, "api_url": tg.url, "allowed_users": [OWNER],
                     "chat_id": OWNER, "poll_timeout": 2}})
    s = CommanderStack(cfg, env={"FLATGUARD_TELEGRAM_TOKEN": TOKEN})
    try:
        tg.wait_for(lambda: tg.commands, timeout=30)
        yield s
    finally:
        s.close()


@pytest.mark.integration
def test_a_strangers_flood_is_ignored_and_audited_at_a_bounded_rate(
        stack: CommanderStack, tg: FakeTelegram) -> None:
    sent = len(tg.sent)
    for _ in range(40):
        tg.inject_message("/kill", user_id=6666, chat_id=-100200)
    tg.inject_message("/roll", user_id=OWNER)  # handled after the flood (updates in order)
    tg.wait_for(lambda: any("rolled" in t for t in tg.texts(OWNER)), timeout=20)
    assert "halt" not in stack.peers.ops("supervisor")
    assert [m["chat"]["id"] for m in tg.sent[sent:]] == [OWNER]  # nothing to the stranger
    j = Journal(stack.paths.journal)
    try:
        rows = [r for r in j.recent_audit(200) if r["who"] == "tg:6666"]
    finally:
        j.close()
    assert len(rows) == 5 and all(not r["ok"] and "unauthorised" in r["result"] for r in rows)
