"""Every request names an op its server handles: each server's dispatch table is exactly its
``Op`` enum, every command the commander runs asks its peers only for ops in their tables, and
the ops still written as string literals anywhere (the supervisor's and the trader's requests to
the connector, the ctl client) exist on the server they go to."""

from __future__ import annotations

import ast
import asyncio
import functools
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from commander import commands  # noqa: F401  (registers every command)
from commander.audit import Audit
from commander.confirm import Confirmations
from commander.context import Context
from commander.control import ControlServer
from commander.registry import REGISTRY, Dispatcher, Request
from notifier.process import Notifier
from supervisor.requests import RequestHandlers
from trader.connector import ops as connector_ops
from trader.engine.commands import TraderCommands
from trader.kernel import bus, config, protocol, runpaths
from trader.kernel.protocol import COMMANDER, CONNECTOR, NOTIFIER, SUPERVISOR, TRADER

ROOT = Path(__file__).resolve().parents[3]


@functools.cache
def tables() -> dict[str, set[str]]:
    """The ops each real server's dispatcher serves (built without sockets or processes)."""
    served: dict[str, set[str]] = {
        CONNECTOR: set(connector_ops.dispatcher(SimpleNamespace()).ops),  # type: ignore[arg-type]
        TRADER: set(TraderCommands(SimpleNamespace()).handle.ops),  # type: ignore[arg-type]
        SUPERVISOR: set(RequestHandlers(SimpleNamespace()).handle.ops),  # type: ignore[arg-type]
        NOTIFIER: set(object.__new__(Notifier).ops().ops),
    }
    seen: list[bus.Dispatcher] = []

    class Capture:
        endpoint = "tcp://x"

        async def serve(self, handler: bus.Dispatcher) -> None:
            seen.append(handler)

    server = object.__new__(ControlServer)
    server.responder = Capture()  # type: ignore[assignment]
    asyncio.run(server.serve())
    served[COMMANDER] = set(seen[0].ops)
    return served


def test_every_server_serves_exactly_its_op_enum() -> None:
    served = tables()
    for server, ops in protocol.OPS.items():
        assert served[server] == {o.value for o in ops}, server


class RecordingPeers:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def ask(self, name: str, op: str, args: dict[str, Any] | None = None,
                  timeout: float = 1.0) -> Any:
        self.asked.append((str(name), str(op)))
        return {"ok": True}

    async def try_ask(self, name: str, op: str, args: dict[str, Any] | None = None,
                      timeout: float = 1.0) -> tuple[Any, str | None]:
        return await self.ask(name, op, args, timeout), None


ARGV = {"ban": ("BTC",), "unban": ("BTC",), "debug_instrument": ("BTC",), "ack": ("k",)}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_command_asks_its_peers_only_for_ops_they_serve(name: str) -> None:
    d = Path(tempfile.mkdtemp(prefix="fg", dir="/tmp"))
    paths = runpaths.prepare(d)
    audit = Audit(paths.journal)
    peers = RecordingPeers()
    ctx = Context(cfg=config.from_mapping({}), paths=paths, peers=peers,  # type: ignore[arg-type]
                  audit_log=audit, confirmations=Confirmations(60.0))
    try:
        asyncio.run(Dispatcher(ctx).dispatch(Request("ctl", "test", name, ARGV.get(name, ()),
                                                     confirmed=True)))
    except Exception as e:  # a command that needs what a unit test lacks (the recorder)
        assert name == "record", f"{name}: {e}"
    finally:
        audit.close()
    served = tables()
    wrong = [f"{server}:{op}" for server, op in peers.asked if op not in served[server]]
    assert not wrong, f"{name} asks for ops nobody serves: {wrong}"


# --- ops still written as literals ------------------------------------------------------------

# method -> how its target server is told: a fixed server, or from the receiver's name
METHODS = {"request", "send_oneway", "ask_connector"}


def _target(call: ast.Call, path: Path) -> str:
    f = call.func
    assert isinstance(f, ast.Attribute)
    if f.attr == "ask_connector":
        return CONNECTOR
    receiver = ast.unparse(f.value)
    if path.parts[-2:] == ("commander", "client.py"):
        return COMMANDER  # ctl -> the control socket
    if "sup" in receiver:
        return SUPERVISOR
    if "conn" in receiver:
        return CONNECTOR
    raise AssertionError(f"{path}:{call.lineno}: cannot tell which server {receiver}."
                         f"{f.attr}(...) goes to: add a rule to this test")


def literal_requests() -> list[tuple[str, str, str]]:
    out = []
    for pkg in ("trader", "supervisor", "notifier", "commander"):
        for path in (ROOT / pkg).rglob("*.py"):
            if "sim" in path.relative_to(ROOT).parts or path.parent.name == "sinks":
                continue  # HTTP clients, not the bus
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in METHODS and node.args
                        and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    out.append((where, _target(node, path), node.args[0].value))
    return out


def test_literal_ops_exist_on_their_server() -> None:
    served = tables()
    found = literal_requests()
    assert any(server == COMMANDER for _, server, _ in found)  # the scan sees ctl's "cmd"
    wrong = [f"{where}: {op!r} is not a {server} op" for where, server, op in found
             if op not in served[server]]
    assert not wrong, "\n".join(wrong)
