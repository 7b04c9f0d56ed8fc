"""Commands served by the trader (pause, unpause, ban, unban, debug, debug_instrument) and the
connector (sync)."""

from __future__ import annotations

from typing import Any

from commander.context import Context
from commander.registry import Command, Request
from trader.kernel.protocol import (
    CONNECTOR,
    SUPERVISOR,
    TRADER,
    ConnectorOp,
    SupervisorOp,
    TraderOp,
)


class _TraderOp(Command):
    """A command that is the trader's op of the same name."""

    done = ""

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        res = await ctx.peers.ask(TRADER, TraderOp(self.name), {},
                                  ctx.peer_timeout(req.timeout))
        data = dict(res) if isinstance(res, dict) else {"result": res}
        if self.done:
            data.setdefault("message", self.done)
        return data


class _SymbolOp(Command):
    args = ("SYMBOL",)
    done = ""

    def parse(self, ctx: Context, argv: tuple[str, ...]) -> list[Any]:
        super().parse(ctx, argv)
        return [ctx.symbol(argv[0])]

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        res = await ctx.peers.ask(TRADER, TraderOp(self.name), {"symbol": args[0]},
                                  ctx.peer_timeout(req.timeout))
        data = dict(res) if isinstance(res, dict) else {"result": res}
        if self.done:
            data.setdefault("message", self.done.format(symbol=args[0]))
        return data


class Pause(_TraderOp):
    name = "pause"
    help = "cancel every open order and place no new ones; positions are kept"
    done = "paused: open orders cancelled, no new orders"


async def _risk_gate(ctx: Context, req: Request, command: str) -> None:
    """Risk-increasing commands are refused while a stop or a flatten runs (the supervisor
    decides; no answer from it is a refusal too: fail closed)."""
    await ctx.peers.ask(SUPERVISOR, SupervisorOp.RISK_GATE, {"command": command},
                        ctx.peer_timeout(req.timeout))


class Unpause(_TraderOp):
    name = "unpause"
    help = "place orders again after pause"
    confirm = True
    done = "unpaused: trading again"

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        await _risk_gate(ctx, req, self.name)
        return await super().run(ctx, req, *args)


class Debug(_TraderOp):
    name = "debug"
    help = "internal state of the engine"


class Ban(_SymbolOp):
    name = "ban"
    help = "no new risk on SYMBOL, its orders cancelled; reduce-only allowed"
    done = "banned {symbol}: orders cancelled, reduce-only"


class Unban(_SymbolOp):
    name = "unban"
    help = "allow new risk on SYMBOL again"
    confirm = True
    done = "unbanned {symbol}"

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        await _risk_gate(ctx, req, self.name)
        return await super().run(ctx, req, *args)


class DebugInstrument(_SymbolOp):
    name = "debug_instrument"
    help = "internal state of one instrument"


class Sync(Command):
    name = "sync"
    help = "reconcile with the exchange now and report differences"

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        res = await ctx.peers.ask(CONNECTOR, ConnectorOp.SYNC, {}, ctx.peer_timeout(req.timeout))
        data = dict(res) if isinstance(res, dict) else {"result": res}
        diffs = data.get("differences") or []
        data.setdefault("message", f"synced: {len(diffs)} difference(s)" if diffs
                        else "synced: no differences")
        return data
