"""record, cancel, ack."""

from __future__ import annotations

from typing import Any

from commander.context import Context
from commander.errors import CommandRefused
from commander.registry import Command, Request
from trader.kernel.protocol import NOTIFIER, NotifierOp


class Record(Command):
    name = "record"
    help = "start/stop recording bus events to a file in the run directory"

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        if ctx.recorder is None:
            raise CommandRefused("recording is not available in this process")
        return await ctx.recorder.toggle()


class Cancel(Command):
    name = "cancel"
    help = "cancel your pending confirmation"

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        gone = ctx.confirmations.cancel(req.who)
        names = [p.command for p in gone]
        return {"cancelled": names,
                "message": f"cancelled: {', '.join(names)}" if names
                else "nothing to cancel"}


class Ack(Command):
    name = "ack"
    help = "acknowledge emergency alerts (all, or KEY) so their repeats stop"
    args = ("[KEY]",)

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        res = await ctx.peers.ask(NOTIFIER, NotifierOp.ACK, {"key": args[0]} if args else {},
                                  ctx.peer_timeout(req.timeout))
        data = dict(res) if isinstance(res, dict) else {"result": res}
        data.setdefault("message", "acknowledged")
        return data
