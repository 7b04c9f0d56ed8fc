"""Harness for integration tests: a real ``flatguard up`` (and, when needed, a standalone
``flatguard sim``) as OS processes, talked to only through public interfaces: the CLI, the
supervisor and control sockets, /metrics and the simulated exchange's own API.

Everything started here is stopped by pid in ``close()``, which the fixtures always call.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trader.kernel import bus, runpaths

ROOT = Path(__file__).resolve().parent.parent
FLATGUARD = [sys.executable, "-m", "supervisor.cli"]
READY_TIMEOUT = 90.0


POLL_FIRST, POLL_MAX = 0.05, 0.25  # s: quick at first, then a few polls a second


def wait_for(cond: Callable[[], Any], timeout: float, what: str,
             interval: float | None = None) -> Any:
    """Poll ``cond`` until it returns something truthy; fail with ``what`` after ``timeout``.

    Without ``interval`` the pause grows from 50 ms to 250 ms: a condition met at once is seen
    at once, and a long wait does not spend a core on polls (each /_sim/state or /metrics
    read costs the server 1-4 ms of CPU)."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    pause = POLL_FIRST if interval is None else interval
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # the condition may fail while things start
            last_exc = e
        time.sleep(pause)
        if interval is None:
            pause = min(pause * 1.5, POLL_MAX)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}"
                         + (f" (last error: {last_exc})" if last_exc else ""))


def pids_gone(pids: list[int]) -> bool:
    """True when none of ``pids`` runs any more (gone, or a zombie nobody reaped yet)."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] != "Z":
                    return False
        except OSError:
            pass
    return True


def short_dir(prefix: str = "fg") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def http_json(url: str, body: dict[str, Any] | None = None, method: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def reap_pid(pid: int, group: bool = True) -> None:
    for fn in ((os.killpg, os.kill) if group else (os.kill,)):
        try:
            fn(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Sim:
    """A standalone simulated exchange process (``python -m trader.sim``)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trader.sim", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, process_group=0)
        assert self.proc.stdout is not None
        line = ""
        deadline = time.monotonic() + 30
        while not line.startswith("sim ready") and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError("sim exited before ready")
        fields = dict(p.split("=", 1) for p in line.split()[2:])
        self.url = fields["url"]
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def state(self) -> dict[str, Any]:
        return http_json(self.url + "/_sim/state")

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return http_json(f"{self.url}/_sim/{path}", body or {})

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                reap_pid(self.proc.pid)
                self.proc.wait(5)


def positions_of(state: dict[str, Any]) -> dict[str, float]:
    return {p["symbol"]: float(p["positionAmt"]) for p in state["positions"]
            if float(p["positionAmt"]) != 0}


def is_flat(state: dict[str, Any]) -> bool:
    return not positions_of(state) and not state["open_orders"]


def seed_exposure(sim: Sim) -> None:
    """Positions and resting orders on both symbols, whatever the strategy has done."""
    sim.control("position", {"symbol": "BTCUSDT", "amount": "0.01"})
    sim.control("position", {"symbol": "ETHUSDT", "amount": "-0.2"})
    marks = sim.state()["marks"]
    sim.control("order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.002",
                          "price": str(round(float(marks["BTCUSDT"]) * 0.9, 1)),
                          "timeInForce": "GTC"})
    sim.control("order", {"symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT", "quantity": "0.05",
                          "price": str(round(float(marks["ETHUSDT"]) * 1.1, 2)),
                          "timeInForce": "GTC"})
    st = sim.state()
    assert positions_of(st) and st["open_orders"]


STACK_MARK = "FLATGUARD_TEST_STACK"  # in the environment of every process a Stack starts


