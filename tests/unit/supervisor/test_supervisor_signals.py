"""Signals as Unix expects: SIGHUP stops in order, unless it was ignored when we started (nohup)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from supervisor.lifecycle import stop_signals


@pytest.fixture
def restore_sighup() -> Iterator[None]:
    old = signal.getsignal(signal.SIGHUP)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, old)


def test_sighup_is_an_orderly_stop_by_default(restore_sighup: None) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    assert set(stop_signals()) == {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def test_sighup_ignored_at_start_stays_ignored(restore_sighup: None) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what `nohup flatguard up &` hands us
    assert set(stop_signals()) == {signal.SIGTERM, signal.SIGINT}
