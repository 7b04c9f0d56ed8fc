"""The narrow views of the supervisor its modules are given, instead of the whole ``Supervisor``.

Each module that acts for the supervisor (fencing, restarts, endings, metrics, requests, the
kill-path proof) names here exactly what it reads and calls, so none of them imports
``supervisor.app`` (no cycle, not even a type-only one) and each is tested in-process with a
small fake: a ``SimpleNamespace`` with these attributes is enough. ``Supervisor`` satisfies all
of them. Types only: nothing here runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from supervisor.children import Child
    from supervisor.flatten import Flattener
    from supervisor.killswitch import KillSwitch
    from supervisor.simchild import SimChild
    from trader.kernel import config
    from trader.kernel.journal import HaltState, Journal
    from trader.kernel.metrics import Registry

Clock = Callable[[], float]  # time.monotonic, or a test's fake
Sleep = Callable[[float], Awaitable[None]]  # asyncio.sleep, or a test's fake


class Alerting(Protocol):
    def alert(self, level: str, title: str, text: str, key: str | None = None) -> None: ...


class Halting(Protocol):
    @property
    def halt(self) -> HaltState: ...


class RestartPort(Alerting, Protocol):
    """supervisor/restarts.py: the restart policy."""

    cfg: config.Config
    metrics: Registry
    journal: Journal | None
    flapping: set[str]
    shutting_down: bool
    clock: Clock
    sleep: Sleep


class FencePort(Protocol):
    """supervisor/fencing.py: the trader's fence and the connector's order-flow fence."""

    cfg: config.Config
    children: dict[str, Child]
    flattener: Flattener | None
    wall: Clock

    def restart_later(self, ch: Child, why: str) -> None: ...
    async def ask_connector(self, op: str, args: dict[str, Any], timeout: float) -> Any:
        """A request to the connector's ROUTER; raises bus.RequestError."""


class PolicyPort(Alerting, Halting, Protocol):
    """supervisor/policy.py: what an exit, a hang or a long absence of a child means."""

    cfg: config.Config
    children: dict[str, Child]
    refused: set[str]
    shutting_down: bool
    killswitch: KillSwitch | None
    clock: Clock
    wall: Clock

    def restart_later(self, ch: Child, why: str) -> None: ...
    def refusal(self, name: str) -> str: ...


class EndingPort(Alerting, Halting, Protocol):
    """supervisor/endings.py: how ``up`` ends."""

    cfg: config.Config
    children: dict[str, Child]
    refused: set[str]
    killswitch: KillSwitch | None


class MetricsPort(Halting, Protocol):
    """supervisor/metrics_truth.py: what /metrics shows."""

    cfg: config.Config
    metrics: Registry
    children: dict[str, Child]
    sim: SimChild | None
    killswitch: KillSwitch | None
    killpath_ready: bool

    def hang_limit(self, name: str) -> float: ...
    def trading_state(self) -> str: ...


class KillPathPort(Alerting, Protocol):
    """supervisor/killpath.py: the kill path's periodic proof."""

    cfg: config.Config
    flattener: Flattener | None
    killswitch: KillSwitch | None
    killpath_ready: bool
    killpath_failures: int
    _killpath_checking: bool


class RequestPort(FencePort, MetricsPort, Alerting, Protocol):
    """supervisor/requests.py: what the supervisor answers on its ROUTER."""

    journal: Journal | None
    shutting_down: bool
    stop_requested: asyncio.Event
    flapping: set[str]
    metrics_port: int

    def banned_for(self) -> float: ...
    def start_trader(self) -> None: ...

