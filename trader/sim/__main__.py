"""``python -m trader.sim``: the same command as ``flatguard sim``."""

from trader.sim.cli import sim

if __name__ == "__main__":
    sim(prog_name="python -m trader.sim")
