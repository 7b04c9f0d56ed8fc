"""sd_notify: the datagrams a Type=notify unit needs, and a real `up` sending them in order."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor import sdnotify
from tests.stack import Stack, short_dir, wait_for


class Listener:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def fields(self) -> list[str]:
        """Each message's first field (READY=1, WATCHDOG=1, STOPPING=1...)."""
        return [m.split("\n", 1)[0] for m in list(self.messages)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def notify_dir() -> Iterator[Path]:
    d = short_dir("fgn")
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def test_notifier_sends_to_path_and_abstract_sockets(notify_dir: Path) -> None:
    for address in (str(notify_dir / "n.sock"), f"@fg-test-{os.getpid()}"):
        lst = Listener(address)
        try:
            env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000", "OTHER": "x"}
            n = sdnotify.init(env)
            assert n is not None and n.watchdog_interval == 0.5
            assert env == {"OTHER": "x"}  # unset: children must not inherit them
            sdnotify.ready("state=RUNNING")
            n.watchdog(now=100.0)
            n.watchdog(now=100.2)  # within WatchdogSec/2 of the last ping: nothing
            n.watchdog(now=100.6)
            sdnotify.stopping()
            wait_for(lambda lst=lst: len(lst.messages) >= 4, 10, "four datagrams")
            assert lst.messages[0] == "READY=1\nSTATUS=state=RUNNING"
            assert lst.fields() == ["READY=1", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]
            n.close()
        finally:
            lst.close()
            sdnotify.init({})


def test_no_socket_is_a_no_op_and_a_dead_socket_never_raises(notify_dir: Path) -> None:
    assert sdnotify.init({}) is None
    sdnotify.ready()
    sdnotify.watchdog()
    n = sdnotify.init({"NOTIFY_SOCKET": str(notify_dir / "gone.sock"), "WATCHDOG_USEC": "2"})
    assert n is not None
    assert n.send("READY=1") is False
    n.watchdog()
    sdnotify.init({})


def test_watchdog_of_another_pid_is_not_ours(notify_dir: Path) -> None:
    n = sdnotify.init({"NOTIFY_SOCKET": str(notify_dir / "x.sock"), "WATCHDOG_USEC": "1000000",
                       "WATCHDOG_PID": str(os.getpid() + 1)})
    assert n is not None and n.watchdog_interval == 0
    sdnotify.init({})


@pytest.mark.integration
def test_up_sends_ready_watchdog_stopping_in_order(notify_dir: Path,
                                                   stacks: list[Stack]) -> None:
    """A real `flatguard up` under a fake systemd: READY once the stack is ready, WATCHDOG from
    the watch loop every WatchdogSec/2, STOPPING when the orderly stop begins; children never
    see NOTIFY_SOCKET."""
    address = str(notify_dir / "notify.sock")
    lst = Listener(address)
    try:
        st = Stack("", env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
        stacks.append(st)
        st.start()
        wait_for(lambda: lst.fields().count("WATCHDOG=1") >= 3, 30, "watchdog pings")
        trader_pid = st.status()["processes"]["trader"]["pid"]
        environ = Path(f"/proc/{trader_pid}/environ").read_bytes().split(b"\0")
        assert not any(v.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_")) for v in environ)
        assert st.stop() == 0, st.output()
        fields = lst.fields()
        assert fields[0] == "READY=1", fields
        assert fields.count("READY=1") == 1 and fields.count("STOPPING=1") == 1, fields
        stop_at = fields.index("STOPPING=1")
        assert set(fields[1:stop_at]) == {"WATCHDOG=1"}, fields
        assert stop_at == len(fields) - 1, fields  # the watch loop has ended: no more pings
        assert lst.messages[0].startswith("READY=1\nSTATUS=state="), lst.messages[0]
    finally:
        lst.close()
