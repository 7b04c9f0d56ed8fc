"""ccxtload: one exchange class without the others, and shells that turn into the real package.

Each check runs in a fresh interpreter: the test process itself may already hold the full ccxt.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_class_loads_without_the_other_exchanges_then_the_shell_becomes_the_package():
    """One interpreter for both (each full ccxt import is ~1 s of CPU): first what one class
    loads, then the shells turning into the full packages under it."""
    r = _run("""
        import json, sys
        from trader.exchange import ccxtload
        rest = ccxtload.exchange_class("binanceusdm")
        pro = ccxtload.exchange_class("binanceusdm", pro=True)
        names = [m for m in sys.modules if m.startswith("ccxt.async_support.")
                 and m.count(".") == 2 and m.split(".")[2] not in ("base",)]
        one = {"rest": rest.__module__, "pro_is_sub": issubclass(pro, sys.modules["ccxt.async_support"].binance),
               "pro": pro.__module__, "exchanges": sorted(names),
               "okx": "ccxt.async_support.okx" in sys.modules}
        import ccxt, ccxt.async_support as a
        from ccxt.base import errors
        same_error = ccxt.NetworkError is errors.NetworkError and a.InvalidOrder is errors.InvalidOrder
        n = len(ccxt.exchanges)              # not in the shell: runs the real __init__
        print(json.dumps({"one": one, "n": n, "same_class": a.binanceusdm is rest,
                          "okx": a.okx.__name__, "same_error": same_error,
                          "version": ccxt.__version__}))
    """)
    one = r["one"]
    assert one["rest"] == "ccxt.async_support.binanceusdm"
    assert one["pro"] == "ccxt.pro.binanceusdm" and one["pro_is_sub"]
    assert one["exchanges"] == ["ccxt.async_support.binance", "ccxt.async_support.binanceusdm"]
    assert not one["okx"]
    assert r["n"] > 50 and r["okx"] == "okx"
    assert r["same_class"] and r["same_error"]
    assert r["version"].startswith("4.5.")


def test_unknown_ids_are_refused_by_name():
    r = _run("""
        import json
        from trader.exchange import ccxtload
        out = {}
        for name in ("nosuchexchange", "base", "../x", "abstract"):
            try:
                ccxtload.exchange_class(name)
                out[name] = "loaded"
            except ccxtload.UnknownExchange:
                out[name] = "refused"
        print(json.dumps(out))
    """)
    assert set(r.values()) == {"refused"}


def test_an_already_imported_ccxt_is_used_as_it_is():
    r = _run("""
        import json
        import ccxt.async_support as a
        from trader.exchange import ccxtload
        print(json.dumps({"same": ccxtload.exchange_class("binanceusdm") is a.binanceusdm}))
    """)
    assert r["same"]
