"""Where every process's log lines go: stderr (the default), or one shared file with rotation.

One file, several writers, one rotator. Every process appends its own records to the file
(``O_APPEND``, one ``write`` per line, so lines never interleave) and re-opens it when the path
no longer names the file it has open (``WatchedFileHandler``'s rule). Only the supervisor
rotates: it renames ``flatguard.log`` to ``.1`` (and so on) when the file passes
``[logging] max_bytes``, and each child follows to the new file on its next line. A line written
in between lands at the end of ``.1``: nothing is lost, nothing races.

Why not pipe the children's output through the supervisor: a child would then block on a full
pipe whenever the supervisor stalls -- a late heartbeat the hang judge may read as a hang -- and
would lose its log exactly when it matters most, when the supervisor is gone. With the file,
children keep logging on their own.

``format = "json"``: one object per line (ts, level, process, pid, msg, exc, and ``fields``:
the message's ``key=value`` pairs, as strings) for log shippers. Secrets: URL query strings are scrubbed
from every record by ``trader.kernel.redact`` (installed by ``proc.setup_logging``); the formatters
here also blank the values of secret-looking environment variables (API keys, bot tokens) and a
Telegram token in a URL path.

The supervisor hands the choice to its children (and the built-in simulator) through the
environment: ``FLATGUARD_LOG_FILE``, ``FLATGUARD_LOG_FORMAT``.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from trader.kernel.errors import FlatguardError

ENV_FILE = "FLATGUARD_LOG_FILE"
ENV_FORMAT = "FLATGUARD_LOG_FORMAT"
ROTATE_CHECK = 1.0  # s: the supervisor's check of the size children's lines add
_MINE = "_flatguard_handler"

_KV = re.compile(r"(?<![\w.=])([A-Za-z_][\w.]*)=(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|\S+)")
_SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASS|SID)$|WEBHOOK", re.IGNORECASE)
_BOT_TOKEN = re.compile(r"/bot\d+:[\w-]+")


class LogSetupError(FlatguardError, RuntimeError):
    """The log file cannot be opened. Fatal at start-up (a config error: exit 2)."""


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 8},
                  key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s in text:
            text = text.replace(s, "<redacted>")
    if "/bot" in text:
        text = _BOT_TOKEN.sub("/bot<redacted>", text)
    return text


def fields(msg: str) -> dict[str, str]:
    """``key=value`` pairs of a message, values unquoted (``kv()``'s JSON quotes, ``%r``'s
    Python quotes); always strings, so a shipper's field types never flip."""
    out: dict[str, str] = {}
    if "=" not in msg:
        return out
    for k, v in _KV.findall(msg):
        if k in out:
            continue
        if len(v) > 1 and v[0] in "\"'" and v[-1] == v[0]:
            try:
                out[k] = str(json.loads(v) if v[0] == '"' else ast.literal_eval(v))
                continue
            except (ValueError, SyntaxError):
                pass
        out[k] = v.rstrip(",;")
    return out


class TextFormatter(logging.Formatter):
    def __init__(self, proc: str, datefmt: str, secrets: list[str]) -> None:
        super().__init__(f"%(asctime)s {proc:<10} %(levelname)-7s %(message)s", datefmt)
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


class JsonFormatter(logging.Formatter):
    def __init__(self, proc: str, secrets: list[str]) -> None:
        super().__init__()
        self.proc, self.secrets = proc, secrets

    def format(self, record: logging.LogRecord) -> str:
        msg = redact(record.getMessage(), self.secrets)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        obj: dict[str, object] = {"ts": f"{ts}.{int(record.msecs):03d}Z",
                                  "level": record.levelname, "process": self.proc,
                                  "pid": record.process or os.getpid(), "msg": msg}
        kv = fields(msg)
        if kv:  # nested: a message's process=trader never overwrites the writer's own
            obj["fields"] = kv
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            obj["exc"] = redact(record.exc_text, self.secrets)
        return json.dumps(obj, ensure_ascii=False)


