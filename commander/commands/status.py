"""Read-only commands: info, ping, help, audit, roll."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from typing import Any

from commander import render
from commander.context import Context
from commander.errors import UsageError
from commander.registry import REGISTRY, Command, Request, help_text
from trader.kernel import bus
from trader.kernel.protocol import (
    CONNECTOR,
    SUPERVISOR,
    TRADER,
    ConnectorOp,
    SupervisorOp,
    TraderOp,
)

POSITION_KEYS = ("symbol", "side", "contracts", "entry_price", "notional")


def _self_entry(ctx: Context) -> dict[str, Any]:
    return {"pid": os.getpid(), "state": "RUNNING", "heartbeat_age_s": 0.0}


def _halt_from_journal(ctx: Context) -> dict[str, Any]:
    """The durable halt state, for when the supervisor does not answer."""
    h = ctx.audit_log.journal.halt_state()
    return {"halted": h.halted, "halt": {"reason": h.reason, "trigger": h.trigger,
                                         "since": h.since, "verified_flat": h.verified_flat,
                                         "source": "journal"}}


def _position(p: dict[str, Any]) -> dict[str, Any]:
    out = {k: p.get(k) for k in POSITION_KEYS}
    return out | {k: v for k, v in p.items() if k not in out}


class Info(Command):
    name = "info"
    help = "processes, halt state, positions, orders, equity, exposure, risk"

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        t = ctx.peer_timeout(req.timeout)
        (sup, sup_err), (trd, trd_err), (acc, acc_err) = await asyncio.gather(
            ctx.peers.try_ask(SUPERVISOR, SupervisorOp.STATUS, {}, t),
            ctx.peers.try_ask(TRADER, TraderOp.INFO, {}, t),
            ctx.peers.try_ask(CONNECTOR, ConnectorOp.ACCOUNT, {}, t),
        )
        sup, trd, acc = sup or {}, trd or {}, acc or {}
        data: dict[str, Any] = {"processes": dict(sup.get("processes") or {})}
        data["processes"].setdefault("commander", _self_entry(ctx))
        data.update({"halted": sup["halted"], "halt": sup.get("halt") or {}} if "halted" in sup
                    else _halt_from_journal(ctx))
        data["trading_state"] = trd.get("trading_state") or sup.get("trading_state")
        positions = acc.get("positions") if "positions" in acc else trd.get("positions")
        data["positions"] = [_position(p) for p in positions or []]
        data["open_orders"] = list(acc.get("open_orders") if "open_orders" in acc
                                   else trd.get("open_orders") or [])
        for k in ("equity", "balance", "exposure", "leverage", "effective_leverage",
                  "margin_ratio", "confirmed"):
            data[k] = acc.get(k)
        data["risk_state"] = trd.get("risk_state")
        data["symbols"] = trd.get("symbols") or {}
        data["risk"] = trd.get("risk") or {}
        data["strategy"] = trd.get("strategy")
        data["killpath_ready"] = sup.get("killpath_ready")
        data["killswitch"] = sup.get("killswitch")
        data["errors"] = list(sup.get("errors") or []) + list(trd.get("errors") or [])
        data["no_answer"] = []
        for part, err in (("supervisor", sup_err), ("trader", trd_err), ("connector", acc_err)):
            if err == "no answer":
                data["no_answer"].append(part)
            elif err:
                data["errors"].append(err)
        return data

    def render(self, data: dict[str, Any]) -> str:
        return render.info(data)


class Ping(Command):
    name = "ping"
    help = "liveness of the command path and of every process"

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        sup, err = await ctx.peers.try_ask(SUPERVISOR, SupervisorOp.STATUS, {},
                                           ctx.peer_timeout(req.timeout))
        sup = sup or {}
        data: dict[str, Any] = {
            "pong": True,
            "commander": {"pid": os.getpid(), "uptime_s": round(time.time() - ctx.started, 1),
                          "bus": bus.STATS.snapshot()},
            "processes": sup.get("processes") or {"commander": _self_entry(ctx)},
            "trading_state": sup.get("trading_state"),
            "no_answer": ["supervisor"] if err == "no answer" else [],
        }
        data.update({"halted": sup["halted"], "halt": sup.get("halt") or {}} if "halted" in sup
                    else _halt_from_journal(ctx))
        if err and err != "no answer":
            data["errors"] = [err]
        return data

    def render(self, data: dict[str, Any]) -> str:
        return render.ping(data)


class Help(Command):
    name = "help"
    help = "every command with a one-line description"

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        return {"commands": {n: {"usage": c.usage(), "help": c.help, "confirm": c.confirm}
                             for n, c in sorted(REGISTRY.items())}}

    def render(self, data: dict[str, Any]) -> str:
        return help_text()


class AuditLog(Command):
    name = "audit"
    help = "the last N audited commands (default 20)"
    args = ("[N]",)

    def parse(self, ctx: Context, argv: tuple[str, ...]) -> list[Any]:
        super().parse(ctx, argv)
        if not argv:
            return [20]
        try:
            n = int(argv[0])
        except ValueError:
            n = 0
        if not 1 <= n <= 1000:
            raise UsageError(f"usage: {self.usage()}  (N is a number from 1 to 1000)")
        return [n]

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        return {"entries": ctx.audit_log.recent(args[0])}

    def render(self, data: dict[str, Any]) -> str:
        return render.audit(data)


class Roll(Command):
    name = "roll"
    help = "roll a dice (a harmless end-to-end check of the command path)"

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        n = secrets.randbelow(6) + 1
        return {"dice": n, "message": f"rolled {n}"}
