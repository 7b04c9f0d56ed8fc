"""The error taxonomy: every failed exchange call is exactly one of TRANSIENT, REJECTED or FATAL.

Why rules of our own: ccxt's classes say too little and sometimes the wrong thing. A retired
endpoint answering HTTP 404/410 with no JSON body surfaces as ``ExchangeNotAvailable`` (a
``NetworkError``: "retry me"); an unknown exchange code is a bare ``ExchangeError``; and a
venue's codes are mapped by ccxt only for the hosts it knows. So the decision is made here, with
the venue's rules (:class:`Rules`, built by ``trader/exchange/venues/<id>.py``), in this order:

1. **exchange code** parsed from the error body (``{"code":-2019,"msg":"..."}``), per call
   group, from the venue's code rows; a code that is present but has no row for that call is
   FATAL (a venue without code rows therefore turns every coded error into FATAL);
2. **HTTP status** (recorded from the response, or parsed from ccxt's message);
3. **ccxt class** (most specific first);
4. anything else: FATAL.

Call groups: ``order`` = create_order / cancel_order / cancel_all_orders / edit_order;
``lookup`` = fetch_order (resolving a client order id); ``setup`` = set_leverage;
``user stream`` = keepalive_listen_key and the account ``watch_*`` calls;
``state`` = every other call (balances, positions, open orders, time, feed).

Recovery policy per kind:

* TRANSIENT: retry with capped exponential backoff within the budget (``exchange.retry_budget``
  consecutive failures and ``exchange.retry_window`` seconds without success, per call). A
  transient error that outlives its budget becomes FATAL. A ``create_order`` is never retried:
  one whose outcome is unknown (timeout, 5xx, a venue's "status unknown" code) is looked up by
  client order id, after its recvWindow has run out if not found at once, and reported not
  placed if the exchange does not have it (``connector/orders.py``); one refused unprocessed is
  reported not placed.
* REJECTED: this order (or this symbol's set-up) is refused; trading continues. On a cancel,
  "unknown order" means it is already gone: success. On a lookup it means "never placed".
* FATAL: stop trading, ask the supervisor to halt (kill switch: flatten), alert a person naming
  the call and the endpoint.

The venue-neutral rows (the README copies them; each venue module lists its code rows):

=========  ============================  =========  ==========================================
match      meaning                       calls      kind
=========  ============================  =========  ==========================================
any code without a row for this call                fatal
status 404/410 endpoint gone             any        fatal
status 401/403 unauthorised / WAF        any        fatal
status 418/429 IP ban / rate limit       any        transient (honour Retry-After)
status 5xx     server error              any        transient
class AuthenticationError, PermissionDenied, AccountSuspended, NotSupported, BadRequest,
      BadSymbol, BadResponse, NullResponse, ArgumentsRequired                fatal
class OrderNotFound                      cancel     rejected = already gone; lookup: never placed
class InvalidOrder, InsufficientFunds    order      rejected (elsewhere fatal)
class InvalidNonce                       any        transient (resync)
class RateLimitExceeded, DDoSProtection, RequestTimeout, OnMaintenance,
      ExchangeNotAvailable, NetworkError any        transient (ExchangeNotAvailable with 404/410:
                                                    fatal, by the status rule above)
anything else (ExchangeError, OperationFailed, unknown exceptions)            fatal
transient beyond retry_budget / retry_window on the same call                 fatal
=========  ============================  =========  ==========================================

Not classified at all: a request our side refused to send (:class:`NotSent`: fenced, banned,
over the weight share), and an answer ccxt could not parse (a ``ValueError`` after a 2xx, e.g.
``"NaN"`` where its Precise wants a number), which is bad data (``numbers.py``), not a failed
call. A request to a host on the ban board fails unsent as ``DDoSProtection`` (transient).

Exceptions (all :class:`~trader.kernel.errors.FlatguardError`, the reply kind as data)::

    ExchangeCallError   a classified failure; kind = the classification's kind
    ├── Fatal           stop trading, halt, flatten, alert
    ├── Rejected        this order / set-up refused; trading continues
    └── Transient       retry within budget (raised to code that chose one attempt)
    NotSent             kind "rejected": nothing left this process; the caller decides
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from trader.kernel.errors import FlatguardError
from trader.kernel.redact import scrub_url


class Kind(StrEnum):
    TRANSIENT = "transient"
    REJECTED = "rejected"
    FATAL = "fatal"


ORDER_CALLS = frozenset({"create_order", "cancel_order", "cancel_all_orders", "edit_order"})
CANCEL_CALLS = frozenset({"cancel_order", "cancel_all_orders"})
LOOKUP_CALLS = frozenset({"fetch_order"})
SETUP_CALLS = frozenset({"set_leverage"})
USER_STREAM_CALLS = frozenset({"keepalive_listen_key", "watch_orders", "watch_my_trades",
                               "watch_positions", "watch_balance"})

ANY = None  # a rule that applies to every call


@dataclass(frozen=True)
class Rule:
    kind: Kind
    calls: frozenset[str] | None  # None: any call
    action: str  # what it means and what to do, for logs and alerts
    outcome: str = ""  # "gone" (cancel: already gone), "absent" (lookup: never placed),
    #                    "lookup" (create: resolve by client id), "resync" (exchange time),
    #                    "relisten" (user stream: new listen key, reconnect, reconcile)


def rules_for(codes: tuple[int, ...], *rules: Rule) -> dict[int, tuple[Rule, ...]]:
    """The same rules for several codes (a venue's code table is built from these)."""
    return {c: rules for c in codes}


_T, _R, _F = Kind.TRANSIENT, Kind.REJECTED, Kind.FATAL
AUTH = "the API key, its signature, IP allow-list or permissions were refused: check the key"
ORDER_REFUSED = ("the exchange refused this order (filters, precision, margin or reduce-only): "
                 "not retried")


STATUS_RULES: dict[int, Rule] = {
    404: Rule(_F, ANY, "endpoint gone (HTTP 404): the exchange retired it; update flatguard"),
    410: Rule(_F, ANY, "endpoint gone (HTTP 410): the exchange retired it; update flatguard"),
    401: Rule(_F, ANY, "unauthorised (HTTP 401): " + AUTH),
    403: Rule(_F, ANY, "forbidden (HTTP 403, WAF or permissions): check the key and IP"),
    418: Rule(_T, ANY, "IP banned for too many requests (HTTP 418): waiting Retry-After"),
    429: Rule(_T, ANY, "rate limited (HTTP 429): waiting Retry-After"),
    **{s: Rule(_T, ANY, f"server error (HTTP {s}): retrying", "lookup") for s in range(500, 600)},
}

# (ccxt class name, rule for order calls, rule for other calls); most specific first.
_FATAL_CLASS = Rule(_F, ANY, "the exchange refused the request as malformed or unsupported")
CLASS_RULES: tuple[tuple[str, Rule], ...] = (
    ("AuthenticationError", Rule(_F, ANY, AUTH)),  # includes PermissionDenied, AccountSuspended
    ("NotSupported", Rule(_F, ANY, "the exchange does not support this call")),
    ("OrderNotFound", Rule(_R, CANCEL_CALLS, "order already gone: counts as cancelled", "gone")),
    ("OrderNotFound", Rule(_R, LOOKUP_CALLS, "no such order: it was never placed", "absent")),
    ("DuplicateOrderId", Rule(_R, frozenset({"create_order"}), "duplicate client id", "lookup")),
    ("InvalidOrder", Rule(_R, ORDER_CALLS, ORDER_REFUSED)),
    ("InsufficientFunds", Rule(_R, ORDER_CALLS, "insufficient margin: order refused")),
    ("BadRequest", _FATAL_CLASS),
    ("ArgumentsRequired", _FATAL_CLASS),
    ("BadResponse", Rule(_F, ANY, "the exchange answered something unreadable")),
    ("InvalidNonce", Rule(_T, ANY, "timestamp refused: resyncing exchange time", "resync")),
    ("RateLimitExceeded", Rule(_T, ANY, "rate limited: backing off")),
    ("DDoSProtection", Rule(_T, ANY, "rate limited / IP ban: backing off")),
    ("RequestTimeout", Rule(_T, ANY, "request timed out: outcome unknown, resolving", "lookup")),
    ("OnMaintenance", Rule(_T, ANY, "exchange under maintenance: retrying")),
    ("ExchangeNotAvailable", Rule(_T, ANY, "exchange not reachable: retrying", "lookup")),
    ("NetworkError", Rule(_T, ANY, "network error: retrying", "lookup")),
)

UNKNOWN = Rule(_F, ANY, "unrecognised failure: unknown means fatal")


@dataclass(frozen=True)
class Rules:
    """One venue's rules: its code rows (none: every coded error is fatal), then the HTTP status
    and ccxt class rows (venue-neutral by default)."""

    codes: Mapping[int, tuple[Rule, ...]] = field(default_factory=dict)
    statuses: Mapping[int, Rule] = field(default_factory=lambda: STATUS_RULES)
    classes: tuple[tuple[str, Rule], ...] = CLASS_RULES


NO_CODES = Rules()  # a venue that publishes no codes we know: status and class rows only


@dataclass(frozen=True)
class Classification:
    kind: Kind
    call: str
    endpoint: str  # "GET /fapi/v2/account", or "" when not known
    code: int | None
    status: int | None
    error: str  # ccxt class name (or exception type)
    detail: str  # the exchange's own words, trimmed
    action: str  # what it means and what to do
    outcome: str = ""
    matched: str = ""  # which row decided: "code -2019", "status 404", "class InvalidOrder"

    def describe(self) -> str:
        where = f"{self.call} {self.endpoint}".strip()
        bits = [f"{where}: {self.kind}"]
        if self.code is not None:
            bits.append(f"code {self.code}")
        if self.status is not None:
            bits.append(f"HTTP {self.status}")
        bits.append(f"{self.error}: {self.detail}" if self.detail else self.error)
        return scrub_url(", ".join(bits) + f" -- {self.action}")


class ExchangeCallError(FlatguardError):
    """A classified failure of one exchange call; ``kind`` (the classification's) is what the
    bus Responder replies."""

    def __init__(self, c: Classification) -> None:
        super().__init__(c.describe(), kind=str(c.kind))
        self.classification = c


class Fatal(ExchangeCallError):
    """Policy: stop trading, request a halt (the kill switch flattens), alert naming the call."""


class Rejected(ExchangeCallError):
    """Policy: this order is refused; trading continues. Not retried."""


class Transient(ExchangeCallError):
    """Policy: retry within budget. Raised only to code that chose a single attempt."""


class NotSent(FlatguardError):
    """Our side refused to send the request (fenced, banned, over the weight share): nothing
    left this process, so it is never classified or counted. Policy: reply ``kind``; the
    caller decides (an order is reported not placed)."""

    kind = "rejected"


def error_for(c: Classification) -> ExchangeCallError:
    return {Kind.FATAL: Fatal, Kind.REJECTED: Rejected, Kind.TRANSIENT: Transient}[c.kind](c)


_JSON = re.compile(r"\{.*\}", re.S)
_URL = re.compile(r"\b(GET|POST|PUT|DELETE|PATCH) (\S+?)(?:\?\S*)?(?: (\d{3}) |\s*$)")
_STATUS = re.compile(r"^\S+ (\d{3}) ")  # binance's 418/429 form: "binanceusdm 429 Too Many ..."


def parse_code(text: str) -> tuple[int | None, str]:
    """The exchange code and message from a ccxt error string, e.g. '... {"code":-2019,...}'."""
    m = _JSON.search(text)
    if not m:
        return None, ""
    try:
        body = json.loads(m.group(0))
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("code")
    try:
        code = int(code) if code is not None else None
    except (TypeError, ValueError):
        code = None
    if code == 0 or code == 200:
        code = None
    return code, str(body.get("msg", ""))


def parse_http(text: str) -> tuple[str, int | None]:
    """(endpoint, status) from ccxt's 'id METHOD URL STATUS reason body' message form."""
    m = _URL.search(text)
    endpoint, status = "", None
    if m:
        path = re.sub(r"^https?://[^/]+", "", m.group(2))
        endpoint = f"{m.group(1)} {path}"
        status = int(m.group(3)) if m.group(3) else None
    if status is None:
        s = _STATUS.match(text)
        status = int(s.group(1)) if s else None
    return endpoint, status


def _class_names(exc: BaseException) -> list[str]:
    return [k.__name__ for k in type(exc).__mro__]


def classify(call: str, exc: BaseException, rules: Rules, *, status: int | None = None,
             endpoint: str | None = None) -> Classification:
    """Decide the kind of one failure of ``call`` by the venue's ``rules``. Pure: no I/O."""
    text = str(exc)
    code, msg = parse_code(text)
    ep, st = parse_http(text)
    status = status if status is not None else st
    endpoint = endpoint or ep
    names = _class_names(exc)
    detail = re.sub(r"\?\S*", "", msg or text)[:300]  # no query strings (signatures)

    def made(rule: Rule, matched: str) -> Classification:
        return Classification(rule.kind, call, endpoint, code, status, names[0], detail,
                              rule.action, rule.outcome, matched)

    if code is not None:
        for rule in rules.codes.get(code, ()):
            if rule.calls is None or call in rule.calls:
                return made(rule, f"code {code}")
        known = code in rules.codes
        why = f"code {code} is not expected on {call}" if known else f"unknown code {code}"
        return made(Rule(_F, ANY, why + ": unknown means fatal"), f"code {code}")
    if status is not None and status in rules.statuses:
        return made(rules.statuses[status], f"status {status}")
    for cls, rule in rules.classes:
        if cls in names and (rule.calls is None or call in rule.calls):
            return made(rule, f"class {cls}")
    return made(UNKNOWN, "unknown")


def budget_exhausted(c: Classification, failures: int, seconds: float) -> Classification:
    """A transient error that outlived its budget: the same facts, now fatal."""
    return Classification(
        Kind.FATAL, c.call, c.endpoint, c.code, c.status, c.error, c.detail,
        f"still failing after {failures} attempts over {seconds:.0f} s ({c.action}): "
        "the retry budget is spent", c.outcome, "budget")
