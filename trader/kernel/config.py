"""The one typed, frozen, validated configuration object.

Built from TOML (``tomllib``) or from the JSON the supervisor hands its children, through the
same validator: unknown keys, wrong types and bad values are errors naming the file and the key,
raised before any process starts. It lives in ``trader`` (the kernel) because every process
needs it and ``trader`` may import nothing of the other packages; the supervisor owns loading it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trader.kernel.errors import FlatguardError

SCALARS = (str, int, float, bool)


class ConfigError(FlatguardError, ValueError):
    """A config file or value is wrong. Fatal at start-up: fix the file and start again."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def positive(v: float) -> None:
    _check(v > 0, "must be > 0")


def non_negative(v: float) -> None:
    _check(v >= 0, "must be >= 0")


def fraction(v: float) -> None:
    _check(0 < v < 1, "must be between 0 and 1 (exclusive)")


def _rule(fn: Any) -> dict[str, Any]:
    return {"check": fn}


@dataclass(frozen=True)
class ExchangeConfig:
    id: str = "sim"  # "sim" (built-in simulated exchange) or a ccxt id such as "binanceusdm"
    url: str | None = None  # REST base URL override (required to reach an external sim)
    ws_url: str | None = None  # WebSocket base URL; derived from url when absent
    feed: Literal["ws", "poll", "auto"] = "auto"
    symbols: tuple[str, ...] = ("BTC/USDT:USDT", "ETH/USDT:USDT")
    leverage: int = field(default=2, metadata=_rule(positive))
    testnet: bool = False
    key_file: str | None = None  # file with "key\nsecret", must be mode 0600
    reconcile_interval: float = field(default=30.0, metadata=_rule(positive))
    max_unconfirmed: float = field(default=120.0, metadata=_rule(positive))
    dms_interval: float = field(default=30.0, metadata=_rule(positive))
    dms_timeout: float = field(default=120.0, metadata=_rule(positive))
    refuse_unsafe_keys: bool = False
    recv_window: int = field(default=5000, metadata=_rule(positive))  # ms, new orders
    timeout: float = field(default=10.0, metadata=_rule(positive))  # s, per REST call
    poll_interval: float = field(default=1.0, metadata=_rule(positive))  # s, feed = "poll"
    retry_budget: int = field(default=5, metadata=_rule(positive))  # consecutive transient errors
    retry_window: float = field(default=60.0, metadata=_rule(positive))  # s without success
    weight_limit: int = field(default=2400, metadata=_rule(positive))  # request weight / minute
    weight_headroom: float = field(default=0.8, metadata=_rule(fraction))  # above: polls wait


@dataclass(frozen=True)
class SupervisorConfig:
    heartbeat_interval: float = field(default=0.2, metadata=_rule(positive))
    heartbeat_liveness: int = field(default=4, metadata=_rule(positive))
    connector_grace: float = field(default=10.0, metadata=_rule(positive))
    shutdown: Literal["flatten", "cancel", "leave"] = "flatten"
    shutdown_timeout: float = field(default=60.0, metadata=_rule(positive))
    ready_timeout: float = field(default=30.0, metadata=_rule(positive))
    restart_backoff_max: float = field(default=30.0, metadata=_rule(positive))
    restart_intensity: int = field(default=5, metadata=_rule(positive))  # restarts per period
    restart_period: float = field(default=60.0, metadata=_rule(positive))


@dataclass(frozen=True)
class KillswitchConfig:
    backoff: float = field(default=5.0, metadata=_rule(positive))
    recv_window: int = field(default=60000, metadata=_rule(positive))  # ms; Binance max 60000
    check_interval: float = field(default=60.0, metadata=_rule(positive))  # s, kill-path proof
    alert_every: int = field(default=12, metadata=_rule(positive))  # failed rounds per re-alert
    # s the supervisor keeps watching a halted account after a verified kill-switch flatten
    watch_after: float = field(default=120.0, metadata=_rule(non_negative))
    # s the connector has to confirm the fence (no more orders for the trader) before SIGKILL
    fence_timeout: float = field(default=2.0, metadata=_rule(positive))
    # share of the request-weight limit only the kill path may use (the connector never does)
    weight_reserve: float = field(default=0.25, metadata=_rule(fraction))
    # s the trader keeps flattening itself through the connector after losing its supervisor
    self_flatten_timeout: float = field(default=30.0, metadata=_rule(positive))


