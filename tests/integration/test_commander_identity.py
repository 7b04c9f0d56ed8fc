"""Who is asking: over CURVE TCP the authenticated key's name, never a claim; a run directory that
is not ours (another owner, or writable by others) is refused."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from commander.client import _CurveSyncRequester, call
from commander.control import request_from
from commander.curve import generate, key_names, load_public
from tests.fakes.commander_peers import CommanderStack
from tests.integration.test_commander_curve import curve_stack
from trader.kernel import runpaths
from trader.kernel.journal import Journal
from trader.kernel.wire import Message

# --- request parsing (in-process) ------------------------------------------------------------------

MSG = Message("cmd", "ctl", 1, 0.0, {})


def test_an_authenticated_peer_is_who_whatever_the_client_claims() -> None:
    req = request_from("tcp", "cmd", {"command": "kill", "who": "root:0"}, MSG, peer="alice")
    assert req.who == "key:alice"
    req = request_from("tcp", "cmd", {"command": "kill"}, MSG, peer="alice")
    assert req.who == "key:alice"


def test_ipc_keeps_the_clients_who() -> None:
    assert request_from("ctl", "cmd", {"command": "ping", "who": "me:1000"}, MSG).who == "me:1000"
    assert request_from("ctl", "cmd", {"command": "ping"}, MSG).who == "ctl"


def test_key_names_come_from_the_allowlist_files(tmp_path: Path) -> None:
    pub, _ = generate(tmp_path, "alice")
    generate(tmp_path, "bob")
    names = key_names(tmp_path)
    assert names[load_public(pub)] == "alice" and sorted(names.values()) == ["alice", "bob"]


# --- the real commander over CURVE TCP -------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="fgk", dir="/tmp"))
    generate(d / "server", "server")
    generate(d / "allowed", "alice")
    generate(d / "allowed", "bob")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(keys: Path) -> Iterator[tuple[CommanderStack, str]]:
    s, endpoint = curve_stack(keys)
    try:
        yield s, endpoint
    finally:
        s.close()


def _audit(s: CommanderStack) -> list[dict]:
    j = Journal(s.paths.journal)
    try:
        return j.recent_audit(50)
    finally:
        j.close()


@pytest.mark.integration
def test_tcp_who_is_the_key_name_not_the_claim(stack: tuple[CommanderStack, str],
                                               keys: Path) -> None:
    s, endpoint = stack
    ctx = zmq.Context()
    req = _CurveSyncRequester(endpoint, "ctl", ctx, str(keys / "server" / "server.key"),
                              str(keys / "allowed" / "alice.key_secret"))
    try:  # alice claims to be bob (and root)
        req.request("cmd", {"command": "kill", "who": "bob", "yes": True}, timeout=20)
    finally:
        req.close()
        ctx.destroy(linger=0)
    halt = next(g for g in s.peers.got if g.op == "halt")
    assert "key:alice" in halt.args["reason"] and "bob" not in halt.args["reason"]
    row = next(r for r in reversed(_audit(s)) if r["command"] == "kill")
    assert row["channel"] == "tcp" and row["who"] == "key:alice"


@pytest.mark.integration
def test_tcp_client_call_audits_its_key_and_ipc_keeps_the_user(
        stack: tuple[CommanderStack, str], keys: Path) -> None:
    s, endpoint = stack
    out = call("ping", endpoint=endpoint, server_key=str(keys / "server" / "server.key"),
               client_key=str(keys / "allowed" / "bob.key_secret"), timeout=20)
    assert out.code == 0
    assert call("ping", run_dir=s.dir, timeout=20).code == 0
    pings = [r for r in _audit(s) if r["command"] == "ping"]
    assert [r["who"] for r in pings if r["channel"] == "tcp"] == ["key:bob"]
    assert pings[-1]["channel"] == "ctl" and pings[-1]["who"].endswith(f":{os.getuid()}")


# --- the run directory must be ours -----------------------------------------------------------------


def test_new_run_dir_is_created_private(tmp_path: Path) -> None:
    d = tmp_path / "a" / "rd"
    runpaths.prepare(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_readable_run_dir_of_ours_is_made_private(tmp_path: Path) -> None:
    d = tmp_path / "rd"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    runpaths.prepare(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_run_dir_owned_by_another_user_is_refused(tmp_path: Path, monkeypatch) -> None:
    d = tmp_path / "rd"
    d.mkdir(mode=0o700)
    owner = d.stat().st_uid
    monkeypatch.setattr(runpaths.os, "getuid", lambda: owner + 1)  # we run as someone else
    with pytest.raises(runpaths.RunDirError, match=rf"owned by uid {owner}, not by you.*--run-dir"):
        runpaths.prepare(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700  # untouched


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777])
def test_run_dir_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    d = tmp_path / "rd"
    d.mkdir()
    os.chmod(d, mode)
    with pytest.raises(runpaths.RunDirError, match=r"writable by group or others.*chmod 700"):
        runpaths.prepare(d)
    assert stat.S_IMODE(d.stat().st_mode) == mode  # left for the person to inspect


def test_run_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "rd"
    f.write_text("")
    with pytest.raises(runpaths.RunDirError):
        runpaths.prepare(f)
