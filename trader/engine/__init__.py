"""The trading process: the engine loop, its commands, orders, inventory, the strategy API and
its Context, the built-in strategies and the risk guards."""
