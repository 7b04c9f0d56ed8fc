"""An exchange id without a venue module is refused by name, with the supported list: by ``up``
before anything starts (exit 2), and by the connector itself if it is ever reached (exit 78)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from supervisor import preflight
from tests.connector_harness import ConnectorProc, SimThread, wait_for
from tests.stack import FLATGUARD, ROOT
from trader.kernel import config

pytestmark = pytest.mark.integration

KEYS = {"FLATGUARD_API_KEY": "k", "FLATGUARD_API_SECRET": "s"}


@pytest.mark.parametrize("exchange_id, what", [
    ("okx", "has no venue module in flatguard"),  # a real ccxt id
    ("notanexchange", "is not a ccxt exchange id"),
])
def test_preflight_names_the_id_and_the_supported_venues(tmp_path: Path, exchange_id: str,
                                                         what: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(f'[metrics]\nport = 0\n[exchange]\nid = "{exchange_id}"\n')
    (line,) = preflight.check(config.load(p), KEYS)
    assert line.startswith(f"{p}: exchange.id = {exchange_id!r} {what}")
    assert "supported venues: binanceusdm, sim" in line


def test_up_with_an_unsupported_venue_exits_2_before_anything_starts(tmp_path: Path) -> None:
    cfg, run_dir = tmp_path / "c.toml", tmp_path / "run"
    cfg.write_text('[metrics]\nport = 0\n[exchange]\nid = "okx"\n')
    r = subprocess.run([*FLATGUARD, "up", "--config", str(cfg), "--run-dir", str(run_dir)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **KEYS})
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {cfg}: exchange.id = 'okx' has no venue module"), line
    assert "supported venues: binanceusdm, sim" in line
    assert "Traceback" not in r.stderr and not run_dir.exists()


def test_the_connector_refuses_an_unsupported_venue_too() -> None:
    sim = SimThread()
    try:
        c = ConnectorProc(sim, start=False, id="okx")
        try:
            c.start(wait_ready=False)
            assert c.proc is not None and c.proc.wait(60) == 78
            wait_for(lambda: c.plumbing.sup("refused"), 10, "refusal sent to the supervisor")
            (refused,) = c.plumbing.sup("refused")
            assert "exchange.id = 'okx' has no venue module" in refused["reason"]
            assert "supported: binanceusdm, sim" in refused["reason"]
        finally:
            c.close()
    finally:
        sim.close()
