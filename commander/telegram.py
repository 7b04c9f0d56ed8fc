"""The Telegram command channel: Bot API long polling over aiohttp.

Only user ids in ``telegram.allowed_users`` are obeyed, in private chats and groups alike;
anyone else gets no reply at all (nothing about the bot is revealed) and the attempt is audited,
at a bounded rate (``commander.strangers``: a flood of strangers cannot fill the journal).
Risk-adding commands get a second step: an inline keyboard whose callback must come from the same
person within ``control.confirm_timeout``; an expired one does nothing and says so. The bot token
is read from the environment variable named by ``telegram.token_env`` and never logged: it is
part of every request URL, so error texts are redacted before they reach a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
from typing import Any

import aiohttp

from commander.confirm import Pending
from commander.context import Context
from commander.errors import CommandError, ConfirmationExpired, NeedsConfirmation
from commander.registry import REGISTRY, Dispatcher, Request
from commander.strangers import StrangerLimit
from trader.kernel.config import TelegramConfig
from trader.kernel.errors import FlatguardError
from trader.kernel.metrics import METRICS

log = logging.getLogger("flatguard")

CHANNEL = "telegram"
MAX_TEXT = 4000  # Bot API limit is 4096 characters per message
BACKOFF_MAX = 30.0


class TelegramError(FlatguardError):
    """A Bot API call failed (transport, HTTP status or ``ok: false``). Policy: log, back off,
    keep polling -- the local control socket must keep working whatever Telegram does."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TelegramChannel:
    def __init__(self, tcfg: TelegramConfig, dispatcher: Dispatcher, ctx: Context,
                 token: str | None = None) -> None:
        token = token or os.environ.get(tcfg.token_env, "")
        if not token:
            raise TelegramError(f"telegram.enabled but ${tcfg.token_env} is empty: set the bot "
                                "token in that environment variable")
        self._token = token
        self.cfg = tcfg
        self.base = f"{tcfg.api_url.rstrip('/')}/bot{token}/"
        self.dispatcher = dispatcher
        self.ctx = ctx
        self.allowed = set(tcfg.allowed_users)
        self.offset = 0
        self.username = ""
        self.commands_set = False
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.strangers = StrangerLimit()

    # --- Bot API ------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<token>")

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   timeout: float = 15.0) -> Any:
        assert self._session is not None
        try:
            async with self._session.post(self.base + method, json=params or {},
                                          timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                try:
                    body = await r.json(content_type=None)
                except ValueError:
                    raise TelegramError(f"{method}: HTTP {r.status}, body is not JSON") from None
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TelegramError(f"{method}: {type(e).__name__}: {self._redact(str(e))}") from None
        if not isinstance(body, dict) or not body.get("ok"):
            body = body if isinstance(body, dict) else {}
            retry = (body.get("parameters") or {}).get("retry_after")
            raise TelegramError(
                f"{method}: {body.get('error_code', '?')} "
                f"{self._redact(str(body.get('description', 'not ok')))}",
                float(retry) if isinstance(retry, int | float) else None)
        return body.get("result")

    async def send(self, chat_id: int, text: str, keyboard: list[list[dict[str, str]]] | None = None,
                   edit_message_id: int | None = None) -> None:
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT] + "\n..."
        params: dict[str, Any] = {"chat_id": chat_id, "text": f"<pre>{html.escape(text)}</pre>",
                                  "parse_mode": "HTML"}
        if keyboard is not None:
            params["reply_markup"] = {"inline_keyboard": keyboard}
        method = "sendMessage"
        if edit_message_id is not None:
            method, params["message_id"] = "editMessageText", edit_message_id
        try:
            await self.call(method, params)
        except TelegramError as e:
            log.warning("event=telegram_send_failed method=%s error=%s", method, e)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        me = await self.call("getMe")
        self.username = str((me or {}).get("username") or "")
        cmds = [{"command": n, "description": c.help[:256]} for n, c in sorted(REGISTRY.items())]
        await self.call("setMyCommands", {"commands": cmds})
        self.commands_set = True
        log.info("event=telegram_started bot=%s allowed_users=%d", self.username,
                 len(self.allowed))

    async def run(self) -> None:
        self._session = aiohttp.ClientSession()
        backoff = 1.0
        while True:
            try:
                if not self.commands_set:
                    await self.start()
                await self.poll_once()
                backoff = 1.0
            except TelegramError as e:
                wait = e.retry_after or backoff
                log.warning("event=telegram_error error=%s retry_in=%.0f", e, wait)
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def poll_once(self) -> None:
        t = self.cfg.poll_timeout
        updates = await self.call("getUpdates", {
            "offset": self.offset, "timeout": t,
            "allowed_updates": ["message", "callback_query"]}, timeout=t + 15.0)
        for u in updates if isinstance(updates, list) else []:
            if not isinstance(u, dict):
                continue
            uid = u.get("update_id")
            if isinstance(uid, int):
                self.offset = max(self.offset, uid + 1)
            task = asyncio.get_running_loop().create_task(self._safe_handle(u))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.flush_strangers()  # a flood that stopped still gets its summary row

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._session is not None:
            await self._session.close()

    # --- updates ------------------------------------------------------------------------------

    async def _safe_handle(self, update: dict[str, Any]) -> None:
        try:
            if isinstance(update.get("message"), dict):
                await self.on_message(update["message"])
            elif isinstance(update.get("callback_query"), dict):
                await self.on_callback(update["callback_query"])
        except Exception:  # one bad update must not stop the channel
            log.exception("event=telegram_update_failed")

    def _stranger(self, user: Any, command: str, argv: list[str]) -> bool:
        if isinstance(user, int) and not isinstance(user, bool) and user in self.allowed:
            return False
        METRICS.inc("flatguard_commands_total", channel=CHANNEL, command="unknown",
                    result="unauthorised")
        who = f"tg:{str(user)[:32]}"
        self.flush_strangers()
        if self.strangers.allow(who):  # a flood must not fill the journal: see strangers.py
            self.ctx.audit(CHANNEL, who, command[:32], argv[:8], "unauthorised: ignored", False)
        return True

    def flush_strangers(self) -> None:
        """One audit row for the strangers' attempts that finished windows left out."""
        s = self.strangers.take_summary()
        if s is None:
            return
        text = (f"unauthorised: {s.attempts} more attempts from {s.users} users ignored"
                " (rate-limited, not audited one by one)")
        log.warning("event=strangers_suppressed attempts=%d users=%d", s.attempts, s.users)
        self.ctx.audit(CHANNEL, "tg:strangers", "suppressed",
                       {"attempts": s.attempts, "users": s.users}, text, False)

    async def on_message(self, msg: dict[str, Any]) -> None:
        text = msg.get("text")
        user = (msg.get("from") or {}).get("id")
        chat = (msg.get("chat") or {}).get("id")
        if not isinstance(text, str) or not text.startswith("/") or not isinstance(chat, int):
            return
        parts = text.split()
        command, _, bot = parts[0][1:].partition("@")
        if bot and self.username and bot.lower() != self.username.lower():
            return  # addressed to another bot in a group
        argv = parts[1:]
        if self._stranger(user, command, argv):
            return
        who = f"tg:{user}"
        req = Request(CHANNEL, who, command, tuple(argv), confirmed=False, timeout=10.0)
        try:
            reply = await self.dispatcher.dispatch(req)
        except NeedsConfirmation:
            p = self.ctx.confirmations.create(who, command.lower(), tuple(argv))
            await self.ask_confirmation(chat, p)
            return
        except CommandError as e:
            await self.send(chat, f"{e.kind}: {e}")
            return
        await self.send(chat, reply.text)

    async def ask_confirmation(self, chat: int, p: Pending) -> None:
        label = " ".join((p.command, *p.argv))
        await self.send(
            chat,
            f"{label} adds risk. Confirm within {self.ctx.confirmations.timeout:g} s?",
            keyboard=[[{"text": f"Confirm {p.command}", "callback_data": f"y:{p.token}"},
                       {"text": "Cancel", "callback_data": f"n:{p.token}"}]])

    async def on_callback(self, cq: dict[str, Any]) -> None:
        user = (cq.get("from") or {}).get("id")
        data = cq.get("data") if isinstance(cq.get("data"), str) else ""
        action, _, token = data.partition(":")
        if self._stranger(user, "confirm", [data[:20]]):
            return
        who = f"tg:{user}"
        msg = cq.get("message") or {}
        chat, mid = (msg.get("chat") or {}).get("id"), msg.get("message_id")
        cq_id = cq.get("id")
        if action == "n":
            gone = self.ctx.confirmations.cancel(who, token)
            self.ctx.audit(CHANNEL, who, "cancel", [], f"ok: cancelled {len(gone)}", True)
            await self._answer(cq_id, "cancelled")
            if isinstance(chat, int):
                await self.send(chat, "cancelled: nothing done", edit_message_id=mid)
            return
        try:
            p = self.ctx.confirmations.take(token, who)
        except CommandError as e:
            kind = "expired" if isinstance(e, ConfirmationExpired) else e.kind
            METRICS.inc("flatguard_commands_total", channel=CHANNEL, command="confirm", result=kind)
            self.ctx.audit(CHANNEL, who, "confirm", [token], f"{kind}: {e}", False)
            await self._answer(cq_id, str(e)[:180])
            if isinstance(chat, int):
                await self.send(chat, str(e), edit_message_id=mid)
            return
        await self._answer(cq_id, f"confirmed: {p.command}")
        req = Request(CHANNEL, who, p.command, p.argv, confirmed=True, timeout=10.0)
        try:
            text = (await self.dispatcher.dispatch(req)).text
        except CommandError as e:
            text = f"{e.kind}: {e}"
        if isinstance(chat, int):
            await self.send(chat, text, edit_message_id=mid)

    async def _answer(self, cq_id: Any, text: str) -> None:
        with contextlib.suppress(TelegramError):
            await self.call("answerCallbackQuery", {"callback_query_id": cq_id, "text": text})
