"""Fault hooks: retired endpoints, failures of the next N calls, latency.

Rules match a request by path (exact, or a prefix when the rule ends in ``*``) and optionally
by HTTP method. Latency is the time a request spends *in flight inside the exchange*: it is
received (counted, metered, authenticated) at once and processed after the delay, so a slowed
``POST /fapi/v1/order`` lands later and is checked against its recvWindow when it lands. A failure is either a bare HTTP status with an empty body (what a gateway or a
retired endpoint sends) or a Binance error code with its real JSON body and status.
A failure can fire *before* the request is processed (nothing happened) or *after* it
(the request took effect but the reply is lost: the "timed-out order that was placed" case).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from aiohttp import web

from trader.sim.errors import BinanceError


@dataclass(frozen=True)
class Failure:
    status: int | None = None  # bare status, empty body
    code: int | None = None  # Binance code, JSON body

    @classmethod
    def parse(cls, value: int | str) -> Failure:
        """``404``/``503`` are bare statuses; ``-1021``/``-1003`` are Binance codes."""
        number = int(value)
        return cls(code=number) if number < 0 else cls(status=number)

    def response(self) -> web.Response:
        if self.code is None:
            return web.Response(status=self.status or 503)
        err = BinanceError(self.code)
        headers = {"Retry-After": "1"} if err.status == 429 else {}
        return web.Response(status=self.status or err.status, text=json.dumps(err.body()),
                            content_type="application/json", headers=headers)


@dataclass
class FailRule:
    path: str
    method: str | None
    remaining: int
    failure: Failure
    after: bool = False

    def matches(self, method: str, path: str) -> bool:
        return _path_matches(self.path, path) and (self.method in (None, method))


def _path_matches(rule: str, path: str) -> bool:
    return path.startswith(rule[:-1]) if rule.endswith("*") else path == rule


@dataclass
class Faults:
    retired: dict[tuple[str | None, str], Failure] = field(default_factory=dict)
    rules: list[FailRule] = field(default_factory=list)
    latency_ms: float = 0.0
    # (METHOD or None, path rule) -> ms; the largest matching rule applies
    path_latency_ms: dict[tuple[str | None, str], float] = field(default_factory=dict)

    def retire(self, path: str, *, method: str | None = None,
               failure: Failure = Failure(status=404)) -> None:
        self.retired[(method.upper() if method else None, path)] = failure

    def fail(self, path: str, count: int, failure: Failure, *, method: str | None = None,
             after: bool = False) -> None:
        self.rules.append(FailRule(path, method.upper() if method else None, count,
                                   failure, after))

    def set_latency(self, ms: float, path: str | None = None, method: str | None = None) -> None:
        """Without path and method: every REST call. ``ms`` 0 removes a path rule."""
        if ms < 0:
            raise ValueError("latency must be >= 0")
        if path is None and method is None:
            self.latency_ms = ms
            return
        key = (method.upper() if method else None, path or "*")
        if ms:
            self.path_latency_ms[key] = ms
        else:
            self.path_latency_ms.pop(key, None)

    def clear(self) -> None:
        self.retired.clear()
        self.rules.clear()
        self.latency_ms = 0.0
        self.path_latency_ms.clear()

    def retired_for(self, method: str, path: str) -> Failure | None:
        for (rule_method, rule_path), failure in self.retired.items():
            if rule_method in (None, method) and _path_matches(rule_path, path):
                return failure
        return None

    def take(self, method: str, path: str, *, after: bool) -> Failure | None:
        """Consume one pending failure for this call, if a rule matches."""
        for rule in self.rules:
            if rule.after == after and rule.remaining > 0 and rule.matches(method, path):
                rule.remaining -= 1
                return rule.failure
        return None

    def latency_for(self, method: str, path: str) -> float:
        extra = max((ms for (rule_method, rule), ms in self.path_latency_ms.items()
                     if rule_method in (None, method) and _path_matches(rule, path)),
                    default=0.0)
        return self.latency_ms + extra

    def snapshot(self) -> dict[str, object]:
        return {
            "retired": [{"method": m, "path": p, **asdict(f)}
                        for (m, p), f in self.retired.items()],
            "fail": [asdict(r) for r in self.rules if r.remaining > 0],
            "latency_ms": self.latency_ms,
            "path_latency": [{"method": m, "path": p, "ms": ms}
                             for (m, p), ms in self.path_latency_ms.items()],
        }


# ---- CLI specs ------------------------------------------------------------------------


def _split_method(spec: str) -> tuple[str | None, str]:
    method, _, path = spec.strip().rpartition(" ")
    return (method.upper() or None), path


def parse_retire(spec: str) -> tuple[str | None, str, Failure]:
    """``[METHOD ]PATH[=STATUS|CODE]``, e.g. ``/fapi/v2/account=410``."""
    target, _, value = spec.partition("=")
    method, path = _split_method(target)
    return method, path, Failure.parse(value) if value else Failure(status=404)


def parse_fail(spec: str) -> tuple[str | None, str, int, Failure, bool]:
    """``[METHOD ]PATH:N:CODE_OR_STATUS[:after]``, e.g. ``POST /fapi/v1/order:2:503``."""
    parts = spec.split(":")
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "after"):
        raise ValueError(f"bad --fail spec {spec!r}: want [METHOD ]PATH:N:CODE_OR_STATUS[:after]")
    method, path = _split_method(parts[0])
    return method, path, int(parts[1]), Failure.parse(parts[2]), len(parts) == 4


def parse_latency(spec: str) -> tuple[str | None, str, float]:
    """``[METHOD ]PATH=MS``, e.g. ``POST /fapi/v1/order=3000`` (new orders only)."""
    target, sep, value = spec.rpartition("=")
    method, path = _split_method(target)
    try:
        ms = float(value)
    except ValueError:
        ms = -1.0
    if not sep or not path or ms < 0:
        raise ValueError(f"bad --path-latency spec {spec!r}: want [METHOD ]PATH=MS")
    return method, path, ms
