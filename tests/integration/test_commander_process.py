"""The commander process run for real, with stand-in ROUTERs for the processes it talks to."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq

from commander.client import call
from tests.fakes.commander_peers import CommanderStack
from trader.kernel import wire

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[CommanderStack]:
    s = CommanderStack()
    try:
        yield s
    finally:
        s.close()


def test_control_socket_is_private_and_heartbeats_flow(stack: CommanderStack) -> None:
    sock = Path(stack.paths.control.removeprefix("ipc://"))
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(stack.dir).stat().st_mode) == 0o700
    stack.peers.wait_for(lambda: stack.peers.ops("supervisor").count("hb") >= 3)
    hb = [g for g in stack.peers.got if g.op == "hb"][-1]
    assert hb.args["proc"] == "commander" and hb.args["pid"] == stack.proc.pid


def test_commands_reach_the_serving_process(stack: CommanderStack) -> None:
    stack.peers.answers["connector"]["sync"] = {"differences": [{"symbol": "BTC/USDT:USDT",
                                                                 "local": 0.0, "exchange": 0.01}]}
    assert call("kill", run_dir=stack.dir).code == 0
    assert call("sync", run_dir=stack.dir).text.startswith("synced: 1 difference")
    assert call("ack", ["disk"], run_dir=stack.dir).code == 0
    assert call("debug_instrument", ["eth"], run_dir=stack.dir).code == 0
    assert call("unban", ["eth"], run_dir=stack.dir, yes=True).code == 0
    got = [(g.peer, g.op, g.args) for g in stack.peers.got if g.op not in ("hb", "ready")]
    halt = next(a for p, op, a in got if op == "halt")
    assert halt["trigger"] == "command" and halt["source"] == "commander" and halt["reason"]
    assert ("connector", "sync", {}) in got
    assert ("notifier", "ack", {"key": "disk"}) in got
    assert ("trader", "debug_instrument", {"symbol": "ETH/USDT:USDT"}) in got
    assert ("trader", "unban", {"symbol": "ETH/USDT:USDT"}) in got


def test_garbage_on_the_control_socket_is_dropped_and_counted(stack: CommanderStack) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 1000)
    s.connect(stack.paths.control)
    try:
        s.send_multipart([b"cmd", b"\xc1\xc1 not msgpack"])
        s.send_multipart([b"a", b"b", b"c", b"d"])
        s.send_multipart([b"cmd", b"x" * (wire.MAX_BODY + 10)])
        s.send_multipart(wire.encode("cmd", "x", 1, {"id": 1, "args": ["not", "a", "map"]}))

        def dropped() -> int:
            out = call("ping", run_dir=stack.dir)
            return sum(out.data["commander"]["bus"]["dropped"].values()) if out.code == 0 else -1

        stack.peers.wait_for(lambda: dropped() >= 4)
    finally:
        ctx.destroy(linger=0)
    assert call("ping", run_dir=stack.dir).code == 0  # still serving


def test_record_toggles_a_msgpack_stream_file(stack: CommanderStack) -> None:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)  # stands in for the proxy's XPUB side
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(stack.paths.events_out)
    try:
        out = call("record", run_dir=stack.dir)
        assert out.code == 0 and out.data["recording"] is True
        path = Path(out.data["path"])
        assert path.parent == stack.paths.recordings
        seq = iter(range(1, 1_000_000))

        def recorded() -> bool:  # the SUB joins asynchronously: publish until it records
            pub.send_multipart(wire.encode("md.BTC/USDT:USDT", "connector", next(seq),
                                           {"symbol": "BTC/USDT:USDT", "mark": 50000.0}))
            return _count(path) >= 3

        stack.peers.wait_for(recorded)
        stopped = call("record", run_dir=stack.dir).data
        assert stopped["recording"] is False and stopped["messages"] > 2
        with open(path, "rb") as f:
            recs = list(msgpack.Unpacker(f, raw=False))
        assert len(recs) == stopped["messages"]
        topic, src, _, _, data = recs[0]
        assert topic == "md.BTC/USDT:USDT" and src == "connector" and data["mark"] == 50000.0
    finally:
        ctx.destroy(linger=0)


def _count(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in msgpack.Unpacker(f, raw=False))
