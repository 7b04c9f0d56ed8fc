"""The ban board: an exchange ban (HTTP 418/429) seen by one process stops every process.

Binance bans an IP, not a process, and every request made during a ban prolongs it (a 418 lasts
2 minutes to 3 days). The connector and the supervisor's kill path have their own ccxt sessions
on the same IP, so a ban one of them earns must stop the other too, and a restarted process
must still respect it. The board is a small JSON file in the run directory (``ban.json``,
mode 0600, replaced atomically by tmp + rename under an ``flock``); readers tolerate a missing
or garbled file (no ban known). Without a run directory (tests) the board lives in memory.

How long a ban lasts when the exchange does not say (Binance's USDⓈ-M docs never promise a
``Retry-After``; its SDK reads one when present):

* a ``Retry-After`` header is always honoured (seconds);
* 429 (request weight exceeded): until the exchange's next minute window plus ``MARGIN_S``,
  because the weight counter resets per minute (the exchange's minute: ccxt's measured
  ``timeDifference`` is applied);
* 418 (IP banned): ``BAN_418_S`` (120 s, the shortest ban Binance hands out), doubled for each
  further 418 within ``STRIKE_MEMORY_S`` of the last ban's end (a 418 right after we resumed
  means the ban was longer than we guessed), capped at ``BAN_MAX_S`` (3 days).

``install(ex, board)`` wraps the instance's async ``fetch`` — ccxt's one HTTP entry point, used
by every REST call including ccxt-internal ones (``load_markets``, listen keys) — so a request
to a banned host raises ``ccxt.DDoSProtection`` without being sent (the taxonomy sees a
transient rate limit), and hooks ``on_rest_response`` so every 418/429 records the ban.
WebSocket frames do not go through ``fetch`` and are not weighed by Binance; a ccxt.pro watch
that needs a listen key does, and waits like any REST call.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("flatguard.ban")

FILE_NAME = "ban.json"
BAN_418_S = 120.0
BAN_MAX_S = 3 * 24 * 3600.0
MARGIN_S = 1.0  # after the minute boundary: clock error and the exchange's own rounding
STRIKE_MEMORY_S = 600.0


def host_of(url: str) -> str:
    """``host[:port]`` of a URL: what a ban is keyed by."""
    return urlsplit(url).netloc or url


def retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form), or None."""
    if not headers:
        return None
    for k, v in headers.items():
        if str(k).lower() == "retry-after":
            try:
                s = float(v)
            except (TypeError, ValueError):
                return None
            return s if math.isfinite(s) and s >= 0 else None
    return None


class BanBoard:
    """Bans per host, shared through ``path`` (None: this process only). ``clock``: wall time
    (``time.time``; a test injects a fake one to end a ban without waiting it out)."""

    def __init__(self, path: str | os.PathLike[str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else None
        self.clock = clock
        self._mem: dict[str, dict[str, Any]] = {}
        self._cache: tuple[tuple[int, int, int], dict[str, dict[str, Any]]] | None = None

    @classmethod
    def in_run_dir(cls, root: str | os.PathLike[str]) -> BanBoard:
        return cls(Path(root) / FILE_NAME)

    # --- reading ----------------------------------------------------------------------------

    def _read(self) -> dict[str, dict[str, Any]]:
        if self.path is None:
            return self._mem
        try:
            st = os.stat(self.path)
        except OSError:
            return {}
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._cache is not None and self._cache[0] == sig:
            return self._cache[1]
        try:
            raw = json.loads(self.path.read_text())
            hosts = raw.get("hosts", {}) if isinstance(raw, dict) else {}
            data = {str(h): e for h, e in hosts.items()
                    if isinstance(e, dict) and isinstance(e.get("until"), int | float)}
        except (OSError, ValueError, AttributeError):
            data = {}  # garbled (a torn write cannot happen, but a person may edit it)
        self._cache = (sig, data)
        return data

    def banned_for(self, host: str | None = None, now: float | None = None) -> float:
        """Seconds left of the ban on ``host`` (None: any host), 0 if none."""
        now = self.clock() if now is None else now
        data = self._read()
        entries = data.values() if host is None else [data[host]] if host in data else []
        return max([0.0, *(float(e["until"]) - now for e in entries)])

    def bans(self) -> dict[str, dict[str, Any]]:
        return {h: dict(e) for h, e in self._read().items() if e["until"] > self.clock()}

    # --- writing ----------------------------------------------------------------------------

    def record(self, host: str, status: int, retry_after_s: float | None,
               offset_s: float = 0.0, now: float | None = None) -> float:
        """Record a 418/429 from ``host``; returns the ban's end (wall time). ``offset_s``:
        exchange clock minus ours (for the exchange's minute window)."""
        now = self.clock() if now is None else now
        with self._locked():
            data = dict(self._read())
            prev = data.get(host)
            strikes = 0
            if status == 418 and prev is not None and prev.get("status") == 418 and \
                    now - float(prev["until"]) < STRIKE_MEMORY_S:
                strikes = int(prev.get("strikes", 0)) + 1
            if retry_after_s is not None:
                length, source = retry_after_s, "retry-after"
            elif status == 418:
                length, source = min(BAN_MAX_S, BAN_418_S * 2 ** strikes), "default-418"
            else:
                ex_now = now + offset_s
                length, source = (math.floor(ex_now / 60) + 1) * 60 - ex_now + MARGIN_S, "minute"
            until = now + length
            if prev is not None and float(prev["until"]) > until:
                until = float(prev["until"])  # never shorten a ban another process recorded
            data[host] = {"until": until, "status": int(status), "since": now,
                          "strikes": strikes, "source": source, "pid": os.getpid()}
            self._write(data)
        log.warning("event=exchange_banned host=%s status=%s seconds=%.1f source=%s", host,
                    status, until - now, source)
        return until

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._cache = None  # read what is on disk now, under the lock
            yield
        finally:
            os.close(fd)

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        now = self.clock()
        live = {h: e for h, e in data.items() if float(e["until"]) > now - STRIKE_MEMORY_S}
        if self.path is None:
            self._mem = live
            return
        fd, tmp = tempfile.mkstemp(prefix=".ban.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"hosts": live}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._cache = None


def install(ex: Any, board: BanBoard) -> None:
    """Every request of ``ex`` checks the board first; every 418/429 response records a ban."""
    from ccxt.base.errors import DDoSProtection  # ccxt is slow to import: only when used

    orig_fetch = ex.fetch
    orig_response = ex.on_rest_response

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        host = host_of(url)
        left = board.banned_for(host)
        if left > 0:
            raise DDoSProtection(f"{ex.id} {host} is banned by the exchange for {left:.0f} s "
                                 f"more (HTTP 418/429): {method} not sent")
        return await orig_fetch(url, method, headers, body)

    def on_rest_response(code: Any, reason: Any, url: str, method: str, headers: Any, body: Any,
                         req_headers: Any, req_body: Any) -> Any:
        try:
            status = int(code)
            if status in (418, 429):
                diff_ms = float(ex.options.get("timeDifference") or 0.0)  # local - exchange
                board.record(host_of(url), status, retry_after(headers), offset_s=-diff_ms / 1000)
        except Exception:  # noqa: BLE001 - bookkeeping must never break a call
            log.exception("event=ban_record_error")
        return orig_response(code, reason, url, method, headers, body, req_headers, req_body)

    ex.fetch = fetch
    ex.on_rest_response = on_rest_response
