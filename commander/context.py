"""What command handlers may use: the config, the peers on the bus, the journal, the recorder.

Handlers reach other processes only through ``Peers`` (DEALER requests with timeouts), never by
importing their state. A peer that does not answer gets its socket replaced: a request queued
for a dead peer must not be delivered later to its successor (an old ``unpause`` arriving after
a restart would add risk nobody asked for now).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import zmq.asyncio

from commander.audit import Audit
from commander.confirm import Confirmations
from commander.errors import CommandError, NoAnswer, UsageError
from trader.kernel import bus, config, runpaths

log = logging.getLogger("flatguard")

PEER_TIMEOUT = 3.0  # s, upper bound for one request to a peer


class Peers:
    def __init__(self, ctx: zmq.asyncio.Context, paths: runpaths.RunPaths) -> None:
        self._ctx = ctx
        self.endpoints = {"supervisor": paths.supervisor, "trader": paths.trader,
                          "connector": paths.connector, "notifier": paths.notifier}
        self._reqs: dict[str, bus.Requester] = {}

    def _req(self, name: str) -> bus.Requester:
        r = self._reqs.get(name)
        if r is None:
            r = self._reqs[name] = bus.Requester(self._ctx, self.endpoints[name], "commander")
        return r

    async def ask(self, name: str, op: str, args: dict[str, Any] | None = None,
                  timeout: float = PEER_TIMEOUT) -> Any:
        """The peer's result; ``NoAnswer`` on timeout; ``CommandError`` on its error reply."""
        op = str(op)  # an Op enum member prints in errors as its plain value
        try:
            # the outer wait_for also bounds a send that cannot complete
            return await asyncio.wait_for(self._req(name).request(op, args or {}, timeout),
                                          timeout + 0.2)
        except (TimeoutError, bus.RequestTimeout):
            self._reset(name)
            raise NoAnswer(name, op) from None
        except bus.RequestError as e:
            refused = e.kind in ("rejected", "refused", "usage")
            raise CommandError(f"{name} refused {op}: {e.message}",
                               kind="refused" if refused else None) from None

    async def try_ask(self, name: str, op: str, args: dict[str, Any] | None = None,
                      timeout: float = PEER_TIMEOUT) -> tuple[Any, str | None]:
        """(result, None), or (None, what went wrong) -- for commands that report what they can."""
        try:
            return await self.ask(name, op, args, timeout), None
        except NoAnswer:
            return None, "no answer"
        except CommandError as e:
            return None, str(e)

    def _reset(self, name: str) -> None:
        r = self._reqs.pop(name, None)
        if r is not None:
            r.close()

    def close(self) -> None:
        for name in list(self._reqs):
            self._reset(name)


@dataclass
class Context:
    cfg: config.Config
    paths: runpaths.RunPaths
    peers: Peers
    audit_log: Audit
    confirmations: Confirmations
    recorder: Any = None  # commander.recorder.Recorder; None in unit tests
    started: float = field(default_factory=time.time)
    pid: int = 0

    def audit(self, channel: str, who: str, command: str, args: Any, result: str, ok: bool) -> None:
        self.audit_log.record(channel, who, command, args, result, ok)

    def symbol(self, arg: str) -> str:
        """Resolve ``BTC``, ``btcusdt`` or ``BTC/USDT:USDT`` to a configured symbol."""
        syms = self.cfg.exchange.symbols
        norm = arg.upper()
        for s in syms:
            base = s.split("/")[0]
            flat = s.split(":")[0].replace("/", "")
            if norm in (s.upper(), base, flat):
                return s
        raise UsageError(f"unknown symbol {arg!r}; traded symbols: {', '.join(syms)}")

    def peer_timeout(self, req_timeout: float) -> float:
        """Leave the client time to receive our reply before its own deadline."""
        return max(0.3, min(PEER_TIMEOUT, req_timeout - 1.0))
