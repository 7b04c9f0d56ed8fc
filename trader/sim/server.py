"""Start and stop the simulated exchange: one aiohttp app, REST and WebSocket on one port."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from trader.kernel import sigterm
from trader.sim import control, pipeline
from trader.sim.faults import Failure
from trader.sim.state import STATE_KEY, SimConfig, SimState, log
from trader.sim.ws import WS_PATHS


class SimServer:
    """The simulated Binance USDⓈ-M exchange, embeddable in any asyncio program.

    ``SimServer(port=0, seed=7)`` or ``SimServer(SimConfig(...))``; then ``await start()``,
    use ``.url`` (REST base, ``http://127.0.0.1:PORT``) and ``.ws_url`` (ccxt's
    ``urls['api']['ws']['linear']``, ``ws://127.0.0.1:PORT/ws``), and ``await stop()``.
    ``.state`` is the live exchange state for in-process tests.
    """

    def __init__(self, config: SimConfig | None = None, /, **overrides: Any) -> None:
        self.config = dataclasses.replace(config or SimConfig(), **overrides)
        self.state = SimState.build(self.config)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._janitor: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self._host_for_url()}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._host_for_url()}:{self.port}/ws"

    def ready_line(self) -> str:
        c = self.config
        return (f"sim ready url={self.url} ws_url={self.ws_url} api_key={c.api_key} "
                f"api_secret={c.api_secret}")

    def _host_for_url(self) -> str:
        return f"[{self.config.host}]" if ":" in self.config.host else self.config.host

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app[STATE_KEY] = self.state
        for path in WS_PATHS:
            app.router.add_get(path, self.state.hub.handle)
            app.router.add_get(path + "/{tail:.*}", self.state.hub.handle)
        app.router.add_route("*", "/_sim/{action}", control.handle)
        app.router.add_route("*", "/{tail:.*}", pipeline.dispatch)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("sim already started")
        runner = web.AppRunner(self._app(), handle_signals=False, access_log=None,
                               shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        self._runner = runner
        server = site._server  # aiohttp exposes the bound port only through the server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._ticker = asyncio.create_task(self._tick_loop(), name="sim-ticker")
        self._janitor = asyncio.create_task(self._janitor_loop(), name="sim-janitor")
        log.info("sim started url=%s", self.url)

    async def stop(self) -> None:
        for task in (self._ticker, self._janitor):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._ticker = self._janitor = None
        self.state.countdowns.close()
        await self.state.hub.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.tick_interval
        next_at = last = loop.time()
        while True:
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            now = loop.time()
            # the time actually elapsed, so the market keeps ``speed`` × real time when late
            elapsed, last = now - last, now
            if not self.state.frozen:
                try:
                    self.state.advance(elapsed)
                except Exception:  # a bug in one tick must not stop the market
                    log.exception("sim tick failed")

    async def _janitor_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.state.hub.expire_due()


RetireSpec = tuple[str | None, str, Failure]
FailSpec = tuple[str | None, str, int, Failure, bool]
LatencySpec = tuple[str | None, str, float]
BanSpec = tuple[float, int, bool]


def apply_faults(server: SimServer, *, retire: Sequence[RetireSpec] = (),
                 fail: Sequence[FailSpec] = (), latency_ms: float = 0.0,
                 path_latency: Sequence[LatencySpec] = (), ban: BanSpec | None = None) -> None:
    faults = server.state.faults
    for method, path, failure in retire:
        faults.retire(path, method=method, failure=failure)
    for method, path, count, failure, after in fail:
        faults.fail(path, count, failure, method=method, after=after)
    faults.set_latency(latency_ms)
    for method, path, ms in path_latency:
        faults.set_latency(ms, path, method)
    if ban is not None:
        seconds, status, retry_after = ban
        server.state.ban.start(server.state.clock.now_ms(), seconds, status,
                               retry_after=retry_after)


def run_sim(config: SimConfig, *, retire: Sequence[RetireSpec] = (),
            fail: Sequence[FailSpec] = (), latency_ms: float = 0.0,
            path_latency: Sequence[LatencySpec] = (), ban: BanSpec | None = None) -> None:
    """Run until SIGTERM/SIGINT; print the ready line (flushed) once listening."""

    async def main() -> None:
        # Started by `flatguard up`: SIGTERM only from it (or once it is gone), so a SIGTERM to
        # every process (systemd) cannot take the exchange away from its orderly stop's flatten.
        supervised = os.environ.get("FLATGUARD_SIM_SUPERVISED") == "1"
        if supervised:
            sigterm.block()  # before any thread exists
        server = SimServer(config)
        apply_faults(server, retire=retire, fail=fail, latency_ms=latency_ms,
                     path_latency=path_latency, ban=ban)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT,) if supervised else (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)  # the handler only sets; main stops
        if supervised:
            sigterm.install(stop.set)
        await server.start()
        try:
            print(server.ready_line(), flush=True)
            await stop.wait()
        finally:
            await server.stop()
            print("sim stopped", file=sys.stderr, flush=True)

    asyncio.run(main())
