"""sd_notify(3) without libsystemd: READY, WATCHDOG and STOPPING for a ``Type=notify`` unit.

The protocol is one datagram per message on the Unix socket named by ``$NOTIFY_SOCKET`` (a
leading ``@`` means the abstract namespace). Nothing here may ever stop the supervisor: a
missing or broken socket is logged once and the message dropped -- systemd's own watchdog is
what notices a supervisor that stopped pinging, so a lost ping must never raise.

``init()`` reads the variables once and removes them from the environment, like
``sd_notify(unset_environment=1)``: the children inherit the supervisor's environment, and a
child must never speak for the unit (``NotifyAccess=main`` would drop it anyway).
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("flatguard")


class Notifier:
    """One unit's notify socket; ``watchdog()`` is cheap to call on every loop turn."""

    def __init__(self, address: str, watchdog_usec: int = 0) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address
        # Ping at half the period: systemd's own recommendation, and one missed turn of a slow
        # loop still leaves the other half as slack.
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec > 0 else 0.0
        self._next_ping = 0.0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._failed = False

    def send(self, *fields: str) -> bool:
        msg = "\n".join(fields).encode()
        try:
            self._sock.sendto(msg, self.address)
        except OSError as e:
            if not self._failed:  # once: a dead socket must not flood the log every 50 ms
                log.error("sd_notify to %r failed: %s (further failures not logged)",
                          self.address.replace("\0", "@"), e)
            self._failed = True
            return False
        return True

    def watchdog(self, now: float | None = None) -> None:
        if self.watchdog_interval <= 0:
            return
        now = time.monotonic() if now is None else now
        if now >= self._next_ping:
            self._next_ping = now + self.watchdog_interval
            self.send("WATCHDOG=1")

    def close(self) -> None:
        self._sock.close()


_notifier: Notifier | None = None


def init(environ: dict[str, str] | None = None) -> Notifier | None:
    """Read ``NOTIFY_SOCKET``/``WATCHDOG_USEC``/``WATCHDOG_PID`` once and unset them."""
    global _notifier
    env = os.environ if environ is None else environ
    address = env.pop("NOTIFY_SOCKET", "")
    usec_text = env.pop("WATCHDOG_USEC", "")
    wd_pid = env.pop("WATCHDOG_PID", "")
    if not address:
        _notifier = None
        return None
    try:
        usec = int(usec_text) if usec_text else 0
    except ValueError:
        usec = 0
    if wd_pid and wd_pid != str(os.getpid()):
        usec = 0  # the watchdog is someone else's (sd_watchdog_enabled's rule)
    _notifier = Notifier(address, usec)
    return _notifier


def ready(status: str = "") -> None:
    if _notifier is not None:
        _notifier.send("READY=1", *([f"STATUS={status}"] if status else []))


def status(text: str) -> None:
    if _notifier is not None:
        _notifier.send(f"STATUS={text}")


def watchdog() -> None:
    """Call from the supervisor's watch loop on every turn: pings at WatchdogSec/2, and only
    while that loop runs, so a wedged supervisor is restarted by systemd."""
    if _notifier is not None:
        _notifier.watchdog()


def stopping(status: str = "") -> None:
    if _notifier is not None:
        _notifier.send("STOPPING=1", *([f"STATUS={status}"] if status else []))
