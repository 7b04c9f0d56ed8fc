"""``FakeService``: an aiohttp server on 127.0.0.1 (free port) running in its own thread.

Usable from plain synchronous tests and from tests that run their own event loop (or start a
separate process that talks to it). Subclasses add routes and record what they got; this base
records every request and injects faults::

    with FakeTelegram() as tg:             # starts; stops and joins on exit
        tg.url                             # "http://127.0.0.1:<port>"
        tg.fail_next("429", retry_after=1) # next request answered 429 (service-specific body)
        tg.set_fault("hang")               # every request hangs until release()/set_fault(None)
        tg.wait_for(lambda: len(tg.sent) >= 2, timeout=10)

Fault kinds: ``hang`` (never answers until released or stopped), ``slow`` (``delay`` s, then
the normal answer), ``429`` (with ``retry_after`` s), ``5xx`` (``status``, default 502),
``garbage`` (200 with an HTML body), ``status`` (``status`` with a service-specific error).
``requests`` lists every request seen (``Req``), faulted or not; ``faulted`` counts answers
replaced by a fault. State lives in the server thread; reads from the test thread are of
append-only lists (safe under the GIL); mutations go through ``call``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl

from aiohttp import web

T = TypeVar("T")


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    ts: float = field(default_factory=time.monotonic)

    def params(self) -> dict[str, Any]:
        """Query, then form or JSON body fields, merged (Telegram accepts all three)."""
        out: dict[str, Any] = dict(self.query)
        ctype = self.headers.get("Content-Type", "")
        if self.body and "json" in ctype:
            data = json.loads(self.body)
            if isinstance(data, dict):
                out.update(data)
        elif self.body and "x-www-form-urlencoded" in ctype:
            out.update(parse_qsl(self.body.decode(), keep_blank_values=True))
        return out


@dataclass
class Fault:
    kind: str
    retry_after: float | None = None
    status: int | None = None
    delay: float = 0.0


class FakeService:
    def __init__(self) -> None:
        self.requests: list[Req] = []
        self.faulted = 0
        self._next: collections.deque[Fault] = collections.deque()
        self._always: Fault | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None
        self.port = 0

    # --- to override ---

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def rate_limited(self, retry_after: float) -> web.Response:
        return web.json_response({"error": "rate limited"}, status=429,
                                 headers={"Retry-After": f"{retry_after:g}"})

    def error(self, status: int) -> web.Response:
        return web.json_response({"error": f"HTTP {status}"}, status=status)

    # --- lifecycle ---

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as e:  # report to the starting thread
                errors.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=main, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    async def _start(self) -> None:
        self._release = asyncio.Event()
        app = web.Application(middlewares=[self._middleware], client_max_size=4 << 20)
        self.routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self.call(lambda: self._release.set() if self._release else None)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, fn: Callable[[], T], timeout: float = 10) -> T:
        """Run ``fn`` in the server thread (for state changes that wake waiting handlers)."""
        assert self._loop is not None, "not started"

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    # --- faults ---

    def fail_next(self, kind: str, times: int = 1, *, retry_after: float | None = None,
                  status: int | None = None, delay: float = 0.0) -> None:
        for _ in range(times):
            self._next.append(Fault(kind, retry_after, status, delay))

    def set_fault(self, kind: str | None, *, retry_after: float | None = None,
                  status: int | None = None, delay: float = 0.0) -> None:
        """A fault for every request from now on; ``None`` clears it and releases hung ones."""
        self._always = Fault(kind, retry_after, status, delay) if kind else None
        if kind is None and self._loop is not None:
            self.release()

    def release(self) -> None:
        """Let hung requests go (they then get the normal answer)."""

        def go() -> None:
            assert self._release is not None
            self._release.set()
            self._release = asyncio.Event()

        self.call(go)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Req(request.method, request.path, dict(request.query),
                                 dict(request.headers), body))
        fault = self._next.popleft() if self._next else self._always
        if fault is not None:
            if fault.kind == "hang":
                assert self._release is not None
                await self._release.wait()
            elif fault.kind == "slow":
                await asyncio.sleep(fault.delay)
            else:
                self.faulted += 1
                if fault.kind == "429":
                    return self.rate_limited(fault.retry_after if fault.retry_after is not None
                                             else 1.0)
                if fault.kind == "5xx":
                    return self.error(fault.status or 502)
                if fault.kind == "garbage":
                    return web.Response(text="<html><body>502 Bad Gateway</body></html>",
                                        content_type="text/html")
                if fault.kind == "status":
                    return self.error(fault.status or 400)
                raise ValueError(f"unknown fault {fault.kind!r}")
        return await handler(request)

    # --- waiting (from the test thread) ---

    def wait_for(self, pred: Callable[[], T], timeout: float = 20.0) -> T:
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"{type(self).__name__}: condition not met in {timeout} s")
            time.sleep(0.01)

    async def await_for(self, pred: Callable[[], T], timeout: float = 20.0) -> T:
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"{type(self).__name__}: condition not met in {timeout} s")
            await asyncio.sleep(0.01)
