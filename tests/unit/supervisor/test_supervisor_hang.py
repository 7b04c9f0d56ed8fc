"""Hang or starved? supervisor/hang.py decides from beats and /proc; here with a fake clock (the
``now`` passed in) and fake /proc texts, so every case is exact and takes microseconds."""

from __future__ import annotations

import os

import pytest

from supervisor import hang
from supervisor.hang import Judge, Verdict

PID = 4242
BOUND = 0.8  # 0.2 s x 4, the defaults
TICK = 0.05


class FakeProc:
    """/proc/<PID>/task/<PID>/{stat,schedstat} for one thread whose numbers a test sets."""

    def __init__(self) -> None:
        self.state = "S"
        self.cpu = 0.0  # s
        self.runq = 0.0  # s
        self.gone = False

    def set(self, state: str | None = None, cpu: float = 0.0, runq: float = 0.0) -> None:
        """Move the counters on by ``cpu`` and ``runq`` seconds."""
        self.state = state or self.state
        self.cpu += cpu
        self.runq += runq

    def read(self, path: str) -> str:
        if self.gone:
            raise FileNotFoundError(path)
        base = f"/proc/{PID}/task/{PID}/"
        if path == base + "stat":  # a comm with ") " in it: the state is after the last ')'
            return f"{PID} (python) x) {self.state} 1 {PID} {PID} 0 -1 4194560 0 0 0 0 1 2"
        if path == base + "schedstat":
            return f"{round(self.cpu * 1e9)} {round(self.runq * 1e9)} 17\n"
        raise FileNotFoundError(path)


@pytest.fixture
def proc() -> FakeProc:
    return FakeProc()


def judge(proc: FakeProc) -> Judge:
    return Judge(PID, BOUND, TICK, read=proc.read)


def at(j: Judge, t: float, beat_at: float, loop: int) -> hang.Decision:
    """Assess at every tick up to ``t``, as the supervisor's watch loop does (a jump in time
    between two assessments would be a stall of the supervisor); the verdict at ``t``."""
    last = j.last_check if j.last_check is not None else t
    while last + TICK < t - 1e-9:
        last = round(last + TICK, 6)
        j.assess(last, beat_at, loop)
    return j.assess(t, beat_at, loop)


def working(proc: FakeProc) -> Judge:
    """A judge that has seen the ready beat (loop 1) and a working-loop beat at t=10 (loop 9)."""
    j = judge(proc)
    assert at(j, 9.8, 9.8, 1).verdict is Verdict.OK
    assert at(j, 10.0, 10.0, 9).verdict is Verdict.OK
    assert j.working
    return j


def test_on_time_is_ok_without_reading_proc(proc: FakeProc) -> None:
    j = working(proc)
    proc.gone = True  # a beat in time needs no evidence
    d = at(j, 10.79, 10.0, 9)
    assert d.verdict is Verdict.OK and d.limit == BOUND


def test_stopped_is_hung_at_the_bound(proc: FakeProc) -> None:
    j = working(proc)
    proc.set("T")
    d = at(j, 10.81, 10.0, 9)
    assert d.verdict is Verdict.HUNG
    assert d.message.startswith("no heartbeat for 0.81 s (limit 0.8 s); state=T")
    assert "stopped" in d.message


def test_stopped_during_start_up_grace_is_hung(proc: FakeProc) -> None:
    j = judge(proc)
    at(j, 9.8, 9.8, 1)  # only the beat sent with ready: still in grace
    proc.set("t")  # traced counts as stopped
    assert at(j, 10.7, 9.8, 1).verdict is Verdict.HUNG


def test_asleep_with_no_run_queue_wait_is_hung(proc: FakeProc) -> None:
    """A blocked loop (the ``stuck`` strategy: time.sleep in on_tick)."""
    j = working(proc)
    proc.set("S", cpu=0.003, runq=0.001)
    d = at(j, 10.81, 10.0, 9)
    assert d.verdict is Verdict.HUNG
    assert "state=S runq_wait=0.00s cpu=0.00s" in d.message and "asleep" in d.message


