"""`flatguard service install`: the units it writes, checked by reading them and, where it is
installed, by `systemd-analyze verify`. (The sd_notify side runs a real `up`: test_sdnotify.py.)"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from supervisor import service
from tests.stack import FLATGUARD, ROOT

ANALYZE = shutil.which("systemd-analyze")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLATGUARD, "service", "install", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env={**os.environ, **(env or {})})


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value (systemd keys may repeat)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = {}
            continue
        k, v = line.split("=", 1)
        out[section].setdefault(k, []).append(v)
    return out


def one(unit: dict[str, dict[str, list[str]]], key: str, section: str = "Service") -> str:
    (v,) = unit[section][key]
    return v


def test_system_unit_has_every_setting_the_stack_needs(tmp_path: Path) -> None:
    cfg = tmp_path / "acct.toml"
    cfg.write_text("[supervisor]\nshutdown_timeout = 90\n")
    r = run("--unit-dir", str(tmp_path), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    path = tmp_path / "flatguard.service"
    assert f"wrote {path}" in r.stdout
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    u = parse(path.read_text())
    assert one(u, "Type") == "notify" and one(u, "NotifyAccess") == "main"
    assert int(one(u, "WatchdogSec")) == service.WATCHDOG_SEC
    assert one(u, "KillMode") == "mixed"
    assert int(one(u, "TimeoutStopSec")) > 90  # above supervisor.shutdown_timeout
    assert one(u, "Restart") == "on-failure"
    assert one(u, "RestartPreventExitStatus").split() == ["2", "78"]
    for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                 ("StateDirectory", "flatguard"), ("StateDirectoryMode", "0700")):
        assert one(u, k) == v, k
    assert "FLATGUARD_RUN_DIR=%S/flatguard" in u["Service"]["Environment"]
    assert one(u, "EnvironmentFile") == "-%E/flatguard/flatguard.env"
    exe, *args = one(u, "ExecStart").split()
    assert os.path.isabs(exe) and os.access(exe, os.X_OK)
    assert args == ["up", "--config", str(cfg)]
    assert one(u, "WantedBy", "Install") == "multi-user.target"
    assert one(u, "StartLimitIntervalSec", "Unit") == "0"


def test_template_runs_one_stack_per_instance(tmp_path: Path) -> None:
    r = run("--unit-dir", str(tmp_path), "--template", "--name", "fg")
    assert r.returncode == 0, r.stderr
    u = parse((tmp_path / "fg@.service").read_text())
    assert one(u, "ExecStart").endswith(" up --config %E/flatguard/%i.toml")
    assert one(u, "StateDirectory") == "fg/%i"
    assert "FLATGUARD_RUN_DIR=%S/fg/%i" in u["Service"]["Environment"]
    assert one(u, "EnvironmentFile") == "-%E/flatguard/%i.env"
    assert "enable --now fg@ACCOUNT" in r.stdout


def test_user_unit_has_no_mount_namespace_settings(tmp_path: Path) -> None:
    r = run("--user", "--dry-run", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert not any(tmp_path.iterdir())  # --dry-run writes nothing
    u = parse(r.stdout)
    assert one(u, "Type") == "notify" and one(u, "NoNewPrivileges") == "yes"
    assert "ProtectSystem" not in u["Service"] and "After" not in u["Unit"]
    assert one(u, "WantedBy", "Install") == "default.target"
    r = run("--user", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert (tmp_path / "systemd" / "user" / "flatguard.service").is_file(), r.stderr
    assert "loginctl enable-linger" in r.stdout


def test_a_log_file_outside_the_state_directory_is_made_writable(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[logging]\nfile = "/srv/fg logs/flatguard.log"\n')
    r = run("--dry-run", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert one(parse(r.stdout), "ReadWritePaths") == '-"/srv/fg logs"'


@pytest.mark.parametrize("args, message", [
    (["--name", "bad/name"], "--name"),
    (["--template", "--config", "/etc/flatguard/one.toml"], "%i"),
    (["--user", "--run-as", "bob"], "--run-as"),
])
def test_bad_requests_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    r = run("--unit-dir", str(tmp_path), *args)
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert not any(tmp_path.iterdir())


def test_a_bad_config_is_refused_before_writing(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[supervisor]\nshutdown_timeout = -1\n")
    r = run("--unit-dir", str(tmp_path / "units"), "--config", str(cfg))
    assert r.returncode == 1 and "supervisor.shutdown_timeout" in r.stderr, r.stderr
    assert not (tmp_path / "units").exists()


def test_exec_start_quoting() -> None:
    spec = service.UnitSpec(exec_start=("/opt/my venv/bin/flatguard",), config="/etc/50%.toml")
    line = parse(service.render(spec))["Service"]["ExecStart"][0]
    assert line == '"/opt/my venv/bin/flatguard" up --config /etc/50%%.toml'


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("args, verify_as", [
    ([], "flatguard.service"),
    (["--template"], "flatguard@acct.service"),
])
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path, args: list[str],
                                                  verify_as: str) -> None:
    r = run("--unit-dir", str(tmp_path), *args)
    assert r.returncode == 0, r.stderr
    (written,) = tmp_path.iterdir()
    if written.name != verify_as:  # a template is verified as one of its instances
        shutil.copy(written, tmp_path / verify_as)
    v = subprocess.run([str(ANALYZE), "verify", str(tmp_path / verify_as)], capture_output=True,
                       text=True, timeout=60)
    complaints = [ln for ln in (v.stdout + v.stderr).splitlines() if verify_as in ln
                  or "flatguard" in ln]
    assert v.returncode == 0 and not complaints, v.stdout + v.stderr


def test_unit_text_is_what_systemd_reads(tmp_path: Path) -> None:
    """Every line is a section, a comment or key=value (configparser as a second reader)."""
    text = service.render(service.UnitSpec(exec_start=("/x/flatguard",)))
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read_string(text)
    assert set(cp.sections()) == {"Unit", "Service", "Install"}
