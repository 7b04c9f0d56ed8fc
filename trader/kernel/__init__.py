"""What every flatguard process shares: the bus, the wire format, the protocol, config, the
journal, metric names, run paths and the child-process base. It imports nothing above it
(no engine, connector, exchange, simulator, supervisor, notifier or commander)."""
