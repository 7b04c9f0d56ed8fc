"""Test-suite wall times (issue #11): ``make test-fast`` (unit, in-process) and the integration
suite as ``make test`` runs it (side by side, ``TEST_WORKERS``). ``--quick`` times the unit suite
only. Each runs in a child pytest, so the figure is what a developer waits for, start-up included.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pytest(*args: str) -> tuple[float, int, int]:
    """Wall seconds, passed, failed."""
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                       cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t
    tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", tail)) else 0
    failed = sum(int(m) for m in re.findall(r"(\d+) (?:failed|error)", tail))
    if r.returncode not in (0, 1):
        raise RuntimeError(f"pytest {' '.join(args)} exit {r.returncode}: {tail or r.stderr[-500:]}")
    return wall, passed, failed


def run(quick: bool = False) -> dict[str, float]:
    out: dict[str, float] = {}
    wall, passed, failed = _pytest("tests/unit")
    out |= {"unit_suite_s": wall, "unit_tests": passed, "unit_failed": failed}
    if not quick:
        workers = os.environ.get("TEST_WORKERS", "3")
        wall, passed, failed = _pytest("-n", workers, "--dist", "worksteal", "tests/integration")
        out |= {"integration_suite_s": wall, "integration_tests": passed,
                "integration_failed": failed, "integration_workers": float(workers)}
    return out
