"""API keys: loading (environment or a 0600 key file), and what a venue's key check found.

The check itself is the venue's (``venues/<id>.py``: ``check_keys``).

Keys are never logged, put in metrics or notifications: :class:`ApiKeys` hides them in ``repr``.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from trader.kernel.errors import FlatguardError

log = logging.getLogger("flatguard.keys")

ENV_KEY = "FLATGUARD_API_KEY"
ENV_SECRET = "FLATGUARD_API_SECRET"


class KeysError(FlatguardError, RuntimeError):
    """Keys missing, unreadable, exposed (file mode) or unsafe. Fatal at start-up: fix and restart."""


@dataclass(frozen=True)
class ApiKeys:
    key: str = field(repr=False)
    secret: str = field(repr=False)
    source: str = ""

    def __repr__(self) -> str:
        return f"ApiKeys(source={self.source!r}, key=***)"


def load_keys(key_file: str | None, env: dict[str, str] | None = None) -> ApiKeys:
    """From ``key_file`` ("key\\nsecret", mode 0600) when given, else the environment."""
    env = dict(os.environ) if env is None else env
    if key_file:
        p = Path(key_file).expanduser()
        try:
            st = p.stat()
        except OSError as e:
            raise KeysError(f"exchange.key_file {p}: cannot read ({e.strerror})") from None
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise KeysError(
                f"exchange.key_file {p} has mode {mode:04o}: other users can read the API key; "
                f"run `chmod 600 {p}` and start again")
        lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
        if len(lines) < 2:
            raise KeysError(f"exchange.key_file {p}: expected two lines, the key then the secret")
        return ApiKeys(lines[0], lines[1], f"file {p}")
    key, secret = env.get(ENV_KEY, ""), env.get(ENV_SECRET, "")
    if not key or not secret:
        raise KeysError(
            f"no API keys: set {ENV_KEY} and {ENV_SECRET}, or exchange.key_file (mode 0600)")
    return ApiKeys(key, secret, "environment")


@dataclass(frozen=True)
class KeyCheck:
    checked: bool
    can_withdraw: bool = False
    ip_restricted: bool = True
    note: str = ""

    @property
    def unsafe(self) -> bool:
        return self.checked and (self.can_withdraw or not self.ip_restricted)

    def problems(self) -> str:
        bits = []
        if self.can_withdraw:
            bits.append("the key can WITHDRAW funds")
        if not self.ip_restricted:
            bits.append("the key has NO IP restriction")
        return "; ".join(bits)