class Stack:
    """One ``flatguard up`` with its own run directory and config."""

    def __init__(self, config: str = "", run_dir: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.run_dir = run_dir or short_dir()
        self.paths = runpaths.RunPaths(self.run_dir)
        self.config_path = self.run_dir.parent / f"{self.run_dir.name}.toml"
        base = "[metrics]\nport = 0\n"
        self.config_path.write_text(base + config if "[metrics]" not in config else config)
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1",
                    STACK_MARK: str(self.run_dir)}
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.pids: set[int] = set()
        self.sim_url = ""
        self.metrics_url = ""

    # --- lifecycle ----------------------------------------------------------------------

    def start(self, wait_ready: bool = True) -> Stack:
        self.proc = subprocess.Popen(
            [*FLATGUARD, "up", "--config", str(self.config_path), "--run-dir", str(self.run_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
            cwd=ROOT, process_group=0)
        threading.Thread(target=self._read, daemon=True).start()
        if wait_ready:
            line = wait_for(lambda: self.find("flatguard ready") or self._died(), READY_TIMEOUT,
                            "the ready line")
            assert "flatguard ready" in line, self.output()
            m = re.search(r"metrics=(\S+)", line)
            self.metrics_url = m.group(1) if m else ""
            m = re.search(r"sim=(\S+)", line)
            self.sim_url = m.group(1) if m else ""
            self.remember_pids()
        return self

    def _died(self) -> str:
        if self.proc is not None and self.proc.poll() is not None:
            time.sleep(0.2)
            raise AssertionError(f"flatguard up exited {self.proc.returncode}:\n{self.output()}")
        return ""

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def find(self, text: str) -> str:
        for line in list(self.lines):
            if text in line:
                return line
        return ""

    def output(self) -> str:
        return "\n".join(self.lines[-200:])

    def remember_pids(self) -> dict[str, Any]:
        st = self.status()
        for p in st["processes"].values():
            if p.get("pid"):
                self.pids.add(int(p["pid"]))
        return st

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 120.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"flatguard up did not exit in {timeout}s:\n{self.output()}") from None

    def stop(self, timeout: float = 120.0) -> int:
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def close(self) -> None:
        """Always reap: the supervisor and every child pid it ever reported, at once.

        A test that checks stopping stops the stack itself (``stop``); teardown only has to
        leave nothing behind. An orderly stop here cost 3-14 s per test (fence, flatten,
        verification) and checked nothing, so everything is frozen first (no process reacts
        to another's death: no restart, no self-flatten) and then killed."""
        alive = self.proc is not None and self.proc.poll() is None
        if alive:
            try:  # the children of this moment, restarts included
                for p in self.request(self.paths.supervisor, "status", timeout=2.0)[
                        "processes"].values():
                    if p.get("pid"):
                        self.pids.add(int(p["pid"]))
            except Exception:  # noqa: BLE001 - a supervisor that cannot answer is killed anyway
                pass
        # pids wrap (pid_max is 32768 here) and tests may run side by side: signal only
        # processes that carry this stack's mark in their environment
        group = ([self.proc.pid] if alive and self.proc is not None else []) + sorted(
            p for p in self.pids if self._ours(p))
        for pid in group:
            try:
                os.kill(pid, signal.SIGSTOP)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in group:
            reap_pid(pid)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.wait(10)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.config_path.unlink(missing_ok=True)

    def _ours(self, pid: int) -> bool:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return False  # gone (or not ours to read)
        return f"{STACK_MARK}={self.run_dir}".encode() in env.split(b"\0")

    # --- public interfaces ----------------------------------------------------------------

    def request(self, endpoint: str, op: str, args: dict[str, Any] | None = None,
                timeout: float = 5.0) -> Any:
        r = bus.SyncRequester(endpoint, "test")
        try:
            return r.request(op, args, timeout)
        finally:
            r.close()

    def status(self) -> dict[str, Any]:
        return self.request(self.paths.supervisor, "status")

    def ctl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*FLATGUARD, "ctl", "--run-dir", str(self.run_dir), *args],
                              capture_output=True, text=True, timeout=timeout, env=self.env,
                              cwd=ROOT)

    def ctl_json(self, *args: str) -> Any:
        r = self.ctl(*args, "--json")
        assert r.returncode == 0, f"ctl {args} exit {r.returncode}: {r.stdout} {r.stderr}"
        return json.loads(r.stdout)

    def cmd(self, command: str, *argv: str, yes: bool = False) -> Any:
        """A command's data through the control socket, in this process: what ``ctl --json``
        prints, for polls (a ``ctl`` process costs ~0.15 s of CPU per call)."""
        from commander.client import call

        out = call(command, argv, run_dir=str(self.run_dir), yes=yes)
        assert out.code == 0, f"{command} {argv}: {out.text}"
        return out.data

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as r:
            return r.read().decode()

    def sim_state(self) -> dict[str, Any]:
        return http_json(self.sim_url + "/_sim/state")

    def sim_control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return http_json(f"{self.sim_url}/_sim/{path}", body or {})
