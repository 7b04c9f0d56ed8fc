"""Command registry and the one dispatcher.

Each command is one small class (``name``, ``help``, ``args``, ``confirm``, ``run``) registered
automatically by subclassing ``Command`` (circus's ``commands/base.py`` style). Every channel
(control socket, CURVE TCP, Telegram) goes through ``Dispatcher.dispatch``, which looks the command
up, parses its arguments, enforces confirmation, runs it, renders it, audits the attempt and
counts it -- so the rules hold the same way whichever channel a command came in on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from commander import render
from commander.errors import CommandError, NeedsConfirmation, UsageError
from trader.kernel.metrics import METRICS

if TYPE_CHECKING:
    from commander.context import Context

log = logging.getLogger("flatguard")

REGISTRY: dict[str, type[Command]] = {}


@dataclass(frozen=True)
class Request:
    channel: str  # "ctl", "tcp", "telegram"
    who: str  # "uid:1000", "key:<public key>", "tg:123456"
    command: str
    argv: tuple[str, ...] = ()
    confirmed: bool = False
    timeout: float = 5.0  # the client's own deadline; peers are asked within it


@dataclass
class Reply:
    command: str
    data: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    def wire(self) -> dict[str, Any]:
        return {"command": self.command, "data": self.data, "text": self.text}


class Command:
    """One control command. Subclasses set ``name`` and override ``run`` (and maybe ``parse``)."""

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    args: ClassVar[tuple[str, ...]] = ()  # "SYMBOL" is required, "[N]" optional
    confirm: ClassVar[bool] = False  # adds risk: needs --yes / a second step on the phone

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.__dict__.get("name"):
            assert cls.name not in REGISTRY, f"command {cls.name} registered twice"
            REGISTRY[cls.name] = cls

    @classmethod
    def usage(cls) -> str:
        return " ".join((cls.name, *cls.args))

    def parse(self, ctx: Context, argv: tuple[str, ...]) -> list[Any]:
        """Check the count of positional arguments; subclasses convert and validate values."""
        required = [a for a in self.args if not a.startswith("[")]
        if not len(required) <= len(argv) <= len(self.args):
            raise UsageError(f"usage: {self.usage()}  ({self.help})")
        return list(argv)

    async def run(self, ctx: Context, req: Request, *args: Any) -> dict[str, Any]:
        raise NotImplementedError

    def render(self, data: dict[str, Any]) -> str:
        return render.generic(self.name, data)


def help_text() -> str:
    width = max(len(c.usage()) for c in REGISTRY.values())
    lines = [f"{c.usage():<{width}}  {c.help}{'  (confirm)' if c.confirm else ''}"
             for c in sorted(REGISTRY.values(), key=lambda c: c.name)]
    return "\n".join(lines)


def lookup(name: str) -> Command:
    cls = REGISTRY.get(name.lower())
    if cls is None:
        raise UsageError(f"unknown command {name!r}; commands:\n{help_text()}")
    return cls()


class Dispatcher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def dispatch(self, req: Request) -> Reply:
        """Run one request; raise ``CommandError`` (already audited) when it did not happen."""
        label = req.command if req.command.lower() in REGISTRY else "unknown"
        try:
            cmd = lookup(req.command)
            args = cmd.parse(self.ctx, req.argv)
            if cmd.confirm and not req.confirmed:
                raise NeedsConfirmation(
                    f"{cmd.name} adds risk and needs confirmation"
                    + ("" if req.channel == "telegram" else ": add --yes to confirm")
                )
            data = await cmd.run(self.ctx, req, *args)
            reply = Reply(cmd.name, data, cmd.render(data))
        except CommandError as e:
            self.record(req, label, e.kind, str(e), ok=False)
            raise
        except Exception as e:  # a handler bug: reply, log, keep serving
            log.exception("event=command_bug command=%s", req.command)
            self.record(req, label, "failed", f"internal error: {type(e).__name__}", ok=False)
            raise CommandError(f"{req.command} failed: internal error {type(e).__name__}: {e}") from e
        self.record(req, label, "ok", reply.text.split("\n", 1)[0], ok=True)
        return reply

    def record(self, req: Request, label: str, result: str, detail: str, ok: bool) -> None:
        METRICS.inc("flatguard_commands_total", channel=req.channel, command=label, result=result)
        self.ctx.audit(req.channel, req.who, req.command, list(req.argv),
                       f"{result}: {detail}"[:300], ok)
