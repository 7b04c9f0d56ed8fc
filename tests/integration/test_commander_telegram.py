"""The Telegram channel of the real commander process against the local Bot API stand-in."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.fakes.commander_peers import CommanderStack
from tests.fakes.telegram import FakeTelegram
from trader.kernel import config
from trader.kernel.journal import Journal

pytestmark = pytest.mark.integration

OWNER, STRANGER = 4201, 6666
TOKEN = "777:SECRET-token-value"
CONFIRM_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as t:
        yield t


@pytest.fixture(scope="module")
def stack(tg: FakeTelegram) -> Iterator[CommanderStack]:
    cfg = config.from_mapping({
        "telegram": {"enabled": True, "api_url": tg.url, "allowed_users": [OWNER],
                     "chat_id": OWNER, "poll_timeout": 2},
        "control": {"confirm_timeout": CONFIRM_TIMEOUT}})
    s = CommanderStack(cfg, env={"FLATGUARD_TELEGRAM_TOKEN": TOKEN})
    try:
        tg.wait_for(lambda: tg.commands, timeout=30)
        yield s
    finally:
        s.close()


def audit(stack: CommanderStack) -> list[dict]:
    j = Journal(stack.paths.journal)
    try:
        return j.recent_audit(100)
    finally:
        j.close()


def test_commands_are_registered(stack: CommanderStack, tg: FakeTelegram) -> None:
    names = {c["command"] for c in tg.commands}
    assert {"kill", "info", "resume", "debug_instrument", "help"} <= names


def test_allowed_users_kill_reaches_the_supervisor(stack: CommanderStack, tg: FakeTelegram) -> None:
    tg.inject_message("/kill", user_id=OWNER)
    stack.peers.wait_for(lambda: "halt" in stack.peers.ops("supervisor"))
    tg.wait_for(lambda: any("kill switch started" in t for t in tg.texts(OWNER)), timeout=20)
    halt = next(g for g in stack.peers.got if g.op == "halt")
    assert halt.args["trigger"] == "command" and f"tg:{OWNER}" in halt.args["reason"]


def test_a_strangers_kill_does_nothing_and_is_audited(stack: CommanderStack,
                                                       tg: FakeTelegram) -> None:
    halts = stack.peers.ops("supervisor").count("halt")
    sent = len(tg.sent)
    tg.inject_message("/kill", user_id=STRANGER, chat_id=-100200)  # in a group the owner is in
    stack.peers.wait_for(lambda: any(r["who"] == f"tg:{STRANGER}" for r in audit(stack)))
    tg.inject_message("/roll", user_id=OWNER)  # a later update is handled: the first one is done
    tg.wait_for(lambda: any("rolled" in t for t in tg.texts(OWNER)), timeout=20)
    assert stack.peers.ops("supervisor").count("halt") == halts
    assert [m["chat"]["id"] for m in tg.sent[sent:]] == [OWNER]  # nothing to the stranger
    row = next(r for r in audit(stack) if r["who"] == f"tg:{STRANGER}")
    assert row["command"] == "kill" and not row["ok"] and "unauthorised" in row["result"]


def _keyboard_message(tg: FakeTelegram, command: str) -> dict:
    def find() -> dict | None:
        for m in reversed(tg.sent):
            kb = (m.get("reply_markup") or {}).get("inline_keyboard")
            if kb and command in m["text"]:
                return m
        return None

    tg.wait_for(lambda: find() is not None, timeout=20)
    return find()  # type: ignore[return-value]


def test_confirmation_runs_a_risk_adding_command(stack: CommanderStack, tg: FakeTelegram) -> None:
    tg.inject_message("/unpause", user_id=OWNER)
    msg = _keyboard_message(tg, "unpause")
    assert "unpause" not in stack.peers.ops("trader")
    yes = msg["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    qid = tg.inject_callback(yes, user_id=OWNER, message_id=msg["message_id"])
    stack.peers.wait_for(lambda: "unpause" in stack.peers.ops("trader"))
    tg.wait_for(lambda: any(a["callback_query_id"] == qid for a in tg.answered), timeout=20)


def test_an_expired_confirmation_does_nothing(stack: CommanderStack, tg: FakeTelegram) -> None:
    tg.inject_message("/unban BTC", user_id=OWNER)
    msg = _keyboard_message(tg, "unban")
    time.sleep(CONFIRM_TIMEOUT + 0.5)  # expiry is the behaviour under test, not a race
    yes = msg["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    tg.inject_callback(yes, user_id=OWNER, message_id=msg["message_id"])
    tg.wait_for(lambda: any("expired" in str(e.get("text")) for e in tg.edits), timeout=20)
    assert "unban" not in stack.peers.ops("trader")
    assert any(r["command"] == "confirm" and "expired" in r["result"] for r in audit(stack))


def test_a_stranger_cannot_press_the_owners_button(stack: CommanderStack, tg: FakeTelegram) -> None:
    tg.inject_message("/resume", user_id=OWNER)
    msg = _keyboard_message(tg, "resume")
    yes = msg["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    tg.inject_callback(yes, user_id=STRANGER, message_id=msg["message_id"])
    stack.peers.wait_for(lambda: any(r["who"] == f"tg:{STRANGER}" and r["command"] == "confirm"
                                     for r in audit(stack)))
    assert "resume" not in stack.peers.ops("supervisor")


def test_command_for_another_bot_is_ignored_and_token_never_logged(
        stack: CommanderStack, tg: FakeTelegram) -> None:
    before = stack.peers.ops("supervisor").count("halt")
    tg.inject_message("/kill@some_other_bot", user_id=OWNER)
    tg.inject_message("/ping@flatguard_test_bot", user_id=OWNER)
    tg.wait_for(lambda: any("pong" in t for t in tg.texts(OWNER)), timeout=20)
    assert stack.peers.ops("supervisor").count("halt") == before
    assert TOKEN not in stack.log.read_text()
