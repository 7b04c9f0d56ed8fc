"""The CURVE TCP control endpoint: allowlisted client keys get answers, others get nothing."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from commander.client import call
from commander.curve import CurveError, generate
from tests.fakes.commander_peers import CommanderStack
from trader.kernel import config

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def keys() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="fgk", dir="/tmp"))
    r = subprocess.run([sys.executable, "-c", "from commander.cli import keys; keys()",
                        str(d / "server"), "--name", "server"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    generate(d / "allowed", "alice")
    generate(d / "others", "mallory")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def curve_stack(keys: Path) -> tuple[CommanderStack, str]:
    """A commander serving CURVE TCP on a free loopback port, allowing ``keys/allowed``."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg = config.from_mapping({"control": {
        "tcp": endpoint, "server_key": str(keys / "server" / "server.key_secret"),
        "allowed_keys": str(keys / "allowed")}})
    return CommanderStack(cfg), endpoint


@pytest.fixture(scope="module")
def stack(keys: Path) -> Iterator[tuple[CommanderStack, str]]:
    s, endpoint = curve_stack(keys)
    try:
        yield s, endpoint
    finally:
        s.close()


def test_keys_are_generated_private(keys: Path) -> None:
    sec = keys / "server" / "server.key_secret"
    assert stat.S_IMODE(sec.stat().st_mode) == 0o600
    assert (keys / "server" / "server.key").exists()
    with pytest.raises(CurveError):
        generate(keys / "server", "server")  # never overwrite a key


def test_allowed_key_gets_answers(stack: tuple[CommanderStack, str], keys: Path) -> None:
    s, endpoint = stack
    out = call("ping", endpoint=endpoint, server_key=str(keys / "server" / "server.key"),
               client_key=str(keys / "allowed" / "alice.key_secret"), timeout=20)
    assert out.code == 0 and out.data["pong"]
    rows = s.ctl("audit", "5", "--json")
    assert rows[0] == 0 and '"tcp"' in rows[1]


def test_unknown_key_gets_nothing(stack: tuple[CommanderStack, str], keys: Path) -> None:
    _, endpoint = stack
    out = call("kill", endpoint=endpoint, server_key=str(keys / "server" / "server.key"),
               client_key=str(keys / "others" / "mallory.key_secret"), timeout=1.5)
    assert out.code == 3
    assert "halt" not in stack[0].peers.ops("supervisor")


def test_plain_client_gets_nothing_and_missing_keys_are_usage(
        stack: tuple[CommanderStack, str], keys: Path) -> None:
    _, endpoint = stack
    r = subprocess.run([sys.executable, "-m", "commander.cli", "--endpoint", endpoint, "ping"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--server-key" in r.stderr
    from trader.kernel import bus

    plain = bus.SyncRequester(endpoint, "x")
    try:
        with pytest.raises(bus.RequestTimeout):
            plain.request("cmd", {"command": "ping"}, timeout=1.0)
    finally:
        plain.close()
    assert os.path.exists(keys)
