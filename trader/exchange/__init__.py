"""Exchange access: the ccxt session factory (connector-side code builds on it)."""

from trader.exchange.session import build_exchange, default_ws_url, is_loopback

__all__ = ["build_exchange", "default_ws_url", "is_loopback"]
