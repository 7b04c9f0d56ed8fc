"""The Telegram channel with the real stack: a local Bot API server (getUpdates long polling,
sendMessage, setMyCommands, answerCallbackQuery, editMessageText) carries both the commands and
the notifications; the simulated exchange shows what the commands did to the account.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.telegram import FakeTelegram
from tests.stack import Sim, Stack, is_flat, positions_of, wait_for

pytestmark = pytest.mark.integration

OWNER = 4242
STRANGER = 666
CONFIRM_TIMEOUT = 4.0


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


def make_stack(sim: Sim, stacks: list[Stack], tg: FakeTelegram) -> Stack:
    cfg = (f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n'
           "[supervisor]\nconnector_grace = 3.0\n[killswitch]\nbackoff = 0.5\n"
           f"[control]\nconfirm_timeout = {CONFIRM_TIMEOUT}\n"
           f'[telegram]\nenabled = true\napi_url = "{tg.url}"\nchat_id = {OWNER}\n'
           f'allowed_users = [{OWNER}]\npoll_timeout = 5\ntoken_env = "FG_TEST_TG_TOKEN"\n')
    st = Stack(cfg, env={"FG_TEST_TG_TOKEN": tg.token})
    stacks.append(st)
    return st.start()


def seed_exposure(sim: Sim) -> None:
    sim.control("position", {"symbol": "BTCUSDT", "amount": "0.01"})
    sim.control("position", {"symbol": "ETHUSDT", "amount": "-0.2"})


def replies(tg: FakeTelegram, chat: int, since: int) -> list[dict[str, Any]]:
    return [m for m in list(tg.sent)[since:] if m["chat"]["id"] == chat]


def keyboard_of(tg: FakeTelegram, since: int) -> dict[str, Any]:
    """The bot's confirmation message (with an inline keyboard) sent after ``since``."""
    msgs = [m for m in list(tg.sent)[since:] if m.get("reply_markup")]
    return msgs[-1] if msgs else {}


def confirm_data(msg: dict[str, Any]) -> str:
    buttons = msg["reply_markup"]["inline_keyboard"][0]
    return next(b["callback_data"] for b in buttons if b["callback_data"].startswith("y:"))


def test_telegram_commands_and_notifications(sim: Sim, stacks: list[Stack],
                                             tg: FakeTelegram) -> None:
    st = make_stack(sim, stacks, tg)
    tg.wait_for(lambda: tg.commands, 30)
    assert {c["command"] for c in tg.commands} >= {"kill", "resume", "ping", "info", "stop"}
    tg.wait_for(lambda: any("flatguard started" in t for t in tg.texts(OWNER)), 30)
    seed_exposure(sim)
    wait_for(lambda: len(st.cmd("info")["positions"]) >= 2, 30, "the seeded positions")

    # a stranger's /kill: nothing happens, no reply, but it is audited
    n = len(tg.sent)
    before = sim.state()["orders_received"]
    tg.inject_message("/kill", user_id=STRANGER)
    tg.inject_message("/ping", user_id=OWNER)  # processed after it: a marker
    tg.wait_for(lambda: [m for m in replies(tg, OWNER, n) if "pong" in m["text"]], 30)
    wait_for(lambda: any(e["who"] == f"tg:{STRANGER}" for e in
                         st.ctl_json("audit", "50")["entries"]), 30, "the stranger audited")
    assert replies(tg, STRANGER, 0) == []
    entry = next(e for e in st.ctl_json("audit", "50")["entries"] if e["who"] == f"tg:{STRANGER}")
    assert entry["command"] == "kill" and entry["ok"] is False and "unauthorised" in entry["result"]
    assert st.status()["halted"] is False
    assert {"BTCUSDT", "ETHUSDT"} <= set(positions_of(sim.state()))
    assert not any(e["method"] == "DELETE" for e in sim.control("orders")[before:]
                   if "allOpenOrders" in e["path"])

    # the owner's /kill: flat on the exchange, halted, and a critical notice in the chat
    n = len(tg.sent)
    tg.inject_message("/kill", user_id=OWNER)
    tg.wait_for(lambda: [m for m in replies(tg, OWNER, n) if "kill switch" in m["text"].lower()],
                30)
    wait_for(lambda: is_flat(sim.state()), 60, "flat after /kill")
    s = wait_for(lambda: (s := st.status())["halted"] and s["halt"]["verified_flat"] and s, 60,
                 "halted")
    assert s["halt"]["trigger"] == "command" and "tg:4242" in s["halt"]["reason"]
    tg.wait_for(lambda: [t for t in tg.texts(OWNER) if t.startswith("[CRITICAL] KILL SWITCH")],
                30)

    # /resume asks for confirmation; a confirmation that comes too late does nothing
    n = len(tg.sent)
    tg.inject_message("/resume", user_id=OWNER)
    msg = tg.wait_for(lambda: keyboard_of(tg, n), 30)
    assert st.status()["halted"] is True  # asking is not doing
    time.sleep(CONFIRM_TIMEOUT + 0.5)  # let the confirmation expire
    before = sim.state()["orders_received"]
    cq = tg.inject_callback(confirm_data(msg), user_id=OWNER, message_id=msg["message_id"])
    tg.wait_for(lambda: any(a["callback_query_id"] == cq for a in tg.answered), 30)
    tg.wait_for(lambda: any("expired" in e.get("text", "") for e in tg.edits), 30)
    assert st.status()["halted"] is True
    assert sim.state()["orders_received"] == before

    # confirmed in time: trading again
    n = len(tg.sent)
    tg.inject_message("/resume", user_id=OWNER)
    msg = tg.wait_for(lambda: keyboard_of(tg, n), 30)
    tg.inject_callback(confirm_data(msg), user_id=OWNER, message_id=msg["message_id"])
    wait_for(lambda: not st.status()["halted"], 30, "resumed")
    wait_for(lambda: sim.state()["orders_received"] > before, 60, "orders after the resume")
    tg.wait_for(lambda: any("resumed" in e.get("text", "").lower() for e in tg.edits), 30)
