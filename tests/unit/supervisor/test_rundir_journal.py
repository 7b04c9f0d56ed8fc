"""The fail-closed journal at start-up (supervisor/rundir.py), in-process: an unusable journal is
moved aside and a fresh one says HALTED (trigger ``journal``); a run that never ended cleanly is
HALTED unverified. That ``up`` then starts HALTED without a trader and sends nothing is the same
path as any HALTED start (tests/integration/test_killswitch.py's restart-and-resume test)."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Iterator

import pytest

from supervisor import rundir
from tests.stack import short_dir
from trader.kernel import runpaths
from trader.kernel.journal import HaltState, Journal


@pytest.fixture
def paths() -> Iterator[runpaths.RunPaths]:
    d = short_dir()
    try:
        yield runpaths.prepare(d / "run")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_a_corrupt_journal_is_kept_aside_and_a_fresh_one_says_halted(
        paths: runpaths.RunPaths, caplog: pytest.LogCaptureFixture) -> None:
    j = Journal(paths.journal)
    j.end_run(j.start_run(1))  # a clean run before
    j.close()
    for ext in ("-wal", "-shm"):
        paths.journal.with_name(paths.journal.name + ext).unlink(missing_ok=True)
    paths.journal.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.CRITICAL):
        j = rundir.open_journal(paths)
    try:
        h = j.halt_state()
        assert h.halted and h.trigger == "journal" and not h.verified_flat
    finally:
        j.close()
    assert "journal unusable, HALTED" in caplog.text and "resume --yes" in caplog.text
    bad = list(paths.root.glob("journal.db.bad-*"))
    assert bad and bad[0].read_bytes().startswith(b"this is not a database")
    with sqlite3.connect(paths.journal) as db:
        assert db.execute("SELECT halted FROM halt").fetchone()[0] == 1


def test_a_run_that_never_ended_is_halted_unverified(paths: runpaths.RunPaths) -> None:
    j = Journal(paths.journal)
    j.start_run(1)  # killed: no end_run
    j.close()
    j = rundir.open_journal(paths)
    try:
        h = j.halt_state()
        assert (h.halted, h.trigger, h.verified_flat) == (True, "unclean_restart", False)
    finally:
        j.close()


def test_an_earlier_halt_is_kept_over_an_unclean_end(paths: runpaths.RunPaths) -> None:
    j = Journal(paths.journal)
    j.set_halt(HaltState(True, "trader exited", "trader_exit", 1.0, True))
    j.start_run(1)
    j.close()
    j = rundir.open_journal(paths)
    try:
        assert j.halt_state().trigger == "trader_exit"
    finally:
        j.close()
