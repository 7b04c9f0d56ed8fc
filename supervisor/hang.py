"""Is a child whose heartbeat is late hung, or only starved? Decided from evidence.

The plain rule -- a beat ``bound`` (= liveness x interval) late is a hang -- kills a process that
merely waited for a CPU on a loaded machine, and a false kill market-closes every position. So a
late beat is judged with the kernel's view of the child's *main thread* (the one running the
working loop the beats come from):

* ``/proc/<pid>/task/<pid>/stat``, the state letter: R running/runnable, S sleeping, D
  uninterruptible (disk) sleep, T/t stopped or traced, Z/X dead;
* ``/proc/<pid>/task/<pid>/schedstat``: ns on a CPU, ns *waiting on a run queue*, times run.

Main thread only, not the sum over ``task/*``: background threads (libzmq's I/O and reaper
threads, a resolver pool) may run or queue while the loop itself is blocked, and counting their
waits would dress a blocked loop up as a starved one.

Rules, in order (``age`` = time since the last beat, minus any time the supervisor itself was
not looking -- its own stall is no evidence against the child):

1. ``age <= bound``: OK.
2. No /proc view (not Linux, hidepid, gone): HUNG, the plain rule.
3. Stopped (T/t): HUNG at the bound -- a SIGSTOPped trader must be flat in about a second.
   Dead (Z/X) likewise (the exit watcher normally acts first).
4. ``age > cap`` (CAP_FACTOR x bound): HUNG whatever the evidence, so a real hang under load
   is still caught.
5. Start-up grace: until the first beat that shows loop progress after ``ready`` -> STARVED.
6. Late and on a CPU for SPIN_CPU x bound (0.4 s) since the last beat: HUNG (spinning). A
   healthy turn of the loop costs milliseconds (measured: the trader ~15 ms CPU/s at 10
   turns/s), so this is a loop that does not return, even if it also waited for the CPU.
   Without this a spinner under load was caught only at 1.0-1.3 s, its waits credited to it.
7. Run-queue wait since the last beat is not held against it: if ``age - runq_wait <= bound``,
   the beat is late only because the loop could not get a CPU -> STARVED (extended).
8. Runnable (R) but on a CPU for less than SPIN_SHARE of the rest: it is waiting for a CPU
   *now* -> STARVED. schedstat adds a wait to ``runq_wait`` only when the wait ends (the task
   gets a CPU), so a wait in progress shows as R with the CPU time standing still.
9. D state (waiting on I/O, a slow disk): STARVED -- it will return; the cap still holds.
10. Otherwise HUNG: asleep with no run-queue wait to explain the delay (a blocked loop: the
   ``stuck`` strategy sleeps in ``on_tick``) or runnable and on a CPU most of its own time since
   the last beat with no beat (a spinning loop).

Measured here (2 cores, kernel 6.18; a probe over 1 s windows and a 5 ms sampler of a running
stack): a healthy loop (~10 turns/s) uses ~15 ms CPU/s and waits 5-120 ms/s on the run queue
depending on load; a spinning loop alone gets ~0.95 s CPU/s, with two CPU hogs ~0.2 s CPU and
~0.8 s run-queue wait per second; a blocked (sleeping) or SIGSTOPped process gets 0 CPU and no
run-queue wait. A process caught waiting (seen by the sampler as R, CPU time not moving for
0.17 s) had its run-queue wait grow by 0.14 s only once it ran again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

CAP_FACTOR = 4.0  # x bound: the longest a starved process is given (0.8 s -> 3.2 s by default)
SPIN_SHARE = 0.5  # runnable and on a CPU this share of its own time since the last beat: spinning
SPIN_CPU = 0.5  # x bound of CPU since the last beat, and late: spinning, however long it waited
STOPPED = frozenset("Tt")
DEAD = frozenset("ZX")

Reader = Callable[[str], str]  # path -> file text; raises OSError when unreadable


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


class Verdict(enum.StrEnum):
    OK = "ok"
    STARVED = "starved"
    HUNG = "hung"


@dataclass(frozen=True)
class View:
    """The kernel's view of one thread at one moment."""

    state: str
    cpu_ns: int
    runq_ns: int


def parse_state(stat: str) -> str:
    # comm (in parentheses) may itself contain spaces and ')': the state follows the last ')'.
    return stat[stat.rindex(")") + 2]


def parse_schedstat(text: str) -> tuple[int, int]:
    cpu, runq, _slices = text.split()
    return int(cpu), int(runq)


