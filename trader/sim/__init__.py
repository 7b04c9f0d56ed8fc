"""The built-in simulated exchange: Binance USDⓈ-M futures REST + WebSocket on one port.

The real ccxt ``binanceusdm`` / ``ccxt.pro.binanceusdm`` client runs against it unchanged
(see ``trader.exchange.session.build_exchange``). Modules: ``market`` (instruments, price
walk), ``book`` (the account), ``auth``, ``rest``, ``ws``, ``faults``, ``control`` (the
``/_sim/`` API), ``server`` (start/stop), ``cli``.
"""

from trader.sim.server import SimServer, run_sim
from trader.sim.state import SIM_API_KEY, SIM_API_SECRET, SimConfig

__all__ = ["SIM_API_KEY", "SIM_API_SECRET", "SimConfig", "SimServer", "run_sim"]
