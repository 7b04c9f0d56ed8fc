"""Unit tests of the command registry, dispatcher, confirmations, request parsing and rendering."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest

from commander import (
    commands,  # noqa: F401
    render,
)
from commander.audit import Audit
from commander.confirm import Confirmations
from commander.context import Context
from commander.control import request_from
from commander.errors import (
    CommandError,
    CommandRefused,
    ConfirmationExpired,
    NeedsConfirmation,
    NoAnswer,
    UsageError,
)
from commander.registry import REGISTRY, Dispatcher, Request, help_text
from trader.kernel import config, runpaths
from trader.kernel.metrics import METRICS
from trader.kernel.wire import Message

ALL = {"info", "ping", "kill", "stop", "resume", "abort", "pause", "unpause", "record", "ban",
       "unban", "sync", "debug", "debug_instrument", "cancel", "ack", "roll", "help", "audit"}


class StubPeers:
    """Answers like the real processes would; records what was asked."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str, dict[str, Any]]] = []

    async def ask(self, name: str, op: str, args: dict[str, Any] | None = None,
                  timeout: float = 1.0) -> Any:
        self.asked.append((name, op, args or {}))
        ans = self.answers.get((name, op), {"ok": True})
        if ans is None:
            raise NoAnswer(name, op)
        if isinstance(ans, Exception):
            raise ans
        return ans

    async def try_ask(self, name: str, op: str, args: dict[str, Any] | None = None,
                      timeout: float = 1.0) -> tuple[Any, str | None]:
        try:
            return await self.ask(name, op, args, timeout), None
        except NoAnswer:
            return None, "no answer"


@pytest.fixture
def ctx() -> Any:
    d = Path(tempfile.mkdtemp(prefix="fg", dir="/tmp"))
    paths = runpaths.prepare(d)
    audit = Audit(paths.journal)
    c = Context(cfg=config.from_mapping({}), paths=paths, peers=StubPeers({}),  # type: ignore[arg-type]
                audit_log=audit, confirmations=Confirmations(60.0))
    yield c
    audit.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_every_command_is_registered_and_risk_adding_ones_need_confirmation() -> None:
    assert set(REGISTRY) == ALL
    assert {n for n, c in REGISTRY.items() if c.confirm} == {"resume", "unpause", "unban", "abort"}
    assert all(c.help for c in REGISTRY.values())
    text = help_text()
    for name in ALL:
        assert name in text


def test_unknown_command_lists_the_commands(ctx: Any) -> None:
    with pytest.raises(UsageError) as e:
        run(Dispatcher(ctx).dispatch(Request("ctl", "me", "explode")))
    assert "kill" in str(e.value) and "unknown command" in str(e.value)


@pytest.mark.parametrize("command,argv", [("ban", ()), ("ban", ("a", "b")), ("kill", ("now",)),
                                          ("audit", ("x",)), ("audit", ("0",)),
                                          ("debug_instrument", ())])
def test_wrong_arguments_give_that_commands_usage(ctx: Any, command: str, argv: tuple[str, ...]) -> None:
    with pytest.raises(UsageError) as e:
        run(Dispatcher(ctx).dispatch(Request("ctl", "me", command, argv)))
    assert f"usage: {command}" in str(e.value)


def test_unknown_symbol_names_the_traded_ones(ctx: Any) -> None:
    with pytest.raises(UsageError) as e:
        run(Dispatcher(ctx).dispatch(Request("ctl", "me", "ban", ("DOGE",))))
    assert "BTC/USDT:USDT" in str(e.value)


@pytest.mark.parametrize("arg", ["BTC", "btc", "btcusdt", "BTC/USDT:USDT"])
def test_symbol_aliases(ctx: Any, arg: str) -> None:
    run(Dispatcher(ctx).dispatch(Request("ctl", "me", "ban", (arg,))))
    assert ctx.peers.asked[-1] == ("trader", "ban", {"symbol": "BTC/USDT:USDT"})


@pytest.mark.parametrize("command,argv", [("resume", ()), ("unpause", ()), ("abort", ()),
                                          ("unban", ("ETH",))])
def test_risk_adding_commands_refused_without_confirmation(ctx: Any, command: str,
                                                           argv: tuple[str, ...]) -> None:
    with pytest.raises(NeedsConfirmation) as e:
        run(Dispatcher(ctx).dispatch(Request("ctl", "me", command, argv)))
    assert "--yes" in str(e.value)
    assert ctx.peers.asked == []  # nothing was sent anywhere
    run(Dispatcher(ctx).dispatch(Request("ctl", "me", command, argv, confirmed=True)))
    assert ctx.peers.asked


def test_routing_of_each_command(ctx: Any) -> None:
    d = Dispatcher(ctx)
    expect = {"kill": ("supervisor", "halt"), "stop": ("trader", "stop"),
              "resume": ("supervisor", "resume"), "abort": ("supervisor", "abort"),
              "pause": ("trader", "pause"), "unpause": ("trader", "unpause"),
              "sync": ("connector", "sync"), "debug": ("trader", "debug"), "ack": ("notifier", "ack")}
    for cmd, target in expect.items():
        run(d.dispatch(Request("ctl", "me", cmd, confirmed=True)))
        assert ctx.peers.asked[-1][:2] == target, cmd
    assert ctx.peers.asked[0][2]["trigger"] == "command"
    assert ctx.peers.asked[0][2]["source"] == "commander"


