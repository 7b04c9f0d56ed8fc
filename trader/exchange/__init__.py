"""Exchange access: the taxonomy (``errors``), guarded calls, clock, rate limits, the ccxt session
factory (``session``) and ``venues/<id>.py``, everything one exchange does its own way.

Nothing is imported here, so ``trader.exchange.venues`` can be read without paying for ccxt.
"""
