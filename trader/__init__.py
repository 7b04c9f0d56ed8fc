"""flatguard's trading side, in layers that import downwards only:

- ``trader.kernel``: what every process shares (bus, wire, protocol, config, journal, metrics);
- ``trader.engine``: the trading process (``python -m trader``), strategies and risk;
- ``trader.connector``: the exchange connector process;
- ``trader.exchange``: venue access (taxonomy, calls, clock, rate limits, venues);
- ``trader.sim``: the simulated exchange (imported only by the supervisor, the CLI and tests).
"""
