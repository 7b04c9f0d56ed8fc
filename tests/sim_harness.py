"""Helpers for tests that drive the simulator: a ``/_sim/`` client and a loop-owning harness.

The suite has no asyncio pytest plugin, so ``SimHarness`` owns an event loop, starts a
``SimServer`` on 127.0.0.1:0 and a real ccxt session pointed at it, runs coroutines with a
deadline, and always tears everything down in ``close()`` (call it from a fixture).
``ThreadedSim`` runs the simulator on a loop in its own thread instead, for blocking clients
(Binance's official SDK, python-binance) that call it from the test's thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp

from trader.sim.server import SimServer

T = TypeVar("T")


class SimControl:
    """Client of the unsigned ``/_sim/`` control API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._session: aiohttp.ClientSession | None = None

    async def call(self, action: str, verb: str = "POST", /, **body: Any) -> Any:
        """``verb`` is the HTTP method (positional only, so a body may carry a "method")."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(verb, f"{self.base_url}/_sim/{action}",
                                         json=body if verb == "POST" else None) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"/_sim/{action} -> {resp.status} {data}")
            return data

    async def state(self) -> dict[str, Any]:
        return await self.call("state", "GET")

    async def orders(self) -> list[dict[str, Any]]:
        return await self.call("orders", "GET")

    async def price(self, symbol: str, price: float | str, spread: float | None = None) -> Any:
        extra = {} if spread is None else {"spread": spread}
        return await self.call("price", symbol=symbol, price=str(price), **extra)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0,
                     interval: float = 0.02) -> None:
    """Poll an async condition until true; raise TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


class SimHarness:
    """A simulator plus ccxt session(s) on a private event loop, for synchronous tests."""

    def __init__(self, **sim_options: Any) -> None:
        sim_options.setdefault("tick_interval", 0.05)
        self.loop = asyncio.new_event_loop()
        self.sim = SimServer(**sim_options)
        self.loop.run_until_complete(self.sim.start())
        self.control = SimControl(self.sim.url)
        self._exchanges: list[Any] = []

    def exchange(self, *, pro: bool = True, **options: Any) -> Any:
        from trader.exchange.session import build_exchange  # ccxt import is slow: lazily

        options.setdefault("api_key", self.sim.config.api_key)
        options.setdefault("api_secret", self.sim.config.api_secret)
        ex = build_exchange("binanceusdm", url=self.sim.url, pro=pro, **options)
        ex.timeout_on_exit = 0  # ccxt waits 250 ms in close() for TLS; loopback has none
        self._exchanges.append(ex)
        return ex

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def close(self) -> None:
        async def teardown() -> None:
            for ex in self._exchanges:
                await ex.close()
            await self.control.close()
            await self.sim.stop()

        try:
            self.loop.run_until_complete(teardown())
        finally:
            self.loop.close()


class ThreadedSim:
    """A simulator serving from a background thread; ``call`` reaches ``/_sim/`` and
    ``state()`` the live state from the test's thread. ``close()`` stops and joins it."""

    def __init__(self, **sim_options: Any) -> None:
        sim_options.setdefault("tick_interval", 0.05)
        self.loop = asyncio.new_event_loop()
        self.sim = SimServer(**sim_options)
        self.control = SimControl(self.sim.url)
        self._thread = threading.Thread(target=self.loop.run_forever, name="sim-loop",
                                        daemon=True)
        self._thread.start()
        self.run(self.sim.start())
        self.control.base_url = self.sim.url  # the port is known once started

    @property
    def url(self) -> str:
        return self.sim.url

    @property
    def ws_url(self) -> str:
        return self.sim.ws_url

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, action: str, verb: str = "POST", /, **body: Any) -> Any:
        return self.run(self.control.call(action, verb, **body))

    def state(self) -> dict[str, Any]:
        return self.call("state", "GET")

    def close(self) -> None:
        async def teardown() -> None:
            await self.control.close()
            await self.sim.stop()

        try:
            self.run(teardown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
