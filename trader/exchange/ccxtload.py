"""Load one ccxt exchange class without importing the ~110 others.

``import ccxt.async_support`` executes a package ``__init__`` that imports every exchange ccxt
ships (and ``ccxt`` itself does the same for the sync classes): about 1.1 s of CPU and 200+
modules on this project's 2-core reference machine, paid by the connector and by the supervisor
(its kill path) on every start, for one venue. Here the three packages (``ccxt``,
``ccxt.async_support``, ``ccxt.pro``) are registered as *shells*: the package object with its
real ``__path__`` but its ``__init__`` not yet run, so ``import ccxt.async_support.binanceusdm``
loads that exchange, its parents and ``ccxt.base`` only (0.4 s).

A shell behaves like the real package for anyone who reaches past what was loaded: an error
class (``ccxt.NetworkError``) or a base name (``ccxt.Exchange``) resolves directly; any other
name (``ccxt.exchanges``, ``ccxt.okx``, ``__version__``) first runs the real ``__init__`` in the
shell, once, which then is the full package. Each exchange class loaded is bound on its package
as the real ``__init__`` binds it (``ccxt.async_support.binance`` is the class, not the
module), because ccxt's own modules subclass through that name (``ccxt.pro.binance``).

If a package is already imported (a test process, a user's script), it is used as it is.
The ccxt minor version is pinned in ``pyproject.toml``; ``tests/unit/exchange/test_ccxtload.py``
checks the classes and errors match a full import's.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

from trader.kernel.errors import FlatguardError

PACKAGES = ("ccxt", "ccxt.async_support", "ccxt.pro")
# names the packages re-export from ccxt.base, resolved without the full __init__
_BASE_NAMES = {
    "Exchange": None,  # per package: ccxt → sync base, async_support/pro → async base
    "Precise": "ccxt.base.precise",
    "OrderRouter": "ccxt.base.order_router",
}
_ASYNC_EXCHANGE = "ccxt.async_support.base.exchange"
_lock = threading.RLock()


class UnknownExchange(FlatguardError, LookupError):
    """ccxt has no exchange class under this id."""


def _base_name(package: str, attr: str) -> Any:
    if attr == "Exchange":
        module = "ccxt.base.exchange" if package == "ccxt" else _ASYNC_EXCHANGE
        return importlib.import_module(module).Exchange
    if attr in _BASE_NAMES:
        return getattr(importlib.import_module(_BASE_NAMES[attr]), attr)
    errors = importlib.import_module("ccxt.base.errors")
    if isinstance(getattr(errors, attr, None), type):
        return getattr(errors, attr)
    if package == "ccxt" and attr.isupper():  # decimal_to_precision's constants (TRUNCATE, ...)
        dtp = importlib.import_module("ccxt.base.decimal_to_precision")
        if hasattr(dtp, attr):
            return getattr(dtp, attr)
    raise AttributeError(attr)


def _shell(name: str) -> ModuleType:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not an importable package")
    module = importlib.util.module_from_spec(spec)
    loaded = False

    def __getattr__(attr: str) -> Any:  # PEP 562: only called for names not yet bound
        nonlocal loaded
        if not attr.startswith("__"):
            try:
                return _base_name(name, attr)
            except AttributeError:
                pass
        with _lock:
            if not loaded:
                loaded = True
                spec.loader.exec_module(module)  # the real __init__: the shell is now the package
                if attr in module.__dict__:
                    return module.__dict__[attr]
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def install() -> None:
    """Register the shells for the ccxt packages not imported yet (cheap: no ccxt code runs)."""
    with _lock:
        for name in PACKAGES:
            if name not in sys.modules:
                _shell(name)


def _bind_classes(package: str) -> None:
    """Bind every loaded ``<package>.<id>`` module's class ``<id>`` on the package, as the
    real ``__init__`` does (importing a submodule binds the module there instead)."""
    pkg = sys.modules[package]
    prefix = package + "."
    for name, mod in list(sys.modules.items()):
        if not name.startswith(prefix) or "." in name[len(prefix):]:
            continue
        cls_name = name[len(prefix):]
        cls = getattr(mod, cls_name, None)
        if isinstance(cls, type) and pkg.__dict__.get(cls_name) is not cls:
            setattr(pkg, cls_name, cls)


def exchange_class(exchange_id: str, *, pro: bool = False) -> type:
    """ccxt's async exchange class ``exchange_id`` (``ccxt.pro``'s when ``pro``), importing
    only it and what it derives from. :class:`UnknownExchange` when ccxt has none."""
    package = "ccxt.pro" if pro else "ccxt.async_support"
    if not exchange_id.isidentifier() or exchange_id.startswith("_") or exchange_id in (
            "base", "abstract", "static_dependencies", "test"):
        raise UnknownExchange(exchange_id)
    install()
    with _lock:
        pkg = sys.modules[package]
        cls = pkg.__dict__.get(exchange_id)
        if isinstance(cls, type):
            return cls
        if pro:  # ccxt.pro.<id> subclasses ccxt.async_support.<id>: the class must be bound
            try:
                exchange_class(exchange_id, pro=False)
            except UnknownExchange:
                pass
        try:
            importlib.import_module(f"{package}.{exchange_id}")
        except ModuleNotFoundError as e:
            if e.name == f"{package}.{exchange_id}":
                raise UnknownExchange(exchange_id) from None
            raise
        _bind_classes("ccxt.async_support")
        if pro:
            _bind_classes("ccxt.pro")
        cls = pkg.__dict__.get(exchange_id)
    if not isinstance(cls, type):
        raise UnknownExchange(exchange_id)
    return cls


def __getattr__(name: str) -> Any:
    """``errors``: ccxt's error module (``ccxt.base.errors``), imported after the shells."""
    if name == "errors":
        install()
        return importlib.import_module("ccxt.base.errors")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
