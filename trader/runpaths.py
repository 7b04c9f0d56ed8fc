"""Where a stack keeps its sockets, journal, metrics and recordings.

The run directory must survive a reboot (the HALTED state lives in it), so the default is under
``~/.local/state`` and not ``/run`` or ``/tmp``. It is created mode 0700: the control socket in it
is the key to the account.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class RunDirError(RuntimeError):
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
                 "control.sock", "notify.sock", "alert.sock", "ntf.sock")
        return [self.root / n for n in names]

    def check(self) -> None:
        """Validate every socket path length now, with a clear error, before anything binds."""
        for n in ("events_in", "events_out", "supervisor", "connector", "trader", "control", "notify",
                  "emergency", "notifier"):
            getattr(self, n)


def prepare(root: Path) -> RunPaths:
    """Create the run directory (0700) and return its paths; errors say what to do."""
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(root, 0o700)
    except OSError as e:
        raise RunDirError(f"cannot create run directory {root}: {e.strerror}; pass --run-dir") from None
    paths = RunPaths(root)
    paths.check()
    return paths
