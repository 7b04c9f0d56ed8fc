"""The trader process: ``python -m trader --run-dir DIR`` (started by the supervisor)."""

from __future__ import annotations

import logging
import sys

from trader.kernel import bus, proc
from trader.kernel.payloads import Halt
from trader.kernel.protocol import EX_SOFTWARE, TRADER, SupervisorOp

log = logging.getLogger("flatguard")


async def main() -> int:
    child = proc.make_child(TRADER)
    proc.install_signal_handlers(child.stop)
    from trader.engine.loop import Engine

    engine: Engine | None = None
    try:
        engine = Engine(child)
        return await engine.run()
    except Exception as e:
        # In-process dead switch: a logic error in the engine or the strategy. Ask for the kill
        # switch first; the supervisor also sees our non-zero exit, so it runs even if this is lost.
        log.exception("engine loop died: %s", e)
        try:
            await child.sup.request(SupervisorOp.HALT, Halt(
                "trader_exception", f"{type(e).__name__}: {e}", TRADER).to_wire(), timeout=1.0)
        except bus.RequestError:
            pass
        # The supervisor reads the trigger from this code, so the halt names trader_exception
        # whichever it sees first: the request above or this exit.
        return EX_SOFTWARE
    finally:
        if engine is not None:
            engine.close()
        child.close()


if __name__ == "__main__":
    sys.exit(proc.run(main()))
