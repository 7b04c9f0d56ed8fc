"""Child processes: spawn, see their exit at once (pidfd), track heartbeats, restart policy.

An exit is seen through a pidfd registered with the event loop: the kernel makes it readable
the moment the child dies, so there is no polling interval between a crash and the kill switch.
A hang is a heartbeat that is ``liveness x interval`` late; heartbeats are sent from each
child's working loop, so a loop that is stuck sends none even though the process lives.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.childspec import SPECS
from supervisor.hang import Judge
from trader.kernel.protocol import ProcessState as P

log = logging.getLogger("flatguard")

# Lifecycle of a child as the supervisor sees it.
# EXITED: died unexpectedly, the supervisor's policy decides next (restart, kill switch);
# FAILED: the supervisor gave up on it (restart intensity exceeded, or a refusal).
STARTING, RUNNING, RESTARTING, STOPPING, STOPPED, EXITED, FAILED = (
    P.STARTING, P.RUNNING, P.RESTARTING, P.STOPPING, P.STOPPED, P.EXITED, P.FAILED)

TERM_RESEND = 1.0  # s between SIGTERMs of an orderly stop (see Child.stop)


@dataclass
class Heartbeat:
    at: float = 0.0  # monotonic time received
    loop: int = 0
    state: str = ""
    last_md: float = 0.0
    last_ok: float = 0.0
    metrics: list[Any] = field(default_factory=list)


@dataclass
class Child:
    name: str
    run_dir: Path
    env: dict[str, str]
    on_exit: Callable[[Child, int], None]
    proc: subprocess.Popen[bytes] | None = None
    state: str = STOPPED
    hb: Heartbeat = field(default_factory=Heartbeat)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0
    restart_times: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    expected_exit: bool = False
    started_at: float = 0.0
    judge: Judge | None = None  # hang evidence for the current pid (supervisor/hang.py)
    clock: Callable[[], float] = time.monotonic  # injected: tests run a fake clock
    _pidfd: int = -1

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.returncode is None else None

    def spawn(self) -> None:
        cmd = [sys.executable, "-m", SPECS[self.name].module, "--run-dir", str(self.run_dir)]
        # Own process group: the kill switch fences the trader with killpg, and a Ctrl-C in the
        # terminal reaches only the supervisor, which decides the order of an orderly stop.
        self.proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL,
                                     process_group=0)
        self.state, self.expected_exit = STARTING, False
        self.hb = Heartbeat(at=self.clock())
        self.ready.clear()
        self.started_at = self.clock()
        try:
            with open(f"/proc/{self.proc.pid}/oom_score_adj", "w") as f:
                f.write(str(SPECS[self.name].oom_score_adj))
        except OSError:
            pass
        self._watch_exit()
        log.info("started process=%s pid=%d", self.name, self.proc.pid)

    def _watch_exit(self) -> None:
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        proc = self.proc
        self._pidfd = os.pidfd_open(proc.pid)
        fd = self._pidfd

        def exited() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            code = proc.wait()  # reap: the pidfd is readable only once the child is a zombie
            if proc is self.proc:
                self._pidfd = -1
                self.state = STOPPED if self.expected_exit else EXITED
                self.on_exit(self, code)

        loop.add_reader(fd, exited)

    def heartbeat_age(self) -> float | None:
        if self.pid is None:
            return None
        return self.clock() - self.hb.at

    def signal(self, sig: int) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill_group(self) -> None:
        """SIGKILL the child's whole process group (it leads its own group)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.proc is not None and self.proc.returncode is None and self._pidfd != -1:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self, timeout: float) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL the group. Always reaps."""
        if self.pid is None:
            self.state = STOPPED
            return
        self.expected_exit = True
        self.state = STOPPING
        deadline = time.monotonic() + timeout
        while True:
            # Re-sent each TERM_RESEND s: a SIGTERM that arrives while another (systemd's, sent
            # to every process) is still pending merges into it, sender and all -- standard
            # signals do not queue -- and the child obeys only ours (trader/sigterm.py).
            self.signal(signal.SIGTERM)
            left = deadline - time.monotonic()
            if await self.wait_exit(max(0.0, min(TERM_RESEND, left))):
                return
            if left <= TERM_RESEND:
                break
        log.warning("process=%s did not stop within %gs: SIGKILL", self.name, timeout)
        self.kill_group()
        await self.wait_exit(5.0)

    def summary(self, hang_timeout: float) -> dict[str, Any]:
        age = self.heartbeat_age()
        # A late beat the hang judge extended (starved, not hung) is still a live process.
        judge = getattr(self, "judge", None)
        limit = judge.cap if judge is not None and str(judge.verdict) == "starved" else hang_timeout
        up = self.state == RUNNING and age is not None and age <= limit
        return {"pid": self.pid, "state": self.state, "up": up,
                "heartbeat_age_s": None if age is None else round(age, 3),
                "restarts": self.restarts}
