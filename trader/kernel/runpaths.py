"""Where a stack keeps its sockets, journal, metrics and recordings.

The run directory must survive a reboot (the HALTED state lives in it), so the default is under
``~/.local/state`` and not ``/run`` or ``/tmp``. It is created mode 0700: the control socket in it
is the key to the account, so an existing one must belong to the user running flatguard and be
writable by nobody else (``prepare`` refuses it otherwise).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from trader.kernel.errors import FlatguardError

# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class RunDirError(FlatguardError, RuntimeError):
    """The run directory is unusable (permissions, path too long). Fatal at start-up."""


def default_run_dir() -> Path:
    env = os.environ.get("FLATGUARD_RUN_DIR")
    if env:
        return Path(env)
    return Path.home() / ".local" / "state" / "flatguard"


def resolve(run_dir: str | os.PathLike[str] | None) -> Path:
    return Path(run_dir).expanduser().absolute() if run_dir else default_run_dir()


@dataclass(frozen=True)
class RunPaths:
    root: Path

    def _sock(self, name: str) -> str:
        path = str(self.root / name)
        if len(path.encode()) > MAX_SOCKET_PATH:
            raise RunDirError(
                f"socket path {path!r} is {len(path.encode())} bytes, over the {MAX_SOCKET_PATH}-byte "
                "Unix socket limit; use a shorter --run-dir (e.g. FLATGUARD_RUN_DIR=/tmp/fg)"
            )
        return "ipc://" + path

    # Events: publishers connect to ev-in (the proxy's XSUB), subscribers to ev-out (XPUB).
    @property
    def events_in(self) -> str:
        return self._sock("ev-in.sock")

    @property
    def events_out(self) -> str:
        return self._sock("ev-out.sock")

    # Requests go straight to the process that serves them (its own ROUTER).
    @property
    def supervisor(self) -> str:  # heartbeats, halt requests, critical alerts
        return self._sock("sup.sock")

    @property
    def connector(self) -> str:
        return self._sock("conn.sock")

    @property
    def trader(self) -> str:
        return self._sock("trader.sock")

    @property
    def md(self) -> str:  # market data: the connector's PUB, straight to the trader (no proxy hop)
        return self._sock("md.sock")

    @property
    def control(self) -> str:
        return self._sock("control.sock")

    @property
    def notify(self) -> str:  # PUSH -> PULL, non-blocking sends
        return self._sock("notify.sock")

    @property
    def notifier(self) -> str:  # the notifier's requests (ack, stats)
        return self._sock("ntf.sock")

    @property
    def emergency(self) -> str:  # the notifier's emergency lane: critical alerts only
        return self._sock("alert.sock")

    @property
    def journal(self) -> Path:
        return self.root / "journal.db"

    @property
    def lock(self) -> Path:
        return self.root / "up.lock"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    @property
    def recordings(self) -> Path:
        return self.root / "recordings"

    @property
    def config_json(self) -> Path:
        return self.root / "effective-config.json"

    def socket_files(self) -> list[Path]:
        names = ("ev-in.sock", "ev-out.sock", "sup.sock", "conn.sock", "trader.sock",
                 "control.sock", "notify.sock", "alert.sock", "ntf.sock", "md.sock")
        return [self.root / n for n in names]

    def check(self) -> None:
        """Validate every socket path length now, with a clear error, before anything binds."""
        for n in ("events_in", "events_out", "supervisor", "connector", "trader", "control", "notify",
                  "emergency", "notifier", "md"):
            getattr(self, n)


def prepare(root: Path) -> RunPaths:
    """Create the run directory (0700) and return its paths; errors say what to do.

    An existing directory must be ours and writable by nobody else: whoever can write in it can
    replace the control socket or the journal (the HALTED state) under us."""
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = root.stat()
    except OSError as e:
        raise RunDirError(f"cannot create run directory {root}: {e.strerror}; pass --run-dir") from None
    check_owner(root, st)
    try:
        os.chmod(root, 0o700)
    except OSError as e:
        raise RunDirError(f"cannot make run directory {root} private: {e.strerror}; "
                          "pass --run-dir") from None
    paths = RunPaths(root)
    paths.check()
    return paths


def check_owner(root: Path, st: os.stat_result) -> None:
    """Refuse a run directory owned by another user or writable by group or others."""
    uid = os.getuid()
    if not stat.S_ISDIR(st.st_mode):
        raise RunDirError(f"run directory {root} is not a directory; pass another --run-dir")
    if st.st_uid != uid:
        raise RunDirError(
            f"run directory {root} is owned by uid {st.st_uid}, not by you (uid {uid}): its "
            "control socket and journal would be someone else's to replace; use a directory of "
            f"your own (--run-dir or FLATGUARD_RUN_DIR), or `chown {uid} {root}` if it is yours")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RunDirError(
            f"run directory {root} is writable by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}): anyone who can write there can replace its "
            f"sockets or journal; check its contents, then `chmod 700 {root}`")
