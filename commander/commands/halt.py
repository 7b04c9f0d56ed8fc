"""Commands that go to the supervisor's kill switch, or end trading: kill, stop, resume, abort."""

from __future__ import annotations

from typing import Any

from commander.context import Context
from commander.registry import Command, Request
from trader.kernel.payloads import Halt
from trader.kernel.protocol import COMMANDER, SUPERVISOR, TRADER, SupervisorOp, TraderOp


def _with_message(result: Any, message: str) -> dict[str, Any]:
    data = dict(result) if isinstance(result, dict) else {"result": result}
    data.setdefault("message", message)
    return data


class Kill(Command):
    name = "kill"
    help = "market exit of every position through the kill switch; trading halts"

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        reason = f"kill command from {req.who} via {req.channel}"
        res = await ctx.peers.ask(SUPERVISOR, SupervisorOp.HALT,
                                  Halt("command", reason, COMMANDER).to_wire(),
                                  ctx.peer_timeout(req.timeout))
        return _with_message(res, "kill switch started: cancelling orders, closing positions")


class Stop(Command):
    name = "stop"
    help = "limit exit: no new risk, reduce-only limit orders, market after stop_timeout; halts"

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        res = await ctx.peers.ask(TRADER, TraderOp.STOP, {}, ctx.peer_timeout(req.timeout))
        return _with_message(res, "limit exit started; market exit after "
                                  f"{ctx.cfg.control.stop_timeout:g} s if not flat")


class Resume(Command):
    name = "resume"
    help = "clear HALTED and start trading again"
    confirm = True

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        res = await ctx.peers.ask(SUPERVISOR, SupervisorOp.RESUME, {}, ctx.peer_timeout(req.timeout))
        return _with_message(res, "resumed: HALTED cleared")


class Abort(Command):
    name = "abort"
    help = "stop the trader at once WITHOUT exiting positions"
    confirm = True

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        res = await ctx.peers.ask(SUPERVISOR, SupervisorOp.ABORT, {}, ctx.peer_timeout(req.timeout))
        return _with_message(res, "aborted: trader stopped, positions and orders left as they are")
