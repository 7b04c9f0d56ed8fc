"""``python -m commander --run-dir DIR`` (started by the supervisor)."""

import asyncio
import sys

from commander.process import main

if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
