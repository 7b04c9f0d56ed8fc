"""The trader's side of the control commands, and its ways of ending.

Commands arrive on the trader's ROUTER (trader.sock) from the commander. Risk-reducing ones act
at once; the commander has already asked for confirmation of the risk-adding ones.

Ways of ending: ``stop`` (limit exit, then halted), a graceful stop asked by the supervisor
(SIGTERM during an orderly stop: cancel our orders, the supervisor flattens), and supervisor loss
(nobody is left to run the kill switch: stop trading, flatten through the connector, exit).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from trader.engine.control import EngineControl
from trader.engine.orders import ORDER_TIMEOUT
from trader.kernel import bus
from trader.kernel.errors import FlatguardError
from trader.kernel.payloads import Halt, OrderCreate
from trader.kernel.protocol import (
    CRITICAL,
    PAUSED,
    RUNNING,
    STOPPED,
    STOPPING,
    TERMINAL,
    TRADER,
    ConnectorOp,
    SupervisorOp,
    TraderOp,
)
from trader.kernel.wire import Message

log = logging.getLogger("flatguard")

EXIT_RETRY = 0.5  # s between attempts to place a refused (e.g. throttled) limit-exit order


class TraderCommandError(FlatguardError):
    kind = "refused"


class TraderCommands:
    """The trader's ops (``protocol.TraderOp``) and its ways of ending, on an ``EngineControl``.
    ``handle`` is the dispatch table the trader's ROUTER serves."""

    def __init__(self, engine: EngineControl) -> None:
        self.e = engine
        self.stop_started = 0.0
        self.exit_orders: dict[str, str] = {}  # symbol -> client id of its exit order
        self.exit_at: dict[str, float] = {}  # symbol -> when its exit was last placed
        self.halt_requested = False
        self._late: set[asyncio.Task[None]] = set()
        Op = TraderOp
        self.handle = bus.Dispatcher(TRADER, {
            Op.INFO: self.op_info, Op.DEBUG: self.op_debug,
            Op.DEBUG_INSTRUMENT: self.op_debug_instrument, Op.PAUSE: self.op_pause,
            Op.BAN: self.op_ban, Op.STOP: self.op_stop, Op.UNPAUSE: self.op_unpause,
            Op.UNBAN: self.op_unban})

    def _symbol(self, args: dict[str, Any]) -> str:
        sym = str(args.get("symbol") or "")
        if sym not in self.e.symbols:
            raise TraderCommandError(f"unknown symbol {sym!r}; traded: {', '.join(self.e.symbols)}")
        return sym

    # --- queries --------------------------------------------------------------------------

    async def op_info(self, args: dict[str, Any], msg: Message | None = None) -> dict[str, Any]:
        e = self.e
        status = e.risk_status()
        marks = {s: (md.mark if (md := e.quote(s)) is not None else None) for s in e.symbols}
        sym_states = status.get("symbols", {}) if isinstance(status, dict) else {}
        return {
            "trading_state": e.state,
            "risk_state": e.risk_state(),  # e.g. REDUCING while the engine is RUNNING
            "strategy": e.strategy_name(),
            "symbols": {s: {"state": sym_states.get(s, {}).get("state", "active")
                            if isinstance(sym_states.get(s), dict) else sym_states.get(s, "active"),
                            "position": e.held(s), "mark": marks[s]} for s in e.symbols},
            "risk": status,
            "positions": e.position_rows(),
            "open_orders": [{"client_id": o.client_id, "symbol": o.symbol, "side": o.side,
                             "remaining": o.remaining, "price": o.price,
                             "reduce_only": o.reduce_only} for o in e.open_order_rows()],
            "equity": e.equity(),
            "rejections": e.rejections(),
        }

    async def op_debug(self, args: dict[str, Any], msg: Message | None = None) -> dict[str, Any]:
        e = self.e
        last_md = e.last_md()
        return {"state": e.state, "loops": e.loops(), "orders_tracked": e.orders_tracked(),
                "strategy": e.strategy_debug(),
                "last_md_age_s": time.time() - last_md if last_md else None,
                "bus": bus.STATS.snapshot()}

    async def op_debug_instrument(self, args: dict[str, Any],
                                  msg: Message | None = None) -> dict[str, Any]:
        sym = self._symbol(args)
        e = self.e
        md = e.quote(sym)
        return {"symbol": sym, "position": e.held(sym),
                "mark": None if md is None else {"mark": md.mark, "bid": md.bid, "ask": md.ask,
                                                 "age_s": time.time() - md.ts},
                # OrderUpdate is a slotted dataclass: no __dict__
                "open_orders": [dataclasses.asdict(o) for o in e.live_orders(sym)]}

    # --- risk-reducing: act at once --------------------------------------------------------

    async def cancel_all_settled(self, symbols: tuple[str, ...]) -> None:
        """Cancel every order on ``symbols`` (adopted ones included: per symbol, all), and then
        the placements that were still in flight: a create sent just before the cancel can
        reach the exchange after it and would rest there unseen by anyone."""
        racing = self.e.pending_orders(symbols)
        await self.e.cancel_all_now(symbols)
        if racing:
            task = asyncio.get_running_loop().create_task(self._cancel_late(racing))
            self._late.add(task)
            task.add_done_callback(self._late.discard)

    async def _cancel_late(self, racing: list[tuple[str, str]]) -> None:
        conn = self.e.connector
        deadline = time.monotonic() + ORDER_TIMEOUT + 1.0
        while conn.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for sym, cid in racing:
            try:  # an order that never landed is "already gone": harmless
                await conn.request(ConnectorOp.ORDER_CANCEL, {"symbol": sym, "client_id": cid},
                                   timeout=ORDER_TIMEOUT)
            except bus.RequestError as err:
                log.info("late cancel cid=%s: %s", cid, err.message)

    async def op_pause(self, args: dict[str, Any], msg: Message | None = None) -> dict[str, Any]:
        e = self.e
        if e.state not in (RUNNING, PAUSED):
            raise TraderCommandError(f"cannot pause in state {e.state}")
        e.set_state(PAUSED)
        await self.cancel_all_settled(e.symbols)
        return {"state": e.state, "cancelled_symbols": list(e.symbols)}

    async def op_ban(self, args: dict[str, Any], msg: Message | None = None) -> dict[str, Any]:
        sym = self._symbol(args)
        self.e.ban(sym)
        await self.cancel_all_settled((sym,))
        return {"banned": sym}

    async def op_stop(self, args: dict[str, Any], msg: Message | None = None) -> dict[str, Any]:
        e = self.e
        if e.state == STOPPING:
            return {"state": e.state, "already": True}
        e.set_state(STOPPING)
        self.stop_started = time.monotonic()
        self.exit_orders.clear()
        self.exit_at.clear()
        await self.cancel_all_settled(e.symbols)
        return {"state": e.state, "timeout_s": e.cfg.control.stop_timeout}

    # --- risk-adding (confirmed by the commander) -------------------------------------------

    async def op_unpause(self, args: dict[str, Any],
                         msg: Message | None = None) -> dict[str, Any]:
        if self.e.state != PAUSED:
            raise TraderCommandError(f"not paused (state {self.e.state})")
        self.e.set_state(RUNNING)
        return {"state": self.e.state}

    async def op_unban(self, args: dict[str, Any], msg: Message | None = None) -> dict[str, Any]:
        sym = self._symbol(args)
        self.e.unban(sym)
        return {"unbanned": sym}

    # --- risk events ----------------------------------------------------------------------

    def risk_event(self, ev: Any) -> None:
        e = self.e
        log.warning("risk guard=%s level=%s action=%s %s: %s", ev.guard, ev.level, ev.action,
                    ev.title, ev.text)
        e.notify(ev.level, ev.title, ev.text, key=f"risk:{ev.guard}:{ev.symbol or 'account'}")
        if ev.action == "halt":
            self.request_halt(f"risk_{ev.guard}", f"{ev.title}: {ev.text}")
        elif ev.action == "stop" and e.state != STOPPING:
            asyncio.get_running_loop().create_task(self.op_stop({}))
        elif ev.action == "reduce":
            for sym in ([ev.symbol] if ev.symbol else e.symbols):
                pos = e.held(sym)
                if pos:
                    e.place(sym, "sell" if pos > 0 else "buy", abs(pos) / 2, None, True)

    def request_halt(self, trigger: str, reason: str) -> None:
        if self.halt_requested:
            return
        self.halt_requested = True

        async def go() -> None:
            try:
                await self.e.supervisor.request(SupervisorOp.HALT,
                                                Halt(trigger, reason, TRADER).to_wire(),
                                                timeout=2.0)
            except bus.RequestError as err:
                log.error("halt request failed (%s); exiting so the supervisor sees it", err)
                self.e.stop_process()

        asyncio.get_running_loop().create_task(go())

    # --- stop: limit exit -----------------------------------------------------------------

    def stop_step(self) -> None:
        e = self.e
        now = time.monotonic()
        if self.halt_requested:
            return
        if now - self.stop_started > e.cfg.control.stop_timeout:
            self.request_halt("stop_timeout", "limit exit did not finish within "
                              f"{e.cfg.control.stop_timeout:g} s: market exit")
            return
        positions = {s: e.held(s) for s in e.symbols if e.held(s)}
        if not positions and not e.open_order_rows():
            self.request_halt("stop", "limit exit complete")
            return
        for sym, pos in positions.items():
            live = self.exit_orders.get(sym)
            status = e.order_status(live) if live else None
            if status is None or status in TERMINAL:
                live = None  # filled, cancelled or refused: place a new one (not too often)
                if now - self.exit_at.get(sym, 0.0) < EXIT_RETRY:
                    continue
            elif now - self.exit_at.get(sym, 0.0) < e.cfg.control.stop_reprice:
                continue  # resting at a recent touch
            md = e.quote(sym)
            if md is None:
                continue
            if live:
                e.cancel_order(sym, self.exit_orders.pop(sym))
            self.exit_at[sym] = now
            cid = (e.place(sym, "sell", abs(pos), md.ask, True) if pos > 0
                   else e.place(sym, "buy", abs(pos), md.bid, True))
            if cid:
                self.exit_orders[sym] = cid

    # --- ending -----------------------------------------------------------------------------

    async def graceful_stop(self) -> None:
        e = self.e
        e.set_state(STOPPED)
        try:
            e.strategy_stop()
        except Exception:
            log.exception("strategy on_stop raised")
        try:
            await asyncio.wait_for(e.cancel_all_now(e.symbols), 5.0)
        except (TimeoutError, bus.RequestError) as err:
            log.warning("graceful stop: cancel failed (%s); the supervisor flattens", err)

    async def supervisor_lost(self) -> int:
        """The supervisor is gone: nobody else will run the kill switch. Flatten, then exit."""
        e = self.e
        conn = e.connector
        log.critical("supervisor lost (parent changed): stopping trading and flattening through "
                     "the connector")
        e.set_state(STOPPED)
        e.notify(CRITICAL, "Supervisor lost: trader flattening itself",
                 "the supervisor process is gone; cancelling orders and closing positions "
                 "through the connector", key="supervisor_lost")
        budget = e.cfg.killswitch.self_flatten_timeout
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            try:
                await conn.request(ConnectorOp.ORDER_CANCEL_ALL, {}, timeout=5.0)
                snap = await conn.request(ConnectorOp.SYNC, {}, timeout=10.0)
                snap = await conn.request(ConnectorOp.ACCOUNT, {}, timeout=5.0)
                rows = [p for p in snap.get("positions", []) if float(p.get("contracts") or 0)]
                if not rows and not snap.get("open_orders"):
                    log.warning("supervisor lost: account verified flat by the connector")
                    return 3
                for p in rows:
                    c = float(p["contracts"])
                    await conn.request(ConnectorOp.ORDER_CREATE, OrderCreate(
                        e.exit_client_id(), p["symbol"], "sell" if c > 0 else "buy", "market",
                        abs(c), reduce_only=True).to_wire(), timeout=10.0)
            except bus.RequestError as err:
                log.error("self-flatten round failed: %s", err)
            await asyncio.sleep(1.0)
        log.critical("supervisor lost and the account could not be verified flat in %gs "
                     "(killswitch.self_flatten_timeout)", budget)
        return 4
