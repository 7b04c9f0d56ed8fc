"""Alerts from the real stack: a kill switch reaches every emergency sink (local Pushover and
ntfy servers that speak their APIs) through an info flood, `ctl ack` stops the repeats,
/metrics accounts for every notification, and losing the supervisor is itself an emergency.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from tests.fakes.ntfy import FakeNtfy
from tests.fakes.pushover import FakePushover
from tests.fakes.webhook import FakeWebhook
from tests.stack import Sim, Stack, is_flat, wait_for
from trader.kernel import runpaths
from trader.kernel.proc import NotifyClient

pytestmark = pytest.mark.integration

FLOOD = 20_000


class Sinks:
    def __init__(self) -> None:
        self.pushover = FakePushover().start()
        self.ntfy = FakeNtfy().start()
        self.webhook = FakeWebhook().start()

    def close(self) -> None:
        for f in (self.pushover, self.ntfy, self.webhook):
            f.stop()

    def config(self, fast_sinks: bool = False) -> str:
        # fast_sinks: no rate limit, small queues -- so a flood drains and the counts settle
        tune = "queue_size = 100\nrate_per_minute = 1000000\n" if fast_sinks else ""
        return (
            "[notify]\nrepeat_interval = 1.0\n"
            f'[notify.pushover]\napi_url = "{self.pushover.url}"\n'
            'token_env = "FG_TEST_PUSHOVER_TOKEN"\nuser_env = "FG_TEST_PUSHOVER_USER"\n'
            f"emergency = true\n{tune}"
            f'[notify.ntfy]\nurl = "{self.ntfy.topic_url()}"\nemergency = true\n{tune}'
            f'[notify.webhook]\nurl = "{self.webhook.hook_url()}"\n{tune}'
            + (f"[notify.console]\n{tune}" if fast_sinks else ""))

    def env(self) -> dict[str, str]:
        return {"FG_TEST_PUSHOVER_TOKEN": self.pushover.token,
                "FG_TEST_PUSHOVER_USER": self.pushover.user}

    # what each emergency sink got at the critical level
    def pushover_critical(self, title: str) -> list[dict[str, Any]]:
        return [m for m in list(self.pushover.messages)
                if m.get("priority") == "2" and title in m.get("title", "")]

    def ntfy_critical(self, title: str) -> list[dict[str, Any]]:
        return [m for m in list(self.ntfy.messages) if m["priority"] == 5 and title in m["title"]]


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    s = Sinks()
    try:
        yield s
    finally:
        s.close()


FAST = "[supervisor]\nconnector_grace = 3.0\n[killswitch]\nbackoff = 0.5\n"


def make_stack(sim: Sim, stacks: list[Stack], sinks: Sinks, fast_sinks: bool = False) -> Stack:
    st = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n{FAST}{sinks.config(fast_sinks)}',
               env=sinks.env())
    stacks.append(st)
    return st.start()


def trader_pid(st: Stack) -> int:
    return int(st.status()["processes"]["trader"]["pid"])


def test_kill_switch_alerts_every_emergency_sink_and_ack_stops_repeats(
        sim: Sim, stacks: list[Stack], sinks: Sinks) -> None:
    st = make_stack(sim, stacks, sinks)
    # start-up notice: info goes to every sink at its normal priority
    sinks.webhook.wait_for(lambda: any(m["title"] == "flatguard started"
                                       for m in sinks.webhook.received), 30)
    os.kill(trader_pid(st), signal.SIGKILL)
    title = "KILL SWITCH: trader_exit"
    wait_for(lambda: sinks.pushover_critical(title), 30, "the critical alert on Pushover")
    wait_for(lambda: sinks.ntfy_critical(title), 30, "the critical alert on ntfy")
    p = sinks.pushover_critical(title)[0]
    assert int(p["retry"]) >= 30 and int(p["expire"]) > 0  # Pushover repeats it itself
    # the non-emergency webhook gets the first delivery, without repeats
    wait_for(lambda: [m for m in sinks.webhook.received if m["title"] == title], 30,
             "the critical alert on the webhook")
    wait_for(lambda: is_flat(sim.state()) and st.status()["halted"], 60, "flat and halted")

    # not acknowledged: ntfy gets repeats (Pushover repeats on its own, so not re-sent)
    wait_for(lambda: [m for m in sinks.ntfy_critical(title) if "repeat" in m["title"]], 30,
             "a repeat of the unacknowledged alert")
    assert len(sinks.pushover_critical(title)) == 1
    acked = st.ctl_json("ack")["acked"]
    # alerts are acked by key; a kill-switch run's alerts share its run's key prefix
    assert any(k.startswith("killswitch-") and k.endswith("-start") for k in acked), acked
    wait_for(lambda: sinks.pushover.cancelled, 30, "Pushover's own repeats cancelled")
    assert set(sinks.pushover.cancelled) <= set(sinks.pushover.receipts)
    n = len(sinks.ntfy.messages)
    # no more repeats: the notifier repeats every 1 s, so a few seconds prove the absence
    time.sleep(3.5)
    repeats = [m for m in sinks.ntfy.messages[n:] if "repeat" in m["title"]]
    assert not repeats, repeats
    assert st.ctl_json("ack")["acked"] == []


def metric(text: str, name: str, default: float | None = None, **labels: str) -> float:
    """One sample of /metrics; a counter never incremented is absent (``default``)."""
    sel = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name):line.index("}") + 1]))
            if got == labels:
                return float(line.rsplit(" ", 1)[1])
    if default is not None:
        return default
    raise KeyError(f"{name}{{{sel}}} not in /metrics")


def test_info_flood_does_not_stop_the_critical_alert_and_counts_are_exact(
        sim: Sim, stacks: list[Stack], sinks: Sinks) -> None:
    st = make_stack(sim, stacks, sinks, fast_sinks=True)
    ctx = zmq.Context()
    nc = NotifyClient(ctx, runpaths.RunPaths(st.run_dir), "test-flood")
    try:
        for i in range(FLOOD // 2):
            nc.send("info", f"flood {i}", "noise", key=f"flood-{i}")
        os.kill(trader_pid(st), signal.SIGKILL)  # mid-flood
        for i in range(FLOOD // 2, FLOOD):
            nc.send("info", f"flood {i}", "noise", key=f"flood-{i}")
        assert nc.sent + nc.dropped == FLOOD
        title = "KILL SWITCH: trader_exit"
        wait_for(lambda: sinks.pushover_critical(title), 30, "the critical alert on Pushover")
        wait_for(lambda: sinks.ntfy_critical(title), 30, "the critical alert on ntfy")
        # LINGER is 0: closing now would discard what still sits in our socket's buffer
        wait_for(lambda: st.request(st.paths.notifier, "stats")["received"] >= nc.sent, 60,
                 "every accepted notification received by the notifier", 0.2)
    finally:
        nc.close()
        ctx.destroy(0)
    st.ctl_json("ack")  # no more repeats: the counts can settle

    def settled() -> dict[str, Any] | None:
        a = st.request(st.paths.notifier, "stats")
        time.sleep(0.5)
        b = st.request(st.paths.notifier, "stats")
        if a != b or any(s["queued"] for s in b["sinks"].values()):
            return None
        return b

    stats = wait_for(settled, 90, "the notifier's queues drained and counts stable", 0.2)
    assert stats["received"] >= nc.sent  # every accepted send arrived (plus the stack's own)

    def scraped() -> str | None:
        # /metrics learns the notifier's counts from its heartbeats: a beat taken while the last
        # sends were under way can carry the final "published" with an older "sent" (seen under
        # load), so wait until every outcome has caught up with the settled counts
        text = st.metrics()
        ok = all(metric(text, "flatguard_notifications_total", 0.0, sink=k, outcome=o)
                 == float(v[o]) for k, v in stats["sinks"].items()
                 for o in ("published", "sent", "dropped", "failed"))
        return text if ok else None

    text = wait_for(scraped, 30, "/metrics in step with the notifier")
    for sink, s in stats["sinks"].items():
        got = {o: metric(text, "flatguard_notifications_total", 0.0, sink=sink, outcome=o)
               for o in ("published", "sent", "dropped", "failed")}
        assert got == {o: float(s[o]) for o in got}, (sink, got, s)
        assert got["published"] == got["sent"] + got["dropped"] + got["failed"], sink
    for sink in ("webhook", "ntfy", "console"):
        s = stats["sinks"][sink]
        assert s["dropped"] > 0, (sink, s)  # the flood overflowed its bounded queue
        assert metric(text, "flatguard_notifications_dropped_total", sink=sink) == s["dropped"]
        # every notification accepted by the notifier was routed to each info-level sink once
        assert s["published"] >= nc.sent
    # the emergency sinks got the critical alert whatever the flood did to their normal lane
    assert sinks.pushover_critical("KILL SWITCH") and sinks.ntfy_critical("KILL SWITCH")


def pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_supervisor_loss_is_an_emergency_and_every_child_exits(
        sim: Sim, stacks: list[Stack], sinks: Sinks) -> None:
    st = make_stack(sim, stacks, sinks)
    st.remember_pids()
    children = [int(p["pid"]) for p in st.status()["processes"].values() if p.get("pid")]
    assert len(children) >= 4
    assert st.proc is not None
    os.kill(st.proc.pid, signal.SIGKILL)
    st.wait_exit(10)
    own = "[CRITICAL] Supervisor lost"  # the notifier's own alert (not only the trader's notice)
    wait_for(lambda: [m for m in sinks.pushover_critical(own) if m["title"] == own], 30,
             "the notifier's supervisor-lost alert on Pushover")
    wait_for(lambda: [m for m in sinks.ntfy_critical(own) if m["title"] == own], 30,
             "the notifier's supervisor-lost alert on ntfy")
    # the trader's own notice gets out too: the notifier stays a moment for it
    wait_for(lambda: sinks.ntfy_critical("trader flattening itself"), 30, "the trader's notice")
    wait_for(lambda: all(pid_gone(p) for p in children), 60, "every child to exit")
    assert is_flat(sim.state())  # the trader flattened itself before leaving
