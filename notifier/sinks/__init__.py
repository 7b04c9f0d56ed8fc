"""Sinks and their start-up validation: ``build(cfg, environ)`` returns the enabled sinks or
raises ``SinkConfigError`` naming the section and the key or environment variable to fix.

The console sink is always present. Telegram is configured in ``[telegram]`` (shared with the
command channel); ``[notify.telegram]`` may tune its queue, rate and ``emergency`` flag (Telegram
is an emergency sink unless that section says ``emergency = false``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from notifier.errors import SinkConfigError
from notifier.sinks.base import Sink
from notifier.sinks.console import ConsoleSink
from notifier.sinks.discord import DiscordSink
from notifier.sinks.ntfy import NtfySink
from notifier.sinks.pushover import PushoverSink
from notifier.sinks.telegram import TelegramSink
from notifier.sinks.twilio import TwilioSink
from notifier.sinks.webhook import WebhookSink
from trader.kernel.config import Config, SinkConfig

__all__ = ["Sink", "build"]


class _Env:
    def __init__(self, section: str, environ: Mapping[str, str], src: str) -> None:
        self.section, self.environ, self.src = section, environ, src

    def fail(self, what: str) -> SinkConfigError:
        return SinkConfigError(f"{self.src}: [{self.section}] {what}")

    def need(self, key: str, value: str | None) -> str:
        if not value:
            raise self.fail(f"{key} is required")
        return value

    def secret(self, key: str, var: str | None, required: bool = True) -> str | None:
        """The value of the environment variable named by ``key``."""
        if not var:
            if required:
                raise self.fail(f"{key} is required (the name of an environment variable)")
            return None
        value = self.environ.get(var, "")
        if not value:
            raise self.fail(f"{key}: environment variable {var} is not set")
        return value

    def url(self, cfg: SinkConfig, env_key: str = "url_env") -> tuple[str, bool]:
        """(url, is_secret): from ``url`` or the env var named by ``url_env``/``webhook_url_env``."""
        var = getattr(cfg, env_key)
        if var:
            value = self.secret(env_key, var)
            assert value is not None
            return value, True
        if cfg.url:
            return cfg.url, False
        raise self.fail(f"needs url or {env_key}")


def build(cfg: Config, environ: Mapping[str, str] | None = None) -> list[Sink]:
    environ = os.environ if environ is None else environ
    src, sinks_cfg = cfg.source, cfg.notify.sinks
    console_cfg = sinks_cfg.get("console") or SinkConfig(
        queue_size=cfg.notify.queue_size, rate_per_minute=6000)
    out: list[Sink] = [ConsoleSink(console_cfg)]
    tg = cfg.telegram
    tg_cfg = sinks_cfg.get("telegram")
    if tg.enabled and (tg_cfg is None or tg_cfg.enabled):
        e = _Env("telegram", environ, src)
        token = e.secret("token_env", tg.token_env)
        if not tg.chat_id:
            raise e.fail("chat_id is required to send notifications")
        assert token is not None
        out.append(TelegramSink(tg_cfg or SinkConfig(emergency=True), tg.api_url, token,
                                tg.chat_id))
    for kind, sc in sinks_cfg.items():
        if not sc.enabled or kind in ("console", "telegram"):
            continue
        e = _Env(f"notify.{kind}", environ, src)
        if kind == "pushover":
            token, user = e.secret("token_env", sc.token_env), e.secret("user_env", sc.user_env)
            assert token and user
            out.append(PushoverSink(sc, sc.api_url or "https://api.pushover.net", token, user,
                                    cfg.notify.emergency_expiry))
        elif kind == "ntfy":
            url, _ = e.url(sc)
            out.append(NtfySink(sc, url, e.secret("token_env", sc.token_env, required=False)))
        elif kind == "discord":
            url, _ = e.url(sc, "webhook_url_env")
            out.append(DiscordSink(sc, url))
        elif kind == "webhook":
            url, secret = e.url(sc)
            out.append(WebhookSink(sc, url, secret))
        elif kind == "twilio":
            if not sc.emergency:
                raise e.fail("emergency must be true: Twilio places phone calls for critical "
                             "alerts only")
            sid, token = e.secret("sid_env", sc.sid_env), e.secret("token_env", sc.token_env)
            assert sid and token
            e.need("from_number", sc.from_number)
            e.need("to_number", sc.to_number)
            out.append(TwilioSink(sc, sc.api_url or "https://api.twilio.com", sid, token))
    return out
