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

from trader import bus

log = logging.getLogger("flatguard")


class Recorder:
    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str, directory: Path) -> None:
        self._ctx = ctx
        self._endpoint = endpoint
        self._dir = directory
        self._task: asyncio.Task[None] | None = None
        self._file: BinaryIO | None = None
        self._sub: bus.Subscriber | None = None
        self.path: Path | None = None
        self.count = 0
        self.started = 0.0

    @property
    def recording(self) -> bool:
        return self._task is not None

    async def toggle(self) -> dict[str, Any]:
        return self.stop() if self.recording else self.start()

    def start(self) -> dict[str, Any]:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self._dir / f"rec-{stamp}.msgpack"
        n = 1
        while path.exists():
            n += 1
            path = self._dir / f"rec-{stamp}-{n}.msgpack"
        self._file = open(path, "xb")  # noqa: SIM115 -- closed in stop()
        self.path, self.count, self.started = path, 0, time.time()
        self._sub = bus.Subscriber(self._ctx, self._endpoint, [""])
        self._task = asyncio.get_running_loop().create_task(self._run())
        log.info("event=recording_started path=%s", path)
        return {"recording": True, "path": str(path), "message": f"recording to {path}"}

    def stop(self) -> dict[str, Any]:
        if self._task is None:
            return {"recording": False, "message": "not recording"}
        self._task.cancel()
        self._task = None
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        if self._file is not None:
            self._file.close()
            self._file = None
        secs = round(time.time() - self.started, 1)
        log.info("event=recording_stopped path=%s messages=%d", self.path, self.count)
        return {"recording": False, "path": str(self.path), "messages": self.count,
                "seconds": secs,
                "message": f"recording stopped: {self.count} messages in {self.path}"}

    async def _run(self) -> None:
        packer = msgpack.Packer(use_bin_type=True)
        assert self._sub is not None and self._file is not None
        sub, f = self._sub, self._file
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                msg = await sub.recv()
                if msg is None:
                    continue
                try:
                    f.write(packer.pack([msg.topic, msg.src, msg.seq, msg.ts, msg.data]))
                    if not sub.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                        f.flush()  # idle: make the file readable now; under a flood, buffer
                except OSError as e:  # disk full: stop recording, keep serving commands
                    log.error("event=recording_failed path=%s error=%s", self.path, e.strerror)
                    return
                self.count += 1
