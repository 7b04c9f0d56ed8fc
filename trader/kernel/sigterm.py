"""SIGTERM obeyed from the supervisor, not from whoever signals the whole stack.

An orderly stop has an order: the trader first, then the flatten, the connector, and the notifier
last so that "stopped" (or "NOT verified") reaches a person. A SIGTERM sent to every process at
once -- systemd's default ``KillMode=control-group``, ``kill -- -PGID``, ``pkill -f flatguard`` --
would make each child exit on its own, the notifier first. So a child exits on SIGTERM only when
the signal comes *from its parent* (the supervisor stopping it in order: ``Child.stop``) or when
the parent is gone (nobody will stop it in order any more). Any other SIGTERM while the
supervisor lives is logged and left to the supervisor, which gets the same signal and stops
everything in order; a process that must die regardless still has SIGKILL (the supervisor's own
fallback after its stop timeout, systemd's after ``TimeoutStopSec``).

The sender's pid is only known from ``siginfo``: SIGTERM is blocked in every thread (``block()``
before the first thread exists, so all later threads inherit the mask) and one thread takes it
with ``sigwaitinfo``; the decision is made on the event loop (handlers only enqueue).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable

log = logging.getLogger("flatguard")


def block() -> None:
    """Call first thing in the process, before any thread (zmq's I/O threads) is started."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def obeyed(sender: int, parent: int) -> bool:
    """Stop on this SIGTERM? From the parent, or once the parent is gone (re-parented)."""
    return sender == parent or os.getppid() != parent


def install(stop: Callable[[], None], parent: int | None = None) -> None:
    """Take SIGTERM with its sender's pid; ``stop()`` runs on the loop when it is obeyed."""
    block()  # (again: harmless, and right even if the caller forgot)
    loop = asyncio.get_running_loop()
    parent = os.getppid() if parent is None else parent

    def decide(sender: int) -> None:
        if obeyed(sender, parent):
            stop()
            return
        log.warning("event=sigterm_deferred sender_pid=%d supervisor_pid=%d note=%r", sender,
                    parent, "the supervisor stops this process in order (signal the "
                    "supervisor; SIGKILL still works)")

    def wait() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            try:
                loop.call_soon_threadsafe(decide, info.si_pid)
            except RuntimeError:  # the loop is closed: the process is on its way out
                return

    threading.Thread(target=wait, name="sigterm", daemon=True).start()
