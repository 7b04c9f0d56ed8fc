"""`python -m trader.sim` as its own process: ready line, faults from options, clean stop."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request

READY = re.compile(r"^sim ready url=(http://127\.0\.0\.1:\d+) ws_url=(ws://127\.0\.0\.1:\d+/ws) "
                   r"api_key=(\S+) api_secret=(\S+)$")


def test_process_prints_ready_line_applies_faults_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "trader.sim", "--seed", "3", "--api-key", "k",
         "--retire", "/fapi/v2/account=410", "--fail", "GET /fapi/v1/time:1:503"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        match = READY.match(line)
        assert match, line
        url = match.group(1)
        assert match.group(3) == "k" and match.group(4) == "sim-secret"
        for path, status in (("/fapi/v1/time", 503), ("/fapi/v2/account", 410)):
            try:
                urllib.request.urlopen(url + path, timeout=5)
            except urllib.error.HTTPError as err:
                assert (err.code, err.read()) == (status, b"")
        with urllib.request.urlopen(url + "/fapi/v1/time", timeout=5) as resp:
            assert "serverTime" in json.load(resp)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
