"""Everything ``up`` can check before it starts anything: one line per problem, exit 2.

The typed config (``trader/config.py``) already refuses wrong types and values. What it cannot
see is the world around the file -- an environment variable a sink needs, a port another program
holds -- and a few rules about values that only matter when trading starts (a symbol not in
ccxt's unified form, a leverage no venue offers). They are checked here, before the run
directory's lock, journal, sockets or any process exist, so a typo never costs a start-up, a
kill switch or a run directory marked unclean. What needs the exchange (a symbol it does not
list, a leverage above the symbol's brackets) is the connector's refusal at start-up (exit 78).
"""

from __future__ import annotations

import errno
import re
import socket
from collections.abc import Callable, Mapping

from trader.kernel import config, proc

# No venue offers more: Binance USDⓈ-M's highest bracket is 125x, Bybit's 100x, OKX's 125x.
MAX_ANY_VENUE_LEVERAGE = 125
# ccxt's unified symbols: BASE/QUOTE (spot), BASE/QUOTE:SETTLE (swap), ...-YYMMDD (future),
# ...-YYMMDD-STRIKE-C|P (option). Letters, digits and a few venue-specific characters.
_ASSET = r"[A-Za-z0-9][A-Za-z0-9._-]*"
UNIFIED = re.compile(rf"^{_ASSET}/{_ASSET}(:{_ASSET})?$")
_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "USD")

Check = Callable[[config.Config, Mapping[str, str]], list[str]]


def symbols(cfg: config.Config, env: Mapping[str, str]) -> list[str]:
    out = []
    for sym in cfg.exchange.symbols:
        if UNIFIED.match(sym):
            continue
        hint = ""
        plain = sym.replace("-", "").replace("_", "").upper()
        for q in _QUOTES:
            if plain.endswith(q) and len(plain) > len(q):
                hint = f" (did you mean {plain[:-len(q)]}/{q}:{q}?)"
                break
        out.append(f"exchange.symbols: {sym!r} is not a ccxt unified symbol; perpetual swaps "
                   f"are written BASE/QUOTE:SETTLE, e.g. 'BTC/USDT:USDT'{hint}")
    return out


def leverage(cfg: config.Config, env: Mapping[str, str]) -> list[str]:
    lev = cfg.exchange.leverage
    if lev > MAX_ANY_VENUE_LEVERAGE:
        return [f"exchange.leverage = {lev} is above any venue's maximum "
                f"({MAX_ANY_VENUE_LEVERAGE}); flatguard sets it low on purpose (default 2)"]
    return []


def metrics_port(cfg: config.Config, env: Mapping[str, str]) -> list[str]:
    m = cfg.metrics
    if not m.enabled:
        return []
    if not 0 <= m.port <= 65535:
        return [f"metrics.port = {m.port} is out of range (0-65535; 0 = any free port)"]
    if m.port == 0:
        return []
    try:
        infos = socket.getaddrinfo(m.host, m.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return [f"metrics.host = {m.host!r} cannot be resolved ({e.strerror})"]
    family, _, _, _, addr = infos[0]
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As the HTTP server will bind: SO_REUSEADDR, so only a live listener counts as busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return [f"metrics.port = {m.port}: {m.host}:{m.port} is already in use (another "
                    "flatguard up?); choose a free port, or 0 for any free port"]
        return [f"metrics.host/port {m.host}:{m.port} cannot be bound ({e.strerror})"]
    finally:
        s.close()
    return []


def telegram(cfg: config.Config, env: Mapping[str, str]) -> list[str]:
    """The command channel's half (the notifier's half is checked by ``sinks``)."""
    tg = cfg.telegram
    if not tg.enabled:
        return []
    if not env.get(tg.token_env):  # (an empty allowed_users is the config's own error)
        return [f"[telegram] token_env: environment variable {tg.token_env} is not set "
                "(the bot token; `enabled = false` in [telegram] turns Telegram off)"]
    return []


def sinks(cfg: config.Config, env: Mapping[str, str]) -> list[str]:
    """Exactly the notifier's own start-up validation, run before it exists."""
    from notifier.errors import SinkConfigError
    from notifier.sinks import build

    try:
        build(cfg, env)
    except SinkConfigError as e:
        msg = str(e).removeprefix(f"{cfg.source}: ")
        if msg.startswith("[telegram] token_env") and not env.get(cfg.telegram.token_env):
            return []  # said once, by telegram()
        return [msg]
    return []


def keys(cfg: config.Config, env: Mapping[str, str]) -> list[str]:
    ex = cfg.exchange
    if ex.id == "sim" and not ex.key_file:
        return []  # the simulator's published keys (the supervisor's child_env)
    from trader.exchange.keys import KeysError, load_keys

    try:
        load_keys(ex.key_file, dict(env))
    except KeysError as e:
        return [str(e)]
    return []


def exchange_id(cfg: config.Config, env: Mapping[str, str]) -> list[str]:
    """Only an id with a venue module runs (``trader/exchange/venues``): never another venue's
    error codes and close rules."""
    from trader.exchange.venues import VENUES, supported

    ex = cfg.exchange
    if ex.id in VENUES:
        return []
    import ccxt  # the supervisor pays this import anyway (its kill path's session)

    what = ("has no venue module in flatguard" if ex.id in ccxt.exchanges
            else "is not a ccxt exchange id")
    return [f"exchange.id = {ex.id!r} {what}; supported venues: {', '.join(supported())} "
            "(adding one: trader/exchange/venues/base.py)"]


def strategy(cfg: config.Config, env: Mapping[str, str]) -> list[str]:
    from trader.engine.strategy import StrategyLoadError, load_strategy

    try:
        load_strategy(cfg.strategy.name)
    except StrategyLoadError as e:
        return [f"strategy.name: {e}"]
    return []


def event_loop(cfg: config.Config, env: Mapping[str, str]) -> list[str]:
    """``FLATGUARD_LOOP`` picks the trader's and the connector's event loop (``proc.run``)."""
    choice = env.get(proc.LOOP_ENV)
    if choice and choice not in proc.LOOPS:
        return [f"{proc.LOOP_ENV}={choice!r} in the environment is not a loop flatguard runs "
                f"on: use {' or '.join(proc.LOOPS)}, or unset it (uvloop)"]
    return []


CHECKS: tuple[Check, ...] = (exchange_id, symbols, leverage, keys, strategy, metrics_port,
                             telegram, sinks, event_loop)


def check(cfg: config.Config, env: Mapping[str, str]) -> list[str]:
    """Every problem found, each one line starting with the config file's name."""
    problems: list[str] = []
    for fn in CHECKS:
        try:
            problems += fn(cfg, env)
        except Exception as e:  # noqa: BLE001 - a check's own failure is a problem to report
            problems.append(f"pre-start check {fn.__name__} failed: {type(e).__name__}: {e}")
    return [f"{cfg.source}: {p}" for p in problems]
