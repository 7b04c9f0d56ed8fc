"""Logs: one shared file for every process, rotated by the supervisor alone, JSON lines for
shippers, secrets blanked; stderr as before when no file is configured."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import ROOT, Stack, wait_for
from trader.kernel import logsetup

WRITER = """
import logging, sys
from trader.kernel import logsetup
logsetup.setup(sys.argv[1])
log = logging.getLogger("flatguard")
for i in range(int(sys.argv[2])):
    log.info("line n=%d writer=%s pad=%s", i, sys.argv[1], "x" * 80)
"""


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger as it was: these tests install and remove their own handlers."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)


def record(msg: str, *args: object, level: int = logging.INFO,
           exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("flatguard", level, __file__, 1, msg, args, exc_info)


def test_key_value_fields_are_parsed_as_strings() -> None:
    assert logsetup.fields("started process=trader pid=123") == \
        {"process": "trader", "pid": "123"}
    assert logsetup.fields("ALERT level=critical title='Kill path NOT ready' text=\"a b\"") == \
        {"level": "critical", "title": "Kill path NOT ready", "text": "a b"}
    assert logsetup.fields("symbols=BTC/USDT:USDT, x=1;") == {"symbols": "BTC/USDT:USDT", "x": "1"}
    assert logsetup.fields("no pairs here") == {}


def test_json_lines_have_the_fields_shippers_need() -> None:
    f = logsetup.JsonFormatter("trader", [])
    obj = json.loads(f.format(record("order sent symbol=%s qty=%s", "BTCUSDT", 0.01)))
    assert obj["process"] == "trader" and obj["level"] == "INFO"
    assert obj["msg"] == "order sent symbol=BTCUSDT qty=0.01"
    assert obj["fields"] == {"symbol": "BTCUSDT", "qty": "0.01"}
    assert obj["ts"].endswith("Z") and obj["pid"] == os.getpid()
    obj = json.loads(f.format(record("failed", level=logging.ERROR, exc=True)))
    assert "ValueError: boom" in obj["exc"] and "\n" not in f.format(record("x", exc=True))


def test_secrets_never_reach_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLATGUARD_API_SECRET", "s3cr3t-value-123")
    monkeypatch.setenv("FLATGUARD_TELEGRAM_TOKEN", "123456:tok-en")
    secrets = logsetup.secret_values()
    assert "s3cr3t-value-123" in secrets and "123456:tok-en" in secrets
    msg = ("auth failed secret=s3cr3t-value-123 url=https://api.telegram.org/bot999:AAbb-cc/"
           "getUpdates token 123456:tok-en")
    for f in (logsetup.JsonFormatter("notifier", secrets),
              logsetup.TextFormatter("notifier", "%H:%M:%S", secrets)):
        line = f.format(record(msg))
        assert "s3cr3t" not in line and "AAbb" not in line and "tok-en" not in line, line
        assert "/bot<redacted>/getUpdates" in line


def test_default_is_stderr_as_before(root_logger: logging.Logger,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(logsetup.ENV_FILE, raising=False)
    monkeypatch.delenv(logsetup.ENV_FORMAT, raising=False)
    for h in list(root_logger.handlers):
        root_logger.removeHandler(h)
    assert logsetup.setup("trader") is None
    (h,) = root_logger.handlers
    assert isinstance(h, logging.StreamHandler) and h.stream is sys.stderr
    assert h.level == logging.NOTSET
    line = h.format(record("hello k=v"))
    assert line.endswith(" trader     INFO    hello k=v") and len(line.split()[0]) == 8


def test_many_writers_one_rotator_lose_no_line(tmp_path: Path, root_logger: logging.Logger,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Three processes append while this one rotates at 8 KiB: every line is whole and in
    some file exactly once."""
    path = tmp_path / "fg.log"
    monkeypatch.setenv(logsetup.ENV_FILE, str(path))
    monkeypatch.setenv(logsetup.ENV_FORMAT, "json")
    handler = logsetup.setup("supervisor", str(path), "json", rotate=True, max_bytes=8192,
                             backups=200)
    assert handler is not None
    n = 400
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, f"w{i}", str(n)], cwd=ROOT,
                              env={**os.environ}) for i in range(3)]
    log = logging.getLogger("flatguard")
    try:
        i = 0
        while any(p.poll() is None for p in procs):
            log.info("line n=%d writer=supervisor", i)
            i += 1
            with handler.lock:  # type: ignore[union-attr]
                handler.check()  # what the rotation thread does once a second
            time.sleep(0.002)
        for p in procs:
            assert p.wait(60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    with handler.lock:  # type: ignore[union-attr]
        handler.check()
    # Over the limit only by what the writers added between two checks, then rotated.
    assert path.stat().st_size <= 8192
    files = sorted(tmp_path.glob("fg.log*"))
    assert len(files) > 3  # it did rotate, several times, while they wrote
    seen: dict[str, set[int]] = {}
    for f in files:
        for line in f.read_text().splitlines():
            obj = json.loads(line)  # whole lines only
            seen.setdefault(obj["fields"]["writer"], set()).add(int(obj["fields"]["n"]))
    for w in ("w0", "w1", "w2"):
        assert seen[w] == set(range(n)), w
    assert seen["supervisor"] == set(range(i))


def test_follows_a_file_moved_away_and_survives_an_unwritable_one(
        tmp_path: Path, root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d" / "fg.log"
    path.parent.mkdir()
    handler = logsetup.setup("trader", str(path), "text")
    assert handler is not None
    log = logging.getLogger("flatguard")
    log.info("first")
    path.rename(tmp_path / "d" / "old.log")  # logrotate's move
    log.info("second")
    assert "first" in (tmp_path / "d" / "old.log").read_text()
    assert "second" in path.read_text() and "first" not in path.read_text()
    for f in path.parent.iterdir():
        f.unlink()
    path.parent.rmdir()  # nowhere to write: said once on stderr, never raised
    log.warning("third")
    log.warning("fourth")
    err = capsys.readouterr().err
    assert err.count("cannot write log file") == 1


def test_a_log_file_that_cannot_be_opened_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[metrics]\nport = 0\n")
    r = subprocess.run([sys.executable, "-m", "supervisor.cli", "up", "--config", str(cfg),
                        "--run-dir", str(tmp_path / "run"), "--log-file",
                        str(tmp_path / "missing" / "fg.log")],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "logging.file: cannot open log file" in r.stderr


@pytest.mark.integration
def test_up_writes_every_process_to_one_rotated_json_file(stacks: list[Stack]) -> None:
    st = Stack('[logging]\nfile = "fg.log"\nformat = "json"\nmax_bytes = 2000\nbackups = 200\n')
    stacks.append(st)
    st.start()
    log = st.run_dir / "fg.log"  # relative: in the run directory
    wait_for(lambda: len(list(st.run_dir.glob("fg.log.*"))) >= 1, 60, "a rotation")

    def processes() -> set[str]:
        out = set()
        for f in st.run_dir.glob("fg.log*"):
            for line in f.read_text().splitlines():
                out.add(json.loads(line)["process"])
        return out

    wanted = {"supervisor", "trader", "connector", "notifier", "commander", "sim"}
    wait_for(lambda: processes() >= wanted, 60, f"lines of {wanted}")
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    assert st.stop() == 0, st.output()
    assert "flatguard ready" in st.output()  # stdout keeps the ready line
    assert "started process=trader" not in st.output()  # INFO goes to the file only
    lines = [json.loads(ln) for f in st.run_dir.glob("fg.log*")
             for ln in f.read_text().splitlines()]
    assert any(o["process"] == "supervisor" and o["msg"].startswith("flatguard stopped exit=0")
               for o in lines)
    started = [o for o in lines if o["msg"].startswith("started process=")]
    assert {o["process"] for o in started} == {"supervisor"}
    assert {o["fields"]["process"] for o in started} >= {"trader", "connector"}
