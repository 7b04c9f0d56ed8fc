"""Non-finite and empty numbers from the exchange: ``POST /_sim/garbage``.

ccxt turns the strings ``"NaN"`` and ``"Infinity"`` into floats without complaint, and an empty
string into None; a client that does not check them takes a NaN equity through its risk caps
or drops NaN contracts as "flat". This fault makes the exchange send such values:

    {"field": "mark" | "equity" | "position", "value": "NaN" | "Infinity" | "0" | "" | any
     string (or null), "count": N (optional: the next N replies/messages; default until
     /_sim/clear)}

- ``mark``: ``GET /fapi/v1/premiumIndex`` ``markPrice``; the ``markPrice`` streams' ``p``/``ap``.
- ``equity``: account v2/v3 totals (``totalWalletBalance``, ``totalMarginBalance``,
  ``availableBalance`` ...) and asset rows (``walletBalance``, ``marginBalance`` ...), balance
  v2/v3 (``balance``, ``availableBalance`` ...), ACCOUNT_UPDATE ``B[].wb``/``cw``.
- ``position``: positionRisk v2/v3 ``positionAmt``, ``entryPrice``, ``markPrice``; account
  ``positions[].positionAmt``; ACCOUNT_UPDATE ``P[].pa``/``ep``.

Each REST reply or WebSocket message that carried the field uses up one of ``count``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

FIELDS = frozenset({"mark", "equity", "position"})
_EQUITY_TOTALS = ("totalWalletBalance", "totalMarginBalance", "availableBalance",
                  "totalCrossWalletBalance", "maxWithdrawAmount")
_EQUITY_ASSET = ("walletBalance", "marginBalance", "availableBalance", "crossWalletBalance",
                 "maxWithdrawAmount")
_EQUITY_BALANCE = ("balance", "crossWalletBalance", "availableBalance", "maxWithdrawAmount")
_POSITION = ("positionAmt", "entryPrice", "markPrice")
_ACCOUNT = frozenset({"/fapi/v2/account", "/fapi/v3/account"})
_BALANCE = frozenset({"/fapi/v2/balance", "/fapi/v3/balance"})
_POSITION_RISK = frozenset({"/fapi/v2/positionRisk", "/fapi/v3/positionRisk"})


@dataclass
class Rule:
    value: str | None
    remaining: int | None  # None: until cleared


def _rows(obj: object) -> list[dict[str, object]]:
    if isinstance(obj, dict):
        return [obj]
    if isinstance(obj, list):
        return [r for r in obj if isinstance(r, dict)]
    return []


@dataclass
class Garbage:
    rules: dict[str, Rule] = field(default_factory=dict)

    def set(self, name: str, value: str | None, count: int | None) -> None:
        if name not in FIELDS:
            raise ValueError(f"field must be one of {sorted(FIELDS)}")
        if value is not None and not isinstance(value, str):
            raise ValueError("value must be a string (e.g. \"NaN\") or null")
        if count is not None and count < 1:
            raise ValueError("count must be >= 1")
        self.rules[name] = Rule(value, count)

    def clear(self) -> None:
        self.rules.clear()

    def snapshot(self) -> dict[str, object]:
        return {k: {"value": r.value, "remaining": r.remaining} for k, r in self.rules.items()}

    def apply(self, name: str, targets: Iterable[tuple[object, Iterable[str]]]) -> None:
        """Overwrite ``keys`` in every row of each target; one use of the rule if any."""
        rule = self.rules.get(name)
        if rule is None:
            return
        hit = False
        for obj, keys in targets:
            for row in _rows(obj):
                for key in keys:
                    if key in row:
                        row[key] = rule.value
                        hit = True
        if hit and rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining <= 0:
                del self.rules[name]

    # ---- where each field lives --------------------------------------------------------

    def rest(self, path: str, body: object) -> None:
        if not self.rules:
            return
        if path == "/fapi/v1/premiumIndex":
            self.apply("mark", [(body, ("markPrice",))])
        elif path in _ACCOUNT and isinstance(body, dict):
            self.apply("equity", [(body, _EQUITY_TOTALS), (body.get("assets"), _EQUITY_ASSET)])
            self.apply("position", [(body.get("positions"), ("positionAmt",))])
        elif path in _BALANCE:
            self.apply("equity", [(body, _EQUITY_BALANCE)])
        elif path in _POSITION_RISK:
            self.apply("position", [(body, _POSITION)])

    def mark_stream(self, payload: object) -> None:
        if self.rules:
            self.apply("mark", [(payload, ("p", "ap"))])

    def account_update(self, payload: dict[str, object]) -> None:
        a = payload.get("a")
        if self.rules and isinstance(a, dict):
            self.apply("equity", [(a.get("B"), ("wb", "cw"))])
            self.apply("position", [(a.get("P"), ("pa", "ep"))])