@dataclass(frozen=True)
class JournalConfig:
    # Pruned (audit, commands, kill-switch rounds; never orders or fills) above these; the
    # cap itself is SQLite's max_page_count, so a journal can never fill the disk.
    max_bytes: int = field(default=256 * 1024 * 1024, metadata=_rule(positive))
    keep_days: float = field(default=30.0, metadata=_rule(positive))


@dataclass(frozen=True)
class RecordConfig:
    max_bytes: int = field(default=64 * 1024 * 1024, metadata=_rule(positive))  # per recording


@dataclass(frozen=True)
class LoggingConfig:
    # None: stdout/stderr as always. A relative path is relative to the run directory (a unit's
    # working directory is /). Every process appends to it; only the supervisor rotates it.
    file: str | None = None
    max_bytes: int = field(default=50 * 1024 * 1024, metadata=_rule(non_negative))  # 0: never
    backups: int = field(default=5, metadata=_rule(positive))  # rotated files kept
    format: Literal["text", "json"] = "text"  # json: one object per line, for log shippers


@dataclass(frozen=True)
class StrategyConfig:
    name: str = "demo"  # built-in (demo, stuck, churn) or "module:Class"
    tick_interval: float = field(default=0.5, metadata=_rule(positive))
    params: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))


@dataclass(frozen=True)
class RiskConfig:
    max_order_notional: float = field(default=2000.0, metadata=_rule(positive))
    max_position_notional: float = field(default=5000.0, metadata=_rule(positive))
    max_gross_exposure: float = field(default=8000.0, metadata=_rule(positive))
    max_leverage: float = field(default=3.0, metadata=_rule(positive))
    max_orders_per_second: int = field(default=5, metadata=_rule(positive))
    max_orders_per_minute: int = field(default=120, metadata=_rule(positive))
    price_band: float = field(default=0.05, metadata=_rule(fraction))
    loop_window: float = field(default=600.0, metadata=_rule(positive))
    loop_max_round_trips: int = field(default=20, metadata=_rule(positive))
    loop_max_cost: float = field(default=50.0, metadata=_rule(positive))
    # s a symbol stays REDUCING after a first loop breach; 0 = until a person resumes/unbans
    loop_cooldown: float = field(default=0.0, metadata=_rule(non_negative))
    max_drawdown: float = field(default=0.10, metadata=_rule(fraction))
    max_daily_loss: float = field(default=500.0, metadata=_rule(positive))
    margin_warn: float = field(default=0.5, metadata=_rule(fraction))
    margin_reduce: float = field(default=0.8, metadata=_rule(fraction))
    stale_pause: float = field(default=5.0, metadata=_rule(positive))
    stale_halt: float = field(default=60.0, metadata=_rule(positive))


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = field(default=9387, metadata=_rule(non_negative))  # 0 = any free port


@dataclass(frozen=True)
class ControlConfig:
    confirm_timeout: float = field(default=60.0, metadata=_rule(positive))
    stop_timeout: float = field(default=60.0, metadata=_rule(positive))
    stop_reprice: float = field(default=3.0, metadata=_rule(positive))
    tcp: str | None = None  # e.g. "tcp://0.0.0.0:9388": CURVE only
    server_key: str | None = None  # secret key file from `flatguard keys`
    allowed_keys: str | None = None  # directory of allowed client public keys


@dataclass(frozen=True)
class TelegramConfig:
    enabled: bool = False
    token_env: str = "FLATGUARD_TELEGRAM_TOKEN"
    api_url: str = "https://api.telegram.org"
    chat_id: int = 0
    allowed_users: tuple[int, ...] = ()
    poll_timeout: int = field(default=25, metadata=_rule(non_negative))


