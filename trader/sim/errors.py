"""Binance USDⓈ-M error replies as the simulator sends them.

Every refusal inside the simulator is a :class:`BinanceError`; the HTTP layer turns it into
the exact body Binance sends, ``{"code": -2019, "msg": "Margin is insufficient."}``, with the
HTTP status Binance uses for that code. Messages are copied from the Binance error-code page
because ccxt matches some of them literally (e.g. -4046 "No need to change margin type.").
"""

from __future__ import annotations

from trader.kernel.errors import FlatguardError

# Default message per code. Codes raised with a formatted message pass their own text.
MESSAGES: dict[int, str] = {
    -1000: "An unknown error occured while processing the request.",
    -1001: "Internal error; unable to process your request. Please try again.",
    -1003: "Too many requests; current limit is 2400 requests per minute. Please use the "
    "websocket for live updates to avoid polling the API.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; "
    "execution status unknown.",
    -1013: "Filter failure: LOT_SIZE",
    -1021: "Timestamp for this request is outside of the recvWindow.",
    -1022: "Signature for this request is not valid.",
    -1015: "Too many new orders; current limit is 1200 orders per 1 MINUTE.",
    -1100: "Illegal characters found in a parameter.",
    -1102: "A mandatory parameter was not sent, was empty/null, or malformed.",
    -1106: "A parameter was sent when not required.",
    -1111: "Precision is over the maximum defined for this asset.",
    -1115: "Invalid timeInForce.",
    -1116: "Invalid orderType.",
    -1117: "Invalid side.",
    -1121: "Invalid symbol.",
    -1125: "This listenKey does not exist.",
    -1120: "Invalid interval.",
    -1127: "Lookup interval is too big.",
    -1130: "Invalid data sent for a parameter.",
    -1131: "recvWindow must be less than 60000",
    -1136: "Invalid newOrderRespType",
    -2011: "Unknown order sent.",
    -2013: "Order does not exist.",
    -2014: "API-key format invalid.",
    -2015: "Invalid API-key, IP, or permissions for action.",
    -2019: "Margin is insufficient.",
    -2022: "ReduceOnly Order is rejected.",
    -4003: "Quantity less than or equal to zero.",
    -4005: "Quantity greater than max quantity.",
    -4014: "Price not increased by tick size.",
    -4023: "Quantity not increased by step size.",
    -4028: "Leverage is not valid.",
    -4046: "No need to change margin type.",
    -4047: "Margin type cannot be changed if there exists open orders.",
    -4048: "Margin type cannot be changed if there exists position.",
    -4059: "No need to change position side.",
    -4061: "Order's position side does not match user's setting.",
    -4067: "Position side cannot be changed if there exists open orders.",
    -4068: "Position side cannot be changed if there exists position.",
    -4116: "ClientOrderId is duplicated.",
    -4120: "Order type not supported for this endpoint. Please use the Algo Order API "
    "endpoints instead.",
    -4131: "The counterparty's best price does not meet the PERCENT_PRICE filter limit.",
    -4164: "Order's notional must be no smaller than 5 (unless you choose reduce only).",
    -5027: "No need to modify the order.",
    -5022: "Due to the order could not be executed as maker, the Post Only order will be "
    "rejected. The order will not be recorded in the order's history",
}

# HTTP status per code; everything else is 400 like Binance.
_STATUS: dict[int, int] = {
    -1003: 429,
    -1015: 429,
    -1001: 503,
    -1007: 503,
    -2014: 401,
    -2015: 401,
}


def status_for(code: int) -> int:
    """The HTTP status Binance answers a given error code with."""
    return _STATUS.get(code, 400)


class BinanceError(FlatguardError):
    """A request refused with a Binance error code; the HTTP layer renders it."""

    def __init__(self, code: int, msg: str | None = None, *, status: int | None = None) -> None:
        self.code = code
        self.msg = msg if msg is not None else MESSAGES.get(code, "Unknown error.")
        self.status = status if status is not None else status_for(code)
        super().__init__(f"{code} {self.msg}")

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def not_required(name: str) -> BinanceError:
    return BinanceError(-1106, f"Parameter '{name}' sent when not required.")
