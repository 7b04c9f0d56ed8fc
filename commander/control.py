"""The control socket: ``ipc://<run-dir>/control.sock`` (0600 in a 0700 dir) and, optionally, the
CURVE TCP endpoint. Both serve the same request through the one dispatcher.

Request: op ``cmd`` with args ``{command, argv: [str], yes: bool, timeout: s, who: str}`` (or the
command name as the op, same args). Over CURVE TCP, ``who`` is ``key:<name>``, the name of the
client's authenticated key in ``control.allowed_keys``; the client's ``who`` is ignored there. Reply: ``{command, data, text}``, or an error reply whose
``kind`` is the ``CommandError`` kind (usage, refused, confirm, no_answer, failed, ...).
Garbage frames never reach this code: ``bus.Responder`` drops and counts them.
"""

from __future__ import annotations

import os
from typing import Any

from commander.errors import UsageError
from commander.registry import Dispatcher, Request
from trader.kernel import bus
from trader.kernel.protocol import COMMANDER, ControlOp
from trader.kernel.wire import Message

MAX_ARGS = 16
MAX_ARG_LEN = 200


def request_from(channel: str, op: str, args: dict[str, Any], msg: Message,
                 peer: str | None = None) -> Request:
    """``peer``: the authenticated identity (CURVE key name); when given it is ``who`` and the
    client's own ``who`` is ignored. Without it (the 0600 ipc socket, where the file mode is the
    authentication) the client's ``who`` is kept as today."""
    command = args.get("command") if op == ControlOp.CMD else op
    argv = args.get("argv", [])
    if not isinstance(command, str) or not command or len(command) > 64:
        raise UsageError("request has no command name")
    if (not isinstance(argv, list) or len(argv) > MAX_ARGS
            or not all(isinstance(a, str) and len(a) <= MAX_ARG_LEN for a in argv)):
        raise UsageError(f"arguments must be at most {MAX_ARGS} strings")
    timeout = args.get("timeout", 5.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool):
        timeout = 5.0
    who = args.get("who")
    if peer is not None:
        who = f"key:{peer[:60]}"
    else:
        who = who[:64] if isinstance(who, str) and who else msg.src[:64]
    return Request(channel=channel, who=who, command=command, argv=tuple(argv),
                   confirmed=args.get("yes") is True,
                   timeout=min(max(float(timeout), 0.5), 120.0))


class ControlServer:
    def __init__(self, dispatcher: Dispatcher, responder: bus.Responder, channel: str) -> None:
        self.dispatcher = dispatcher
        self.responder = responder
        self.channel = channel
        path = responder.endpoint.removeprefix("ipc://")
        if responder.endpoint.startswith("ipc://"):
            os.chmod(path, 0o600)  # the run dir is 0700 already; belt and braces

    async def handle(self, op: str, args: dict[str, Any], msg: Message,
                     peer: str | None = None) -> dict[str, Any]:
        try:
            req = request_from(self.channel, op, args, msg, peer)
        except UsageError as e:
            who = f"key:{peer[:60]}" if peer is not None else msg.src[:64]
            self.dispatcher.ctx.audit(self.channel, who, op[:64], [], f"usage: {e}", False)
            raise
        return (await self.dispatcher.dispatch(req)).wire()

    async def _cmd(self, args: dict[str, Any], msg: Message, peer: str | None = None
                   ) -> dict[str, Any]:
        return await self.handle(ControlOp.CMD, args, msg, peer)

    async def serve(self) -> None:
        # one op, ``cmd``; any other op is taken as a command's name (audited if unknown)
        await self.responder.serve(bus.Dispatcher(COMMANDER, {ControlOp.CMD: self._cmd},
                                                  fallback=self.handle))

    def close(self) -> None:
        self.responder.close()
