"""Stand-ins for the supervisor, trader, connector and notifier ROUTERs, for commander tests.

They bind the real socket paths of a run directory and speak the real wire format, record what
the commander sends (``got``) and answer from ``answers[peer][op]`` (a value, a callable of the
args, ``NO_ANSWER`` to stay silent, or an ``Error(kind, message)``). One thread polls them all.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from trader.kernel import runpaths, wire

NO_ANSWER = object()


@dataclass
class Error:
    kind: str
    message: str


@dataclass
class Got:
    peer: str
    op: str
    args: dict[str, Any]
    src: str


class FakePeers:
    def __init__(self, paths: runpaths.RunPaths, peers: tuple[str, ...] = (
            "supervisor", "trader", "connector", "notifier")) -> None:
        self.ctx = zmq.Context()
        eps = {"supervisor": paths.supervisor, "trader": paths.trader,
               "connector": paths.connector, "notifier": paths.notifier}
        self.socks: dict[str, zmq.Socket[Any]] = {}
        for p in peers:
            s = self.ctx.socket(zmq.ROUTER)
            s.setsockopt(zmq.LINGER, 0)
            s.bind(eps[p])
            self.socks[p] = s
        self.got: list[Got] = []
        self.answers: dict[str, dict[str, Any]] = {p: {} for p in peers}
        self._seq = itertools.count(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        names = {s: n for n, s in self.socks.items()}
        for s in self.socks.values():
            poller.register(s, zmq.POLLIN)
        while not self._stop.is_set():
            for s, _ in poller.poll(50):
                frames = s.recv_multipart()
                try:
                    msg = wire.decode(frames[1:])
                except wire.WireError:
                    continue
                peer = names[s]
                args = msg.data.get("args") or {}
                self.got.append(Got(peer, msg.topic, args, msg.src))
                rid = msg.data.get("id")
                if rid is None:
                    continue
                ans = self.answers[peer].get(msg.topic, {"ok": True})
                if callable(ans):
                    ans = ans(args)
                if ans is NO_ANSWER:
                    continue
                body = ({"id": rid, "ok": False, "error": {"kind": ans.kind, "message": ans.message}}
                        if isinstance(ans, Error) else {"id": rid, "ok": True, "result": ans})
                s.send_multipart([frames[0], *wire.encode("rep", peer, next(self._seq), body)])

    def ops(self, peer: str) -> list[str]:
        return [g.op for g in list(self.got) if g.peer == peer]

    def wait_for(self, cond: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.ctx.destroy(linger=0)


class CommanderStack:
    """A run dir, fake peers, and the real commander process (``python -m commander``)."""

    def __init__(self, cfg: Any = None, peers: tuple[str, ...] = (
            "supervisor", "trader", "connector", "notifier"), env: dict[str, str] | None = None):
        import os
        import subprocess
        import sys
        import tempfile
        from pathlib import Path

        from trader.kernel import config

        self.dir = tempfile.mkdtemp(prefix="fg", dir="/tmp")
        self.paths = runpaths.prepare(Path(self.dir))
        self.cfg = cfg or config.from_mapping({})
        self.paths.config_json.write_text(config.dumps(self.cfg))
        self.peers = FakePeers(self.paths, peers)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(self.dir) / "commander.log"
        try:
            with open(self.log, "wb") as logf:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "commander", "--run-dir", self.dir],
                    stdout=logf, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
            if "supervisor" in peers:
                self.peers.wait_for(lambda: "ready" in self.peers.ops("supervisor") or
                                    self.proc.poll() is not None, 30)
            else:
                self.peers.wait_for(lambda: self.paths.control.removeprefix("ipc://") and
                                    os.path.exists(self.paths.control.removeprefix("ipc://")), 30)
            if self.proc.poll() is not None:
                raise AssertionError(f"commander exited: {self.log.read_text()}")
        except BaseException:
            self.close()
            raise

    def ctl(self, *args: str, timeout: float = 30.0) -> tuple[int, str, str]:
        import subprocess
        import sys

        r = subprocess.run([sys.executable, "-m", "commander.cli", "--run-dir", self.dir, *args],
                           capture_output=True, text=True, timeout=timeout + 30)
        return r.returncode, r.stdout, r.stderr

    def close(self) -> None:
        import shutil
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.peers.close()
        shutil.rmtree(self.dir, ignore_errors=True)
