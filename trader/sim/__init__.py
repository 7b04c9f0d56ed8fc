"""The built-in simulated exchange: Binance USDⓈ-M futures REST + WebSocket on one port.

The real ccxt ``binanceusdm`` / ``ccxt.pro.binanceusdm`` client runs against it unchanged
(see ``trader.exchange.session.build_exchange``). Modules: ``market`` (instruments, price
walk, filters, quotes), ``depth`` (liquidity profiles, the ladder orders walk), ``book`` (the
account and matching), ``checks`` (filters), ``margin`` (brackets), ``funding``,
``liquidation``, ``records``, ``ids`` (ids that never repeat across
runs), ``algo`` (conditional orders and their triggers), ``auth``, ``pipeline`` (what every
REST request goes through), ``rest``, ``algo_rest``, ``batch`` (modify, batchOrders, openOrder, order counts) and
``history`` (klines, aggTrades, income; bars in ``candles``) (endpoints), ``ws``, ``events``,
``faults`` (retire, fail, in-flight latency), ``ban`` (IP bans), ``garbage`` (non-finite
numbers), ``control`` (the ``/_sim/`` API, documented there), ``server`` (start/stop), ``cli``.
"""

from trader.sim.server import SimServer, run_sim
from trader.sim.state import SIM_API_KEY, SIM_API_SECRET, SimConfig

__all__ = ["SIM_API_KEY", "SIM_API_SECRET", "SimConfig", "SimServer", "run_sim"]
