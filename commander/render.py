"""Replies as text a person reads in a terminal or on a phone screen (narrow, no wide tables).

Pure functions of the reply data; ``--json`` prints the data itself instead.
"""

from __future__ import annotations

import time
from typing import Any


def num(v: Any, digits: int = 2) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v).lower()
    if isinstance(v, int | float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if isinstance(v, float) and 0 < abs(v) < 1:
            return f"{v:.6g}"  # quantities like 0.002 BTC must not print as 0
        return f"{v:.{digits}f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)
    return str(v)


def table(rows: list[list[Any]], header: list[str] | None = None) -> str:
    cells = [[num(c) for c in r] for r in ([header] if header else []) + rows]
    if not cells:
        return ""
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


def generic(name: str, data: dict[str, Any]) -> str:
    msg = data.get("message")
    lines = [str(msg)] if msg else [f"{name}: ok"]
    for k, v in data.items():
        if k == "message":
            continue
        if isinstance(v, dict):
            lines.append(f"{k}:")
            lines += [f"  {kk}: {_short(vv)}" for kk, vv in v.items()]
        else:
            lines.append(f"{k}: {_short(v)}")
    return "\n".join(lines)


def _short(v: Any) -> str:
    s = num(v) if not isinstance(v, list | dict) else repr(v)
    return s if len(s) <= 200 else s[:197] + "..."


def processes(procs: dict[str, Any]) -> str:
    rows = [[n, str(p.get("pid") or "-"), p.get("state", "?"), _age(p.get("heartbeat_age_s"))]
            for n, p in sorted(procs.items())]
    return table(rows, ["process", "pid", "state", "hb"])


def _age(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1f}s"


def halt_line(data: dict[str, Any]) -> str:
    if not data.get("halted"):
        return "halted: no"
    h = data.get("halt") or {}
    flat = "verified flat" if h.get("verified_flat") else "NOT verified flat"
    return f"HALTED: {h.get('reason') or '?'} ({h.get('trigger') or '?'}, {flat})"


def killswitch_line(data: dict[str, Any]) -> str | None:
    """What the kill path is doing now, when it is doing anything."""
    ks = data.get("killswitch") or {}
    parts = []
    if ks.get("banned_s"):
        parts.append(f"banned by the exchange for {ks['banned_s']:.0f} s (waiting)")
    if ks.get("inflight_wait_s"):
        parts.append(f"flat, waiting {ks['inflight_wait_s']:.1f} s for orders in flight")
    elif ks.get("running") or ks.get("flattening"):
        parts.append(f"flattening (round {ks.get('rounds') or 0})")
    if ks.get("watching"):
        parts.append("watching the halted account after the verified flatten")
    if ks.get("io_errors"):
        parts.append(f"{ks['io_errors']} journal/IO failure(s) (flattening anyway)")
    return "kill switch: " + "; ".join(parts) if parts else None


def info(data: dict[str, Any]) -> str:
    trading = data.get("trading_state") or "?"
    if data.get("risk_state") and data["risk_state"] != trading:
        trading += f" (risk: {data['risk_state']})"
    out = [halt_line(data), f"trading: {trading}"]
    ks_line = killswitch_line(data)
    if ks_line:
        out.append(ks_line)
    if data.get("equity") is not None:
        out.append(f"equity: {num(data['equity'])}  exposure: {num(data.get('exposure'))}"
                   f"  leverage: {num(data.get('effective_leverage'))}x used, "
                   f"{num(data.get('leverage'))}x set")
    out += ["", processes(data.get("processes") or {})]
    pos = [p for p in data.get("positions") or [] if p.get("contracts")]
    out.append("")
    if pos:
        out.append(table([[p.get("symbol"), p.get("side"), p.get("contracts"),
                           p.get("entry_price"), p.get("notional")] for p in pos],
                         ["symbol", "side", "qty", "entry", "notional"]))
    else:
        out.append("positions: none")
    orders = data.get("open_orders") or []
    out.append(f"open orders: {len(orders)}")
    if orders:
        out.append(table([[o.get("symbol"), o.get("side"), o.get("type"), o.get("amount"),
                           o.get("price")] for o in orders[:20]]))
    syms = data.get("symbols") or {}
    if syms:
        out.append("symbols: " + ", ".join(f"{s.split('/')[0]} {v.get('state', '?')}"
                                           for s, v in sorted(syms.items())))
    for part in data.get("no_answer") or []:
        out.append(f"{part}: no answer")
    for e in (data.get("errors") or [])[-5:]:
        out.append(f"error: {e}")
    return "\n".join(out).strip()


def ping(data: dict[str, Any]) -> str:
    out = [f"pong: commander pid {data.get('commander', {}).get('pid')}", halt_line(data)]
    if data.get("processes"):
        out += ["", processes(data["processes"])]
    for part in data.get("no_answer") or []:
        out.append(f"{part}: no answer")
    return "\n".join(out)


def audit(data: dict[str, Any]) -> str:
    rows = [[time.strftime("%m-%d %H:%M:%S", time.localtime(e["ts"])), e["channel"], e["who"],
             (e["command"] + " " + " ".join(_args(e.get("args")))).strip(),
             "ok" if e["ok"] else e["result"].split(":", 1)[0]]
            for e in data.get("entries", [])]
    return table(rows, ["time", "channel", "who", "command", "result"]) if rows else "no commands yet"


def _args(raw: Any) -> list[str]:
    import json

    try:
        v = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return [str(raw)]
    return [str(x) for x in v] if isinstance(v, list) else []
