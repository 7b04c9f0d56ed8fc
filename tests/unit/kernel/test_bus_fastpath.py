"""The tick path's bus pieces: ``Requester.request_now`` sends before it returns, and
``Readable`` wakes a draining loop on new input (and times out without any)."""

from __future__ import annotations

import asyncio
import tempfile
import time

import pytest
import zmq
import zmq.asyncio

from trader.kernel import bus, proc, reqrep, wire


def test_request_now_sends_before_it_returns_then_gets_the_reply() -> None:
    async def go() -> None:
        with tempfile.TemporaryDirectory(prefix="fg", dir="/tmp") as d:
            ctx = zmq.asyncio.Context()
            ep = f"ipc://{d}/r.sock"
            router = zmq.Context.shadow(ctx.underlying).socket(zmq.ROUTER)
            router.setsockopt(zmq.LINGER, 0)
            router.bind(ep)
            req = bus.Requester(ctx, ep, "t")
            try:
                await _request_now(req, router)
            finally:  # a failed check must not leave sockets that block the context's end
                req.close()
                router.close(0)
                ctx.destroy(0)

    asyncio.run(go())


async def _request_now(req: bus.Requester, router: zmq.Socket) -> None:
    pending = req.request_now("op", {"x": 1}, timeout=2.0)
    assert router.poll(2000)  # already on its way, nothing awaited yet
    ident, *frames = router.recv_multipart()
    m = wire.decode(frames)
    assert m.topic == "op" and m.data["args"] == {"x": 1} and req.in_flight == 1
    router.send_multipart([ident, *wire.encode("reply", "c", 1, {
        "id": m.data["id"], "ok": True, "result": 7})])
    assert await pending == 7 and req.in_flight == 0
    late = req.request_now("op", {}, timeout=0.05)
    try:
        await late
    except bus.RequestTimeout:
        pass
    else:
        raise AssertionError("no reply: must time out")
    assert req.in_flight == 0


def test_readable_wakes_on_input_times_out_without_and_never_spins() -> None:
    async def go() -> None:
        with tempfile.TemporaryDirectory(prefix="fg", dir="/tmp") as d:
            ctx = zmq.asyncio.Context()
            ep = f"ipc://{d}/p.sock"
            pub = zmq.Context.shadow(ctx.underlying).socket(zmq.PUB)
            pub.setsockopt(zmq.LINGER, 0)
            pub.bind(ep)
            sub = bus.Subscriber(ctx, ep, ["md."])
            r = bus.Readable([sub])
            try:
                await _readable(pub, sub, r)
            finally:  # a failed check must not leave sockets that block the context's end
                r.close()
                sub.close()
                pub.close(0)
                ctx.destroy(0)

    asyncio.run(go())


async def _readable(pub: zmq.Socket, sub: bus.Subscriber, r: bus.Readable) -> None:
    out: list[wire.Message] = []
    deadline = time.monotonic() + 3
    while not out and time.monotonic() < deadline:  # the slow joiner
        pub.send_multipart(wire.encode("md.x", "c", 1, {"i": 0}))
        await r.wait(0.05)
        sub.drain(out, 100)
    assert out
    for _ in range(50):  # until quiet: the joiner loop's later sends may still come
        t0 = time.monotonic()
        if not await r.wait(0.1):
            assert time.monotonic() - t0 >= 0.09  # a time-out, not a wake
            break
        sub.drain(out, 100)
    else:
        raise AssertionError("never quiet")
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, pub.send_multipart, wire.encode("md.x", "c", 2, {"i": 1}))
    t0 = time.monotonic()
    assert await r.wait(2.0) is True and time.monotonic() - t0 < 1.0
    n = 0
    while not n:
        n = sub.drain(out, 100) or (await r.wait(0.5) and sub.drain(out, 100))
    # input arriving while nobody waits: the reader unregisters itself, no busy loop
    pub.send_multipart(wire.encode("md.x", "c", 3, {"i": 2}))
    deadline = time.monotonic() + 3
    while r._armed and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
    assert not r._armed  # fired once with no waiter, then unregistered itself
    assert await r.wait(1.0) is True
    assert sub.drain(out, 100) == 1


BURSTS = 20


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])  # the trader and connector run uvloop
def test_responder_never_misses_a_request_that_arrives_while_it_replies(monkeypatch,
                                                                        loop: str) -> None:
    """The server reads in its socket's FD callback; a reply sent on that socket can take the
    FD's signal of a request that arrived meanwhile. With the server's own periodic look set
    to an hour, a missed signal would leave a request unanswered: every one of 400 overlapping
    requests (slow and fast handlers, so replies and arrivals interleave) must be answered."""
    monkeypatch.setattr(reqrep, "SERVE_CHECK", 3600.0)

    async def handler(op: str, args: dict, msg: wire.Message) -> int:
        if args["n"] % 3 == 0:
            await asyncio.sleep(0.001 * (args["n"] % 5))  # replies leave while others arrive
        return int(args["n"]) * 2

    async def go() -> None:
        with tempfile.TemporaryDirectory(prefix="fg", dir="/tmp") as d:
            ctx = zmq.asyncio.Context()
            ep = f"ipc://{d}/s.sock"
            server = bus.Responder(ctx, ep, "srv")
            serving = asyncio.get_running_loop().create_task(server.serve(handler))
            clients = [bus.Requester(ctx, ep, f"c{i}") for i in range(4)]
            try:
                for burst in range(BURSTS):
                    calls = [c.request("op", {"n": burst * 20 + k}, timeout=30.0)
                             for k in range(5) for c in clients]
                    got = await asyncio.wait_for(asyncio.gather(*calls), 60.0)
                    assert sorted(got) == sorted(2 * (burst * 20 + k) for k in range(5)
                                                 for _ in clients)
                    if burst % 4 == 0:
                        await asyncio.sleep(0.01)  # the server idles and waits on its FD again
            finally:
                serving.cancel()
                for c in clients:
                    c.close()
                server.close()
                ctx.destroy(0)

    monkeypatch.setenv(proc.LOOP_ENV, loop)
    proc.run(go())


def test_the_loop_is_uvloop_unless_asked_otherwise_and_a_wrong_name_is_refused(monkeypatch) -> None:
    async def loop_name() -> int:
        return 1 if "uvloop" in type(asyncio.get_running_loop()).__module__ else 0

    monkeypatch.delenv(proc.LOOP_ENV, raising=False)
    assert proc.run(loop_name()) == 1
    monkeypatch.setenv(proc.LOOP_ENV, "asyncio")
    assert proc.run(loop_name()) == 0
    monkeypatch.setenv(proc.LOOP_ENV, "trio")
    coro = loop_name()
    with pytest.raises(SystemExit, match="FLATGUARD_LOOP='trio' is not a loop flatguard runs on"):
        proc.run(coro)
    coro.close()
