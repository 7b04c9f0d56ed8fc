"""The ``record`` command: every bus event to a msgpack stream file, one file per recording.

Each record is a msgpack array ``[topic, src, seq, ts, data]``, appended one after another (read
back with ``msgpack.Unpacker``). The SUB socket exists only while recording: when not recording
the commander does not pay for the event flood. Records are written as they arrive (buffered,
flushed whenever the socket is idle), and the file is closed when the recording stops or the commander exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any, BinaryIO

import msgpack
import zmq
import zmq.asyncio

from trader.kernel import bus

log = logging.getLogger("flatguard")


DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # [record] max_bytes


class Recorder:
    """One recording at a time, at most ``max_bytes`` per file (``[record] max_bytes``): at the
    cap it stops by itself, logs it, and the next ``record`` reply says so (nobody may be
    watching when it happens; a recording left on must never fill the disk)."""

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str, directory: Path,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._ctx = ctx
        self._endpoint = endpoint
        self._dir = directory
        self.max_bytes = max_bytes
        self._task: asyncio.Task[None] | None = None
        self._file: BinaryIO | None = None
        self._sub: bus.Subscriber | None = None
        self.path: Path | None = None
        self.count = 0
        self.bytes = 0
        self.started = 0.0
        self.ended: str | None = None  # why a recording stopped by itself, until reported

    @property
    def recording(self) -> bool:
        return self._task is not None and not self._task.done()

    async def toggle(self) -> dict[str, Any]:
        if self._task is not None and self._task.done():
            return self._report_ended()
        return self.stop() if self.recording else self.start()

    def start(self) -> dict[str, Any]:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self._dir / f"rec-{stamp}.msgpack"
        n = 1
        while path.exists():
            n += 1
            path = self._dir / f"rec-{stamp}-{n}.msgpack"
        self._file = open(path, "xb")  # noqa: SIM115 -- closed in _close()
        self.path, self.count, self.bytes, self.started = path, 0, 0, time.time()
        self.ended = None
        self._sub = bus.Subscriber(self._ctx, self._endpoint, [""])
        self._task = asyncio.get_running_loop().create_task(self._run())
        log.info("event=recording_started path=%s max_bytes=%d", path, self.max_bytes)
        return {"recording": True, "path": str(path), "max_bytes": self.max_bytes,
                "message": f"recording to {path} (stops by itself at {_size(self.max_bytes)},"
                           " [record] max_bytes)"}

    def stop(self) -> dict[str, Any]:
        if self._task is None:
            return {"recording": False, "message": "not recording"}
        if self._task.done():
            return self._report_ended()
        self._task.cancel()
        self._task = None
        self._close()
        log.info("event=recording_stopped path=%s messages=%d bytes=%d", self.path, self.count,
                 self.bytes)
        return {**self._summary(), "message": f"recording stopped: {self.count} messages"
                                              f" ({_size(self.bytes)}) in {self.path}"}

    def _summary(self) -> dict[str, Any]:
        return {"recording": False, "path": str(self.path), "messages": self.count,
                "bytes": self.bytes, "seconds": round(time.time() - self.started, 1)}

    def _report_ended(self) -> dict[str, Any]:
        """The reply to the first ``record`` after a recording stopped by itself."""
        self._task = None
        why, self.ended = self.ended or "it ended", None
        return {**self._summary(), "stopped_by_itself": why,
                "message": f"recording had already stopped: {why}; {self.count} messages"
                           f" ({_size(self.bytes)}) in {self.path}. Send record again to start"
                           " a new one"}

    def _close(self) -> None:
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        if self._file is not None:
            with contextlib.suppress(OSError):  # a full disk fails the last flush as well
                self._file.close()
            self._file = None

    async def _run(self) -> None:
        packer = msgpack.Packer(use_bin_type=True)
        assert self._sub is not None and self._file is not None
        sub, f = self._sub, self._file
        try:
            while True:
                msg = await sub.recv()
                if msg is None:
                    continue
                rec = packer.pack([msg.topic, msg.src, msg.seq, msg.ts, msg.data])
                if self.bytes + len(rec) > self.max_bytes:
                    self.ended = f"size cap reached ({_size(self.max_bytes)}, [record] max_bytes)"
                    log.warning("event=recording_stopped reason=max_bytes path=%s messages=%d"
                                " bytes=%d max_bytes=%d", self.path, self.count, self.bytes,
                                self.max_bytes)
                    break
                try:
                    f.write(rec)
                    if not sub.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                        f.flush()  # idle: make the file readable now; under a flood, buffer
                except OSError as e:  # disk full: stop recording, keep serving commands
                    self.ended = f"write failed ({e.strerror})"
                    log.error("event=recording_failed path=%s error=%s", self.path, e.strerror)
                    break
                self.count += 1
                self.bytes += len(rec)
        except asyncio.CancelledError:
            return  # stop() closes
        self._close()


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"