def test_spinning_with_no_loop_progress_is_hung(proc: FakeProc) -> None:
    j = working(proc)
    proc.set("R", cpu=0.78, runq=0.02)
    d = at(j, 10.81, 10.0, 9)
    assert d.verdict is Verdict.HUNG
    assert "state=R" in d.message and "spinning" in d.message


def test_spinning_under_load_is_hung_once_it_had_half_the_bound_of_cpu(proc: FakeProc) -> None:
    """Two CPU hogs: a spinner gets ~0.2 s CPU and ~0.8 s run-queue wait per second (measured).
    Its waits would explain the delay, but a loop turn costs milliseconds: 0.4 s of CPU with no
    beat is a loop that does not return."""
    j = working(proc)
    proc.set("R", cpu=0.2, runq=0.8)
    assert at(j, 11.0, 10.0, 9).verdict is Verdict.STARVED
    proc.set("R", cpu=0.15, runq=0.45)
    assert at(j, 11.6, 10.0, 9).verdict is Verdict.STARVED  # 0.35 s of CPU so far
    proc.set("R", cpu=0.06, runq=0.04)
    d = at(j, 11.7, 10.0, 9)
    assert d.verdict is Verdict.HUNG and "spinning" in d.message and "cpu=0.41s" in d.message


def test_spinning_seen_in_a_real_run(proc: FakeProc) -> None:
    """The figures of a spinning strategy with two hogs running (before SPIN_CPU it was caught
    only 1.33 s after its last beat, its run-queue wait credited to it)."""
    j = working(proc)
    proc.set("R", cpu=0.41, runq=0.30)
    d = at(j, 10.82, 10.0, 9)
    assert d.verdict is Verdict.HUNG and "spinning" in d.message


def test_starved_gets_an_extension_then_recovers(proc: FakeProc) -> None:
    """The false kill of issue 13: 0.88 s late on a loaded box, having waited for a CPU."""
    j = working(proc)
    assert at(j, 10.75, 10.0, 9).verdict is Verdict.OK
    proc.set("R", cpu=0.01, runq=0.31)
    d = j.assess(10.82, 10.0, 9)
    assert d.verdict is Verdict.STARVED and d.changed  # the first late tick: the one logged
    d = j.assess(10.88, 10.0, 9)
    assert d.verdict is Verdict.STARVED and not d.changed
    assert d.message.startswith("no heartbeat for 0.88 s (limit 0.8 s); state=R")
    assert j.cap == pytest.approx(BOUND * hang.CAP_FACTOR)
    assert "runq_wait=0.31s" in d.message and "run queue" in d.message
    d = at(j, 10.93, 10.0, 9)
    assert d.verdict is Verdict.STARVED and not d.changed  # logged once per episode
    proc.set("S", cpu=0.002)
    d = at(j, 10.98, 10.95, 14)  # the beat came
    assert d.verdict is Verdict.OK and d.changed
    assert d.evidence == "beat again after 0.93 s late"  # how close a call it was


def test_runnable_and_waiting_for_a_cpu_now_is_starved(proc: FakeProc) -> None:
    """schedstat adds a run-queue wait only when it ends: a wait in progress is R with the CPU
    time standing still (measured: R for 0.17 s, then run-queue wait +0.14 s at once)."""
    j = working(proc)
    proc.set("R", cpu=0.002, runq=0.01)
    d = at(j, 10.85, 10.0, 9)
    assert d.verdict is Verdict.STARVED and "waiting for a CPU now" in d.message
    proc.set("S", cpu=0.001)  # it ran briefly and blocked: no longer explained
    assert at(j, 10.9, 10.0, 9).verdict is Verdict.HUNG