def test_info_reports_what_it_knows_when_a_part_does_not_answer(ctx: Any) -> None:
    ctx.peers.answers.update({
        ("supervisor", "status"): {"processes": {"trader": {"pid": 9, "state": "HALTED",
                                                           "heartbeat_age_s": None}},
                                   "halted": True, "halt": {"reason": "kill", "trigger": "command",
                                                            "verified_flat": True}},
        ("trader", "info"): None,
        ("connector", "account"): {"equity": 1000.0, "positions": [
            {"symbol": "BTC/USDT:USDT", "side": "long", "contracts": 0.01, "entry_price": 50000.0,
             "notional": 500.0}], "open_orders": [], "exposure": 500.0, "leverage": 0.5}})
    reply = run(Dispatcher(ctx).dispatch(Request("ctl", "me", "info")))
    d = reply.data
    assert d["halted"] is True and d["no_answer"] == ["trader"] and d["equity"] == 1000.0
    assert d["positions"][0]["symbol"] == "BTC/USDT:USDT" and "commander" in d["processes"]
    assert "trader: no answer" in reply.text and "HALTED" in reply.text


def test_ping_without_supervisor_falls_back_to_the_journal(ctx: Any) -> None:
    ctx.peers.answers[("supervisor", "status")] = None
    reply = run(Dispatcher(ctx).dispatch(Request("ctl", "me", "ping")))
    assert reply.data["pong"] and reply.data["halted"] is False
    assert reply.data["no_answer"] == ["supervisor"]


def test_every_attempt_is_audited_and_counted(ctx: Any) -> None:
    d = Dispatcher(ctx)
    before = dict(METRICS._values)
    run(d.dispatch(Request("ctl", "alice", "roll")))
    for req in (Request("ctl", "alice", "nope"), Request("ctl", "alice", "resume")):
        with pytest.raises(CommandError):
            run(d.dispatch(req))
    ctx.peers.answers[("trader", "stop")] = None
    with pytest.raises(NoAnswer):
        run(d.dispatch(Request("ctl", "alice", "stop")))
    rows = ctx.audit_log.recent(10)
    assert [(r["command"], r["ok"]) for r in rows] == [
        ("roll", 1), ("nope", 0), ("resume", 0), ("stop", 0)]
    assert rows[2]["result"].startswith("confirm")
    key = ("flatguard_commands_total", (("channel", "ctl"), ("command", "unknown"),
                                        ("result", "usage")))
    assert METRICS._values[key] == before.get(key, 0) + 1


def test_a_handler_bug_becomes_a_failed_reply(ctx: Any) -> None:
    ctx.peers.answers[("trader", "pause")] = ZeroDivisionError("boom")
    with pytest.raises(CommandError) as e:
        run(Dispatcher(ctx).dispatch(Request("ctl", "me", "pause")))
    assert e.value.kind == "failed" and "internal error" in str(e.value)


def test_confirmations_expire_belong_to_their_owner_and_cancel() -> None:
    now = [100.0]
    c = Confirmations(60.0, clock=lambda: now[0])
    p = c.create("tg:1", "resume", ())
    with pytest.raises(CommandRefused):
        c.take(p.token, "tg:2")
    assert c.take(p.token, "tg:1").command == "resume"
    with pytest.raises(ConfirmationExpired):
        c.take(p.token, "tg:1")  # used once only
    p = c.create("tg:1", "unpause", ())
    now[0] += 61
    with pytest.raises(ConfirmationExpired) as e:
        c.take(p.token, "tg:1")
    assert "nothing done" in str(e.value)
    c.create("tg:1", "unban", ("BTC",))
    assert [x.command for x in c.cancel("tg:1")] == ["unban"] and c.pending() == []
    assert len(c.create("tg:1", "abort", ()).token.encode()) + 2 <= 64  # Telegram callback_data


def _msg() -> Message:
    return Message("cmd", "ctl", 1, 0.0, {})


def test_request_parsing_rejects_bad_shapes() -> None:
    r = request_from("ctl", "cmd", {"command": "ban", "argv": ["BTC"], "yes": True,
                                    "timeout": 2, "who": "bob"}, _msg())
    assert (r.command, r.argv, r.confirmed, r.timeout, r.who) == ("ban", ("BTC",), True, 2.0, "bob")
    assert request_from("ctl", "ping", {}, _msg()).command == "ping"
    assert request_from("ctl", "cmd", {"command": "x", "yes": "true"}, _msg()).confirmed is False
    for bad in ({"command": 3}, {"command": "ban", "argv": "BTC"}, {"command": "ban", "argv": [1]},
                {"command": "ban", "argv": ["x"] * 100}, {}):
        with pytest.raises(UsageError):
            request_from("ctl", "cmd", bad, _msg())


def test_render_is_narrow_and_handles_missing_data() -> None:
    text = render.info({"processes": {"trader": {"pid": 12345, "state": "RUNNING",
                                                 "heartbeat_age_s": 0.2}}})
    assert "12345" in text and "positions: none" in text
    assert max(len(line) for line in text.splitlines()) <= 60
    assert render.generic("x", {"message": "done", "left_open": {"positions": 2}}).startswith("done")
    assert render.audit({"entries": []}) == "no commands yet"


def test_info_says_what_the_kill_switch_is_doing() -> None:
    base = {"halted": True, "halt": {"reason": "kill", "trigger": "command"}, "processes": {}}
    assert "kill switch" not in render.info(base)
    waiting = render.info({**base, "killswitch": {"running": True, "rounds": 1,
                                                  "inflight_wait_s": 4.2}})
    assert "flat, waiting 4.2 s for orders in flight" in waiting
    banned = render.info({**base, "killswitch": {"running": True, "rounds": 3, "banned_s": 95}})
    assert "banned by the exchange for 95 s" in banned and "flattening (round 3)" in banned
    assert "watching" in render.info({**base, "killswitch": {"watching": True}})
