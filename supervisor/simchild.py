"""The built-in simulated exchange as a child of ``up`` (only for convenience: it dies with it).

Tests of supervisor loss or crash recovery run ``flatguard sim`` as its own process instead and
point ``exchange.url`` at it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass

from trader.kernel.errors import FlatguardError

SIM_KEY = "sim-key"
SIM_SECRET = "sim-secret"


class SimStartError(FlatguardError, RuntimeError):
    """The simulator did not come up. Fatal at start-up."""


@dataclass
class SimChild:
    proc: asyncio.subprocess.Process
    url: str
    api_key: str
    api_secret: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def stop(self, timeout: float = 5.0) -> None:
        if self.proc.returncode is not None:
            return
        try:
            deadline = time.monotonic() + timeout
            while True:  # re-sent: a SIGTERM merged into a pending one is lost (Child.stop)
                self.proc.send_signal(signal.SIGTERM)
                left = deadline - time.monotonic()
                try:
                    await asyncio.wait_for(self.proc.wait(), max(0.0, min(1.0, left)))
                    return
                except TimeoutError:
                    if left <= 1.0:
                        raise
        except TimeoutError:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        except ProcessLookupError:
            pass


async def start_sim(seed: int = 1, timeout: float = 20.0) -> SimChild:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trader.sim", "--host", "127.0.0.1", "--port", "0",
        "--seed", str(seed), "--api-key", SIM_KEY, "--api-secret", SIM_SECRET,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, process_group=0,
        env={**os.environ, "FLATGUARD_SIM_SUPERVISED": "1"},  # SIGTERM from us only
    )
    assert proc.stdout is not None
    try:
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode()
            if not line:
                raise SimStartError(f"simulator exited with code {await proc.wait()} before ready")
            if line.startswith("sim ready"):
                break
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        raise SimStartError(f"simulator not ready within {timeout:g} s") from None
    fields = dict(p.split("=", 1) for p in line.split()[2:] if "=" in p)
    asyncio.get_running_loop().create_task(_drain(proc))
    return SimChild(proc, fields["url"], fields.get("api_key", SIM_KEY),
                    fields.get("api_secret", SIM_SECRET))


async def _drain(proc: asyncio.subprocess.Process) -> None:
    # Keep reading so the sim never blocks on a full stdout pipe; echo what it says.
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        sys.stderr.write(line.decode(errors="replace"))