def test_the_extension_is_only_as_long_as_the_wait_it_explains(proc: FakeProc) -> None:
    """Starved for 0.3 s, then blocked: hung once the time it could have run exceeds the bound."""
    j = working(proc)
    proc.set("S", cpu=0.01, runq=0.3)
    assert at(j, 10.9, 10.0, 9).verdict is Verdict.STARVED
    assert at(j, 11.1, 10.0, 9).verdict is Verdict.STARVED  # 1.1 - 0.3 = 0.8
    d = at(j, 11.15, 10.0, 9)
    assert d.verdict is Verdict.HUNG and "asleep" in d.message


def test_hard_cap_catches_a_hang_under_any_load(proc: FakeProc) -> None:
    j = working(proc)
    cap = BOUND * hang.CAP_FACTOR
    t = 10.0
    while t < 10.0 + cap - 0.1:  # waits on the run queue all the time: looks starved
        t = round(t + 0.1, 6)
        proc.set("R", runq=0.1)
        assert at(j, t, 10.0, 9).verdict is not Verdict.HUNG, t
    assert j.verdict is Verdict.STARVED
    proc.set("R", runq=0.15)
    d = at(j, 10.0 + cap + 0.05, 10.0, 9)
    assert d.verdict is Verdict.HUNG
    assert f"(limit {cap:g} s)" in d.message and "cap" in d.message


def test_start_up_grace_until_a_working_loop_beat(proc: FakeProc) -> None:
    j = judge(proc)
    assert at(j, 5.0, 5.0, 0).verdict is Verdict.OK  # ready: loop counter not sent yet
    assert at(j, 5.05, 5.05, 1).verdict is Verdict.OK  # the beat sent with ready
    d = at(j, 6.0, 5.05, 1)  # asleep, but the working loop has not beaten yet
    assert d.verdict is Verdict.STARVED and "grace" in d.message
    assert at(j, 6.05, 6.05, 40).verdict is Verdict.OK  # the working loop beats
    assert at(j, 6.9, 6.05, 40).verdict is Verdict.HUNG  # no grace any more


def test_grace_is_capped(proc: FakeProc) -> None:
    j = judge(proc)
    at(j, 5.0, 5.0, 1)
    assert at(j, 5.0 + BOUND * hang.CAP_FACTOR + 0.05, 5.0, 1).verdict is Verdict.HUNG


def test_uninterruptible_io_wait_is_extended(proc: FakeProc) -> None:
    j = working(proc)
    proc.set("D")
    d = at(j, 10.9, 10.0, 9)
    assert d.verdict is Verdict.STARVED and "I/O" in d.message


def test_supervisor_stall_is_not_held_against_the_child(proc: FakeProc) -> None:
    """The supervisor itself did not run for 0.7 s: the beats sent meanwhile wait in its socket."""
    j = working(proc)
    at(j, 10.3, 10.0, 9)
    d = j.assess(11.0, 10.0, 9)  # 0.7 s since the last check, 0.6 s of it a stall
    assert d.verdict is Verdict.OK and d.age == pytest.approx(0.4)
    assert at(j, 11.05, 11.02, 12).verdict is Verdict.OK  # its beat is read next tick


def test_regular_ticks_are_no_stall(proc: FakeProc) -> None:
    j = working(proc)
    d = at(j, 10.85, 10.0, 9)
    assert d.verdict is Verdict.HUNG and d.age == pytest.approx(0.85)


def test_dead_or_unreadable_is_hung_at_the_bound(proc: FakeProc) -> None:
    j = working(proc)
    proc.set("Z")
    assert "exited" in at(j, 10.81, 10.0, 9).message
    proc.gone = True
    d = at(j, 10.86, 10.0, 9)
    assert d.verdict is Verdict.HUNG and "no /proc evidence" in d.message


def test_reads_this_process_main_thread() -> None:
    v = hang.read_view(os.getpid())
    assert v is not None and v.state == "R" and v.cpu_ns > 0
    assert hang.read_view(2**22 + 1) is None  # above pid_max: no such process


def test_parse_helpers() -> None:
    assert hang.parse_state("7 (a (b) c) D 1 2") == "D"
    assert hang.parse_schedstat("123 456 7\n") == (123, 456)
