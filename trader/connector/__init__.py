"""The exchange connector process: ``python -m trader.connector --run-dir DIR``."""
