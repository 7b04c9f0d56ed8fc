"""The client behind ``flatguard ctl``: one request to the commander, an exit code and a text.

Kept light on purpose (``ctl ping`` should take well under 150 ms): it imports the blocking
request socket and the run paths only -- no ccxt, no prometheus_client, no aiohttp, no asyncio.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import zmq

from trader.kernel import runpaths, sockets
from trader.kernel.syncreq import SyncRequester

OK, FAILED, USAGE, NO_ANSWER = 0, 1, 2, 3


@dataclass
class Outcome:
    code: int
    data: Any = None
    text: str = ""
    kind: str | None = None  # error kind when code != 0

    def as_json(self) -> Any:
        if self.code == OK:
            return self.data
        return {"ok": False, "error": {"kind": self.kind, "message": self.text}}


class _CurveSyncRequester(SyncRequester):
    """A SyncRequester whose DEALER gets CURVE client options before it connects."""

    def __init__(self, endpoint: str, source: str, ctx: zmq.Context[Any], server_key: str,
                 client_key: str) -> None:
        from commander import curve

        sockets._Sequenced.__init__(self, source)
        self.ctx = ctx
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        curve.client_socket_options(self.sock, server_key, client_key)
        self.sock.connect(endpoint)
        import itertools

        self._ids = itertools.count(1)


def _who() -> str:
    return f"{os.environ.get('USER') or 'uid'}:{os.getuid()}"


def call(command: str, argv: list[str] | tuple[str, ...] = (), *, run_dir: str | None = None,
         endpoint: str | None = None, server_key: str | None = None,
         client_key: str | None = None, yes: bool = False, timeout: float = 5.0) -> Outcome:
    if endpoint is None:
        root = runpaths.resolve(run_dir)
        try:
            endpoint = runpaths.RunPaths(root).control
        except runpaths.RunDirError as e:
            return Outcome(USAGE, text=str(e), kind="usage")
        sock_path = endpoint.removeprefix("ipc://")
        if not os.path.exists(sock_path):
            if command == "help":  # the command list needs no stack
                from commander import commands  # noqa: F401  (registers every command)
                from commander.registry import help_text

                return Outcome(OK, text=help_text())
            return Outcome(NO_ANSWER, kind="no_answer", text=(
                f"no flatguard stack is running on {root} (no control socket {sock_path}); "
                f"start one with `flatguard up --run-dir {root}` or pass the right --run-dir"))
    elif endpoint.startswith("tcp://") and not (server_key and client_key):
        return Outcome(USAGE, kind="usage",
                       text="a tcp:// endpoint needs --server-key (the server's public .key) and "
                            "--client-key (your .key_secret)")
    ctx = zmq.Context()
    try:
        if server_key and client_key:
            from commander.curve import CurveError

            try:
                req: SyncRequester = _CurveSyncRequester(endpoint, "ctl", ctx, server_key,
                                                             client_key)
            except CurveError as e:
                return Outcome(USAGE, kind="usage", text=str(e))
        else:
            req = SyncRequester(endpoint, "ctl", ctx)
        args = {"command": command, "argv": list(argv), "yes": yes, "timeout": timeout,
                "who": _who()}
        try:
            result = req.request("cmd", args, timeout=timeout)
        except sockets.RequestTimeout:
            return Outcome(NO_ANSWER, kind="no_answer", text=(
                f"no answer from the commander at {endpoint} within {timeout:g} s "
                "(is the stack up? the commander may be restarting)"))
        except sockets.RequestError as e:
            return Outcome(USAGE if e.kind == "usage" else FAILED, text=e.message, kind=e.kind)
        finally:
            req.close()
    finally:
        ctx.destroy(linger=0)
    if not isinstance(result, dict):
        return Outcome(FAILED, kind="failed", text=f"unexpected reply: {result!r}")
    return Outcome(OK, data=result.get("data"), text=str(result.get("text", "")))
