"""The real notifier process (``python -m notifier --run-dir D``) on real sockets and fakes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.fakes.ntfy import FakeNtfy
from tests.fakes.telegram import FakeTelegram
from tests.fakes.webhook import FakeWebhook
from trader.kernel import bus, config, runpaths, wire
from trader.kernel.proc import NotifyClient

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
FAST = {"rate_per_minute": 100_000, "backoff": 0.05, "retries": 1, "timeout": 5.0}


def wait(pred: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (v := pred()):
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.02)
    return v


class Proxy:
    """The event bus's XSUB/XPUB proxy (the supervisor owns the real one)."""

    def __init__(self, ctx: zmq.Context[Any], paths: runpaths.RunPaths) -> None:
        self.ctx = ctx
        self.xsub, self.xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
        self.xsub.bind(paths.events_in)
        self.xpub.bind(paths.events_out)
        self.ctl = ctx.socket(zmq.PAIR)
        self.ctl.bind("inproc://proxy-ctl")
        peer = ctx.socket(zmq.PAIR)
        peer.connect("inproc://proxy-ctl")
        self._peer = peer
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        zmq.proxy_steerable(self.xsub, self.xpub, None, self._peer)

    def stop(self) -> None:
        self.ctl.send(b"TERMINATE")
        self.thread.join(5)
        for s in (self.xsub, self.xpub, self.ctl, self._peer):
            s.close(0)


class NotifierStack:
    def __init__(self, notify: dict[str, Any], telegram: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fg", dir="/tmp"))
        self.paths = runpaths.prepare(self.dir)
        self.ctx = zmq.Context()
        self.proxy = Proxy(self.ctx, self.paths)
        self.sup = self.ctx.socket(zmq.ROUTER)
        self.sup.setsockopt(zmq.LINGER, 0)
        self.sup.bind(self.paths.supervisor)
        data: dict[str, Any] = {"notify": notify, "supervisor": {"heartbeat_interval": 0.1}}
        if telegram:
            data["telegram"] = telegram
        cfg = config.from_mapping(data, "test.toml")
        self.paths.config_json.write_text(config.dumps(cfg))
        self.log = open(self.dir / "notifier.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "notifier", "--run-dir", str(self.dir)], cwd=ROOT,
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self._req: bus.SyncRequester | None = None

    def ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"notifier exited: {self.output()}"
            if self.sup.poll(100):
                frames = self.sup.recv_multipart()
                if wire.decode(frames[1:]).topic == "ready":
                    return
        raise AssertionError(f"notifier not ready: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.dir / "notifier.log").read_text(errors="replace")

    def request(self, op: str, args: dict[str, Any] | None = None) -> Any:
        if self._req is None:
            self._req = bus.SyncRequester(self.paths.notifier, "test", self.ctx)
        return self._req.request(op, args, timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def close(self) -> None:
        self.stop()
        if self._req is not None:
            self._req.close()
        self.sup.close(0)
        self.proxy.stop()
        self.ctx.term()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def nstacks() -> Iterator[list[NotifierStack]]:
    made: list[NotifierStack] = []
    yield made
    for s in made:
        s.close()


def test_info_flood_does_not_delay_critical_and_counts_are_exact(nstacks: list[NotifierStack]) -> None:
    with FakeTelegram() as tg, FakeNtfy() as nt, FakeWebhook() as wh:
        st = NotifierStack({"dedup_window": 0,
                    "telegram": {"emergency": True, "queue_size": 50},
                    "ntfy": {"url": nt.topic_url(), "emergency": True, "queue_size": 100, **FAST},
                    "webhook": {"url": wh.hook_url(), "queue_size": 100, **FAST}},
                   {"enabled": True, "chat_id": 42, "allowed_users": [42], "api_url": tg.url},
                   {"FLATGUARD_TELEGRAM_TOKEN": tg.token})
        nstacks.append(st)
        st.ready()
        client = NotifyClient(st.ctx, st.paths, "test")
        for i in range(20_000):
            client.send("info", f"tick {i}", "noise", key=f"k{i}")
        assert client.send("critical", "KILL SWITCH", "flattening all positions", "kill")
        wait(lambda: "[CRITICAL] KILL SWITCH" in {m["title"] for m in nt.messages}, what="ntfy")
        wait(lambda: any("KILL SWITCH" in t for t in tg.texts(42)), what="telegram")
        assert client.sent + client.dropped == 20_001
        stats = wait(lambda: (s := st.request("stats"))["received"] == client.sent and s)
        assert stats["malformed"] == 0
        for name, c in stats["sinks"].items():
            assert c["published"] == c["sent"] + c["dropped"] + c["failed"] + c["queued"], name
        assert stats["sinks"]["webhook"]["dropped"] > 0  # bounded: the flood was shed
        assert [a["key"] for a in stats["alerts"]] == ["kill"]
        assert st.request("ack", {})["acked"] == ["kill"]
        client.close()
        assert st.stop() == 0
        assert tg.token not in st.output()


def test_threshold_alert_digest_and_ack_from_events(nstacks: list[NotifierStack]) -> None:
    with FakeWebhook() as wh, FakeNtfy() as nt:
        st = NotifierStack({"repeat_interval": 0.3, "equity_change": 0.02,
                    "webhook": {"url": wh.hook_url(), **FAST},
                    "ntfy": {"url": nt.topic_url(), "emergency": True, **FAST}})
        nstacks.append(st)
        st.ready()
        pub = bus.Publisher(st.ctx, st.paths.events_in, "connector")

        def account(eq: float) -> None:
            pub.publish("account", {"equity": eq, "balance": eq, "confirmed": time.time(),
                                    "source": "rest", "open_orders": [], "positions": [
                                        {"symbol": "BTC/USDT:USDT", "notional": 500.0}]})

        def joined() -> bool:  # slow joiner: repeat the baseline until the notifier has it
            account(1000.0)
            return st.request("stats")["events"] > 0

        wait(joined, what="subscription")
        account(1030.0)
        wait(lambda: any(r["title"] == "Equity +3.0%" for r in wh.received), what="alert")
        digest = st.request("digest")
        assert "equity 1,030.00" in digest["text"]
        wait(lambda: any(r["title"].startswith("Daily digest") for r in wh.received))
        client = NotifyClient(st.ctx, st.paths, "supervisor")
        client.send("critical", "HALTED", "exchange error -2015", key="halt")
        wait(lambda: sum(m["title"].startswith("[CRITICAL] HALTED [repeat")
                         for m in nt.messages) >= 2, what="repeats")
        assert st.request("ack", {"key": "halt"})["acked"] == ["halt"]
        assert st.request("stats")["alerts"] == []
        with pytest.raises(bus.RequestError, match="unknown op"):
            st.request("bogus")
        client.close()
        pub.close()
        assert st.stop() == 0


def test_bad_sink_config_is_a_clear_startup_error(nstacks: list[NotifierStack]) -> None:
    st = NotifierStack({"pushover": {"token_env": "FG_TEST_UNSET_T", "user_env": "FG_TEST_UNSET_U",
                             "emergency": True}})
    nstacks.append(st)
    assert st.proc.wait(30) == 78  # EX_CONFIG: a refusal, never restarted
    assert "[notify.pushover] token_env: environment variable FG_TEST_UNSET_T is not set" \
        in st.output()
