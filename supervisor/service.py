"""systemd units for ``flatguard up``: rendering and installing (``flatguard service install``).

Why each setting is there:

- ``Type=notify`` + ``NotifyAccess=main``: systemd counts the stack as started only once the
  supervisor says READY (every process up, the kill path proven), and only the supervisor may
  say it (``supervisor/sdnotify.py``).
- ``WatchdogSec``: the supervisor pings from its own watch loop, so a wedged supervisor -- the
  one process whose death leaves the kill path to the children -- is killed and restarted.
- ``KillMode=mixed``: ``systemctl stop`` sends SIGTERM to the supervisor alone; it stops the
  trader, flattens, and stops the notifier last so the "stopped" alert gets out. SIGKILL goes
  to whatever is left of the cgroup only after ``TimeoutStopSec``, which is derived from
  ``supervisor.shutdown_timeout`` (reinstall the unit after changing it).
- ``Restart=on-failure`` + ``RestartPreventExitStatus=2 78``: a crash restarts (start-up and
  recovery are the same path: the next ``up`` resumes an unverified flatten), a refusal (2:
  config error, 78: EX_CONFIG) never loops. ``StartLimitIntervalSec=0``: a network outage at
  boot must not make systemd give up on a stack that may hold positions.
- ``StateDirectory``: the run directory (journal, HALTED state) under ``/var/lib`` survives a
  reboot and is the one writable place under ``ProtectSystem=strict``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from trader.kernel import config
from trader.kernel.errors import FlatguardError

WATCHDOG_SEC = 30  # the watch loop turns every <= 50 ms: 30 s of silence is a wedged loop
RESTART_SEC = 10
REFUSAL_EXIT_CODES = (2, 78)  # `up`: 2 config error, 78 EX_CONFIG (a process refused the set-up)
STOP_MARGIN = 60  # s over shutdown_timeout: the trader's stop, the children's stops, teardown
START_STEPS = 6  # ready_timeout is per step: sim, kill path, four children
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ServiceError(FlatguardError, ValueError):
    """The unit cannot be written as asked. Nothing was written."""


@dataclass(frozen=True)
class UnitSpec:
    name: str = "flatguard"
    user: bool = False  # a user unit (systemctl --user): no mount-namespace hardening
    template: bool = False  # name@.service: one stack per instance (%i)
    exec_start: tuple[str, ...] = ()
    config: str | None = None  # absolute path, or with specifiers for a template
    shutdown_timeout: float = 60.0
    ready_timeout: float = 30.0
    extra_write_paths: tuple[str, ...] = ()  # e.g. the directory of [logging] file
    run_as: str | None = None  # system units: User=/Group=

    @property
    def filename(self) -> str:
        return f"{self.name}@.service" if self.template else f"{self.name}.service"

    @property
    def instance_dir(self) -> str:
        """The run directory below %S: one per unit, or one per instance of a template."""
        return f"{self.name}/%i" if self.template else self.name

    @property
    def env_file(self) -> str:
        return f"%E/flatguard/{'%i' if self.template else self.name}.env"


def flatguard_executable() -> tuple[str, ...]:
    """The absolute command that runs this flatguard: the venv's console script if it exists
    (not resolved: a venv's python is often a symlink out of the venv), else ``python -m``."""
    script = Path(sys.executable).parent / "flatguard"
    if script.is_file() and os.access(script, os.X_OK):
        return (str(script),)
    return (sys.executable, "-m", "supervisor.cli")


def _escape(arg: str, specifiers: bool = False) -> str:
    """One ExecStart argument: ``$`` and (unless meant as specifiers) ``%`` doubled, quoted when
    it holds whitespace or quotes (systemd.service(5), "Command lines")."""
    arg = arg.replace("\\", "\\\\").replace("$", "$$")
    if not specifiers:
        arg = arg.replace("%", "%%")
    if re.search(r"[\s\"']", arg):
        arg = '"' + arg.replace('"', '\\"') + '"'
    return arg


def render(spec: UnitSpec) -> str:
    kind = "user" if spec.user else "system"
    stop = math.ceil(spec.shutdown_timeout) + STOP_MARGIN
    start = math.ceil(spec.ready_timeout * START_STEPS) + 30
    cmd = " ".join(_escape(a) for a in spec.exec_start) + " up"
    if spec.config:
        cmd += " --config " + _escape(spec.config, specifiers=spec.template)
    what = "flatguard stack %i" if spec.template else "flatguard stack"
    ident = f"{spec.name}-%i" if spec.template else spec.name
    lines = [
        f"# Written by `flatguard service install` ({kind} unit). Reinstall it after changing",
        "# supervisor.shutdown_timeout or ready_timeout: TimeoutStopSec/TimeoutStartSec follow them.",
        f"# API keys: {spec.env_file.replace('%E', '/etc' if not spec.user else '~/.config')} "
        "(FLATGUARD_API_KEY=..., FLATGUARD_API_SECRET=...), mode 0600.",
        "[Unit]",
        f"Description={what}",
    ]
    if not spec.user:  # user managers have no network-online.target
        lines += ["After=network-online.target", "Wants=network-online.target"]
    lines += [
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={cmd}",
        f"Environment=FLATGUARD_RUN_DIR=%S/{spec.instance_dir}",
        "Environment=PYTHONUNBUFFERED=1",
        f"EnvironmentFile=-{spec.env_file}",
        f"StateDirectory={spec.instance_dir}",
        "StateDirectoryMode=0700",
        "UMask=0077",
        f"WatchdogSec={WATCHDOG_SEC}",
        f"TimeoutStartSec={start}",
        f"TimeoutStopSec={stop}",
        "KillMode=mixed",
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        "RestartPreventExitStatus=" + " ".join(str(c) for c in REFUSAL_EXIT_CODES),
        f"SyslogIdentifier={ident}",
        "NoNewPrivileges=yes",
    ]
    if spec.run_as:
        lines += [f"User={spec.run_as}", f"Group={spec.run_as}"]
    if not spec.user:
        # Mount-namespace hardening needs a system manager (a user unit fails to start with it
        # where unprivileged user namespaces are off).
        lines += [
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "PrivateTmp=yes",
            "ProtectKernelModules=yes",
            "ProtectControlGroups=yes",
            "RestrictSUIDSGID=yes",
            "LockPersonality=yes",
            f"LogsDirectory={spec.instance_dir}",
            "LogsDirectoryMode=0700",
        ]
        lines += [f"ReadWritePaths=-{_escape(p)}" for p in spec.extra_write_paths]
    lines += [
        "",
        "[Install]",
        f"WantedBy={'default.target' if spec.user else 'multi-user.target'}",
        "",
    ]
    return "\n".join(lines)


def default_unit_dir(user: bool) -> Path:
    if not user:
        return SYSTEM_UNIT_DIR
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def env_file_path(spec: UnitSpec) -> Path:
    etc = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") if spec.user \
        else Path("/etc")
    return etc / "flatguard" / ("example.env" if spec.template else f"{spec.name}.env")


def build_spec(name: str, user: bool, template: bool, config_path: str | None,
               run_as: str | None = None) -> UnitSpec:
    """Check everything before writing anything: the name, the config (loaded and validated),
    where its log file is (so ProtectSystem=strict lets it be written)."""
    if not NAME_RE.match(name):
        raise ServiceError(f"--name {name!r}: use letters, digits, '_', '.', '-' (max 64)")
    if run_as and user:
        raise ServiceError("--run-as is for system units; a user unit runs as its user")
    cfg = config.from_mapping({})
    cfg_arg: str | None = None
    if template:
        # The config of instance X is %E/flatguard/X.toml unless the caller names its own
        # pattern; a pattern with specifiers cannot be loaded here.
        cfg_arg = config_path or "%E/flatguard/%i.toml"
        if "%" not in cfg_arg:
            raise ServiceError(f"--config {cfg_arg!r}: a template's config path must use %i "
                               "(e.g. /etc/flatguard/%i.toml), one file per instance")
    elif config_path:
        p = Path(config_path).expanduser().absolute()
        try:
            cfg = config.load(p)
        except config.ConfigError as e:
            raise ServiceError(str(e)) from None
        cfg_arg = str(p)
    extra: list[str] = []
    log_file = cfg.logging.file
    if log_file and os.path.isabs(log_file):
        extra.append(str(Path(log_file).parent))
    return UnitSpec(name=name, user=user, template=template, exec_start=flatguard_executable(),
                    config=cfg_arg, shutdown_timeout=cfg.supervisor.shutdown_timeout,
                    ready_timeout=cfg.supervisor.ready_timeout, extra_write_paths=tuple(extra),
                    run_as=run_as)


def install(spec: UnitSpec, unit_dir: Path) -> Path:
    """Write the unit atomically (0644: systemd and `systemctl cat` read it; it holds no
    secret -- those go in the EnvironmentFile)."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    target = unit_dir / spec.filename
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(render(spec))
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target


def next_steps(spec: UnitSpec, target: Path) -> list[str]:
    sc = "systemctl --user" if spec.user else "systemctl"
    unit = f"{spec.name}@ACCOUNT" if spec.template else spec.name
    env = env_file_path(spec)
    out = [f"wrote {target}"]
    if env.exists() and env.stat().st_mode & 0o077:
        out.append(f"warning: {env} is readable by others: chmod 600 {env}")
    elif not env.exists():
        out.append(f"API keys: put FLATGUARD_API_KEY=... and FLATGUARD_API_SECRET=... in "
                   f"{env.parent / ((('ACCOUNT' if spec.template else spec.name)) + '.env')}"
                   " (chmod 600)")
    if spec.template:
        out.append(f"config of instance ACCOUNT: {spec.config}".replace(
            "%E", str(env.parent.parent)).replace("%i", "ACCOUNT"))
    out.append(f"then: {sc} daemon-reload && {sc} enable --now {unit}")
    out.append(f"logs: journalctl {'--user ' if spec.user else ''}-u {unit} -f")
    if spec.user:
        out.append("to keep it running after you log out: loginctl enable-linger $USER")
    if shutil.which("systemd-analyze"):
        out.append(f"check: systemd-analyze {'--user ' if spec.user else ''}verify {target}")
    return out