@dataclass(frozen=True)
class SinkConfig:
    """One notification sink; which fields matter depends on the sink's kind (its name)."""

    enabled: bool = True
    emergency: bool = False
    api_url: str | None = None
    url: str | None = None
    url_env: str | None = None
    token_env: str | None = None
    user_env: str | None = None
    webhook_url_env: str | None = None
    sid_env: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    queue_size: int = field(default=100, metadata=_rule(positive))
    rate_per_minute: int = field(default=20, metadata=_rule(positive))
    timeout: float = field(default=10.0, metadata=_rule(positive))
    retries: int = field(default=3, metadata=_rule(non_negative))  # transient errors, per message
    backoff: float = field(default=1.0, metadata=_rule(positive))  # s, doubles per retry (max 30 s)


SINK_KINDS = ("console", "telegram", "pushover", "ntfy", "discord", "webhook", "twilio")


@dataclass(frozen=True)
class NotifyConfig:
    trades: bool = False
    queue_size: int = field(default=1000, metadata=_rule(positive))
    dedup_window: float = field(default=30.0, metadata=_rule(non_negative))
    equity_change: float = field(default=0.02, metadata=_rule(fraction))
    exposure_change: float = field(default=0.25, metadata=_rule(positive))
    leverage_change: float = field(default=0.5, metadata=_rule(positive))  # x, absolute
    digest_hour: int = field(default=0, metadata=_rule(non_negative))  # UTC hour
    repeat_interval: float = field(default=60.0, metadata=_rule(positive))
    emergency_expiry: float = field(default=3600.0, metadata=_rule(positive))
    sinks: Mapping[str, SinkConfig] = field(default_factory=lambda: types.MappingProxyType({}))


@dataclass(frozen=True)
class Config:
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    killswitch: KillswitchConfig = field(default_factory=KillswitchConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: str = "<defaults>"  # where it was read from, for error messages

    @property
    def hang_timeout(self) -> float:
        s = self.supervisor
        return s.heartbeat_interval * s.heartbeat_liveness


# --- building ---------------------------------------------------------------------------------


def _type_ok(value: Any, hint: Any) -> tuple[bool, Any]:
    """Check ``value`` against a field's type hint; return (ok, normalised value)."""
    origin = typing.get_origin(hint)
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        # NaN and +-inf are refused: every comparison with them is false, so a NaN cap passes
        # every check and an infinite one disables it.
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value))
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin is Literal:
        return value in typing.get_args(hint), value
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return type(None) in typing.get_args(hint), None
        for arm in typing.get_args(hint):
            if arm is not type(None):
                ok, v = _type_ok(value, arm)
                if ok:
                    return True, v
        return False, value
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if not isinstance(value, list | tuple):
            return False, value
        out = []
        for v in value:
            ok, nv = _type_ok(v, item)
            if not ok:
                return False, value
            out.append(nv)
        return True, tuple(out)
    raise TypeError(f"unsupported config type {hint!r}")


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    return {bool: "true/false", int: "an integer", float: "a finite number", str: "a string"}.get(
        hint, "null" if hint is type(None) else str(hint)
    )


def _build(cls: Any, data: Any, where: str, src: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{src}: [{where}] must be a table, got {type(data).__name__}")
    label = f"[{where}]" if where else "top level:"
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        f = known.get(key)
        if f is None or key == "source":
            raise ConfigError(
                f"{src}: {label} unknown key {key!r}; known keys: {', '.join(sorted(set(known) - {'source'}))}"
            )
        kwargs[key] = _build_field(cls, f, hints[key], value, where, src)
    return cls(**kwargs)


def _build_field(cls: Any, f: Any, hint: Any, value: Any, where: str, src: str) -> Any:
    name = f"{where}.{f.name}" if where else f.name
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, name, src)
    if cls is StrategyConfig and f.name == "params":
        return _build_params(value, name, src)
    if cls is NotifyConfig and f.name == "sinks":
        return _build_sinks(value, where, src)
    ok, norm = _type_ok(value, hint)
    if not ok:
        raise ConfigError(f"{src}: {name} must be {_type_name(hint)}, got {value!r}")
    check = f.metadata.get("check")
    if check is not None and norm is not None:
        try:
            check(norm)
        except ValueError as e:
            raise ConfigError(f"{src}: {name} = {norm!r} {e}") from None
    return norm