def read_view(pid: int, read: Reader = read_text) -> View | None:
    """The main thread's state and schedstat, or None when /proc cannot tell."""
    base = f"/proc/{pid}/task/{pid}"
    try:
        state = parse_state(read(f"{base}/stat"))
        cpu, runq = parse_schedstat(read(f"{base}/schedstat"))
    except (OSError, ValueError, IndexError):
        return None
    return View(state, cpu, runq)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    age: float  # s since the last beat, the supervisor's own stalls taken out
    limit: float  # the bound it was judged by: ``bound``, or the cap once that is passed
    evidence: str  # e.g. "state=S runq_wait=0.01s cpu=0.00s: asleep, no loop progress"
    changed: bool = False  # the verdict differs from the previous assessment's

    @property
    def message(self) -> str:
        return f"no heartbeat for {self.age:.2f} s (limit {self.limit:g} s); {self.evidence}"


class Judge:
    """Judges one child process (one pid) from its beats and /proc. Pure: ``now`` and the
    /proc reader are given, so it is tested with a fake clock and fake /proc texts."""

    def __init__(self, pid: int, bound: float, tick: float, cap_factor: float = CAP_FACTOR,
                 read: Reader = read_text) -> None:
        self.pid = pid
        self.bound = bound
        self.cap = bound * cap_factor
        self.tick = tick  # the supervisor's check interval: a longer gap is its own stall
        self.read = read
        self.beat_at: float | None = None
        self.base: View | None = None  # /proc at (just after) the last beat
        self.first_loop = 0  # first positive loop counter seen (the beat sent with ``ready``)
        self.working = False  # a beat with loop progress after that: start-up grace is over
        self.blind = 0.0  # s the supervisor stalled since the last beat
        self.last_check: float | None = None
        self.verdict = Verdict.OK
        self.peak = 0.0  # the longest age seen during the current extension

    def _beat(self, at: float, loop: int) -> None:
        self.beat_at, self.blind = at, 0.0
        self.base = read_view(self.pid, self.read)
        if loop > 0 and not self.first_loop:
            self.first_loop = loop
        elif self.first_loop and loop > self.first_loop:
            self.working = True

    def assess(self, now: float, beat_at: float, loop: int) -> Decision:
        """Called on every supervisor check with the child's latest beat (time, loop count)."""
        if self.last_check is not None:  # a gap of more than one extra tick is our own stall
            self.blind += max(0.0, now - self.last_check - 2 * self.tick)
        self.last_check = now
        if beat_at != self.beat_at:
            self._beat(beat_at, loop)
        age = max(0.0, now - beat_at - self.blind)
        d = self._decide(age)
        ev = d.evidence
        if d.verdict is Verdict.STARVED:
            self.peak = max(self.peak, age)
        elif self.verdict is Verdict.STARVED and d.verdict is Verdict.OK:
            ev = f"beat again after {self.peak:.2f} s late"  # how close the call was
            self.peak = 0.0
        d = Decision(d.verdict, d.age, d.limit, ev, changed=d.verdict != self.verdict)
        self.verdict = d.verdict
        return d

    def _decide(self, age: float) -> Decision:
        if age <= self.bound:
            return Decision(Verdict.OK, age, self.bound, "")
        now = read_view(self.pid, self.read)
        if now is None:
            return Decision(Verdict.HUNG, age, self.bound, "no /proc evidence")
        cpu = runq = 0.0
        if self.base is not None:
            cpu = max(0, now.cpu_ns - self.base.cpu_ns) / 1e9
            runq = max(0, now.runq_ns - self.base.runq_ns) / 1e9
        ev = f"state={now.state} runq_wait={runq:.2f}s cpu={cpu:.2f}s"

        def hung(why: str, limit: float | None = None) -> Decision:
            return Decision(Verdict.HUNG, age, limit or self.bound, f"{ev}: {why}")

        def starved(why: str) -> Decision:
            return Decision(Verdict.STARVED, age, self.bound, f"{ev}: {why}")

        if now.state in STOPPED:
            return hung("stopped")
        if now.state in DEAD:
            return hung("exited")
        if age > self.cap:
            return hung("still late at the cap for a starved process", self.cap)
        if not self.working:
            return starved("start-up grace (no working-loop beat yet)")
        if cpu >= SPIN_CPU * self.bound:  # a turn costs ms: this is a loop that does not return
            return hung("on a CPU with no loop progress (spinning)")
        if age - runq <= self.bound:
            return starved("waited on the run queue since the last beat")
        own = age - runq  # the time it could have run: on a CPU, asleep, or in a wait not ended
        if now.state == "R" and cpu < SPIN_SHARE * own:
            # schedstat adds a wait only when it ends: runnable with little CPU is waiting now.
            return starved("runnable but not running: waiting for a CPU now")
        if now.state == "D":
            return starved("in uninterruptible I/O wait")
        if now.state == "R":
            return hung("on a CPU with no loop progress (spinning)")
        return hung("asleep with no loop progress")
