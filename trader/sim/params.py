"""Typed access to a Binance request's parameters (query string and form body merged)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from trader.sim.book import OrderRequest
from trader.sim.errors import BinanceError, mandatory, not_required

_MALFORMED = "Mandatory parameter '{}' was not sent, was empty/null, or malformed."
# Binance's rule for client order ids (newClientOrderId, origClientOrderId).
CLIENT_ID_RULE = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
_CLIENT_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")
RESP_TYPES = ("ACK", "RESULT")


class Params:
    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)

    def __contains__(self, name: str) -> bool:
        return bool(self.values.get(name))

    def text(self, name: str) -> str | None:
        return self.values.get(name) or None

    def req(self, name: str) -> str:
        value = self.values.get(name)
        if not value:
            raise mandatory(name)
        return value

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if not value:
            return default
        try:
            return int(value)
        except ValueError:
            raise BinanceError(-1102, _MALFORMED.format(name)) from None

    def number(self, name: str) -> Decimal | None:
        value = self.values.get(name)
        if not value:
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise BinanceError(-1102, _MALFORMED.format(name)) from None
        if not number.is_finite():
            raise BinanceError(-1102, _MALFORMED.format(name))
        return number

    def flag(self, name: str) -> bool:
        value = (self.values.get(name) or "false").lower()
        if value not in ("true", "false"):
            raise BinanceError(-1102, _MALFORMED.format(name))
        return value == "true"

    def client_id(self, name: str) -> str | None:
        """A client order id, checked against Binance's rule (-1100 names the rule)."""
        value = self.text(name)
        if value is not None and not _CLIENT_ID.fullmatch(value):
            raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal "
                                      f"range is '{CLIENT_ID_RULE}'.")
        return value

    def resp_type(self) -> str:
        """``newOrderRespType``: ACK (USDⓈ-M's default for every order type) or RESULT."""
        value = self.text("newOrderRespType") or "ACK"
        if value not in RESP_TYPES:
            raise BinanceError(-1136)
        return value

    def order_ref(self) -> tuple[int | None, str | None]:
        order_id = self.integer("orderId")
        client_id = self.client_id("origClientOrderId")
        if order_id is None and client_id is None:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, "
                                      "but both were empty/null!")
        return order_id, client_id


_CONDITIONAL = frozenset({"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                          "TRAILING_STOP_MARKET"})


def order_request(p: Params) -> OrderRequest:
    """Parse ``POST /fapi/v1/order`` parameters; syntax only, the account checks the rest."""
    symbol = p.req("symbol")
    side = p.req("side")
    if side not in ("BUY", "SELL"):
        raise BinanceError(-1117)
    order_type = p.req("type")
    if order_type in _CONDITIONAL:
        raise BinanceError(-4120)
    if order_type not in ("LIMIT", "MARKET"):
        raise BinanceError(-1116)
    quantity = p.number("quantity")
    if quantity is None:
        if p.flag("closePosition"):
            raise not_required("closePosition")
        raise mandatory("quantity")
    price = p.number("price")
    tif = p.text("timeInForce")
    if order_type == "LIMIT":
        if price is None:
            raise mandatory("price")
        if tif is None:
            raise mandatory("timeInForce")
        if tif not in ("GTC", "IOC", "FOK", "GTX", "GTD"):
            raise BinanceError(-1115)
    else:
        if price is not None:
            raise not_required("price")
        if tif is not None:
            raise not_required("timeInForce")
    return OrderRequest(
        symbol=symbol, side=side, type=order_type, quantity=quantity, price=price,
        time_in_force=tif, reduce_only=p.flag("reduceOnly"),
        position_side=p.text("positionSide"),
        client_order_id=p.client_id("newClientOrderId"),
    )
