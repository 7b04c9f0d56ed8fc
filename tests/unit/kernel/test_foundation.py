"""Unit tests of the foundation: config validation, wire format, bus sockets, journal, run paths."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import msgpack
import pytest
import zmq
import zmq.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from tests.stack import short_dir
from trader.kernel import bus, config, runpaths, wire
from trader.kernel.journal import HaltState, Journal, JournalUnusable

# --- config -----------------------------------------------------------------------------------


def test_defaults_are_the_builtin_sim_and_demo() -> None:
    cfg = config.load(None)
    assert cfg.exchange.id == "sim" and cfg.strategy.name == "demo"
    assert cfg.metrics.port == 9387 and cfg.killswitch.backoff == 5.0
    assert cfg.hang_timeout <= 1.0  # a hang is detected within 1 s by default


@pytest.mark.parametrize("toml, needle", [
    ('[exchange]\nleverage = "x"', "exchange.leverage must be an integer"),
    ("[exchange]\nleverage = 0", "exchange.leverage = 0 must be > 0"),
    ('[exchange]\nfeed = "carrier-pigeon"', "exchange.feed must be one of"),
    ("[exchange]\nsurprise = 1", "[exchange] unknown key 'surprise'"),
    ("[nonsense]\na = 1", "unknown key 'nonsense'"),
    ("[notify.pager]\nurl = 'x'", "[notify.pager] unknown sink"),
    ("[killswitch]\nrecv_window = 90000", "killswitch.recv_window must be <= 60000"),
    ("[telegram]\nenabled = true", "telegram.allowed_users is empty"),
    ('[control]\ntcp = "tcp://127.0.0.1:9"', "control.tcp needs control.server_key"),
    ("[exchange]\nsymbols = []", "exchange.symbols must name at least one market"),
    ("this is = = not toml", "not valid TOML"),
])
def test_bad_config_names_file_and_key(tmp_path, toml: str, needle: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(toml)
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_config_round_trips_through_json_and_is_frozen(tmp_path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[exchange]\nsymbols = ["BTC/USDT:USDT"]\n[notify.ntfy]\nurl = "http://x"\n'
                 'emergency = true\n[strategy.params]\nnotional = 99\n')
    cfg = config.load(p)
    again = config.loads_json(config.dumps(cfg))
    assert again.exchange == cfg.exchange and again.notify.sinks["ntfy"].emergency
    assert again.strategy.params["notional"] == 99
    with pytest.raises(AttributeError):
        cfg.exchange.leverage = 50  # type: ignore[misc]


# --- wire -------------------------------------------------------------------------------------


def test_wire_round_trip() -> None:
    frames = wire.encode("md.BTC/USDT:USDT", "connector", 7, {"mark": 1.5, "symbol": "x"})
    msg = wire.decode(frames)
    assert (msg.topic, msg.src, msg.seq, msg.data["mark"]) == ("md.BTC/USDT:USDT", "connector", 7, 1.5)


@pytest.mark.parametrize("frames", [
    [b"only-one"],
    [b"t", b"\xc1"],  # never-used msgpack byte
    [b"t", msgpack.packb([1, 2])],
    [b"t", msgpack.packb({"v": 99, "src": "x", "seq": 1, "ts": 1.0, "d": {}})],
    [b"t", msgpack.packb({"v": 1, "src": 5, "seq": 1, "ts": 1.0, "d": {}})],
    [b"t", msgpack.packb({"v": 1, "src": "x", "seq": True, "ts": 1.0, "d": {}})],
    [b"t", msgpack.packb({"v": 1, "src": "x", "seq": 1, "ts": "now", "d": {}})],
    [b"t", msgpack.packb({"v": 1, "src": "x", "seq": 1, "ts": 1.0, "d": []})],
    [b"t" * 1000, msgpack.packb({"v": 1, "src": "x", "seq": 1, "ts": 1.0, "d": {}})],
    [b"t", b"\x00" * (wire.MAX_BODY + 1)],
    [b"\xff\xfe", msgpack.packb({"v": 1, "src": "x", "seq": 1, "ts": 1.0, "d": {}})],
])
def test_wire_rejects_garbage(frames: list[bytes]) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(frames)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.lists(hs.binary(max_size=64), min_size=0, max_size=4))
def test_wire_decode_never_raises_anything_but_wire_error(frames: list[bytes]) -> None:
    try:
        wire.decode(frames)
    except wire.WireError:
        pass


# --- bus --------------------------------------------------------------------------------------


def test_responder_counts_garbage_and_keeps_serving() -> None:
    d = short_dir()
    ep = f"ipc://{d}/r.sock"

    async def main() -> None:
        ctx = zmq.asyncio.Context()
        server = bus.Responder(ctx, ep, "srv")

        async def handler(op: str, args: dict, msg: wire.Message) -> dict:
            if op == "boom":
                raise RuntimeError("handler failed")
            return {"echo": args}

        task = asyncio.get_running_loop().create_task(server.serve(handler))
        raw = ctx.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(ep)
        before = bus.STATS.dropped["malformed"]
        for junk in ([b"x"], [b"t", b"\xc1"], [b"t", b"not msgpack at all"]):
            await raw.send_multipart(junk)
        client = bus.Requester(ctx, ep, "cli")
        assert await client.request("hello", {"a": 1}, timeout=5) == {"echo": {"a": 1}}
        with pytest.raises(bus.RequestError) as e:
            await client.request("boom", {}, timeout=5)
        assert "handler failed" in e.value.message
        assert bus.STATS.dropped["malformed"] - before == 3
        task.cancel()
        client.close()
        raw.close(0)
        server.close()
        ctx.destroy(0)

    asyncio.run(main())


def test_request_to_nobody_times_out_with_unknown_outcome() -> None:
    d = short_dir()
    r = bus.SyncRequester(f"ipc://{d}/nobody.sock", "t")
    with pytest.raises(bus.RequestTimeout) as e:
        r.request("order.create", {}, timeout=0.2)
    assert e.value.kind == "timeout"
    r.close()


def test_publisher_drops_at_hwm_and_counts() -> None:
    d = short_dir()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)  # a subscriber that never reads
    sub.setsockopt(zmq.RCVHWM, 10)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.bind(f"ipc://{d}/e.sock")
    pub = bus.Publisher(ctx, f"ipc://{d}/e.sock", "p")
    pub.sock.setsockopt(zmq.SNDHWM, 10)
    try:
        # Until the subscription reaches the publisher, PUB drops everything: wait for it, so
        # what follows meets the HWMs and not an empty subscription list.
        while not sub.poll(10):
            pub.publish("x", {"probe": True})
        while sub.poll(50):
            sub.recv_multipart()
        before = bus.STATS.dropped["hwm"]
        total = 20_000  # 20 MB: far past both HWMs and the socket buffers
        sent = sum(pub.publish("x", {"i": i, "pad": "x" * 1000}) for i in range(total))
        # PUB drops silently at its HWM (the send succeeds): what matters is that it never
        # blocks.
        assert sent + bus.STATS.dropped["hwm"] - before == total
        received = 0
        while sub.poll(200):  # what got through: the rest was dropped, without blocking
            sub.recv_multipart()
            received += 1
        assert 0 < received < total // 10, received
    finally:
        pub.close()
        sub.close(0)
        ctx.term()


# --- journal ----------------------------------------------------------------------------------


def test_journal_halt_state_is_durable_and_fail_closed(tmp_path) -> None:
    j = Journal(tmp_path / "journal.db")
    assert j.halt_state().halted is False
    j.set_halt(HaltState(True, "test", "command", 1.0, verified_flat=False))
    j.close()
    j2 = Journal(tmp_path / "journal.db")
    h = j2.halt_state()
    assert h.halted and h.trigger == "command" and not h.verified_flat
    j2.close()
    (tmp_path / "journal.db").unlink()
    for ext in ("-wal", "-shm"):
        (tmp_path / f"journal.db{ext}").unlink(missing_ok=True)
    with pytest.raises(JournalUnusable, match="missing"):
        Journal(tmp_path / "journal.db")  # the marker says a previous run had one


def test_corrupt_journal_is_unusable(tmp_path) -> None:
    p = tmp_path / "journal.db"
    p.write_bytes(b"garbage" * 1000)
    with pytest.raises(JournalUnusable, match="corrupt"):
        Journal(p)


def test_journal_orders_fills_audit(tmp_path) -> None:
    j = Journal(tmp_path / "journal.db")
    j.record_intent("c1", "BTC/USDT:USDT", "buy", "limit", 0.01, 100.0, False)
    j.update_order("c1", "open", exchange_id="42")
    assert j.order("c1")["exchange_id"] == "42"
    assert j.record_fill("t1", "c1", "42", "BTC/USDT:USDT", "buy", 0.01, 100.0, 0.01, "USDT", 1.0,
                            venue="sim")
    assert not j.record_fill("t1", "c1", "42", "BTC/USDT:USDT", "buy", 0.01, 100.0, 0.01, "USDT", 1.0,
                            venue="sim")
    j.audit("cli", "me", "kill", [], "ok", True)
    assert j.recent_audit(5)[0]["command"] == "kill"
    with sqlite3.connect(tmp_path / "journal.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- run paths --------------------------------------------------------------------------------


def test_long_socket_paths_are_refused_with_the_fix(tmp_path) -> None:
    long = tmp_path / ("x" * 120)
    with pytest.raises(runpaths.RunDirError, match="shorter --run-dir"):
        runpaths.prepare(long)


def test_run_dir_is_private(tmp_path) -> None:
    d = tmp_path / "rd"
    runpaths.prepare(d)
    assert os.stat(d).st_mode & 0o777 == 0o700


def test_journal_keeps_the_loss_breakers_day(tmp_path) -> None:
    j = Journal(tmp_path / "journal.db")
    assert j.risk_day() is None
    j.set_risk_day(20415, 10_000.0, 10_250.0, False)
    j.set_risk_day(20415, 10_000.0, 10_300.0, True)
    j.close()
    assert Journal(tmp_path / "journal.db").risk_day() == (20415, 10_000.0, 10_300.0, True)
