"""A local Telegram Bot API (``{url}/bot<token>/<method>``) for the notifier and the commander.

Speaks the real shapes: every reply is ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error_code": N, "description": "..."}`` (429 adds ``parameters.retry_after``); parameters may
come as query string, form or JSON (``reply_markup`` as an object or a JSON string). Methods:

- ``getMe``, ``deleteWebhook``, ``setMyCommands`` / ``getMyCommands``
- ``sendMessage`` (text <= 4096, optional ``reply_markup`` with ``inline_keyboard``)
- ``editMessageText`` (400 "message is not modified" for identical text and markup)
- ``answerCallbackQuery`` (400 for unknown or already answered query ids)
- ``getUpdates`` with ``offset`` / ``limit`` / ``timeout``: long polling; updates with
  ``update_id < offset`` are confirmed and forgotten; a negative offset keeps only the last
  ``-offset``; a second concurrent poll ends the first with 409 Conflict.
- a wrong token answers 401 Unauthorized; an unknown method 404 Not Found.

Test API (call from any thread)::

    with FakeTelegram(token="123:ABC") as tg:
        tg.url                                     # api_url for the client
        uid = tg.inject_message("/ping", user_id=42)          # -> update_id; private chat 42
        tg.inject_message("/kill", user_id=42, chat_id=-100)  # a group chat
        cq = tg.inject_callback("confirm:7", user_id=42, message_id=3)  # -> callback id
        tg.sent          # list of Message dicts the bot sent (chat.id, text, reply_markup)
        tg.edits         # list of editMessageText params
        tg.answered      # list of answerCallbackQuery params
        tg.commands      # last setMyCommands list
        tg.pending()     # updates not yet confirmed by an offset
        tg.texts(chat_id=42)                       # texts sent to a chat
        tg.wait_for(lambda: tg.texts(42))          # see FakeService
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeService

MAX_TEXT = 4096
CMD_RE = re.compile(r"^[a-z0-9_]{1,32}$")


def _fail(code: int, description: str, **extra: Any) -> web.Response:
    return web.json_response({"ok": False, "error_code": code, "description": description,
                              **extra}, status=code)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


class FakeTelegram(FakeService):
    def __init__(self, token: str = "123456:TEST-token_xyz", bot_id: int = 123456,
                 username: str = "flatguard_test_bot") -> None:
        super().__init__()
        self.token = token
        self.bot = {"id": bot_id, "is_bot": True, "first_name": "flatguard",
                    "username": username}
        self.sent: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []
        self.answered: list[dict[str, Any]] = []
        self.commands: list[dict[str, str]] = []
        self.known_chats: set[int] | None = None  # if set, other chats get "chat not found"
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)
        self._callback_ids = itertools.count(5000)
        self._open_callbacks: set[str] = set()
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._new_update: asyncio.Event | None = None
        self._poller: asyncio.Future[None] | None = None

    # --- test API ---

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [m["text"] for m in list(self.sent)
                if chat_id is None or m["chat"]["id"] == chat_id]

    def pending(self) -> list[dict[str, Any]]:
        return list(self._updates)

    def inject_message(self, text: str, user_id: int, chat_id: int | None = None,
                       username: str | None = None) -> int:
        """A user's message to the bot; returns its update_id."""
        chat = chat_id if chat_id is not None else user_id

        def add() -> int:
            msg = {"message_id": next(self._message_ids), "date": int(time.time()),
                   "from": self._user(user_id, username), "chat": self._chat(chat), "text": text}
            if text.startswith("/"):
                cmd_len = len(text.split()[0])
                msg["entities"] = [{"type": "bot_command", "offset": 0, "length": cmd_len}]
            return self._push({"message": msg})

        return self.call(add)

    def inject_callback(self, data: str, user_id: int, message_id: int,
                        chat_id: int | None = None, username: str | None = None) -> str:
        """A press on an inline keyboard button of the bot's message; returns the query id."""
        chat = chat_id if chat_id is not None else user_id

        def add() -> str:
            qid = str(next(self._callback_ids))
            self._open_callbacks.add(qid)
            message = self._messages.get((chat, message_id)) or {
                "message_id": message_id, "date": int(time.time()), "chat": self._chat(chat),
                "from": self.bot, "text": ""}
            self._push({"callback_query": {
                "id": qid, "from": self._user(user_id, username), "message": message,
                "chat_instance": str(chat), "data": data}})
            return qid

        return self.call(add)

    # --- protocol ---

    def rate_limited(self, retry_after: float) -> web.Response:
        n = max(1, round(retry_after))
        return _fail(429, f"Too Many Requests: retry after {n}", parameters={"retry_after": n})

    def error(self, status: int) -> web.Response:
        if status >= 500:
            return web.Response(status=status, text="Bad Gateway")
        return _fail(status, "Bad Request: injected fault")

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)

    @staticmethod
    def _user(user_id: int, username: str | None) -> dict[str, Any]:
        u: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        if username:
            u["username"] = username
        return u

    @staticmethod
    def _chat(chat_id: int) -> dict[str, Any]:
        return {"id": chat_id, "type": "private" if chat_id > 0 else "group"}

    def _push(self, update: dict[str, Any]) -> int:
        uid = next(self._update_ids)
        self._updates.append({"update_id": uid, **update})
        if self._new_update is not None:
            self._new_update.set()
        return uid

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _fail(401, "Unauthorized")
        req = self.requests[-1]
        try:
            p = req.params()
        except ValueError:
            return _fail(400, "Bad Request: can't parse JSON")
        handler = getattr(self, "_m_" + request.match_info["method"], None)
        if handler is None:
            return _fail(404, "Not Found")
        return await handler(p)

    async def _m_getMe(self, p: dict[str, Any]) -> web.Response:
        return _ok(self.bot)

    async def _m_deleteWebhook(self, p: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _m_setMyCommands(self, p: dict[str, Any]) -> web.Response:
        cmds = p.get("commands")
        if isinstance(cmds, str):
            cmds = json.loads(cmds)
        if not isinstance(cmds, list) or len(cmds) > 100:
            return _fail(400, "Bad Request: commands must be an array of at most 100")
        for c in cmds:
            if (not isinstance(c, dict) or not CMD_RE.match(str(c.get("command", "")))
                    or not 1 <= len(str(c.get("description", ""))) <= 256):
                return _fail(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands = [{"command": c["command"], "description": c["description"]}
                         for c in cmds]
        return _ok(True)

    async def _m_getMyCommands(self, p: dict[str, Any]) -> web.Response:
        return _ok(self.commands)

    def _markup(self, p: dict[str, Any]) -> Any:
        m = p.get("reply_markup")
        return json.loads(m) if isinstance(m, str) else m

    async def _m_sendMessage(self, p: dict[str, Any]) -> web.Response:
        text = str(p.get("text", ""))
        try:
            chat_id = int(p["chat_id"])
        except (KeyError, ValueError):
            return _fail(400, "Bad Request: chat_id is empty")
        if not text.strip():
            return _fail(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            return _fail(400, "Bad Request: message is too long")
        if self.known_chats is not None and chat_id not in self.known_chats:
            return _fail(400, "Bad Request: chat not found")
        msg: dict[str, Any] = {"message_id": next(self._message_ids), "from": self.bot,
                               "chat": self._chat(chat_id), "date": int(time.time()),
                               "text": text}
        markup = self._markup(p)
        if markup is not None:
            msg["reply_markup"] = markup
        self._messages[(chat_id, msg["message_id"])] = msg
        self.sent.append(msg)
        return _ok(msg)

    async def _m_editMessageText(self, p: dict[str, Any]) -> web.Response:
        try:
            key = (int(p["chat_id"]), int(p["message_id"]))
        except (KeyError, ValueError):
            return _fail(400, "Bad Request: message identifier is not specified")
        msg = self._messages.get(key)
        if msg is None:
            return _fail(400, "Bad Request: message to edit not found")
        text, markup = str(p.get("text", "")), self._markup(p)
        if not text.strip():
            return _fail(400, "Bad Request: message text is empty")
        if text == msg["text"] and markup == msg.get("reply_markup"):
            return _fail(400, "Bad Request: message is not modified: specified new message "
                              "content and reply markup are exactly the same as a current "
                              "content and reply markup of the message")
        msg = {**msg, "text": text, "edit_date": int(time.time())}
        msg.pop("reply_markup", None)
        if markup is not None:
            msg["reply_markup"] = markup
        self._messages[key] = msg
        self.edits.append(dict(p))
        return _ok(msg)

    async def _m_answerCallbackQuery(self, p: dict[str, Any]) -> web.Response:
        qid = str(p.get("callback_query_id", ""))
        if qid not in self._open_callbacks:
            return _fail(400, "Bad Request: query is too old and response timeout expired or "
                              "query ID is invalid")
        self._open_callbacks.discard(qid)
        self.answered.append(dict(p))
        return _ok(True)

    async def _m_getUpdates(self, p: dict[str, Any]) -> web.Response:
        try:
            offset = int(p.get("offset", 0))
            limit = min(max(int(p.get("limit", 100)), 1), 100)
            timeout = max(float(p.get("timeout", 0)), 0.0)
        except ValueError:
            return _fail(400, "Bad Request: wrong parameter")
        if offset < 0:
            self._updates = self._updates[offset:]
        elif offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if self._poller is not None and not self._poller.done():
            self._poller.set_result(None)  # the earlier poll ends with 409
        me: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._poller = me
        deadline = time.monotonic() + timeout
        while not self._updates and not me.done():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._new_update = asyncio.Event()
            waiter = asyncio.ensure_future(self._new_update.wait())
            await asyncio.wait([waiter, me], timeout=left, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        if me.done() and self._poller is not me:
            return _fail(409, "Conflict: terminated by other getUpdates request; make sure "
                              "that only one bot instance is running")
        return _ok(self._updates[:limit])
