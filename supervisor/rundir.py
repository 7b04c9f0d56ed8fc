"""Owning a run directory at start-up: the single-`up` lock and the fail-closed journal."""

from __future__ import annotations

import fcntl
import logging
import os
import time

from supervisor.errors import StartupError
from trader.kernel.journal import MARKER, HaltState, Journal, JournalTooNew, JournalUnusable
from trader.kernel.runpaths import RunPaths

log = logging.getLogger("flatguard")


def acquire_lock(paths: RunPaths) -> int:
    """An exclusive lock on ``up.lock`` (held for the life of the process) with our pid in it;
    a second ``up`` on the same run directory is refused, naming the first one's pid."""
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StartupError(
            f"another `flatguard up` (pid {other}) is running on {paths.root}; "
            "stop it first or use another --run-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def open_journal(paths: RunPaths, max_bytes: int | None = None,
                 keep_days: float | None = None) -> Journal:
    """The journal, failing closed: an unusable one is moved aside (the evidence is kept) and a
    fresh one says HALTED; a previous run that never ended cleanly is HALTED with its flatten
    unverified, so it is resumed before anything trades. A journal written by a newer flatguard
    is refused (not moved aside): the newer version must read it."""
    try:
        journal = Journal(paths.journal, max_bytes=max_bytes, keep_days=keep_days)
    except JournalTooNew as e:
        raise StartupError(str(e)) from None
    except JournalUnusable as e:
        if paths.journal.exists():
            aside = paths.journal.with_name(f"journal.db.bad-{int(time.time())}")
            paths.journal.rename(aside)
            for ext in ("-wal", "-shm"):
                p = paths.journal.with_name("journal.db" + ext)
                if p.exists():
                    p.rename(aside.with_name(aside.name + ext))
        (paths.root / MARKER).unlink(missing_ok=True)
        journal = Journal(paths.journal, max_bytes=max_bytes, keep_days=keep_days)
        journal.set_halt(HaltState(True, str(e), "journal", time.time(), False))
        log.critical("journal unusable, HALTED (fail closed): %s. Once the account is flat "
                     "and you have inspected it, `flatguard ctl resume --yes` clears it.", e)
    if journal.last_run_unclean() and not journal.halt_state().halted:
        journal.set_halt(HaltState(
            True, "the previous run did not end cleanly (supervisor killed or crashed)",
            "unclean_restart", time.time(), verified_flat=False))
    return journal