def _build_params(value: Any, name: str, src: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{src}: [{name}] must be a table")
    for k, v in value.items():
        items = v if isinstance(v, list) else [v]
        if not all(isinstance(i, SCALARS) for i in items):
            raise ConfigError(f"{src}: {name}.{k} must be a string, number, bool or list of them")
    return types.MappingProxyType(dict(value))


def _build_sinks(value: Any, where: str, src: str) -> Mapping[str, SinkConfig]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{src}: [{where}.sinks] must be a table")
    sinks = {}
    for kind, body in value.items():
        if kind not in SINK_KINDS:
            raise ConfigError(
                f"{src}: [notify.{kind}] unknown sink; known sinks: {', '.join(SINK_KINDS)}"
            )
        sinks[kind] = _build(SinkConfig, body, f"notify.{kind}", src)
    return types.MappingProxyType(sinks)


def from_mapping(data: Mapping[str, Any], source: str = "<defaults>") -> Config:
    data = dict(data)
    data.pop("source", None)
    notify = data.get("notify")
    if isinstance(notify, Mapping):
        # TOML writes sinks as [notify.pushover]; the object keeps them under notify.sinks.
        notify = dict(notify)
        sinks = dict(notify.pop("sinks", {}) or {})
        fields = {f.name for f in dataclasses.fields(NotifyConfig)}
        for k in list(notify):
            if k in SINK_KINDS or (k not in fields and isinstance(notify[k], Mapping)):
                sinks[k] = notify.pop(k)
        notify["sinks"] = sinks
        data["notify"] = notify
    cfg = _build(Config, data, "", source)
    cfg = dataclasses.replace(cfg, source=source)
    _cross_checks(cfg)
    return cfg


def _cross_checks(cfg: Config) -> None:
    src, ex = cfg.source, cfg.exchange
    if not ex.symbols:
        raise ConfigError(f"{src}: exchange.symbols must name at least one market")
    if cfg.risk.margin_warn >= cfg.risk.margin_reduce:
        raise ConfigError(f"{src}: risk.margin_warn must be below risk.margin_reduce")
    if cfg.risk.stale_pause >= cfg.risk.stale_halt:
        raise ConfigError(f"{src}: risk.stale_pause must be below risk.stale_halt")
    if cfg.killswitch.recv_window > 60000:
        raise ConfigError(f"{src}: killswitch.recv_window must be <= 60000 (Binance's maximum)")
    if cfg.telegram.enabled and not cfg.telegram.allowed_users:
        raise ConfigError(
            f"{src}: telegram.allowed_users is empty: nobody could send commands; "
            "add your Telegram user id"
        )
    if cfg.control.tcp and not (cfg.control.server_key and cfg.control.allowed_keys):
        raise ConfigError(
            f"{src}: control.tcp needs control.server_key and control.allowed_keys "
            "(CURVE); run `flatguard keys` to make them"
        )


def load(path: str | Path | None) -> Config:
    """Load a TOML file, or the embedded defaults when ``path`` is None."""
    if path is None:
        return from_mapping({})
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    tg = data.get("telegram")
    if isinstance(tg, dict) and "enabled" not in tg:
        # A [telegram] section written means Telegram wanted: never silently run without it.
        data["telegram"] = {**tg, "enabled": True}
    return from_mapping(data, str(p))


def to_plain(cfg: Config) -> dict[str, Any]:
    """A JSON-able dict of the effective config (what children receive, what `config show` prints)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def dumps(cfg: Config) -> str:
    return json.dumps(to_plain(cfg), indent=2, sort_keys=True)


def loads_json(text: str) -> Config:
    data = json.loads(text)
    return from_mapping(data, data.get("source", "<supervisor>"))
