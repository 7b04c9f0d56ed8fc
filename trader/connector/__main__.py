"""Process entry point: ``python -m trader.connector --run-dir DIR``."""

from __future__ import annotations

import sys

from trader.kernel import proc


async def _run() -> int:
    child = proc.make_child("connector")
    proc.install_signal_handlers(child.stop)
    from trader.connector.service import Connector  # ccxt import after the child exists

    return await Connector(child).main()


def main() -> None:
    sys.exit(proc.run(_run()))


if __name__ == "__main__":
    main()
