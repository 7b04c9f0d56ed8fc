"""A fake supervisor for the supervisor's policy modules: real ``Child`` records with fake
processes, a fake clock, a fake /proc, and a kill switch that records its triggers. Each policy
module is given a narrow port (supervisor/ports.py); this object has every attribute they read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from supervisor.children import RUNNING, Child
from supervisor.childspec import SPECS
from trader.kernel import config
from trader.kernel.journal import HaltState
from trader.kernel.metrics import Registry


class Clock:
    """Monotonic and wall time, moved only by the test."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t = round(self.t + s, 6)


class FakeProc:
    def __init__(self, pid: int) -> None:
        self.pid, self.returncode = pid, None


class ProcFS:
    """/proc/<pid>/task/<pid>/{stat,schedstat} for every pid: one state for all."""

    def __init__(self) -> None:
        self.state, self.cpu_ns, self.runq_ns = "S", 0, 0

    def read(self, path: str) -> str:
        pid = path.split("/")[2]
        if path.endswith("/stat"):
            return f"{pid} (python) {self.state} 1 {pid} {pid} 0 -1 0 0 0 0 0 1 2"
        if path.endswith("/schedstat"):
            return f"{self.cpu_ns} {self.runq_ns} 1\n"
        raise FileNotFoundError(path)


class KillSwitchSpy:
    def __init__(self) -> None:
        self.triggers: list[tuple[str, str]] = []
        self.running = False

    def trigger(self, trigger: str, reason: str) -> bool:
        self.triggers.append((trigger, reason))
        started = not self.running
        self.running = True
        return started


class FakeSup:
    def __init__(self, **cfg: Any) -> None:
        self.cfg = config.from_mapping(cfg)
        self.clock = Clock()
        self.wall = Clock(1_700_000_000.0)
        self.slept: list[float] = []
        self.metrics = Registry()
        self.journal: Any = None
        self.flapping: set[str] = set()
        self.refused: set[str] = set()
        self.shutting_down = False
        self.halt = HaltState(False)
        self.killswitch: Any = KillSwitchSpy()
        self.alerts: list[tuple[str, str, str, str | None]] = []
        self.restarted: list[tuple[str, str]] = []
        self.spawned: list[str] = []
        self.killed: list[str] = []
        self.next_pid = 100
        self.children: dict[str, Child] = {}
        for name in SPECS:
            ch = Child(name, Path("/nonexistent"), {}, lambda c, code: None, clock=self.clock)
            ch.spawn = self._spawner(ch)  # type: ignore[method-assign]
            ch.kill_group = self._killer(ch)  # type: ignore[method-assign]
            self.children[name] = ch

    # --- what the ports call -------------------------------------------------------------

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.clock.advance(s)

    def alert(self, level: str, title: str, text: str, key: str | None = None) -> None:
        self.alerts.append((level, title, text, key))

    def restart_later(self, ch: Child, why: str) -> None:
        self.restarted.append((ch.name, why))

    def refusal(self, name: str) -> str:
        return f"process {name} refused to start (exit 78): test"

    # --- test helpers --------------------------------------------------------------------

    def titles(self) -> list[str]:
        return [a[1] for a in self.alerts]

    def _spawner(self, ch: Child) -> Callable[[], None]:
        def spawn() -> None:
            self.spawned.append(ch.name)
            self.run(ch.name)
        return spawn

    def _killer(self, ch: Child) -> Callable[[], None]:
        def kill() -> None:
            self.killed.append(ch.name)
            self.die(ch.name)
        return kill

    def run(self, name: str, loop: int = 0) -> Child:
        """The child up and ready, beating now."""
        ch = self.children[name]
        self.next_pid += 1
        ch.proc = FakeProc(self.next_pid)  # type: ignore[assignment]
        ch.state = RUNNING
        ch.hb.at, ch.hb.loop = self.clock(), loop
        return ch

    def beat(self, name: str, loop: int, **kw: Any) -> None:
        ch = self.children[name]
        ch.hb.at, ch.hb.loop = self.clock(), loop
        for k, v in kw.items():
            setattr(ch.hb, k, v)

    def die(self, name: str) -> None:
        self.children[name].proc.returncode = -9  # type: ignore[union-attr]
