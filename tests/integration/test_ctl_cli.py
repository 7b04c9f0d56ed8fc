"""`flatguard ctl` through a subprocess against the real commander process: exit codes 0/1/2/3,
options before or after the command, --json, and a light import set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest
import zmq

from tests.fakes.commander_peers import NO_ANSWER, CommanderStack, Error

pytestmark = pytest.mark.integration

STATUS = {"processes": {"trader": {"pid": 4242, "state": "RUNNING", "heartbeat_age_s": 0.1}},
          "halted": False, "halt": {}, "trading_state": "RUNNING", "killpath_ready": True}


@pytest.fixture(scope="module")
def stack() -> Iterator[CommanderStack]:
    s = CommanderStack()
    s.peers.answers["supervisor"]["status"] = STATUS
    try:
        yield s
    finally:
        s.close()


def ctl(*args: str, run_dir: str | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "commander.cli"] + (["--run-dir", run_dir] if run_dir else [])
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_ping_exits_0_with_process_health(stack: CommanderStack) -> None:
    r = ctl("ping", run_dir=stack.dir)
    assert r.returncode == 0, r.stderr
    assert "pong" in r.stdout and "4242" in r.stdout


def test_options_before_or_after_the_command(stack: CommanderStack) -> None:
    for args in (["--json", "--timeout", "10", "info"], ["info", "--json", "--timeout", "10"]):
        r = ctl(*args, run_dir=stack.dir)
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        for key in ("processes", "halted", "trading_state", "positions", "open_orders", "equity",
                    "symbols", "risk", "halt"):
            assert key in data, key
        assert data["processes"]["trader"]["pid"] == 4242


def test_run_dir_from_environment(stack: CommanderStack) -> None:
    r = ctl("roll", env={"FLATGUARD_RUN_DIR": stack.dir})
    assert r.returncode == 0 and "rolled" in r.stdout


def test_exit_1_refused_and_failed(stack: CommanderStack) -> None:
    r = ctl("resume", run_dir=stack.dir)
    assert r.returncode == 1 and "--yes" in r.stderr
    assert "resume" not in stack.peers.ops("supervisor")
    r = ctl("--yes", "resume", run_dir=stack.dir)
    assert r.returncode == 0, r.stderr
    assert "resume" in stack.peers.ops("supervisor")
    stack.peers.answers["trader"]["pause"] = Error("rejected", "halted: nothing to pause")
    r = ctl("pause", "--json", run_dir=stack.dir)
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"]["kind"] == "refused"


def test_exit_1_when_the_acting_process_does_not_answer(stack: CommanderStack) -> None:
    stack.peers.answers["trader"]["stop"] = NO_ANSWER
    r = ctl("stop", "--timeout", "2", run_dir=stack.dir)
    assert r.returncode == 1 and "trader: no answer" in r.stderr


@pytest.mark.parametrize("args", [["frobnicate"], ["ban"], ["audit", "many"], []])
def test_exit_2_usage(stack: CommanderStack, args: list[str]) -> None:
    r = ctl(*args, run_dir=stack.dir)
    assert r.returncode == 2, (r.stdout, r.stderr)
    if args == ["frobnicate"]:
        assert "kill" in r.stderr and "unknown command" in r.stderr
    if args == ["ban"]:
        assert "usage: ban SYMBOL" in r.stderr


def test_exit_3_when_no_stack_runs_on_the_run_dir() -> None:
    d = tempfile.mkdtemp(prefix="fg", dir="/tmp")
    try:
        r = ctl("ping", "--timeout", "20", run_dir=d)
        assert r.returncode == 3
        assert "no flatguard stack is running" in r.stderr
    finally:
        os.rmdir(d)


def test_exit_3_when_the_commander_does_not_answer() -> None:
    d = tempfile.mkdtemp(prefix="fg", dir="/tmp")
    ctx = zmq.Context()
    mute = ctx.socket(zmq.ROUTER)  # a socket that takes requests and never answers (a hung commander)
    mute.bind(f"ipc://{d}/control.sock")
    try:
        r = ctl("ping", "--timeout", "1", run_dir=d)
        assert r.returncode == 3 and "no answer" in r.stderr
    finally:
        ctx.destroy(linger=0)
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


def test_audit_shows_the_last_commands(stack: CommanderStack) -> None:
    ctl("roll", run_dir=stack.dir)
    r = ctl("audit", "3", "--json", run_dir=stack.dir)
    assert r.returncode == 0
    entries = json.loads(r.stdout)["entries"]
    assert len(entries) == 3 and entries[-1]["command"] == "roll"


def test_ctl_imports_no_ccxt_prometheus_or_aiohttp(stack: CommanderStack) -> None:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "commander.cli", "--run-dir",
                        stack.dir, "ping"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    mods = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    for heavy in ("ccxt", "prometheus_client", "aiohttp"):
        assert heavy not in mods, heavy
