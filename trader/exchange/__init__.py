"""Exchange access: the taxonomy (``errors``), guarded calls, clock, rate limits, the ccxt session
factory (``session``) and ``venues/<id>.py``, everything one exchange does its own way.

Nothing heavy is imported here, so ``trader.exchange.venues`` can be read without paying for
ccxt. The ccxt packages are registered as shells first (``ccxtload``), so whatever this layer
imports from ccxt afterwards loads the one exchange it uses, not all of them.
"""

from trader.exchange import ccxtload as _ccxtload

_ccxtload.install()