class SharedFileHandler(logging.Handler):
    """Appends whole lines to ``path``; follows it when renamed; rotates it if ``rotate``."""

    def __init__(self, path: Path, rotate: bool = False, max_bytes: int = 0,
                 backups: int = 1) -> None:
        super().__init__()
        self.path, self.rotate, self.max_bytes, self.backups = path, rotate, max_bytes, backups
        self.fd = -1
        self.ident: tuple[int, int] = (0, 0)
        self.failed = False
        self._open()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        st = os.fstat(fd)
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.ident = fd, (st.st_dev, st.st_ino)

    def _follow(self) -> int:
        """Re-open if the path now names another file (rotated, or moved by logrotate);
        return the size of the file at the path."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._open()
            return 0
        if (st.st_dev, st.st_ino) != self.ident:
            self._open()
        return st.st_size

    def _rotate(self) -> None:
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._open()

    def check(self, extra: int = 0) -> None:
        """Follow the path, and (the rotator only) rotate once the file is full."""
        size = self._follow()
        if self.rotate and self.max_bytes > 0 and size > 0 and size + extra > self.max_bytes:
            self._rotate()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
            with self.lock:  # type: ignore[union-attr]  # Handler.createLock made it
                self.check(len(data))
                os.write(self.fd, data)
            self.failed = False
        except Exception as e:  # noqa: BLE001 - a full disk must never stop a process
            if not self.failed:
                self.failed = True
                print(f"flatguard: cannot write log file {self.path}: {e}", file=sys.stderr,
                      flush=True)

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
        super().close()


def _rotation_thread(handler: SharedFileHandler) -> None:
    def run() -> None:
        while handler.fd >= 0:
            time.sleep(ROTATE_CHECK)
            try:
                with handler.lock:  # type: ignore[union-attr]
                    if handler.fd >= 0:
                        handler.check()
            except OSError:
                pass  # said by the next failing emit; the thread must keep going

    threading.Thread(target=run, name="log-rotate", daemon=True).start()


def setup(proc: str, file: str | None = None, fmt: str | None = None, *, rotate: bool = False,
          max_bytes: int = 0, backups: int = 1) -> SharedFileHandler | None:
    """Configure the root logger of process ``proc``. ``file``/``fmt`` default to what the
    supervisor put in the environment; with neither, stderr as it always was."""
    file = file if file is not None else os.environ.get(ENV_FILE) or None
    fmt = fmt or os.environ.get(ENV_FORMAT) or "text"
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, _MINE, False)]:
        root.removeHandler(h)
        h.close()
    if root.handlers and not file:
        return None  # configured by someone else (a test harness): as basicConfig would
    root.setLevel(os.environ.get("FLATGUARD_LOG_LEVEL", "INFO"))
    secrets = secret_values()

    def formatter(datefmt: str) -> logging.Formatter:
        return JsonFormatter(proc, secrets) if fmt == "json" else \
            TextFormatter(proc, datefmt, secrets)

    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(formatter("%H:%M:%S"))
    setattr(console, _MINE, True)
    handler = None
    if file:
        # With a file, the console keeps what needs attention (journald, a terminal).
        console.setLevel(logging.WARNING)
        try:
            handler = SharedFileHandler(Path(file), rotate, max_bytes, backups)
        except OSError as e:
            if rotate:  # the supervisor: refuse to start (it checks before any child runs)
                raise LogSetupError(f"cannot open log file {file}: {e.strerror}") from None
            # a child: the supervisor could open it a moment ago; log to stderr, never die
            console.setLevel(logging.NOTSET)
            print(f"flatguard {proc}: cannot open log file {file}: {e.strerror}; logging to "
                  "stderr", file=sys.stderr, flush=True)
        if handler is not None:
            handler.setFormatter(formatter("%Y-%m-%d %H:%M:%S"))
            setattr(handler, _MINE, True)
            root.addHandler(handler)
    root.addHandler(console)
    return handler


def setup_supervisor(file: str | None, fmt: str, max_bytes: int, backups: int,
                     run_dir: Path) -> None:
    """The supervisor's logging, and its children's through the environment. A relative
    ``file`` is relative to the run directory (a unit's working directory is /)."""
    path = (run_dir / file) if file and not os.path.isabs(file) else (Path(file) if file else None)
    if path is not None:
        os.environ[ENV_FILE] = str(path)
    else:
        os.environ.pop(ENV_FILE, None)
    os.environ[ENV_FORMAT] = fmt
    handler = setup("supervisor", str(path) if path else "", fmt, rotate=True,
                    max_bytes=max_bytes, backups=backups)
    if handler is not None and max_bytes > 0:
        _rotation_thread(handler)
